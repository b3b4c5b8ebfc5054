"""``ReplayRatio``: how many learner updates are due for the env steps collected so far.

The replay ratio is replayed steps per env step (DreamerV3 "train ratio"): with ratio ``r`` and
``batch_steps = B * T`` steps replayed per update, one update is due every ``batch_steps / r``
env steps. Credit is kept as an exact ``Fraction``, so fractional updates carry over between
calls without float drift.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

MAX_RATIO_DENOMINATOR = 1_000_000  # ratio is read as the nearest fraction with this denominator


class ReplayRatio:
    """Replay-ratio control: ``updates_due(env_steps)`` after each collection step.

    Env steps up to ``min_steps`` earn no credit (the replay is filling); from then on every env
    step earns ``ratio / batch_steps`` updates, so there is no burst of updates at ``min_steps``.
    """

    def __init__(self, ratio: float, *, batch_steps: int, min_steps: int = 0) -> None:
        """Create the controller.

        Args:
            ratio: Replayed steps per env step (> 0, finite).
            batch_steps: Steps replayed per update, ``B * T`` (int >= 1).
            min_steps: Env steps before any update is due (int >= 0).
        """
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not (
            math.isfinite(ratio) and ratio > 0
        ):
            raise ValueError(f"ratio must be a finite number > 0, got {ratio!r}")
        for name, value, low in (("batch_steps", batch_steps, 1), ("min_steps", min_steps, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        self.ratio, self.batch_steps, self.min_steps = float(ratio), batch_steps, min_steps
        self._rate = Fraction(ratio).limit_denominator(MAX_RATIO_DENOMINATOR) / batch_steps
        self._env_steps = 0  # total env steps at the last call
        self._credit = Fraction(0)  # updates earned but not yet handed out, in [0, 1)
        self._updates = 0  # updates handed out so far

    @property
    def updates(self) -> int:
        """Updates handed out so far."""
        return self._updates

    def updates_due(self, env_steps: int) -> int:
        """Updates to run now, given the total env steps collected so far.

        Args:
            env_steps: Total env steps so far; never less than at the previous call.

        Raises:
            ValueError: If ``env_steps`` is not an int >= 0 or went down.
        """
        if isinstance(env_steps, bool) or not isinstance(env_steps, int) or env_steps < 0:
            raise ValueError(f"env_steps must be an int >= 0, got {env_steps!r}")
        if env_steps < self._env_steps:
            raise ValueError(f"env_steps went down: {env_steps} < previous {self._env_steps}")
        earned = max(env_steps, self.min_steps) - max(self._env_steps, self.min_steps)
        self._env_steps = env_steps
        self._credit += earned * self._rate
        due = math.floor(self._credit)
        self._credit -= due
        self._updates += due
        return due

    def state_dict(self) -> dict[str, Any]:
        """Progress as plain ints and strings (JSON-safe); the config is not included."""
        return {
            "env_steps": self._env_steps,
            "credit": f"{self._credit.numerator}/{self._credit.denominator}",
            "updates": self._updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the progress saved by ``state_dict``.

        Raises:
            ValueError: If a key is missing or a value is malformed.
        """
        missing = {"env_steps", "credit", "updates"} - set(state)
        if missing:
            raise ValueError(f"ReplayRatio state: missing keys {sorted(missing)}, got {sorted(state)}")
        try:
            credit = Fraction(str(state["credit"]))
            env_steps, updates = int(state["env_steps"]), int(state["updates"])
        except (TypeError, ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"ReplayRatio state: malformed values {state!r}") from exc
        if not 0 <= credit < 1 or env_steps < 0 or updates < 0:
            raise ValueError(f"ReplayRatio state: values out of range {state!r}")
        self._env_steps, self._credit, self._updates = env_steps, credit, updates
