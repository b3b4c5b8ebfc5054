"""``recore-dist bench scaling``: env frames/s with 1 and 2 env runners, on one and on two Ray nodes.

Each runner is the real actor path (``EnvRunner``: K simulators + policy + chunks pushed to a
``ReplayShard``). For ``n`` runners, ``collect(steps)`` runs on all of them at once and the
figure is total env steps over the wall-clock of the slowest; 1- and 2-runner measurements are
interleaved and repeated (medians). With ``--nodes 2`` the same is measured on a two-node
cluster started on this machine (``ray start --head`` + ``ray start --address``), one runner
pinned to each node, so runners talk to the shard across nodes as they would on a cluster.

Target: 1 -> 2 runners >= 1.8x where cores allow (each runner needs a core of its own).
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _agent_ports() -> list[str]:
    """Per-node agent ports. Their defaults are fixed numbers, so two nodes on one machine would
    share them and one node's dashboard agent (which runs submitted jobs) would fail to start."""
    names = ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
             "runtime-env-agent-port")
    return [f"--{name}={_free_port()}" for name in names]


class LocalCluster:
    """A multi-node Ray cluster on this machine: ``ray start --head`` and ``ray start --address``,
    each ``--block``ing in its own process group (stopped by signalling the group). Nodes listen
    on 127.0.0.1 only, with token authentication off.

    Args:
        cpus_per_node: logical CPUs of each node.
        nodes: nodes to start (the head included).
        dashboard: run the head's dashboard (and job server) on 127.0.0.1; its address is
            ``dashboard_url`` (for ``ray job submit --address``).
    """

    def __init__(self, cpus_per_node: int = 2, nodes: int = 2, *, dashboard: bool = False):
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.cpus_per_node = cpus_per_node
        self.tmp = tempfile.mkdtemp(prefix="recore-ray-")
        self.ray_bin = str(Path(sys.executable).with_name("ray"))
        # Loopback-only test cluster: token authentication (on by default since Ray 2.60) is turned
        # off for its nodes, so drivers and job clients on this machine connect without a token.
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        head = [self.ray_bin, "start", "--head", f"--port={self.port}", f"--num-cpus={cpus_per_node}", "--num-gpus=0",
                "--node-ip-address=127.0.0.1", f"--temp-dir={self.tmp}", "--block"]
        self.dashboard_url = None
        if dashboard:
            dash_port = _free_port()
            head += ["--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash_port}"]
            self.dashboard_url = f"http://127.0.0.1:{dash_port}"
        else:
            head.append("--include-dashboard=false")
        self.procs = [self._popen(head + _agent_ports())]
        self._wait_nodes(1)
        for _ in range(nodes - 1):
            self.add_node(wait=False)
        self._wait_nodes(nodes)

    def _popen(self, args: list[str]) -> subprocess.Popen:
        return subprocess.Popen(args, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    def add_node(self, *, wait: bool = True) -> int:
        """Start one more worker node (as an autoscaler would); returns its index in ``procs``.

        Each node gets its own temp dir, as nodes on separate machines have: nodes sharing one
        would share ``runtime_resources``, where one node's runtime-env agent deletes a job's
        unpacked working dir while another node's driver still imports from it (seen in CI as
        ``No module named recore_dist.runtime.learner_worker`` in a ``ray job submit`` driver)."""
        node_tmp = Path(self.tmp) / f"n{len(self.procs)}"
        node_tmp.mkdir(exist_ok=True)
        self.procs.append(self._popen(
            [self.ray_bin, "start", f"--address={self.address}", f"--num-cpus={self.cpus_per_node}", "--num-gpus=0",
             "--node-ip-address=127.0.0.1", f"--temp-dir={node_tmp}", "--block", *_agent_ports()]))
        if wait:
            self._wait_nodes(sum(p.poll() is None for p in self.procs))
        return len(self.procs) - 1

    def remove_node(self, index: int) -> None:
        """Kill a worker node's processes (SIGKILL of its process group: the node is gone)."""
        import signal

        if index == 0:
            raise ValueError("index 0 is the head node")
        try:
            os.killpg(self.procs[index].pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.procs[index].wait(timeout=60)

    def _wait_nodes(self, count: int, timeout: float = 120.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            probe = subprocess.run(
                [sys.executable, "-c", "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
                 "print(sum(n['Alive'] for n in ray.nodes()))", self.address],
                capture_output=True, text=True, timeout=120)
            lines = probe.stdout.strip().splitlines()
            if probe.returncode == 0 and lines and int(lines[-1]) >= count:
                return
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"local Ray cluster at {self.address} did not reach {count} nodes in {timeout:g}s")

    def stop(self) -> None:
        import signal

        for proc in reversed(self.procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def _measure(ray, runners, steps: int) -> float:
    start = time.perf_counter()
    outs = ray.get([r.collect.remote(steps) for r in runners])
    ray.get([r.flush.remote() for r in runners])
    return sum(o["env_steps"] for o in outs) / (time.perf_counter() - start)


def _runs(ray, cfg, nodes: list[str] | None, steps: int, repeats: int) -> dict[str, Any]:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from recore_dist.replay.client import ReplayClient
    from recore_dist.replay.shard import ShardConfig, remote_shard
    from recore_dist.runtime.env_runner import remote_runner

    shard = remote_shard(ShardConfig(capacity=200_000, length=cfg.learner.batch_length,
                                     chunk_length=cfg.replay.chunk_length, ratio=float("inf"), min_size=0,
                                     max_insert_chunks=cfg.ray.envs_per_runner), 0)
    client = ReplayClient([shard])
    runners = []
    for i in range(2):
        opts = {}
        if nodes:
            opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=True)
        runners.append(remote_runner(cfg, i, client, **opts))
    placed = ray.get([r.node_id.remote() for r in runners])
    ray.get([r.collect.remote(8) for r in runners])  # warm up
    one, two = [], []
    for _ in range(repeats):
        one.append(_measure(ray, runners[:1], steps))
        two.append(_measure(ray, runners, steps))
    for actor in (*runners, shard):
        ray.kill(actor, no_restart=True)
    return {"one": statistics.median(one), "two": statistics.median(two), "one_all": one, "two_all": two,
            "nodes_used": len(set(placed))}


def measure_setup(*, config_path: str, overrides: list[str], num_envs: int, steps: int, repeats: int,
                  nodes: int) -> dict[str, Any]:
    """One row: 1 and 2 runners on an embedded Ray (``nodes=1``) or on a fresh 2-node cluster."""
    import ray

    from recore_dist import config as config_lib
    from recore_dist.runtime.config import TrainConfig

    cfg = config_lib.load(TrainConfig, config_path, list(overrides) + [f"ray.envs_per_runner={num_envs}"])
    runtime_env = {"env_vars": {"MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "OMP_NUM_THREADS": "1"}}
    if nodes == 1:
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env)
        try:
            return {"setup": "1 node", **_runs(ray, cfg, None, steps, repeats)}
        finally:
            ray.shutdown()
    cluster = LocalCluster(cpus_per_node=2, nodes=2)
    try:
        ray.init(address=cluster.address, log_to_driver=False, runtime_env=runtime_env)
        ids = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        return {"setup": "2 nodes (ray start --head + --address)", **_runs(ray, cfg, ids, steps, repeats)}
    finally:
        ray.shutdown()
        cluster.stop()


def run_bench(*, config_path: str = "configs/quickstart.yaml", overrides: list[str] | None = None,
              num_envs: int = 2, steps: int = 128, repeats: int = 3, nodes: int = 1) -> dict[str, Any]:
    """Each setup runs in a fresh Python process (one Ray session per process)."""
    import json

    from recore_dist import config as config_lib
    from recore_dist.runtime.config import TrainConfig

    cfg = config_lib.load(TrainConfig, config_path, list(overrides or []))
    result: dict[str, Any] = {"task": cfg.env.name, "size": cfg.env.size, "interventions": cfg.env.interventions,
                              "num_envs": num_envs, "steps": steps, "repeats": repeats, "cores": os.cpu_count(),
                              "model_size": cfg.learner.model.size, "rows": []}
    for count in range(1, nodes + 1):
        args = json.dumps({"config_path": config_path, "overrides": list(overrides or []), "num_envs": num_envs,
                           "steps": steps, "repeats": repeats, "nodes": count})
        out = subprocess.run([sys.executable, "-m", "recore_dist.bench.scaling", args], capture_output=True,
                             text=True, timeout=1800)
        if out.returncode != 0:
            raise RuntimeError(f"bench scaling ({count} node(s)) failed:\n{out.stderr[-3000:]}")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["scaling"] = row["two"] / row["one"]
        result["rows"].append(row)
    best = max(r["scaling"] for r in result["rows"])
    result["scaling"] = best
    result["target_met"] = best >= 1.8
    return result


def format_table(r: dict[str, Any]) -> str:
    lines = [f"{r['task']} {r['size']}px ({r['interventions']}), {r['num_envs']} simulators per runner, "
             f"policy {r['model_size']}, {r['steps']} lock-steps x {r['repeats']} interleaved repeats, "
             f"{r['cores']} cores",
             f"{'setup':<42}{'1 runner':>10}{'2 runners':>11}{'2 / 1':>8}{'nodes':>7}"]
    for row in r["rows"]:
        lines.append(f"{row['setup']:<42}{row['one']:>10.1f}{row['two']:>11.1f}{row['scaling']:>8.2f}"
                     f"{row['nodes_used']:>7}")
    lines.append(f"env steps/s. Target 1 -> 2 runners >= 1.8x: {'met' if r['target_met'] else 'NOT met'}")
    return "\n".join(lines)


if __name__ == "__main__":  # one setup, in its own process (see run_bench)
    import json

    from recore_dist.envs.gl import ensure_mujoco_gl

    ensure_mujoco_gl()
    print(json.dumps(measure_setup(**json.loads(sys.argv[1]))))
