"""``recore-dist bench learners``: updates/s and replayed steps/s with 1 and 2 data-parallel learners.

The real path: an embedded Ray, replay shards filled by an ``EnvRunner`` with random actions
(real MuJoCo frames, real msgpack chunks), then a ``LearnerGroup`` of N ranks (gloo on CPU, NCCL
on GPUs) whose ``train(seconds)`` calls sample from the shards while they compute. The rate
limiter is off (``ratio = inf``) so only the learners set the pace. Each rank has the config's
batch, so an update of N ranks replays N x B x T steps: the figure that scales is replayed
steps/s; updates/s stays flat at best. The 1- and 2-learner measurements alternate and repeat
(medians), after a warm-up call that is not counted.

On a 2-core CPU machine two learners share two cores with the prefetch threads, the shards and
the all-reduce, so expect little gain: the point there is that the group is correct (tests);
the gain comes with a device per learner.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from typing import Any

from recore_dist import config as config_lib


def run_bench(*, config_path: str = "configs/quickstart.yaml", overrides: list[str] | None = None,
              learners: tuple[int, ...] = (1, 2), seconds: float = 30.0, repeats: int = 2,
              fill_steps: int = 4000) -> dict[str, Any]:
    import ray
    import torch

    from recore_dist.envs.gl import ensure_mujoco_gl
    from recore_dist.learner import resolve_device, resolve_precision
    from recore_dist.replay.client import ReplayClient
    from recore_dist.replay.shard import ShardConfig, remote_shard
    from recore_dist.runtime.config import TrainConfig
    from recore_dist.runtime.env_runner import remote_runner
    from recore_dist.runtime.learner_group import LearnerGroup
    from recore_dist.runtime.orchestrator import _probe_spaces

    ensure_mujoco_gl()
    cfg = config_lib.load(TrainConfig, config_path, list(overrides or []))
    lc, rt = cfg.learner, cfg.ray
    spaces = _probe_spaces(cfg)
    cpus = max(learners) * rt.learner_cpus + 2
    ray.init(num_cpus=int(cpus + 0.999), include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"MUJOCO_GL": os.environ["MUJOCO_GL"], "OMP_NUM_THREADS": "1"}})
    try:
        shard_cfg = ShardConfig(capacity=max(cfg.replay.capacity // rt.shards, lc.batch_length), length=lc.batch_length,
                                chunk_length=cfg.replay.chunk_length, ratio=float("inf"), min_size=lc.batch_length,
                                max_sample=lc.batch_size, max_insert_chunks=rt.envs_per_runner, seed=cfg.seed)
        shards = [remote_shard(shard_cfg, i) for i in range(rt.shards)]
        replay = ReplayClient(shards, seed=cfg.seed)
        runners = [remote_runner(cfg, i, replay) for i in range(rt.shards)]
        fill_start = time.perf_counter()
        per_runner = max(fill_steps // (len(runners) * rt.envs_per_runner), cfg.replay.chunk_length)
        ray.get([r.collect.remote(per_runner, weights=None, random=True, learner_version=0) for r in runners])
        fill_s = time.perf_counter() - fill_start
        for r in runners:
            ray.kill(r, no_restart=True)
        stored = sum(ray.get([s.size.remote() for s in shards]))
        runs: dict[int, list[dict[str, float]]] = {n: [] for n in learners}
        backend = "none"
        for _ in range(repeats):
            for n in learners:
                run_cfg = dataclasses.replace(cfg, ray=dataclasses.replace(rt, learners=n))
                group = LearnerGroup(run_cfg, spaces, replay, checkpoint="")
                try:
                    backend = group.backend or backend
                    ray.get([group.train(2.0), *group.followers])  # warm-up: first batches, allocator
                    out = ray.get(group.train(seconds))
                    ray.get(group.followers)
                finally:
                    group.kill()
                m = out["metrics"]
                runs[n].append({"updates_per_second": m["perf/updates_per_second"],
                                "replayed_steps_per_second": m["perf/replayed_steps_per_second"],
                                "starved_fraction": m["perf/learner_starved_fraction"]})
    finally:
        ray.shutdown()
    device = resolve_device(lc.device)
    rows = {n: {key: statistics.median(r[key] for r in runs[n]) for key in runs[n][0]} for n in learners}
    base = rows[learners[0]]
    for n in learners:
        rows[n]["replayed_ratio"] = rows[n]["replayed_steps_per_second"] / base["replayed_steps_per_second"]
        rows[n]["updates_ratio"] = rows[n]["updates_per_second"] / base["updates_per_second"]
    return {"config": config_path, "overrides": list(overrides or []), "model_size": lc.model.size,
            "batch": f"B{lc.batch_size} x T{lc.batch_length} per learner", "device": str(device),
            "dtype": str(resolve_precision(lc.precision, device)).replace("torch.", ""),
            "backend": backend, "cpus": os.cpu_count(), "learner_cpus": rt.learner_cpus,
            "torch_threads_per_learner": lc.threads or cfg.torch_threads or max(1, int(rt.learner_cpus)),
            "seconds": seconds, "repeats": repeats, "replay_steps": stored, "fill_seconds": fill_s,
            "torch": torch.__version__, "learners": {str(n): rows[n] for n in learners}}


def format_table(r: dict[str, Any]) -> str:
    lines = [f"bench learners: {r['model_size']}, {r['batch']}, {r['device']} {r['dtype']}, {r['backend']}, "
             f"{r['cpus']} cores, {r['torch_threads_per_learner']} torch thread(s) per learner, "
             f"{r['seconds']:.0f} s x {r['repeats']} (medians); replay {r['replay_steps']} steps",
             f"{'learners':>8}  {'updates/s':>9}  {'replayed steps/s':>16}  {'vs 1':>6}  {'starved':>7}"]
    for n, row in r["learners"].items():
        lines.append(f"{n:>8}  {row['updates_per_second']:9.3f}  {row['replayed_steps_per_second']:16.0f}  "
                     f"{row['replayed_ratio']:5.2f}x  {row['starved_fraction']:7.2f}")
    return "\n".join(lines)
