"""recore-dist as RLlib algorithms and Tune trainables.

Importing this package registers, with Tune's global registry:

- the trainable ``"ReCoRe"`` (``tune.Tuner("ReCoRe", param_space=ReCoReConfig()...)``);
- every named env (``dmc:cartpole-swingup``, ``nav:pointgoal``, ...) with ``tune.register_env``,
  built by ``recore_dist.envs.make(name, **env_config)``.

``import recore_dist`` alone does not import RLlib (5 s and ~200 MB in every process, Ray
workers included); import ``recore_dist.rllib`` where Tune or RLlib is used.
"""

from __future__ import annotations

from recore_dist.envs.gl import ensure_mujoco_gl

ensure_mujoco_gl()  # before RLlib's imports load mujoco with its default (windowed) GL backend

from recore_dist.rllib.algorithm import ReCoRe  # noqa: E402
from recore_dist.rllib.config import ReCoReConfig  # noqa: E402

ALGORITHMS = {"ReCoRe": ReCoRe}


def register() -> list[str]:
    """Register the trainables and env names with Tune (idempotent); returns the env names."""
    from ray.tune.registry import register_env, register_trainable

    from recore_dist.envs.registry import DMC_TASKS, make

    for name, algo in ALGORITHMS.items():
        register_trainable(name, algo)
    names = [f"dmc:{task}" for task in DMC_TASKS] + ["nav:pointgoal", "igibson:pointnav"]
    for name in names:
        register_env(name, lambda env_config, _name=name: make(_name, **dict(env_config or {})))
    return names


register()

__all__ = ["ALGORITHMS", "ReCoRe", "ReCoReConfig", "register"]
