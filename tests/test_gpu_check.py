"""``scripts/gpu-check``: documented, refuses without CUDA, and its code paths run (on the CPU here)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "scripts" / "gpu-check")


def test_help_documents_what_it_measures():
    proc = subprocess.run([SCRIPT, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for words in ("B16 x T64", "bfloat16", "peak", "matmul", "env-runner path", "Ray runtime", "22 ms", "JSON"):
        assert words in proc.stdout, words


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_it_says_so():
    proc = subprocess.run([SCRIPT, "--out", "/tmp/unused.json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "no CUDA device" in proc.stderr


@pytest.mark.slow
@pytest.mark.ray
def test_every_part_runs_on_the_cpu(tmp_path):
    out = tmp_path / "check.json"
    proc = subprocess.run([SCRIPT, "--device", "cpu", "--sizes", "xxs", "--updates", "1", "--minutes", "0.4",
                           "--actor-steps", "16", "--out", str(out)], capture_output=True, text=True, timeout=900,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    (row,) = result["learner"]
    assert "error" not in row, row
    assert row["seconds_per_update"] > 0 and row["flops_per_update"] > 1e8 and row["device"] == "cpu"
    assert "error" not in result["actors"], result["actors"]
    run = result["run"]
    assert "error" not in run, run
    assert run["device"] == "cpu" and run["env_steps"] > 0
    assert "s/update" in proc.stdout and "Ray run" in proc.stdout
