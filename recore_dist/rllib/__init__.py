"""recore-dist as RLlib algorithms and Tune trainables.

Importing this package registers, with Tune's global registry:

- the trainables ``"ReCoRe"``, ``"CoRe"``, ``"HRSSM"`` and ``"CoRAL"``
  (``tune.Tuner("CoRe", param_space=CoReConfig()...)``): one runtime, the objective and its
  default behaviour set by each config class;
- every named env (``dmc:cartpole-swingup``, ``nav:pointgoal``, ...) with ``tune.register_env``,
  built by ``recore_dist.envs.make(name, **env_config)``.

``import recore_dist`` alone does not import RLlib (5 s and ~200 MB in every process, Ray
workers included); import ``recore_dist.rllib`` where Tune or RLlib is used.
"""

from __future__ import annotations

import ray._private.worker as ray_worker

from recore_dist.envs.gl import ensure_mujoco_gl

ensure_mujoco_gl()  # before RLlib's imports load mujoco with its default (windowed) GL backend

from recore_dist.rllib.algorithm import HRSSM, CoRAL, CoRe, ReCoRe  # noqa: E402
from recore_dist.rllib.config import CoRALConfig, CoReConfig, HRSSMConfig, ReCoReConfig  # noqa: E402

ALGORITHMS = {"ReCoRe": ReCoRe, "CoRe": CoRe, "HRSSM": HRSSM, "CoRAL": CoRAL}


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


def _register_after_init() -> None:
    """Tune's registry lives in the Ray cluster's key-value store: a registration made while one
    Ray session ran (or before it started) is gone in the next session. Register again on every
    ``ray.init``, as Tune's own registry flushes on it."""
    register()


register()
ray_worker._post_init_hooks.append(_register_after_init)

__all__ = ["ALGORITHMS", "HRSSM", "CoRAL", "CoRALConfig", "CoRe", "CoReConfig", "HRSSMConfig", "ReCoRe",
           "ReCoReConfig", "register"]
