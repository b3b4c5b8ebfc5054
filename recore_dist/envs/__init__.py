"""Pixel environments with interventions: ``make``, ``make_vector`` and the obs contract.

Importing this package sets ``MUJOCO_GL`` (default ``egl``) before dm_control is imported.
"""

from __future__ import annotations

from recore_dist.envs.gl import ensure_mujoco_gl

ensure_mujoco_gl()

from recore_dist.envs.base import FLAG_KEYS  # noqa: E402
from recore_dist.envs.interventions import InterventionConfig  # noqa: E402
from recore_dist.envs.registry import gym_id, make, register_gymnasium  # noqa: E402
from recore_dist.envs.vector import VectorEnv, make_vector  # noqa: E402

register_gymnasium()

__all__ = ["FLAG_KEYS", "InterventionConfig", "VectorEnv", "gym_id", "make", "make_vector", "register_gymnasium"]
