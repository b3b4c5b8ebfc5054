"""The main job end to end on an embedded local Ray: chunks, TensorBoard events, config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recore_dist.data import decode_chunks

ROOT = Path(__file__).resolve().parents[1]


def _scalars(tb_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    out = {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    out["_images"] = acc.Tags()["images"]
    return out


@pytest.mark.slow
@pytest.mark.ray
def test_train_command_collects_real_chunks(tmp_path):
    logdir = tmp_path / "run"
    cmd = [sys.executable, "-m", "recore_dist.cli", "train", "--config", str(ROOT / "configs/quickstart.yaml"),
           "--set", f"logdir={logdir}", "--set", "env_steps=1024", "--set", "envs_per_runner=2",
           "--set", "env.name=dmc:cartpole-swingup", "--no-progress"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["frames"] >= 1024 and summary["chunks"] >= 12
    assert summary["episodes"] >= 4  # cartpole episodes are 125 steps
    files = sorted((logdir / "chunks").glob("*.msgpack"))
    chunks = [c for f in files for c in decode_chunks(f.read_bytes())]
    assert len(chunks) == summary["chunks"]
    runners = {c.runner_id for c in chunks}
    assert runners == {0, 1}
    for chunk in chunks:
        assert chunk.length == 64 and chunk.obs["image"].shape == (64, 64, 64, 3)
        assert chunk.obs["depth"].shape == (64, 64, 64, 1) and "segmentation" in chunk.obs
        assert chunk.split == "train" and "colour-train" in chunk.intervention_id
    firsts = sum(int(c.is_first.sum()) for c in chunks)
    assert firsts >= 4
    scalars = _scalars(logdir / "tb")
    assert scalars["collect/episode_return_train"] and scalars["collect/runner_frames_per_second"][0] > 0
    assert {"frames/train", "frames/depth", "frames/heldout"} <= set(scalars["_images"])
    assert (logdir / "config.yaml").read_text().count("cartpole-swingup") == 1


@pytest.mark.slow
def test_train_command_rejects_bad_config(tmp_path):
    cmd = [sys.executable, "-m", "recore_dist.cli", "train", "--set", "env.colour=1"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode != 0 and "env.colour" in result.stderr
