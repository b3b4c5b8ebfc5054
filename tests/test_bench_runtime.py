"""The runtime benchmarks run end to end (small settings) and print what they measure."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def _bench(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "recore_dist.cli", "bench", *args, "--json"],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_bench_replay_measures_both_paths():
    r = _bench("replay", "--calls", "6", "--repeats", "1")
    assert r["raw_mb_per_second"] > 0 and r["service_mb_per_second"] > 0
    assert r["ratio"] == pytest.approx(r["service_mb_per_second"] / r["raw_mb_per_second"])
    assert r["stored_chunks"] >= 1 + 2 * 6 * 4  # every pushed chunk was decoded and stored


def test_bench_actors_measures_both_paths():
    r = _bench("actors", "--steps", "32", "--repeats", "1", "--num-envs", "2", "--set", "replay.chunk_length=16")
    assert r["raw_steps_per_second"] > 0 and r["actor_steps_per_second"] > 0 and r["policy_params"] > 0
    assert r["chunks_stored"] >= 2 and r["chunks_rejected"] == 0


def test_bench_scaling_on_one_and_two_nodes():
    r = _bench("scaling", "--steps", "24", "--repeats", "1", "--num-envs", "1", "--nodes", "2")
    setups = [row["setup"] for row in r["rows"]]
    assert setups[0] == "1 node" and setups[1].startswith("2 nodes")
    assert r["rows"][1]["nodes_used"] == 2 and all(row["one"] > 0 and row["two"] > 0 for row in r["rows"])


def test_bench_compare_trains_and_evaluates_each_method_on_both_splits(tmp_path):
    from tests.learner_utils import TINY_MODEL

    tiny = [f"learner.model.{k}={v}" for k, v in TINY_MODEL.items()]
    small = [*tiny, "env.size=32", "replay.prefill=64", "replay.chunk_length=16", "learner.batch_size=4",
             "learner.batch_length=8", "ray.envs_per_runner=2", "ray.train_seconds=1.0", "ray.collect_steps=8",
             "eval.num_envs=1"]
    args = ["compare", "--minutes", "1.0", "--methods", "core,coral", "--episodes", "1", "--logdir", str(tmp_path)]
    for item in small:
        args += ["--set", item]
    r = _bench(*args)
    assert [row["method"] for row in r["rows"]] == ["core", "coral"]
    assert "camera" in r["interventions"] and r["dynamic"]  # the distracted task of the preset
    for row in r["rows"]:
        assert row["updates"] > 0 and row["env_steps"] > 0 and row["params"] > 0
        assert row["train"] > 0 and row["heldout"] > 0
        assert row["heldout_over_train"] == pytest.approx(row["heldout"] / row["train"])
    assert r["random_train"] > 0 and r["random_heldout"] > 0
    assert {run["method"] for run in r["runs"]} == {"core", "coral"}
