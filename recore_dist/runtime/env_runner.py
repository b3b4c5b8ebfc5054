"""``EnvRunner``: K simulators + the CPU policy, pushing msgpack chunks to the replay service.

A plain class (testable in-process) that the orchestrator starts as a Ray actor
(``remote_runner``). The orchestrator drives it with ``collect(steps, ...)`` calls; each call
steps the vector ``steps`` times and returns throughput, episode returns and weight staleness.

- Chunks are encoded once (a ``ChunkEncoder``, whose buffers are reused, so a 30 MB batch costs
  two copies and no page faults), copied into the object store once (``ReplayClient.put``) and
  pushed as soon as they are complete, all the chunks finished by one lock-step in one call,
  with at most ``max_in_flight`` insert calls
  outstanding: stepping only waits when that many are unacknowledged (``ray.wait`` on the
  oldest), never per step. A SIGKILL loses the unfinished chunk of each simulator plus calls
  not yet accepted.
- Weights arrive as ``(version, [ObjectRef])`` with each ``collect`` call; a newer version is
  fetched by a background thread (from whichever node holds it) and loaded between two steps, so
  stepping never blocks on it.
- Refused chunks (``ChunkFormatError``) are counted and dropped, never retried; rate-limited
  inserts (``RateLimited``) are re-sent.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import Any

import numpy as np

from recore_dist.data.chunk import ChunkEncoder, ChunkFormatError
from recore_dist.runtime.curriculum import Curriculum, apply_goal_cells


class EnvRunner:
    """Args:
        cfg: the training config (env, model, replay chunk length, runtime settings).
        runner_id: stamped on every chunk; picks the replay shard.
        replay: a ``ReplayClient`` (or ``None`` to keep chunks in ``self.kept``, for tests).
        make_env_vector: env factory ``(cfg, split, num_envs, seed)``.
    """

    def __init__(self, cfg, runner_id: int, replay=None, *, make_env_vector=None):
        import torch

        from recore_dist.behavior import Policy
        from recore_dist.runtime.env_loop import EnvLoop, prefill_policy
        from recore_dist.runtime.env_factory import make_envs, spaces_of

        rt = cfg.ray
        torch.set_num_threads(rt.runner_threads)
        self.cfg, self.runner_id, self.replay = cfg, runner_id, replay
        seed = cfg.seed + 1000 * (runner_id + 1)
        self.envs = (make_env_vector or make_envs)(cfg, "train", rt.envs_per_runner, seed)
        self.spaces = spaces_of(self.envs)
        if cfg.env.curriculum.enabled:  # the first level until the driver's first collect call
            apply_goal_cells(self.envs, Curriculum(cfg.env.curriculum).cells)
        self.policy = Policy(cfg.learner.model, cfg.learner.behavior, self.spaces, num_envs=rt.envs_per_runner,
                             modalities=cfg.learner.objective.modalities)
        self.loop = EnvLoop(self.envs, self.policy, chunk_length=cfg.replay.chunk_length, env_name=cfg.env.name,
                            runner_id=runner_id, seed=seed,
                            seq_start=time.time_ns() // 1000,  # above any earlier incarnation's seqs
                            prefill_policy=prefill_policy(cfg, rt.envs_per_runner))
        self.encoder = ChunkEncoder()
        self.in_flight: collections.deque = collections.deque()  # (call ref, payload ref, chunks)
        self.pending_weights: tuple[int, Any] | None = None
        self.kept: list[bytes] = []
        self.totals = collections.Counter()
        self.node = _node_id()

    # ------------------------------------------------------------------------------ weights
    def _offer_weights(self, weights: tuple[int, list] | None) -> None:
        """Start fetching ``weights`` in a background thread if they are newer than the policy's
        (and than a fetch already running); the object may live on another node."""
        if weights is None:
            return
        version, (ref,) = weights
        if version <= self.policy.version or (self.pending_weights is not None and version <= self.pending_weights[0]):
            return
        box: dict[str, Any] = {}

        def fetch() -> None:
            import ray

            try:
                box["weights"] = ray.get(ref, timeout=120)
            except Exception as exc:  # the owner (learner) died, or the fetch timed out
                box["error"] = exc

        thread = threading.Thread(target=fetch, daemon=True, name="weights")
        thread.start()
        self.pending_weights = (version, (thread, box))

    def _poll_weights(self) -> None:
        """Load fetched weights between two steps; never waits for a fetch."""
        if self.pending_weights is None:
            return
        version, (thread, box) = self.pending_weights
        if thread.is_alive():
            return
        self.pending_weights = None
        if "weights" in box:
            self.policy.load(box["weights"], version)
            self.totals["weight_updates"] += 1
        else:  # keep acting with the old weights; the next collect offers the newest again
            self.totals["weight_errors"] += 1

    def load_weights(self, weights: dict[str, np.ndarray], version: int) -> None:
        """Load weights directly (in-process use and tests)."""
        self.policy.load(weights, version)

    # ------------------------------------------------------------------------------ pushing
    def _push(self, chunks) -> None:
        start = time.perf_counter()
        self._encode_and_send(chunks)
        self.totals["push_s"] += time.perf_counter() - start  # encode + object-store copy + waits

    def _encode_and_send(self, chunks) -> None:
        with self.encoder.encode(chunks) as view:
            self.totals["chunks"] += len(chunks)
            self.totals["bytes"] += view.nbytes
            if self.replay is None:
                self.kept.append(bytes(view))
                return
            payload = self.replay.put(view)  # one copy into the object store; re-sent by ref
        self.in_flight.append((self.replay.insert(self.runner_id, payload), payload, len(chunks)))
        while len(self.in_flight) > self.cfg.ray.max_in_flight:
            self._settle_oldest()

    def _settle_oldest(self) -> None:
        import ray

        from recore_dist.replay.rate_limiter import RateLimited

        ref, payload, count = self.in_flight.popleft()
        start = time.perf_counter()
        try:
            ray.get(ref)
            self.totals["chunks_acked"] += count
        except ChunkFormatError:
            self.totals["chunks_refused"] += count
        except RateLimited:  # the learner is behind: send it again (this wait is the back-pressure)
            self.totals["rate_limited"] += 1
            self.in_flight.appendleft((self.replay.insert(self.runner_id, payload), payload, count))
        self.totals["push_wait_s"] += time.perf_counter() - start

    def flush(self) -> dict[str, float]:
        """Wait for every outstanding insert; returns the chunks acknowledged and refused meanwhile
        (the acknowledgements no ``collect`` result reported)."""
        before = (self.totals["chunks_acked"], self.totals["chunks_refused"])
        while self.in_flight:
            self._settle_oldest()
        return {"chunks_acked": float(self.totals["chunks_acked"] - before[0]),
                "chunks_refused": float(self.totals["chunks_refused"] - before[1])}

    # ------------------------------------------------------------------------------ main call
    def collect(self, steps: int, *, weights: tuple[int, list] | None = None, random: bool = False,
                learner_version: int = 0, goal_cells: int | None = None) -> dict[str, Any]:
        """Step every simulator ``steps`` times; returns this call's figures, with where the time
        went: ``env_s`` (step + render), ``policy_s``, ``chunk_s`` (row copies) and ``push_s``
        (encode, object-store copy, waits for acknowledgements). ``goal_cells``: the driver's
        curriculum level (``env.curriculum``), applied to episodes that start from now on."""
        self._offer_weights(weights)
        if self.cfg.env.curriculum.enabled:
            apply_goal_cells(self.envs, goal_cells)
        start = time.perf_counter()
        before = {**self.totals, **self.loop.seconds}
        episodes: list[dict[str, Any]] = []
        for _ in range(steps):
            self._poll_weights()
            chunks, done = self.loop.step(1, random=random)
            episodes += done
            if chunks:
                self._push(chunks)
        seconds = time.perf_counter() - start
        env_steps = steps * self.envs.num_envs
        delta = {k: v - before.get(k, 0) for k, v in {**self.totals, **self.loop.seconds}.items()}
        return {"runner_id": self.runner_id, "env_steps": env_steps, "seconds": seconds,
                "frames_per_second": env_steps / max(seconds, 1e-9), "episodes": episodes,
                "policy_version": self.policy.version, "pid": os.getpid(), "node_id": self.node,
                "staleness": max(0, learner_version - self.policy.version),
                "in_flight": len(self.in_flight), **{k: float(v) for k, v in delta.items()}}

    def pid(self) -> int:
        return os.getpid()

    def node_id(self) -> str:
        return self.node

    def close(self) -> None:
        self.flush()
        self.loop.close()


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


def remote_runner(cfg, runner_id: int, replay, **options: Any):
    """Start an ``EnvRunner`` Ray actor that restarts after a crash (its constructor runs again:
    fresh simulators and recurrent states, same runner id and shard)."""
    import ray

    opts = {"max_restarts": cfg.ray.max_restarts, "max_task_retries": -1, "num_cpus": cfg.ray.runner_cpus}
    opts.update(options)
    return ray.remote(EnvRunner).options(**opts).remote(cfg, runner_id, replay)
