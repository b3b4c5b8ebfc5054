"""The quickstart trains end to end through the CLI; both learner benchmarks run and report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _cli(*args: str, timeout: int = 900) -> dict:
    proc = subprocess.run([sys.executable, "-m", "recore_dist.cli", *args], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_quickstart_trains_end_to_end(tmp_path):
    summary = _cli("train", "--config", "configs/quickstart.yaml", "--runner", "local", "--no-progress",
                   "--set", f"logdir={tmp_path / 'qs'}")
    assert summary["env_steps"] == 3000 and summary["updates"] == (3000 - 1000) * 64 // (8 * 32)
    assert summary["replay"]["rejected"] == 0 and summary["episodes"] >= 3000 // 125 - 4  # 125-step episodes (action repeat 8)
    for key in ("eval_policy_train/return", "eval_policy_heldout/return"):
        assert summary[key] >= 0.0
    assert (tmp_path / "qs" / "checkpoint" / "replay" / "replay.npz").is_file()
    from tests.test_local_runner import _tags

    assert {"train/return", "eval_policy_train/return", "loss/depth"} <= _tags(tmp_path / "qs")


@pytest.mark.slow
def test_bench_learner_reports_ratios_and_flop_rate():
    result = _cli("bench", "learner", "--json", "--sizes", "xxs", "--updates", "1", "--rllib-updates", "1",
                  "--actor-grads", "reinforce", "--compile", "both",
                  "--batch-size", "2", "--length", "8", "--threads", "1")
    row, compiled = result["ours"]
    assert row["seconds_per_update"] > 0 and row["flops_per_update"] > 1e9 and 0 < row["fraction_of_matmul"] < 1.5
    assert row["speedup_vs_rllib"] > 0 and result["rllib_dreamerv3"]["params"] > 1e6
    assert row["params"] == row["params_detail"]["total"]
    # the compiled row times a compiled learner and counts FLOPs on an uncompiled twin: same arithmetic
    assert (row["compile"], compiled["compile"]) == (False, True)
    # (blur runs on a random subset of sequences, so FLOPs differ slightly between updates)
    assert compiled["flops_per_update"] == pytest.approx(row["flops_per_update"], rel=0.05)
    assert compiled["seconds_per_update"] > 0


@pytest.mark.slow
def test_bench_learn_runs_each_method_and_every_baseline(tmp_path):
    common = ["--set", f"logdir={tmp_path}", "--set", "learner.model.size=xxs", "--set", "learner.compile=false",
              "--set", "replay.prefill=200", "--set", "eval.every=0", "--set", "learner.batch_size=4",
              "--set", "learner.batch_length=16"]
    result = _cli("bench", "learn", "--json", "--minutes", "0.3", "--episodes", "2", "--no-progress",
                  "--methods", "recore,recon", "--parallel", *common)
    assert result["parallel"] is True and set(result["methods"]) == {"recore", "recon"}
    for method, row in result["methods"].items():
        assert row["method"] == method and row["updates"] > 0 and row["env_steps"] > 200
        share = len(os.sched_getaffinity(0)) // 2
        assert row["cores"] == share and row["threads"] == share  # the cores shared out, half each
        assert set(row["eval"]) == {"learned", "random"}  # no goal vector on cartpole: no blind baseline
        for policy in row["eval"].values():
            assert policy["train"]["episodes"] == 2.0 and policy["heldout"]["episodes"] == 2.0
            assert isinstance(policy["train"]["return"], float)
        assert (tmp_path / row["logdir"].split("/")[-1] / "bench_learn.json").is_file()
    # the random policy meets the same episodes in both processes
    assert (result["methods"]["recore"]["eval"]["random"] == result["methods"]["recon"]["eval"]["random"])
    # the plots command draws both runs
    proc = subprocess.run([sys.executable, "-m", "recore_dist.cli", "plot",
                           *[row["logdir"] for row in result["methods"].values()], "--out", str(tmp_path / "plots")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "plots" / "eval_vs_minutes.png").stat().st_size > 10_000


@pytest.mark.slow
def test_bench_learn_seeds_at_a_frame_budget_aggregate_and_read_back(tmp_path):
    """`--seeds 2 --frames F`: each seed its own run, ended at F env frames (action repeat
    included), aggregated per split; the same `--stamp` again reads the finished runs back."""
    common = ["--set", f"logdir={tmp_path}", "--set", "learner.model.size=xxs", "--set", "learner.compile=false",
              "--set", "replay.prefill=200", "--set", "eval.every=0", "--set", "learner.batch_size=4",
              "--set", "learner.batch_length=16", "--set", "replay.ratio=8", "--set", "env.action_repeat=2"]
    args = ["bench", "learn", "--json", "--frames", "800", "--seeds", "2", "--episodes", "2", "--no-progress",
            "--methods", "recore", "--parallel", *common]
    result = _cli(*args)
    rows = result["runs"]["recore"]
    assert [r["seed"] for r in rows] == [0, 1] and result["budget"] == {"minutes": None, "frames": 800}
    for r in rows:
        assert r["action_repeat"] == 2 and r["frames"] == 2 * r["env_steps"]
        assert 800 <= r["frames"] < 800 + 2 * 4 * 2  # stops at the budget (4 simulators step together)
        assert r["updates"] > 0 and r["logdir"].endswith(f"-recore-s{r['seed']}")
    agg = result["aggregate"]["recore"]
    assert agg["splits"]["train"]["n"] == 2 and len(agg["heldout_over_train"]) == 2
    assert agg["dreamerv3_at_frames"]["frames"] == min(r["frames"] for r in rows)
    assert set(agg["targets"]) == {"mean_train_at_least_dreamerv3", "every_seed_heldout_0.8x_train"}
    again = _cli(*args, "--stamp", result["stamp"], timeout=300)  # finished: read back, not retrained
    assert again["runs"] == result["runs"]


def test_bench_learn_plans_runs_seed_major():
    """Every method's seed 0 runs before any method's seed 1: a campaign cut by a session's end
    holds matched pairs. One seed keeps the preset's own seed (None)."""
    from recore_dist.bench.learn import plan_jobs

    assert plan_jobs(["recore", "recon"], 5, 3) == [("recore", 5), ("recon", 5), ("recore", 6), ("recon", 6),
                                                    ("recore", 7), ("recon", 7)]
    assert plan_jobs(["recore", "recon"], 0, 1) == [("recore", None), ("recon", None)]
    assert plan_jobs([None], 0, 2) == [(None, 0), (None, 1)]


def test_bench_learn_failed_runs_are_reported_together_and_start_nothing_more(tmp_path):
    """A run whose process fails (iGibson is not installed here) stops new runs from starting; the
    runs already going finish, then every failure is raised with its run's name and log tail."""
    from recore_dist.bench.learn import run_bench

    overrides = [f"logdir={tmp_path}", "env.name=igibson:pointnav", "learner.model.size=xxs",
                 "learner.compile=false"]
    earlier = Path("runs/bench_learn_logs/fail-recore-s0.log")  # an earlier (interrupted) start's log
    earlier.parent.mkdir(parents=True, exist_ok=True)
    earlier.write_text("an earlier start of this run\n")
    with pytest.raises(RuntimeError) as err:
        run_bench(config_path="configs/bench_learn.yaml", overrides=overrides, frames=400, episodes=1,
                  methods=["recore", "recon"], seeds=2, parallel=True, progress=False, stamp="fail")
    text = str(err.value)
    log = earlier.read_text()
    earlier.unlink()
    assert log.startswith("an earlier start of this run\n[bench learn] ")  # a resumed run appends to its log
    assert "start on cores [" in log and "igibson" in log.lower()
    order = ["fail-recore-s0", "fail-recon-s0", "fail-recore-s1", "fail-recon-s1"]
    started = order[:min(len(order), len(os.sched_getaffinity(0)))]  # one run per core at once
    assert [n for n in order if f"{n}: " in text] == started  # each failure named, none started after
