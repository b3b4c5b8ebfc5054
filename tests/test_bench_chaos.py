"""``recore-dist bench chaos`` for 2 minutes on the embedded Ray (the 10-minute figures are in
docs/BENCHMARKS.md): SIGKILLed runners, shards and the learner, malformed inserts, and every
count reconciled. No fault-free baselines here (the return check needs minutes of training)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_two_minute_chaos_run_loses_nothing_and_accepts_nothing_malformed(tmp_path):
    from recore_dist.bench.chaos import format_table, run_bench

    result = run_bench(config_path="configs/quickstart.yaml", minutes=2.0, seed=0, every=(10.0, 20.0),
                       hostile_hz=2.0, baseline=False, logdir=str(tmp_path),
                       overrides=["ray.checkpoint_every_s=20", "ray.shard_checkpoint_every_s=15"])
    print(format_table(result))
    checks, chaos = result["checks"], result["runs"]["chaos"]
    assert checks["faults_injected"] >= 3, chaos["fault_errors"]
    assert checks["zero_acknowledged_lost"], chaos["reconciliation"]
    assert checks["zero_malformed_accepted"] and checks["every_malformed_refused"], chaos["hostile"]
    assert checks["every_fault_recovered"], (chaos["fault_counts"], chaos["recovered"])
    assert sum(chaos["hostile"]["sent"].values()) >= 40  # ~2 per second, each waiting for its answer
    assert chaos["summary"]["updates"] > 0
