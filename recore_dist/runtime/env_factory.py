"""The env vector and model spaces of a ``TrainConfig``: one place that every runner, the
evaluator, the probe and the saved-run loader build their simulators from."""

from __future__ import annotations

import numpy as np

from recore_dist.models.world_model import Spaces
from recore_dist.runtime.config import TrainConfig


def make_envs(cfg: TrainConfig, split: str, num_envs: int, seed: int):
    """The default env factory: a lock-step vector of ``cfg.env`` on ``split``."""
    from recore_dist.envs import make_vector  # the simulators load only where envs are built

    return make_vector(cfg.env.name, num_envs, seed=seed, **cfg.env.options(split))


def spaces_of(envs) -> Spaces:
    """Model spaces from a vector env's first simulator (``proprio_dim`` is 0 without ``proprio``)."""
    env = envs.envs[0]
    space = envs.single_action_space
    obs_space = env.observation_space
    proprio_dim = int(np.prod(obs_space["proprio"].shape)) if "proprio" in obs_space.spaces else 0
    return Spaces(action_dim=int(np.prod(space.shape)), image_channels=int(obs_space["image"].shape[-1]),
                  num_classes=int(getattr(env, "num_classes", 0)), max_depth=float(getattr(env, "max_depth", 10.0)),
                  proprio_dim=proprio_dim, terminates=bool(getattr(env, "terminates", True)))
