"""Integration on a real 2-node local Ray cluster (``ray start --head`` + ``ray start --address``)."""

from __future__ import annotations

import pytest

from recore_dist.bench.scaling import LocalCluster
from tests.test_ray_runtime import _tags, ray_config

pytestmark = pytest.mark.slow


def test_two_node_cluster_runs_runners_on_both_nodes(tmp_path):
    import ray

    from recore_dist.envs.gl import ensure_mujoco_gl
    from recore_dist.runtime.orchestrator import Orchestrator

    ensure_mujoco_gl()
    cluster = LocalCluster(cpus_per_node=3, nodes=2)
    try:
        cfg = ray_config(tmp_path / "run", address=cluster.address, runners_per_node=1, eval_every_s=0)
        orch = Orchestrator(cfg, progress=False)
        try:
            summary = orch.run(max_seconds=75)
            counts = {}
            for shard in orch.shards:
                for runner, n in ray.get(shard.runner_counts.remote()).items():
                    counts[runner] = counts.get(runner, 0) + n
        finally:
            orch.close()
            ray.shutdown()
    finally:
        cluster.stop()
    info = summary["runner_info"]
    assert len(info) == 2 and len({v["node_id"] for v in info.values()}) == 2, info  # one runner per node
    for runner_id, v in info.items():
        assert counts.get(int(runner_id), 0) > 0, f"no chunk of runner {runner_id} reached replay: {counts}"
        assert v["chunks_acked"] > 0
        assert v["policy_version"] > v["first_version"] and v["policy_version"] > 0, v  # weights advanced
    tags = _tags(tmp_path / "run")
    for tag in ("perf/env_steps_per_second", "perf/chunks_per_second", "perf/samples_per_second",
                "perf/updates_per_second", "replay/ratio", "runtime/weight_staleness"):
        assert tag in tags, tag
