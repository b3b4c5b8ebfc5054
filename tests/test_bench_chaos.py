"""``recore-dist bench chaos`` for 2 minutes on the embedded Ray (the 10-minute figures are in
docs/BENCHMARKS.md): SIGKILLed runners, shards and the learner, malformed inserts, and every
count reconciled. No fault-free baselines here (the return check needs minutes of training).
The command runs in its own process, as a user runs it (its Ray instance and threads end with it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_two_minute_chaos_run_loses_nothing_and_accepts_nothing_malformed(tmp_path):
    cmd = [sys.executable, "-m", "recore_dist.cli", "bench", "chaos", "--minutes", "2", "--every", "10,20",
           "--no-baseline", "--logdir", str(tmp_path), "--set", "ray.checkpoint_every_s=20",
           "--set", "ray.shard_checkpoint_every_s=15"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=Path(__file__).resolve().parents[1])
    (report,) = tmp_path.glob("*/bench_chaos.json")
    result = json.loads(report.read_text())
    print(proc.stdout[-3000:])
    checks, chaos = result["checks"], result["runs"]["chaos"]
    assert checks["faults_injected"] >= 3, chaos["fault_errors"]
    assert checks["zero_acknowledged_lost"], chaos["reconciliation"]
    assert checks["zero_malformed_accepted"] and checks["every_malformed_refused"], chaos["hostile"]
    assert checks["every_fault_recovered"], (chaos["fault_counts"], chaos["recovered"])
    assert sum(chaos["hostile"]["sent"].values()) >= 20  # ~2 per second, each waiting for its answer (34-72 seen)
    assert chaos["summary"]["updates"] > 0
    assert proc.returncode == 0, proc.stderr[-3000:]  # the command exits 0 when every check passed
