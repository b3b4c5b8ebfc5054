"""``recore-dist bench actors``: the whole actor path against raw ``make_vector`` stepping.

Both sides run in a Ray actor process with one torch thread, on the same simulators (same task,
size, targets and interventions, ``K`` per process):

- baseline: ``make_vector`` lock-step with uniform random actions (step + render only);
- actor path: an ``EnvRunner``: step + render + policy (encoder, RSSM posterior, actor on CPU)
  + chunking + msgpack encoding + pushes to a real ``ReplayShard`` actor, with its bounded
  number of calls in flight.

Repeats are interleaved (baseline, actor, baseline, ...) and medians reported. Target: the actor
path keeps >= 0.9 of the baseline's frames/s.
"""

from __future__ import annotations

import collections
import statistics
import time
from typing import Any


SPLIT_KEYS = ("env_s", "policy_s", "chunk_s", "push_s")


class _RawStepper:
    """``make_vector`` stepping with random actions, in its own process."""

    def __init__(self, cfg, num_envs: int):
        import numpy as np
        import torch

        from recore_dist.runtime.env_factory import make_envs

        torch.set_num_threads(1)
        self.envs = make_envs(cfg, "train", num_envs, cfg.seed)
        self.envs.reset()
        self.rng = np.random.default_rng(0)
        self.shape = (num_envs, *self.envs.single_action_space.shape)

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            self.envs.step(self.rng.uniform(-1, 1, self.shape).astype("float32"))
        return steps * self.shape[0] / (time.perf_counter() - start)


def run_bench(*, config_path: str = "configs/quickstart.yaml", overrides: list[str] | None = None,
              num_envs: int = 4, steps: int = 256, repeats: int = 3) -> dict[str, Any]:
    import ray

    from recore_dist import config as config_lib
    from recore_dist.replay.client import ReplayClient
    from recore_dist.replay.shard import ShardConfig, remote_shard
    from recore_dist.runtime.config import TrainConfig
    from recore_dist.runtime.env_runner import remote_runner
    from recore_dist.runtime.orchestrator import init_ray

    cfg = config_lib.load(TrainConfig, config_path, list(overrides or []) + [f"ray.envs_per_runner={num_envs}"])
    cfg.ray.num_cpus = cfg.ray.num_cpus or 4
    started = init_ray(cfg)
    try:
        shard = remote_shard(ShardConfig(capacity=200_000, length=cfg.learner.batch_length,
                                         chunk_length=cfg.replay.chunk_length, ratio=float("inf"), min_size=0,
                                         max_insert_chunks=num_envs), 0)
        client = ReplayClient([shard])
        raw = ray.remote(_RawStepper).options(num_cpus=1).remote(cfg, num_envs)
        runner = remote_runner(cfg, 0, client)
        ray.get([raw.run.remote(16), runner.collect.remote(16)])  # warm up (first renders, allocations)
        raw_fps, actor_fps, split = [], [], collections.Counter()
        for _ in range(repeats):
            raw_fps.append(ray.get(raw.run.remote(steps)))
            out = ray.get(runner.collect.remote(steps))
            ray.get(runner.flush.remote())
            actor_fps.append(out["frames_per_second"])
            split.update({k: out.get(k, 0.0) for k in SPLIT_KEYS + ("seconds",)})
        stats = ray.get(shard.stats.remote())
        params = _policy_params(cfg)
        result = {"task": cfg.env.name, "size": cfg.env.size, "interventions": cfg.env.interventions,
                  "depth": cfg.env.depth, "num_envs": num_envs, "steps": steps, "repeats": repeats,
                  "model_size": cfg.learner.model.size, "policy_params": params,
                  "raw_steps_per_second": statistics.median(raw_fps),
                  "actor_steps_per_second": statistics.median(actor_fps),
                  "raw_all": raw_fps, "actor_all": actor_fps,
                  "chunks_stored": stats["replay/inserted"], "chunks_rejected": stats["replay/rejected_chunks"],
                  # share of the actor path's wall clock in each part (the rest: loop bookkeeping)
                  "time_split": {k: split[k] / split["seconds"] for k in SPLIT_KEYS}}
        result["ratio"] = result["actor_steps_per_second"] / result["raw_steps_per_second"]
        result["target_met"] = result["ratio"] >= 0.9
        for actor in (raw, runner, shard):
            ray.kill(actor, no_restart=True)
        return result
    finally:
        if started:
            ray.shutdown()


def _policy_params(cfg) -> int:
    from recore_dist.behavior.policy import PolicyNet
    from recore_dist.runtime.orchestrator import _probe_spaces

    net = PolicyNet(cfg.learner.model, cfg.learner.behavior, _probe_spaces(cfg))
    return sum(p.numel() for p in net.parameters())


def format_table(r: dict[str, Any]) -> str:
    path = f"EnvRunner: + policy ({r['model_size']}, {r['policy_params']:,} params) + chunk + msgpack + push"
    return "\n".join([
        f"{r['task']} {r['size']}px, depth={r['depth']}, interventions={r['interventions']}, "
        f"{r['num_envs']} simulators per process, {r['steps']} lock-steps x {r['repeats']} interleaved repeats",
        f"{'path':<78}{'env steps/s':>12}",
        f"{'raw make_vector step+render (baseline)':<78}{r['raw_steps_per_second']:>12.1f}",
        f"{path:<78}{r['actor_steps_per_second']:>12.1f}",
        f"ratio {r['ratio']:.2f} (target >= 0.9: {'met' if r['target_met'] else 'NOT met'}); "
        f"chunks stored {r['chunks_stored']:.0f}, rejected {r['chunks_rejected']:.0f}",
        "actor path wall clock: " + ", ".join(f"{k[:-2]} {100 * v:.0f}%" for k, v in r["time_split"].items())])
