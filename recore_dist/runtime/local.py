"""Local runner: env vector + policy + replay + learner in one process (no Ray).

The whole system at a fixed replay ratio, debuggable in one process (Sample Factory's serial
runner habit). Progress bar, TensorBoard scalars and images, periodic evaluation on the train
and held-out intervention splits, checkpoints, and resume from the logdir.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recore_dist import __version__
from recore_dist import config as config_lib
from recore_dist.behavior import Policy
from recore_dist.learner import Learner
from recore_dist.logging import Logger, Rate
from recore_dist.replay import ReplayRatio, ReplayStore
from recore_dist.runtime.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from recore_dist.runtime.config import TrainConfig
from recore_dist.runtime.curriculum import Curriculum, apply_goal_cells
from recore_dist.runtime.env_factory import make_envs, spaces_of
from recore_dist.runtime.env_loop import EnvLoop, prefill_policy
from recore_dist.runtime.evaluator import Evaluator
from recore_dist.runtime.summaries import log_evaluation, open_loop_grids, open_loop_videos


class LocalRunner:
    """Trains ``cfg`` in this process; ``run()`` returns a summary dict.

    Args:
        cfg: the job.
        make_env_vector: ``(cfg, split, num_envs, seed) -> VectorEnv`` (injected for tests/other envs).
        progress: show a progress bar.
    """

    def __init__(self, cfg: TrainConfig, *, make_env_vector: Callable = make_envs, progress: bool = True):
        self.cfg, self.make_env_vector, self.progress = cfg, make_env_vector, progress
        self.logdir = Path(cfg.logdir)
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        self.envs = make_env_vector(cfg, "train", cfg.num_envs, cfg.seed)
        self.spaces = spaces_of(self.envs)
        self.learner = Learner(cfg.learner, self.spaces)
        self._pending: dict[str, float] = {}  # gradient diagnostics waiting for the next log step
        lc = cfg.learner
        self.batch_steps = lc.batch_size * lc.batch_length
        self.ratio = ReplayRatio(cfg.replay.ratio, batch_steps=self.batch_steps, min_steps=cfg.replay.prefill)
        self.counters: dict[str, Any] = {"env_steps": 0, "episodes": 0, "seconds": 0.0}
        self.replay = ReplayStore(cfg.replay.capacity, length=lc.batch_length,
                                  keys=self.learner.objective.batch_keys, seed=cfg.seed)
        self.resumed = self._resume()
        self.curriculum = Curriculum(cfg.env.curriculum)
        self.curriculum.load_state_dict(self.counters.get("curriculum"))
        if cfg.env.curriculum.enabled:  # before the loop's first reset draws the first goals
            apply_goal_cells(self.envs, self.curriculum.cells)
        self.policy = Policy(lc.model, lc.behavior, self.spaces, num_envs=cfg.num_envs,
                             modalities=lc.objective.modalities)
        self._sync_policy()
        self.loop = EnvLoop(self.envs, self.policy, chunk_length=cfg.replay.chunk_length, env_name=cfg.env.name,
                            seed=cfg.seed + self.counters["env_steps"],
                            prefill_policy=prefill_policy(cfg, cfg.num_envs))
        self.evaluator = Evaluator(cfg, self.spaces, make_env_vector=make_env_vector)

    # --------------------------------------------------------------------------- state
    def _resume(self) -> bool:
        path = find_checkpoint(self.logdir)
        if path is None:
            return False
        state, replay = load_checkpoint(path, self.learner)
        self.counters.update(state["counters"])
        self.ratio.load_state_dict(state["ratio"])
        if replay is not None:
            self.replay = replay
        return True

    def checkpoint(self) -> Path:
        self.counters["curriculum"] = self.curriculum.state_dict()
        state = {"counters": self.counters, "ratio": self.ratio.state_dict(), "updates": self.learner.updates,
                 "version": __version__}
        return save_checkpoint(self.logdir, self.learner, self.replay if self.cfg.keep_replay else None, state)

    def _sync_policy(self) -> None:
        self.weights = self.learner.policy_weights()
        self.policy.load(self.weights, self.learner.updates)

    # --------------------------------------------------------------------------- evaluation
    def evaluate(self, split: str, episodes: int, *, random: bool = False) -> dict[str, float]:
        """Mode-action episodes of the current policy (or a random policy) on ``split``."""
        return self.evaluator.evaluate(self.weights, self.learner.updates, episodes=episodes, splits=(split,),
                                       random=random)

    # --------------------------------------------------------------------------- main loop
    def run(self, *, max_seconds: float | None = None) -> dict[str, Any]:
        """Train until ``cfg.env_steps`` (or ``max_seconds`` of wall-clock in this call), evaluate
        on both splits, checkpoint, and return a summary."""
        from tqdm import tqdm

        cfg, counters = self.cfg, self.counters
        self.logdir.mkdir(parents=True, exist_ok=True)
        config_lib.save(cfg, self.logdir / "config.yaml")
        logger = Logger(self.logdir, wandb=cfg.logging, config=config_lib.to_dict(cfg))
        bar = tqdm(total=cfg.env_steps, initial=counters["env_steps"], unit="step", disable=not self.progress,
                   desc="train", dynamic_ncols=True)
        env_rate, update_rate = Rate(), Rate()
        recent: list[float] = []
        metrics: dict[str, float] = {}
        last_eval = counters["env_steps"]
        self._started = time.perf_counter() - counters["seconds"]
        try:
            deadline = time.perf_counter() + max_seconds if max_seconds else float("inf")
            while counters["env_steps"] < cfg.env_steps and time.perf_counter() < deadline:
                random = counters["env_steps"] < cfg.replay.prefill
                chunks, episodes = self.loop.step(1, random=random)
                counters["env_steps"] += cfg.num_envs
                env_rate.add(cfg.num_envs)
                for chunk in chunks:
                    self.replay.add(chunk)
                for ep in episodes:
                    counters["episodes"] += 1
                    recent = (recent + [ep["return"]])[-20:]
                    logger.scalars({"train/return": ep["return"], "train/length": ep["length"]}, counters["env_steps"])
                if episodes and cfg.env.curriculum.enabled:
                    if self.curriculum.observe(episodes):
                        apply_goal_cells(self.envs, self.curriculum.cells)
                    logger.scalars(self.curriculum.scalars(), counters["env_steps"])
                due = self.ratio.updates_due(counters["env_steps"]) if self.replay.num_windows else 0
                for _ in range(due):
                    metrics = self.learner.update(self.replay.sample(cfg.learner.batch_size))
                    update_rate.add(1)
                    self._after_update(logger, metrics, env_rate, update_rate)
                bar.update(cfg.num_envs)
                bar.set_postfix(upd=self.learner.updates, ret=f"{np.mean(recent):.1f}" if recent else "-",
                                wm=f"{metrics.get('loss/world_model', float('nan')):.2f}", refresh=False)
                if cfg.eval.every and counters["env_steps"] - last_eval >= cfg.eval.every:
                    last_eval = counters["env_steps"]
                    self._log_eval(logger)
            counters["seconds"] = time.perf_counter() - self._started
            final = self._log_eval(logger)
            self.checkpoint()
        finally:
            bar.close()
            logger.close()
        summary = {"env_steps": counters["env_steps"], "updates": self.learner.updates,
                   "episodes": counters["episodes"], "seconds": counters["seconds"],
                   "train_return_recent": float(np.mean(recent)) if recent else None,
                   "replay": self.replay.stats(), "params": self.learner.param_counts(), **final,
                   "logdir": str(self.logdir), "resumed": self.resumed}
        (self.logdir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def _after_update(self, logger: Logger, metrics: dict[str, float], env_rate: Rate, update_rate: Rate) -> None:
        cfg, updates = self.cfg, self.learner.updates
        if updates % cfg.policy_sync == 0:
            self._sync_policy()
        step = self.counters["env_steps"]
        self._pending.update({k: v for k, v in metrics.items() if k.startswith("grad/")})  # every K updates only
        if updates % cfg.log_every == 0:
            rates = {"perf/env_steps_per_second": env_rate.rate(), "perf/updates_per_second": update_rate.rate()}
            replay = {f"replay/{k}": float(v) for k, v in self.replay.stats().items()}
            logger.scalars({**metrics, **self._pending, **rates, **replay, "perf/updates": updates}, step)
            self._pending = {}
        if updates % cfg.image_every == 0:
            for tag, grid in open_loop_grids(self.learner, self.replay.sample(4)).items():
                logger.images(f"open_loop/{tag}", grid[None], step)
        if updates % cfg.checkpoint_every == 0:
            self.counters["seconds"] = time.perf_counter() - self._started
            self.checkpoint()

    def _log_eval(self, logger: Logger) -> dict[str, float]:
        ev = self.cfg.eval
        results = self.evaluator.evaluate(self.weights, self.learner.updates, episodes=ev.episodes, videos=ev.videos)
        step = self.counters["env_steps"]
        results = log_evaluation(logger, results, step, max_frames=ev.video_frames)
        if ev.videos and self.replay.num_windows:
            for name, video in open_loop_videos(self.learner, self.replay.sample(1)).items():
                logger.video(f"open_loop_video/{name}", video, step)
        logger.flush()
        return results

    def close(self) -> None:
        self.loop.close()
        self.evaluator.close()


def train(cfg: TrainConfig, *, progress: bool = True) -> dict[str, Any]:
    """Run the local runner to completion (resuming from ``cfg.logdir`` if it has a checkpoint)."""
    runner = LocalRunner(cfg, progress=progress)
    try:
        return runner.run()
    finally:
        runner.close()
