"""``RateLimiter``: keeps sampled steps per inserted step near a target ratio, thread-safe.

The replay service's rate limiter (Reverb's ``SampleToInsertRatio`` idea, counted in steps).
With ``ratio`` replayed steps per inserted step, ``min_size`` steps inserted before any sampling
and a tolerance of ``tolerance`` steps either side, the *lag*

    lag = sampled - ratio * (inserted - min_size)

must stay in ``[-tolerance, +tolerance]``: sampling ``n`` steps waits while ``lag + n`` would
exceed ``+tolerance`` (the learner is ahead: wait for data), inserting ``n`` steps waits while
``lag - ratio * n`` would fall below ``-tolerance`` (the actors are ahead: wait for the learner).
Both sides cannot wait at once when ``2 * tolerance >= max_sample + ratio * max_insert``; the
constructor checks it. Waits have a timeout and report, never hang: ``acquire_*`` return
``False`` on timeout and the caller raises ``RateLimited`` with ``describe()``.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any


class RateLimited(TimeoutError):
    """A replay call waited ``timeout`` seconds on the rate limiter; the message has its state."""


class RateLimiter:
    """Samples-per-insert control with a tolerance band (see module doc).

    Args:
        ratio: replayed steps per inserted step (> 0); ``inf`` never blocks sampling on inserts.
        min_size: inserted steps before the first sample.
        tolerance: allowed lag either side, in steps.
        max_sample: largest single sample request, in steps (for the deadlock check).
        max_insert: largest single insert, in steps (for the deadlock check).
    """

    def __init__(self, ratio: float, *, min_size: int, tolerance: float, max_sample: int, max_insert: int):
        if not ratio > 0:
            raise ValueError(f"ratio={ratio!r} must be > 0")
        if min_size < 0:
            raise ValueError(f"min_size={min_size!r} must be >= 0")
        need = max_sample + (0 if math.isinf(ratio) else ratio * max_insert)
        if not 2 * tolerance >= need:
            raise ValueError(f"tolerance={tolerance!r} steps is too small: sampling {max_sample} and inserting "
                             f"{max_insert} steps at ratio {ratio} need tolerance >= {need / 2:g} to never deadlock")
        self.ratio, self.min_size, self.tolerance = float(ratio), int(min_size), float(tolerance)
        self.inserted = 0
        self.sampled = 0
        self.waited = {"insert": 0.0, "sample": 0.0}
        self.timeouts = {"insert": 0, "sample": 0}
        self._cond = threading.Condition()

    # ------------------------------------------------------------------------------ state
    def lag(self) -> float:
        """``sampled - ratio * (inserted - min_size)``: > 0 when sampling ran ahead."""
        if math.isinf(self.ratio):
            return -math.inf
        return self.sampled - self.ratio * max(0, self.inserted - self.min_size)

    def can_sample(self, steps: int) -> bool:
        return self.inserted >= self.min_size and self.inserted > 0 and self.lag() + steps <= self.tolerance

    def can_insert(self, steps: int) -> bool:
        if math.isinf(self.ratio) or self.inserted + steps <= self.min_size:
            return True
        future = self.sampled - self.ratio * (self.inserted + steps - self.min_size)
        return future >= -self.tolerance

    def describe(self) -> str:
        return (f"inserted={self.inserted} sampled={self.sampled} steps, ratio={self.ratio:g}, "
                f"min_size={self.min_size}, lag={self.lag():.0f} (tolerance {self.tolerance:.0f})")

    # ------------------------------------------------------------------------------ waits
    def acquire_insert(self, steps: int, timeout: float | None) -> bool:
        """Wait until ``steps`` may be inserted and count them; ``False`` on timeout."""
        return self._acquire("insert", steps, timeout)

    def acquire_sample(self, steps: int, timeout: float | None) -> bool:
        """Wait until ``steps`` may be sampled and count them; ``False`` on timeout."""
        return self._acquire("sample", steps, timeout)

    def _acquire(self, kind: str, steps: int, timeout: float | None) -> bool:
        allowed = self.can_insert if kind == "insert" else self.can_sample
        start = time.perf_counter()
        with self._cond:
            ok = self._cond.wait_for(lambda: allowed(steps), timeout=timeout)
            self.waited[kind] += time.perf_counter() - start
            if not ok:
                self.timeouts[kind] += 1
                return False
            if kind == "insert":
                self.inserted += steps
            else:
                self.sampled += steps
            self._cond.notify_all()
            return True

    def release_insert(self, steps: int) -> None:
        """Undo an ``acquire_insert`` whose data was then refused (so refused data earns no samples)."""
        with self._cond:
            self.inserted -= steps
            self._cond.notify_all()

    def record_insert(self, steps: int) -> None:
        """Count ``steps`` inserted without waiting (a restore replaying its log)."""
        with self._cond:
            self.inserted += steps
            self._cond.notify_all()

    def release_sample(self, steps: int) -> None:
        """Undo an ``acquire_sample`` that returned no data."""
        with self._cond:
            self.sampled -= steps
            self._cond.notify_all()

    def wake(self) -> None:
        """Wake waiters (after a state change from outside, e.g. a restore)."""
        with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {"inserted": self.inserted, "sampled": self.sampled}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with self._cond:
            self.inserted, self.sampled = int(state["inserted"]), int(state["sampled"])
            self._cond.notify_all()

    def stats(self) -> dict[str, float]:
        return {"inserted_steps": float(self.inserted), "sampled_steps": float(self.sampled), "lag": self.lag(),
                "insert_wait_s": self.waited["insert"], "sample_wait_s": self.waited["sample"],
                "insert_timeouts": float(self.timeouts["insert"]), "sample_timeouts": float(self.timeouts["sample"])}
