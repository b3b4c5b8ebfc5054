"""A real data-collection job on an embedded local Ray: random policy, interventions on.

Each :class:`Collector` Ray actor steps ``envs_per_runner`` simulators (``make_vector``), cuts
their streams into :class:`~recore_dist.data.SequenceChunk` s and returns them msgpack-encoded;
the driver decodes (validating every chunk), stores them under ``logdir/chunks``, and writes
TensorBoard scalars (frames/s, episode returns, chunk sizes) and frame grids of the train and
held-out interventions. This is the main job until the learner lands.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Literal

import numpy as np

from recore_dist import config as config_lib
from recore_dist.data import SequenceChunker, decode_chunks, encode_chunks
from recore_dist.logging import Logger, Rate


@dataclasses.dataclass
class EnvConfig:
    """Which simulator to run and what it renders."""

    name: str = "dmc:walker-walk"
    """Env name, ``suite:task`` (``dmc:*``, ``nav:pointgoal``, ``igibson:pointnav``)."""
    size: int = 64
    """Image size in pixels (64 default, 84 option)."""
    depth: bool = True
    """Render the depth target (ReCoRe's default intervention-invariant regularizer)."""
    segmentation: bool = False
    """Render the segmentation target."""
    clean_image: bool = False
    """Render the intervention-free image (denoising target)."""
    interventions: str = "colour,camera,background"
    """Comma-separated interventions for DMC envs (``colour``, ``camera``, ``background``, ``none``)."""
    difficulty: Literal["easy", "medium", "hard"] = "easy"
    """Intervention intensity, scale 0.1 / 0.2 / 0.3 (CoRe Table 7)."""
    dynamic: bool = True
    """Interventions change smoothly within episodes (else fixed per episode)."""

    def options(self, split: str) -> dict:
        opts = {"size": self.size, "depth": self.depth, "segmentation": self.segmentation,
                "clean_image": self.clean_image}
        if self.name.startswith("dmc:"):
            opts.update(interventions=self.interventions, difficulty=self.difficulty, dynamic=self.dynamic)
        opts["split"] = split
        return opts


@dataclasses.dataclass
class CollectConfig:
    """The data-collection job."""

    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    logdir: str = "runs/quickstart"
    """Where TensorBoard events, chunks and the resolved config go."""
    seed: int = 0
    """Seed of envs and the random policy."""
    num_runners: int = 2
    """Ray collector actors."""
    envs_per_runner: int = 2
    """Simulators stepped in lock-step in each actor."""
    env_steps: int = 2048
    """Total env steps to collect (all simulators together)."""
    chunk_length: int = 64
    """Rows per SequenceChunk."""
    steps_per_call: int = 64
    """Env steps each actor takes per remote call."""
    save_chunks: bool = True
    """Write the msgpack chunks to ``logdir/chunks``."""
    ray_address: str | None = None
    """Ray cluster to join; ``None`` starts an embedded local Ray."""
    torch_threads: int = 1
    """Torch threads in each worker process."""
    image_every: int = 512
    """Log frame grids (train, depth, held-out) at most once per this many frames."""


class Collector:
    """Steps a vector of envs with a uniform random policy and returns encoded chunks."""

    def __init__(self, runner_id: int, env: EnvConfig, *, num_envs: int, chunk_length: int, seed: int,
                 split: str = "train", torch_threads: int = 1):
        os.environ.setdefault("MUJOCO_GL", "egl")
        try:
            import torch

            torch.set_num_threads(torch_threads)
        except ImportError:  # pragma: no cover
            pass
        from recore_dist.envs import make_vector

        self.runner_id = runner_id
        self.env = make_vector(env.name, num_envs, seed=seed, **env.options(split))
        self.chunker = SequenceChunker(num_envs, chunk_length, env_name=env.name, runner_id=runner_id)
        self.rng = np.random.default_rng(seed)
        self.obs, self.infos = self.env.reset()
        self.returns = np.zeros(num_envs)
        self.reward = np.zeros(num_envs, np.float32)
        space = self.env.single_action_space
        self.action_shape = (num_envs, *space.shape)

    def collect(self, steps: int) -> dict:
        """Take ``steps`` lock-step env steps; returns encoded chunks, returns and timing.

        Row t of a chunk holds obs_t, the reward that arrived with it, and the action chosen at it.
        """
        start = time.perf_counter()
        chunks, finished = [], []
        for _ in range(steps):
            action = self.rng.uniform(-1.0, 1.0, self.action_shape).astype(np.float32)
            ids = [info["intervention_id"] for info in self.infos]
            splits = [info["split"] for info in self.infos]
            chunks += self.chunker.add(self.obs, action, self.reward, policy_version=0,
                                       intervention_ids=ids, splits=splits)
            self.obs, reward, _, _, self.infos = self.env.step(action)
            self.reward = np.where(self.obs["is_first"], 0.0, reward).astype(np.float32)
            self.returns = np.where(self.obs["is_first"], 0.0, self.returns + self.reward)
            finished += [float(r) for r in self.returns[self.obs["is_last"]]]
        seconds = time.perf_counter() - start
        return {"chunks": encode_chunks(chunks) if chunks else b"", "returns": finished,
                "frames": steps * self.env.num_envs, "seconds": seconds,
                "image": self.obs["image"][0].copy()}


def run(config: CollectConfig, *, progress: bool = True) -> dict:
    """Run the job; returns a summary (frames, chunks, mean return, frames/s)."""
    import ray
    from tqdm import tqdm

    logdir = Path(config.logdir)
    (logdir / "chunks").mkdir(parents=True, exist_ok=True)
    config_lib.save(config, logdir / "config.yaml")
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=config.ray_address, num_cpus=None if config.ray_address else max(2, config.num_runners),
                 include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}})
    logger = Logger(logdir)
    actor_cls = ray.remote(num_cpus=1, max_restarts=2, max_task_retries=-1)(Collector)
    runners = [actor_cls.remote(i, config.env, num_envs=config.envs_per_runner, chunk_length=config.chunk_length,
                                seed=config.seed + 1000 * i, torch_threads=config.torch_threads)
               for i in range(config.num_runners)]
    heldout = Collector(config.num_runners, config.env, num_envs=1, chunk_length=config.chunk_length, seed=config.seed + 99,
                        split="heldout")
    frames = chunks = 0
    last_images = -config.image_every
    returns: list[float] = []
    rate = Rate()
    start = time.perf_counter()
    pending = {r.collect.remote(config.steps_per_call): r for r in runners}
    bar = tqdm(total=config.env_steps, unit="frame", disable=not progress, desc="collect")
    try:
        while frames < config.env_steps:
            done, _ = ray.wait(list(pending), num_returns=1)
            runner = pending.pop(done[0])
            result = ray.get(done[0])
            if frames + result["frames"] < config.env_steps:
                pending[runner.collect.remote(config.steps_per_call)] = runner
            batch = decode_chunks(result["chunks"]) if result["chunks"] else []
            if config.save_chunks and batch:
                name = f"chunks-{frames:09d}-r{batch[0].runner_id}.msgpack"
                (logdir / "chunks" / name).write_bytes(result["chunks"])
            frames += result["frames"]
            chunks += len(batch)
            returns += result["returns"]
            rate.add(result["frames"])
            bar.update(result["frames"])
            bar.set_postfix(chunks=chunks, ret=f"{np.mean(returns[-20:]):.1f}" if returns else "-")
            images = frames - last_images >= config.image_every
            last_images = frames if images else last_images
            if images:
                logger.scalars({"collect/frames_per_second": rate.rate()}, frames)
            _log(logger, frames, result, batch, heldout if images else None)
        for ref in pending:
            ray.cancel(ref)
    finally:
        bar.close()
        logger.close()
        if started_ray:
            ray.shutdown()
    seconds = time.perf_counter() - start
    summary = {"frames": frames, "chunks": chunks, "episodes": len(returns),
               "mean_return": float(np.mean(returns)) if returns else None,
               "frames_per_second": frames / seconds, "logdir": str(logdir)}
    (logdir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _log(logger: Logger, frames: int, result: dict, batch: list, heldout: Collector | None) -> None:
    """Scalars every batch; frame grids (and a few held-out steps on the driver) when ``heldout``."""
    scalars = {"collect/runner_frames_per_second": result["frames"] / max(result["seconds"], 1e-9),
               "collect/chunks": len(batch)}
    if result["returns"]:
        scalars["collect/episode_return_train"] = float(np.mean(result["returns"]))
    if batch:
        scalars["collect/chunk_mbytes"] = batch[0].nbytes / 2**20
    if batch and heldout is not None:
        logger.images("frames/train", batch[0].obs["image"][:: max(1, len(batch[0].obs["image"]) // 8)][:8], frames)
        if "depth" in batch[0].obs:
            depth = batch[0].obs["depth"][:8:2, ..., 0]
            depth = (255 * depth / max(float(depth.max()), 1e-6)).astype(np.uint8)
            logger.images("frames/depth", np.repeat(depth[..., None], 3, axis=-1), frames)
        held = heldout.collect(8)
        logger.images("frames/heldout", np.stack([held["image"]]), frames)
    logger.scalars(scalars, frames)
