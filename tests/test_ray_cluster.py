"""Integration on a real 2-node local Ray cluster (``ray start --head`` + ``ray start --address``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recore_dist.bench.scaling import LocalCluster
from tests.test_ray_runtime import _tags, ray_config
from tests.waiting import wait_until

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


def _submit(cluster, entrypoint: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``ray job submit --working-dir . -- ...`` against the cluster's dashboard; retried while the
    head's job agent is still starting ("No available agent")."""
    ray_bin = str(Path(sys.executable).with_name("ray"))
    cmd = [ray_bin, "job", "submit", "--address", cluster.dashboard_url, "--working-dir", ".", "--", *entrypoint]
    deadline = time.time() + 120
    while True:
        proc = subprocess.run(cmd, env=cluster.env, capture_output=True, text=True, timeout=600, cwd=cwd)
        if "No available agent" not in proc.stdout + proc.stderr or time.time() > deadline:
            return proc
        time.sleep(3)


def test_ray_job_submit_runs_training_with_runners_on_both_nodes(tmp_path):
    """The README's `ray job submit` path on a real 2-node cluster: the working directory is
    uploaded, `recore-dist train --address auto` runs as the job's driver and places one env
    runner on each node."""
    repo = Path(__file__).resolve().parents[1]
    logdir = tmp_path / "job"
    cluster = LocalCluster(cpus_per_node=3, nodes=2, dashboard=True)
    try:
        proc = _submit(cluster, ["recore-dist", "train", "--config", "configs/quickstart.yaml", "--address", "auto",
                                 "--no-progress", "--set", f"logdir={logdir}", "--set", "env_steps=1200",
                                 "--set", "replay.prefill=300", "--set", "ray.runners_per_node=1",
                                 "--set", "ray.num_cpus=null"], repo)
    finally:
        cluster.stop()
    output = proc.stdout + proc.stderr
    start = output.find("Traceback")
    assert proc.returncode == 0 and "succeeded" in output, output[start:start + 4000] if start >= 0 else output[-4000:]
    summary = json.loads((logdir / "summary.json").read_text())
    info = summary["runner_info"]
    assert summary["env_steps"] >= 1200 and summary["updates"] > 0, summary
    assert len({v["node_id"] for v in info.values()}) == 2, info  # runners on both nodes
    assert all(v["collects"] > 0 for v in info.values()), info
    assert (logdir / "checkpoint" / "learner.pt").is_file()


def test_runners_follow_nodes_joining_and_leaving(tmp_path):
    """`ray.runners_per_node`: a node that joins (as an autoscaler adds one) gets an env runner; a
    node that dies takes its runner with it and the run goes on."""
    import ray

    from recore_dist.envs.gl import ensure_mujoco_gl
    from recore_dist.runtime.orchestrator import Orchestrator
    from tests.test_ray_runtime import _run_in_thread

    ensure_mujoco_gl()
    cluster = LocalCluster(cpus_per_node=3, nodes=2)
    try:
        cfg = ray_config(tmp_path / "run", address=cluster.address, runners_per_node=1, eval_every_s=0,
                         checkpoint_every_s=0)
        orch = Orchestrator(cfg, progress=False)
        try:
            thread, box = _run_in_thread(orch, 150)
            wait_until(lambda: len(orch.runners) == 2 and orch.counters["env_steps"] > 0, 90, "2 runners stepping")
            extra = cluster.add_node()
            wait_until(lambda: len(orch.runners) == 3, 90, "a runner on the new node")
            wait_until(lambda: len(set(orch.runner_nodes.values())) == 3, 90, "runners reporting from 3 nodes")
            steps_before = orch.counters["env_steps"]
            cluster.remove_node(extra)
            wait_until(lambda: len(orch.runners) == 2, 120, "the runner count back to one per alive node")
            wait_until(lambda: orch.counters["env_steps"] > steps_before + 200, 90, "stepping after the node left")
            thread.join(timeout=240)
            assert not thread.is_alive() and "error" not in box, box.get("error")
            summary = box["summary"]
        finally:
            orch.close()
            ray.shutdown()
    finally:
        cluster.stop()
    assert summary["runners"] == 2 and summary["updates"] > 0, summary


