"""A start-goal distance curriculum for navigation training (``env.curriculum``).

The training simulators draw goals at most ``cells`` cells from the start (on the layout's cell
graph); ``cells`` grows by ``step_cells`` each time the success rate of the last ``window``
training episodes *at the current level* reaches ``threshold``, until it passes ``max_cells``,
where the limit is lifted (the full task). Evaluation never sees it: the evaluator and the seeded
plans of ``bench learn`` build their own simulators from ``env`` without a limit.

The same object runs in the local runner and in the Ray driver; its state (level, recent
outcomes) is a small dict saved with the run's counters, so a resumed run continues at its level.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable
from typing import Any


@dataclasses.dataclass
class CurriculumConfig:
    """Settings of the start-goal distance curriculum (navigation only; off by default)."""

    enabled: bool = False
    """Train on nearer goals first. Off: every training episode is the full task."""
    start_cells: int = 2
    """Largest start-goal distance (cells) at the first level (the env's ``min_goal_cells`` is 2)."""
    step_cells: int = 1
    """Cells added at each promotion."""
    max_cells: int = 12
    """Past this level the limit is lifted (12 cells: the train layouts' 90th percentile distance,
    shared/FACTS.md)."""
    threshold: float = 0.5
    """Training success rate over ``window`` episodes at the current level that promotes."""
    window: int = 20
    """Training episodes the success rate is measured over (all at the current level)."""

    def __post_init__(self) -> None:
        if self.start_cells < 1 or self.step_cells < 1 or self.max_cells < self.start_cells:
            raise ValueError(f"curriculum needs 1 <= start_cells <= max_cells and step_cells >= 1: {self}")
        if not 0.0 < self.threshold <= 1.0 or self.window < 1:
            raise ValueError(f"curriculum.threshold={self.threshold} must be in (0, 1] and window >= 1")


class Curriculum:
    """The curriculum's level and the outcomes that move it.

    Args:
        cfg: its settings; with ``enabled=False`` ``cells`` is always ``None`` (no limit).
    """

    def __init__(self, cfg: CurriculumConfig):
        self.cfg = cfg
        self.level = cfg.start_cells if cfg.enabled else None
        self.outcomes: collections.deque[bool] = collections.deque(maxlen=cfg.window)
        self.promotions = 0

    @property
    def cells(self) -> int | None:
        """The current limit on the start-goal distance in cells (``None``: the full task)."""
        return self.level

    def observe(self, episodes: Iterable[dict[str, Any]]) -> bool:
        """Count finished training episodes (their ``success``); True when the level changed."""
        changed = False
        for ep in episodes:
            if "success" not in ep:
                continue
            self.outcomes.append(bool(ep["success"]))
            if self.level is None:  # lifted: the rate goes on as the full task's rolling success
                continue
            rate = sum(self.outcomes) / len(self.outcomes)
            if len(self.outcomes) == self.cfg.window and rate >= self.cfg.threshold:
                nxt = self.level + self.cfg.step_cells
                self.level = None if nxt > self.cfg.max_cells else nxt
                self.outcomes.clear()
                self.promotions += 1
                changed = True
        return changed

    def success_rate(self) -> float:
        """Success rate of the last ``window`` training episodes at this level, or on the full task
        once the limit is lifted (0 before any)."""
        return sum(self.outcomes) / len(self.outcomes) if self.outcomes else 0.0

    def scalars(self) -> dict[str, float]:
        """What TensorBoard shows: the level (``-1`` once the limit is lifted) and the rate."""
        return {"train/curriculum_cells": -1.0 if self.level is None else float(self.level),
                "train/curriculum_success_rate": self.success_rate()}

    def state_dict(self) -> dict[str, Any]:
        return {"level": self.level, "outcomes": list(self.outcomes), "promotions": self.promotions,
                "enabled": self.cfg.enabled}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore a saved state; a state saved with the curriculum off (or none) keeps the start."""
        if not state or not self.cfg.enabled or not state.get("enabled", True):
            return
        self.level = state["level"]
        self.outcomes = collections.deque((bool(x) for x in state["outcomes"]), maxlen=self.cfg.window)
        self.promotions = int(state["promotions"])


def apply_goal_cells(envs, cells: int | None) -> None:
    """Set the start-goal limit of every simulator of a vector env (navigation envs only)."""
    for env in envs.envs:
        setter = getattr(env, "set_max_goal_cells", None)
        if setter is None:
            raise ValueError(f"env.curriculum needs envs with set_max_goal_cells (nav:*), got {type(env).__name__}")
        setter(cells)
