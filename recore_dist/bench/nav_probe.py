"""The task-information probe of ``bench objectives --env nav:pointgoal``: does ``[h, z]`` keep the goal?

On point-goal navigation the goal (distance, bearing) enters the model only through the
``proprio`` vector. A policy that reads the latent feature alone can only head for the goal if
the feature keeps it; this probe measures that. A uniform random policy runs on the *train*
scenes and, separately, on the *held-out* scenes (other layouts and textures); the model trains
on windows of train-scene segments only. A ridge regression from the posterior feature to
``(distance, sin bearing, cos bearing)`` is fitted on those train-scene frames and scored by its
coefficient of determination (R^2, mean over the three targets) on held-out-scene frames:
``goal_probe_r2``. 1 means the goal is read off the feature exactly in unseen scenes; 0 means no
better than its mean.

Layout: per split ``E`` segments of ``L`` rows from a reset (``[E, L, ...]``: ``image`` uint8,
``depth`` float32, ``proprio`` float32 ``[5]``, ``action``, ``reward``, ``is_first`` / ``is_last``
/ ``is_terminal``), rows in the replay convention (row ``t`` holds ``obs_t``, the reward that
arrived with it and the action drawn at it). Cached as plain ``npz`` (``allow_pickle=False``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
FIELDS: tuple[str, ...] = ("image", "depth", "proprio", "action", "reward", "is_first", "is_last", "is_terminal")
GOAL_DIMS = slice(0, 3)  # proprio: goal distance (m), sin and cos of its bearing, speed, turn rate
SPLITS: tuple[str, ...] = ("train", "heldout")


def collect_nav_probe_data(*, env_name: str = "nav:pointgoal", episodes: int = 48, length: int = 100, size: int = 64,
                           seed: int = 0, cache_dir: str = "runs/cache/probe_data") -> dict[str, dict[str, np.ndarray]]:
    """``{split: fields [E, L, ...]}`` from a uniform random policy, cached under ``cache_dir``."""
    args = {"env_name": env_name, "episodes": episodes, "length": length, "size": size, "seed": seed,
            "format_version": FORMAT_VERSION}
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"navprobe_v{FORMAT_VERSION}_{digest}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as f:
            return {s: {k: f[f"{s}.{k}"] for k in FIELDS} for s in SPLITS}
    data = {split: _collect_split(args, split) for split in SPLITS}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **{f"{s}.{k}": v for s in SPLITS for k, v in data[s].items()})
    tmp.replace(path)
    return data


def _collect_split(args: dict[str, Any], split: str) -> dict[str, np.ndarray]:
    from recore_dist.envs import make
    from recore_dist.runtime.config import EnvConfig

    cfg = EnvConfig(name=args["env_name"], size=args["size"], depth=True)
    env = make(cfg.name, seed=args["seed"] + (0 if split == "train" else 1), **cfg.options(split))
    rng = np.random.default_rng([args["seed"], SPLITS.index(split)])
    e, length = args["episodes"], args["length"]
    rows: dict[str, list] = {k: [] for k in FIELDS}
    try:
        for _ in range(e):
            obs, reward = env.reset()[0], 0.0
            for t in range(length):
                action = rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32)
                for key in ("image", "depth", "proprio", "is_first", "is_last", "is_terminal"):
                    rows[key].append(np.asarray(obs[key]))
                rows["action"].append(action)
                rows["reward"].append(np.float32(reward))
                if t < length - 1:
                    if obs["is_last"]:
                        obs, reward = env.reset()[0], 0.0
                    else:
                        obs, reward, *_ = env.step(action)
    finally:
        env.close()
    out = {k: np.stack(v).reshape(e, length, *np.shape(v[0])) for k, v in rows.items()}
    out["depth"] = out["depth"].astype(np.float32).reshape(e, length, *out["image"].shape[2:4], 1)
    for key in ("is_first", "is_last", "is_terminal"):
        out[key] = out[key].astype(bool)
    out["reward"], out["proprio"] = out["reward"].astype(np.float32), out["proprio"].astype(np.float32)
    return out


def sequences(fields: dict[str, np.ndarray], batch_size: int, length: int, rng: np.random.Generator, *,
              episodes: np.ndarray) -> dict[str, np.ndarray]:
    """``batch_size`` windows ``[B, T, ...]`` drawn uniformly from the given segments; row 0 of
    each window is marked ``is_first`` (as replay samples are)."""
    segment = episodes[rng.integers(0, len(episodes), batch_size)]
    start = rng.integers(0, fields["reward"].shape[1] - length + 1, batch_size)
    rows = start[:, None] + np.arange(length)[None]
    batch = {k: v[segment[:, None], rows] for k, v in fields.items()}
    batch["is_first"][:, 0] = True
    return batch


def goal_targets(proprio: np.ndarray) -> np.ndarray:
    """``[N, 3]``: goal distance (m), sin and cos of its bearing."""
    return proprio.reshape(-1, proprio.shape[-1])[:, GOAL_DIMS].astype(np.float64)


def r2(pred: np.ndarray, target: np.ndarray) -> float:
    """Coefficient of determination per target column, averaged: ``1 - SSE / SST``."""
    sse = ((pred - target) ** 2).sum(0)
    sst = ((target - target.mean(0)) ** 2).sum(0)
    return float(np.mean(1.0 - sse / np.maximum(sst, 1e-12)))
