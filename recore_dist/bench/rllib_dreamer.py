"""Seconds per training update of RLlib's own DreamerV3 learner (torch), for comparison.

The learner is built in-process from ``DreamerV3Config`` (``config.build_learner(spaces=...)``,
which also calls ``Learner.build()``); no Ray cluster is started. Each timed step is one
``Learner.update(batch=..., timesteps=...)`` call: world-model loss, dreamed rollouts of
``horizon_H`` steps from every posterior state, actor and critic losses, the three backward
passes, gradient clipping, the three Adam steps and the critic EMA update, i.e. what
``DreamerV3.training_step`` asks of its learner group once per replayed batch.

The batch reproduces what ``EpisodeReplayBuffer.sample(batch_size_B=B, batch_length_T=T)``
returns in ``training_step`` (keys ``obs``, ``actions``, ``rewards``, ``is_first``, ``is_last``,
``is_terminated``, ``is_truncated``, all ``[B, T, ...]``), wrapped as
``SampleBatch(sample).as_multi_agent()``, with random contents. Frames are drawn as uint8
64x64x3 images and handed over as float32 ``frame / 255 - 0.5``, as RLlib's own
``DMCEnv(from_pixels=True, preprocess=True)`` does: RLlib's DreamerV3 CNN encoder has no uint8
path (a uint8 batch fails in ``conv2d``) and is hard-wired to 64x64 inputs.

``ray`` is imported lazily, inside :func:`measure_rllib_dreamerv3`, so importing this module is
cheap. Run it in a fresh process per thread count::

    python -m recore_dist.bench.rllib_dreamer --threads 1 --updates 2 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

PARAMS_NOTE = (
    "params counts every parameter of the RLlib DreamerV3TorchRLModule once: world model "
    "(encoder, RSSM, decoder, reward and continue heads), actor, critic and the critic's EMA "
    "copy (critic.mlp_ema + critic.return_layer_ema, = params_critic_ema); params_trainable "
    "leaves out that EMA copy and the actor's two return-percentile EMA scalars (counted by name: "
    "RLlib's dream_trajectory sets requires_grad=True on all critic parameters, EMA copy included, "
    "after the first update, so requires_grad cannot tell them apart)"
)


def _is_ema(name: str) -> bool:
    return any(part.endswith("_ema") or part.startswith("ema_") for part in name.split("."))


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _random_batch(rng: np.random.Generator, batch_size: int, length: int, size: int, action_dim: int) -> dict:
    """One ``EpisodeReplayBuffer.sample()``-shaped dict of random data (rows start episodes)."""
    frames = rng.integers(0, 256, (batch_size, length, size, size, 3), dtype=np.uint8)
    is_first = np.zeros((batch_size, length), dtype=bool)
    is_first[:, 0] = True
    is_last = np.zeros((batch_size, length), dtype=bool)
    is_last[:, -1] = True
    return {
        "obs": frames.astype(np.float32) / np.float32(255.0) - np.float32(0.5),
        "actions": rng.uniform(-1.0, 1.0, (batch_size, length, action_dim)).astype(np.float32),
        "rewards": rng.uniform(0.0, 1.0, (batch_size, length)).astype(np.float32),
        "is_first": is_first,
        "is_last": is_last,
        "is_terminated": np.zeros((batch_size, length), dtype=bool),
        "is_truncated": np.zeros((batch_size, length), dtype=bool),
    }


def measure_rllib_dreamerv3(*, batch_size: int = 16, length: int = 64, size: int = 64,
                            model_size: str = "XS", threads: int = 1, updates: int = 2,
                            warmup: int = 1, action_dim: int = 1, seed: int = 0) -> dict:
    """Median seconds per ``Learner.update`` of RLlib's DreamerV3 (torch) on a random B x T batch.

    ``size`` must be 64 (RLlib's DreamerV3 image encoder/decoder only handle 64x64x3).
    The action space is ``Box(-1, 1, (action_dim,))`` (cartpole-swingup has one action).
    """
    if size != 64:
        raise ValueError(f"RLlib's DreamerV3 CNN encoder/decoder are fixed to 64x64 images, got size={size}")
    if updates < 1 or warmup < 0:
        raise ValueError("need updates >= 1 and warmup >= 0")

    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)

    import gymnasium as gym
    import ray
    from ray.rllib.algorithms.dreamerv3 import DreamerV3Config
    from ray.rllib.core import DEFAULT_MODULE_ID
    from ray.rllib.policy.sample_batch import SampleBatch
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    obs_space = gym.spaces.Box(-0.5, 0.5, (size, size, 3), np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
    config = (
        DreamerV3Config()
        .framework("torch")
        .environment(observation_space=obs_space, action_space=act_space)
        .training(model_size=model_size, batch_size_B=batch_size, batch_length_T=length)
        .learners(num_learners=0)
    )

    start = time.perf_counter()
    learner = config.build_learner(spaces={DEFAULT_MODULE_ID: (obs_space, act_space)})
    build_seconds = time.perf_counter() - start

    module = learner.module[DEFAULT_MODULE_ID].unwrapped()
    critic = module.critic
    critic_ema = _count(critic.mlp_ema) + _count(critic.return_layer_ema)
    params = _count(module)
    params_trainable = sum(p.numel() for name, p in module.named_parameters() if not _is_ema(name))

    rng = np.random.default_rng(seed)
    steps_sampled = batch_size * length
    samples, cpu_samples = [], []
    load_before = os.getloadavg()[0]
    for i in range(warmup + updates):
        batch = SampleBatch(_random_batch(rng, batch_size, length, size, action_dim)).as_multi_agent()
        start, cpu_start = time.perf_counter(), time.process_time()
        learner.update(batch=batch, timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: steps_sampled})
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        if i >= warmup:
            samples.append(elapsed)
            cpu_samples.append(cpu)
        steps_sampled += batch_size * length

    return {
        "seconds_per_update": statistics.median(samples),
        "seconds_per_update_min": min(samples),
        "samples": samples,
        # Process CPU seconds per timed update; on an otherwise idle machine cpu/wall is about
        # `threads`, a much lower ratio means other processes were competing for the cores.
        "cpu_seconds_per_update": statistics.median(cpu_samples),
        "cpu_per_wall": sum(cpu_samples) / sum(samples),
        "loadavg_1min": [load_before, os.getloadavg()[0]],
        "params": params,
        "params_trainable": params_trainable,
        "params_world_model": _count(module.world_model),
        "params_actor": _count(module.actor),
        "params_critic": _count(critic) - critic_ema,
        "params_critic_ema": critic_ema,
        "params_note": PARAMS_NOTE,
        "model_size": model_size,
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "length": length,
        "size": size,
        "action_dim": action_dim,
        "horizon": config.horizon_H,
        "updates": updates,
        "warmup": warmup,
        "build_seconds": build_seconds,
        "ray_version": ray.__version__,
        "torch_version": torch.__version__,
        "api": "DreamerV3Config().build_learner(spaces=...) -> DreamerV3TorchLearner.update(batch=MultiAgentBatch)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--model-size", default="XS")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--updates", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--action-dim", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line (the last line)")
    args = parser.parse_args(argv)
    # Importing ray.rllib imports dm_control (RLlib's DMCEnv wrapper), which picks a GL backend;
    # nothing is rendered here, so skip the GLFW probe and its "DISPLAY is missing" warning.
    os.environ.setdefault("MUJOCO_GL", "disable")
    result = measure_rllib_dreamerv3(
        batch_size=args.batch_size, length=args.length, size=args.size, model_size=args.model_size,
        threads=args.threads, updates=args.updates, warmup=args.warmup, action_dim=args.action_dim,
        seed=args.seed,
    )
    sys.stdout.flush()
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
