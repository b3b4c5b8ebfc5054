"""``ThroughputWindow``: what the Ray driver counted since its last throughput log.

Every finished ``collect`` adds its env steps, chunks, bytes, weight staleness, rate-limited
inserts and push waits; every finished ``train`` its updates. ``scalars`` turns a window into
the logged rates (``perf/*``), the runtime's state (``runtime/*``) and the replay shards'
figures (``replay/*``); the driver logs them and starts a new window (``reset``).
"""

from __future__ import annotations

import collections
import time
from typing import Any

COLLECT_KEYS = ("chunks", "bytes", "chunks_refused", "rate_limited", "push_wait_s")
"""A ``collect`` result's figures that are summed as they are (absent ones count 0)."""


class ThroughputWindow:
    """Counts since ``start`` (a ``perf_counter`` time)."""

    def __init__(self):
        self.counts: collections.Counter = collections.Counter()
        self.start = time.perf_counter()

    def add_collect(self, out: dict[str, Any]) -> None:
        """A finished ``collect`` call's figures."""
        counts = self.counts
        counts["env_steps"] += out["env_steps"]
        for key in COLLECT_KEYS:
            counts[key] += out.get(key, 0.0)
        counts["staleness_sum"] += out["staleness"]
        counts["staleness_n"] += 1

    def add_updates(self, updates: int) -> None:
        self.counts["updates"] += updates

    def scalars(self, elapsed: float, replay: list[dict[str, float]], *, batch_size: int, learners: int,
                runners: int, counters: dict[str, Any]) -> dict[str, float]:
        """The window's figures over ``elapsed`` seconds. ``replay``: every shard's ``stats()``;
        ``batch_size`` per learner rank, ``learners`` ranks, ``runners`` env runners now;
        ``counters``: the run's (``restarts``, ``learner_restarts``)."""
        window = self.counts
        inserted = sum(s["limiter/inserted_steps"] for s in replay)
        sampled = sum(s["limiter/sampled_steps"] for s in replay)
        return {
            "perf/env_steps_per_second": window["env_steps"] / elapsed,
            "perf/chunks_per_second": window["chunks"] / elapsed,
            "perf/push_megabytes_per_second": window["bytes"] / elapsed / 1e6,
            "perf/updates_per_second": window["updates"] / elapsed,
            "perf/samples_per_second": window["updates"] * batch_size * learners / elapsed,
            "runtime/runners": float(runners),
            "runtime/restarts": float(counters["restarts"]),
            "runtime/learner_restarts": float(counters["learner_restarts"]),
            "runtime/weight_staleness": window["staleness_sum"] / max(window["staleness_n"], 1),
            "runtime/rate_limited_inserts": window["rate_limited"],
            "runtime/push_wait_seconds": window["push_wait_s"],
            "replay/steps": sum(s["replay/steps"] for s in replay),
            "replay/rejected_chunks": sum(s["replay/rejected_chunks"] + s["replay/rejected_payloads"] for s in replay),
            "replay/ratio": sampled / inserted if inserted else 0.0,
            "replay/shard_restores": sum(s["replay/restores"] for s in replay),
        }

    def reset(self) -> None:
        """Start a new window now."""
        self.counts.clear()
        self.start = time.perf_counter()
