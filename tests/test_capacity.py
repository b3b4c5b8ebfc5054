"""A job that cannot fit the cluster says so before any actor starts (or waits for an autoscaler)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from recore_dist import config as config_lib
from recore_dist.runtime.capacity import ClusterTooSmall, check_fits, job_needs, shortfall
from recore_dist.runtime.config import TrainConfig


def _cfg(*sets: str) -> TrainConfig:
    return config_lib.load(TrainConfig, "configs/quickstart.yaml", list(sets))


def test_quickstart_needs_four_cpus_and_fits_two_with_fractional_reservations():
    needs = job_needs(_cfg(), learner_gpus=0.0)
    assert (needs.cpus, needs.gpus) == (4.0, 0.0)  # 2 runners + evaluator + learner, 1 CPU each
    assert shortfall(needs, {"CPU": 2.0}) == {"CPU": (4.0, 2.0)}
    small = job_needs(_cfg("ray.runner_cpus=0.5", "ray.learner_cpus=0.5"), learner_gpus=0.0)
    assert small.cpus == 2.0 and not shortfall(small, {"CPU": 2.0})
    gpu = job_needs(_cfg(), learner_gpus=1.0)
    assert shortfall(gpu, {"CPU": 8.0}) == {"GPU": (1.0, 0.0)}
    assert len(needs.bundles()) == 4 and all(b == {"CPU": 1.0} for b in needs.bundles())


def test_data_parallel_learners_each_reserve_their_cpus_and_gpus():
    two = job_needs(_cfg("ray.learners=2"), learner_gpus=1.0)
    assert (two.cpus, two.gpus) == (5.0, 2.0)  # 2 runners + evaluator + 2 learners; a GPU per learner
    with pytest.raises(ClusterTooSmall) as err:
        check_fits(_cfg("ray.learners=2"), 1.0, cluster_resources=lambda: {"CPU": 8.0, "GPU": 1.0})
    for part in ("GPU: needs 2, the cluster has 1", "2 learners x 1 CPU + 1 GPU", "ray.learners=N"):
        assert part in str(err.value), (part, str(err.value))


def test_a_fixed_cluster_fails_at_once_with_what_to_change():
    start = time.monotonic()
    with pytest.raises(ClusterTooSmall) as err:
        check_fits(_cfg(), 1.0, cluster_resources=lambda: {"CPU": 2.0, "memory": 1e9})
    message = str(err.value)
    assert time.monotonic() - start < 1.0
    for part in ("CPU: needs 4, the cluster has 2", "GPU: needs 1, the cluster has 0", "2 env runners x 1 CPU",
                 "1 learner x 1 CPU + 1 GPU", "ray.runners=N", "ray.runner_cpus=0.5", "ray.learner_gpus=0",
                 "ray.wait_for_resources_s"):
        assert part in message, (part, message)


def test_an_autoscaling_cluster_is_waited_for_then_reported():
    grows = iter([{"CPU": 2.0}] * 3 + [{"CPU": 6.0}] * 100)
    asked, said = [], []
    needs = check_fits(_cfg("ray.wait_for_resources_s=30"), 0.0, cluster_resources=lambda: next(grows),
                       request=asked.append, report=said.append, poll_s=0.01)
    assert needs.cpus == 4.0 and asked == [needs.bundles()]
    assert "waiting up to 30 s" in said[0] and "CPU 2 of 4" in said[0] and "grown to fit" in said[-1]
    said.clear()
    with pytest.raises(ClusterTooSmall, match="after waiting"):
        check_fits(_cfg("ray.wait_for_resources_s=0.3"), 0.0, cluster_resources=lambda: {"CPU": 2.0},
                   report=said.append, report_every_s=0.1, poll_s=0.05)
    assert any("still waiting" in s for s in said)


@pytest.mark.slow
@pytest.mark.ray
def test_train_on_a_too_small_ray_cluster_exits_with_the_message():
    """The real path: an embedded Ray of 2 logical CPUs and the quickstart (4 CPUs)."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "recore_dist.cli", "train", "--config", "configs/quickstart.yaml",
                           "--no-progress", "--set", "ray.num_cpus=2", "--set", "logdir=/tmp/recore-too-small"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "the cluster is too small for this job" in proc.stderr and "CPU: needs 4, the cluster has 2" in proc.stderr
    assert time.monotonic() - start < 120  # not Ray's silent wait
