"""Local runner end to end on real cartpole pixels: trains, logs, checkpoints, resumes; the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recore_dist import config as config_lib
from recore_dist.runtime.config import TrainConfig
from recore_dist.runtime.local import LocalRunner
from tests.learner_utils import TINY_MODEL


def tiny_train_config(logdir: Path, env_steps: int = 192) -> TrainConfig:
    return config_lib.from_dict(TrainConfig, {
        "logdir": str(logdir), "env_steps": env_steps, "num_envs": 2, "torch_threads": 1,
        "env": {"name": "dmc:cartpole-swingup", "size": 32, "interventions": "colour,background"},
        "replay": {"capacity": 10_000, "chunk_length": 16, "prefill": 64, "ratio": 32},
        "learner": {"model": dict(TINY_MODEL), "batch_size": 4, "batch_length": 8, "behavior": {"horizon": 4},
                    "device": "cpu"},
        "eval": {"every": 0, "episodes": 1, "num_envs": 1},
        "log_every": 2, "image_every": 5, "checkpoint_every": 5})


def _tags(logdir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir / "tb"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    return set(tags["scalars"]) | set(tags["images"])


@pytest.mark.slow
def test_trains_logs_checkpoints_and_resumes(tmp_path):
    cfg = tiny_train_config(tmp_path / "run")
    runner = LocalRunner(cfg, progress=False)
    try:
        first = runner.run()
    finally:
        runner.close()
    assert first["env_steps"] == 192 and not first["resumed"]
    assert first["updates"] == (192 - 64) * 32 // 32  # replay ratio: 32 replayed steps per env step
    assert "eval_policy_train/return" in first and "eval_policy_heldout/return" in first
    logdir = tmp_path / "run"
    assert (logdir / "config.yaml").is_file() and (logdir / "checkpoint" / "learner.pt").is_file()
    assert json.loads((logdir / "summary.json").read_text())["updates"] == first["updates"]
    tags = _tags(logdir)
    for tag in ("loss/contrastive", "loss/depth", "loss/kl", "ac/return", "grad/contrastive", "grad/depth",
                "wm/contrastive_chance", "opt/model_clipped", "eval_policy_heldout/return", "perf/updates_per_second", "open_loop/depth", "open_loop/real"):
        assert tag in tags, tag
    # Resume with a larger budget: counters, learner and replay continue.
    cfg2 = tiny_train_config(logdir, env_steps=256)
    runner = LocalRunner(cfg2, progress=False)
    try:
        assert runner.resumed and runner.learner.updates == first["updates"]
        assert runner.replay.stats()["inserted"] == first["replay"]["inserted"]
        second = runner.run()
    finally:
        runner.close()
    assert second["resumed"] and second["env_steps"] == 256
    assert second["updates"] == first["updates"] + 64
    assert second["episodes"] == 0  # 125-step episodes: simulators restart fresh after a resume


def test_config_mismatch_names_keys(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="image_size"):
        config_lib.from_dict(TrainConfig, {"env": {"size": 84}})
    with pytest.raises(config_lib.ConfigError, match="replay.ratioo"):
        config_lib.from_dict(TrainConfig, {"replay": {"ratioo": 3}})


def test_cli_bad_config_exits_with_the_key():
    proc = subprocess.run([sys.executable, "-m", "recore_dist.cli", "train", "--config", "configs/quickstart.yaml",
                           "--set", "learner.model.deterr=3"], capture_output=True, text=True)
    assert proc.returncode == 2 and "deterr" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("objective, extra", [
    ("core", {"behavior": {"horizon": 4, "kind": "sac"}}),
    ("hrssm", {}),
    ("recore", {"model": {**TINY_MODEL, "gating": True}}),
])
def test_each_objective_trains_end_to_end_in_the_local_runner(tmp_path, objective, extra):
    """Real pixels -> replay -> updates -> evaluation and checkpoint, for the objectives (and
    behaviours) the Ray tests do not run locally; gating logs its masks as images."""
    cfg = tiny_train_config(tmp_path / "run", env_steps=96)
    cfg = config_lib.from_dict(TrainConfig, {**config_lib.to_dict(cfg), "image_every": 2, "learner": {
        **config_lib.to_dict(cfg.learner), "objective": {"name": objective}, **extra}})
    runner = LocalRunner(cfg, progress=False)
    try:
        summary = runner.run()
    finally:
        runner.close()
    assert summary["updates"] > 0 and summary["eval_policy_train/return"] == summary["eval_policy_train/return"]
    assert (tmp_path / "run" / "checkpoint").exists() or any((tmp_path / "run").glob("**/learner.pt"))
    tags = _tags(tmp_path / "run")
    assert any(t.startswith("loss/") for t in tags)
    if objective == "recore":
        assert "open_loop/gate_mask" in tags
