"""``ReplayClient``: the replay service as one object over S ``ReplayShard`` Ray actors.

Inserts are routed by runner id (``runner_id % S``: a runner's streams stay in one shard, so
their segments stay linked, and a restarted runner comes back to the same shard). Samples are
gathered across shards in proportion to their sizes (one multinomial draw per batch over the
shards' step counts, refreshed every ``refresh_s``), one call per shard in parallel, and decoded
from msgpack here.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from recore_dist.data.batch import decode_batch


class ReplayClient:
    """Args:
        shards: ``ReplayShard`` actor handles.
        seed: seed of the per-batch shard split.
        refresh_s: how often shard sizes are re-read for the split.
    """

    def __init__(self, shards: list[Any], *, seed: int = 0, refresh_s: float = 1.0):
        if not shards:
            raise ValueError("ReplayClient needs at least one shard")
        self.shards = list(shards)
        self.rng = np.random.default_rng(seed)
        self.refresh_s = refresh_s
        self._sizes = np.zeros(len(shards))
        self._read_at = -float("inf")

    def shard_for(self, runner_id: int) -> int:
        return runner_id % len(self.shards)

    def insert(self, runner_id: int, payload):
        """Start an insert of ``encode_chunks`` bytes (or an ``ObjectRef`` from ``put``); returns
        the call's ObjectRef."""
        return self.shards[self.shard_for(runner_id)].insert.remote(payload)

    @staticmethod
    def put(payload: memoryview | bytes):
        """Copy an encoded batch into the object store once (as a flat uint8 array, which the
        shard reads in place); the ref can be inserted, and re-sent after ``RateLimited``,
        without another copy. The caller may reuse ``payload``'s memory when this returns."""
        import ray

        array = np.frombuffer(payload, np.uint8)
        try:
            return ray.put(array)
        finally:
            del array  # drop the export of ``payload`` before the caller releases it

    def sizes(self, *, fresh: bool = False) -> np.ndarray:
        import ray

        if fresh or time.monotonic() - self._read_at > self.refresh_s:
            self._sizes = np.asarray(ray.get([s.size.remote() for s in self.shards]), np.float64)
            self._read_at = time.monotonic()
        return self._sizes

    def split(self, batch_size: int) -> np.ndarray:
        """Windows to draw from each shard: multinomial over the shards' sizes."""
        sizes = self.sizes()
        if sizes.sum() <= 0:
            sizes = self.sizes(fresh=True)
        if sizes.sum() <= 0:
            counts = np.zeros(len(self.shards), np.int64)
            counts[self.rng.integers(len(self.shards))] = batch_size  # let that shard's limiter wait
            return counts
        return self.rng.multinomial(batch_size, sizes / sizes.sum())

    def sample(self, batch_size: int, *, timeout: float | None = None) -> dict[str, np.ndarray]:
        """A ``[batch_size, T]`` batch gathered across shards.

        Raises:
            RateLimited: a shard's rate limiter held the call for its timeout (the learner is
                ahead of the actors); nothing was consumed from the other shards' budgets
                beyond their part of this batch.
        """
        import ray

        counts = self.split(batch_size)
        refs = [self.shards[i].sample.remote(int(n), timeout) for i, n in enumerate(counts) if n > 0]
        parts = [decode_batch(payload) for payload in ray.get(refs)]
        if len(parts) == 1:
            return parts[0]
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}

    def stats(self) -> list[dict[str, float]]:
        import ray

        return ray.get([s.stats.remote() for s in self.shards])
