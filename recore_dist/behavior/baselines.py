"""Scripted baseline policies that set the bar a learned agent must clear.

``GoalVectorController`` is the *blind* point-goal baseline: it reads only the goal vector of
``nav:pointgoal`` / ``igibson:pointnav`` (``proprio = [distance, sin(bearing), cos(bearing),
forward speed, turn rate]``, the goal in the robot frame) and never the image. It turns towards
the goal and drives when it faces it, so it succeeds where the goal lies in a straight,
unobstructed line and fails wherever a wall is in the way: a seeing agent has to beat it.
It follows the ``ActingPolicy`` protocol of :class:`recore_dist.runtime.env_loop.EnvLoop`.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class GoalVectorConfig:
    """Gains of the goal-vector controller (hand-set, not tuned on the held-out scenes)."""

    turn_gain: float = 2.0
    """Turn command per radian of bearing (saturates at 1, the env's max turn rate, beyond 0.5 rad)."""
    facing: float = 0.35
    """Drive forward only when ``|bearing|`` is below this many radians (~20 degrees)."""
    slow_distance: float = 0.5
    """Metres from the goal below which the forward command scales down linearly (no overshoot)."""

    def __post_init__(self) -> None:
        if self.turn_gain <= 0 or not 0 < self.facing < np.pi or self.slow_distance <= 0:
            raise ValueError(f"goal-vector controller gains must be positive (facing < pi): {self}")


class GoalVectorController:
    """Turn towards the goal, drive when facing it; reads ``proprio`` only (no image).

    Args:
        num_envs: envs stepped together.
        cfg: controller gains.
    """

    obs_keys: tuple[str, ...] = ("proprio",)

    def __init__(self, num_envs: int, cfg: GoalVectorConfig | None = None):
        self.num_envs, self.cfg = num_envs, cfg or GoalVectorConfig()
        self.version = 0

    def reset(self) -> None:
        """Stateless: nothing to reset."""

    def act(self, obs: dict[str, np.ndarray], is_first: np.ndarray, *, explore: bool = False) -> np.ndarray:
        """``[N, 2]`` actions ``(forward, turn)`` in [-1, 1] from ``obs["proprio"]`` ``[N, >= 3]``."""
        proprio = np.asarray(obs["proprio"], np.float32)
        if proprio.ndim != 2 or proprio.shape[0] != self.num_envs or proprio.shape[1] < 3:
            raise ValueError(f"goal-vector controller needs proprio [{self.num_envs}, >= 3] = (distance, sin, cos, ...), "
                             f"got {proprio.shape}")
        distance, bearing = proprio[:, 0], np.arctan2(proprio[:, 1], proprio[:, 2])  # [N]
        cfg = self.cfg
        turn = np.clip(cfg.turn_gain * bearing, -1.0, 1.0)
        forward = np.where(np.abs(bearing) < cfg.facing, np.clip(distance / cfg.slow_distance, 0.2, 1.0), 0.0)
        return np.stack([forward, turn], -1).astype(np.float32)
