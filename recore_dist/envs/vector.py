"""K simulators stepped in lock-step in one process, with autoreset and batched numpy outputs.

Autoreset is *next-step*: the step that ends env ``i``'s episode returns its last observation
(``is_last=True``); the following ``step`` ignores env ``i``'s action, resets it and returns the
new episode's first observation (``is_first=True``, reward 0). So every observation of every
episode reaches the policy and the replay, which is what sequence models need.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np


class VectorEnv:
    """Lock-step vector of envs following :mod:`recore_dist.envs.base`.

    Args:
        env_fns: one constructor per simulator.
        seed: env ``i`` is reset with ``seed + i`` on the first reset (None: unseeded).

    ``reset()`` -> ``(obs, infos)``; ``step(actions)`` -> ``(obs, reward, terminated, truncated,
    infos)`` where ``obs`` maps each key to an array ``[K, ...]``, ``reward`` is float32 ``[K]``,
    ``terminated``/``truncated`` bool ``[K]`` and ``infos`` a list of K dicts.
    """

    def __init__(self, env_fns: list[Callable[[], gym.Env]], seed: int | None = None):
        if not env_fns:
            raise ValueError("VectorEnv needs at least one env")
        self.envs = [fn() for fn in env_fns]
        self.num_envs = len(self.envs)
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self._seed = seed
        self._needs_reset = np.ones(self.num_envs, bool)
        self._zero_action = np.zeros(self.single_action_space.shape, np.float32)

    def reset(self, seed: int | None = None) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
        seed = self._seed if seed is None else seed
        results = [env.reset(seed=None if seed is None else seed + i) for i, env in enumerate(self.envs)]
        self._needs_reset[:] = False
        return _stack([r[0] for r in results]), [r[1] for r in results]

    def step(self, actions: np.ndarray):
        actions = np.asarray(actions, np.float32)
        expected = (self.num_envs, *self.single_action_space.shape)
        if actions.shape != expected:
            raise ValueError(f"actions must have shape {expected}, got {actions.shape}")
        obs, infos = [], []
        reward = np.zeros(self.num_envs, np.float32)
        terminated = np.zeros(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool)
        for i, env in enumerate(self.envs):
            if self._needs_reset[i]:
                o, info = env.reset()
            else:
                o, reward[i], terminated[i], truncated[i], info = env.step(actions[i])
            self._needs_reset[i] = bool(o["is_last"])
            obs.append(o)
            infos.append(info)
        return _stack(obs), reward, terminated, truncated, infos

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def __enter__(self) -> "VectorEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _stack(obs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.stack([o[key] for o in obs]) for key in obs[0]}


def make_vector(name: str, num_envs: int, *, seed: int | None = None, **options) -> VectorEnv:
    """``num_envs`` copies of ``make(name, **options)`` (env ``i`` seeded ``seed + i``)."""
    from recore_dist.envs.registry import make

    if not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")

    def builder(i: int) -> Callable[[], gym.Env]:
        return lambda: make(name, seed=None if seed is None else seed + i, **options)

    return VectorEnv([builder(i) for i in range(num_envs)], seed=seed)
