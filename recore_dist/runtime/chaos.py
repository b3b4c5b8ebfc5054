"""Faults and hostile input for a running job: ``FaultInjector``, ``HostileClient``, ``Monitor``.

Used by ``recore-dist bench chaos`` (``recore_dist/bench/chaos.py``) against a live
``Orchestrator``; each runs on its own thread of the driver process.

- ``FaultInjector`` SIGKILLs a random env runner, replay shard or the learner every
  ``U(low, high)`` seconds (seeded). It kills processes on this machine (the embedded Ray, or a
  cluster whose nodes run here); on other nodes it would need ``ray.kill``.
- ``HostileClient`` sends malformed inserts to the shards at a steady rate, one kind at a time
  in a seeded order: random bytes, truncated and oversized chunks, wrong dtypes and shapes, NaN
  and inf values, another schema version, and duplicate sequence numbers (a valid chunk of its
  own stream, then another chunk reusing its ``seq``). The valid chunks it sends are counted as
  its acknowledged inserts; every malformed one must come back refused.
- ``Monitor`` samples the learner's update count (for the longest stall) and every shard's
  rate-limiter state (for the replay ratio's band) every ``every_s`` seconds.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import threading
import time
from typing import Any

import msgpack
import numpy as np

from recore_dist.data.chunk import ChunkFormatError, SequenceChunk, encode_chunks

MALFORMED_KINDS = ("random_bytes", "truncated", "oversized", "wrong_dtype", "wrong_shape", "nan", "inf",
                   "wrong_schema", "duplicate_seq")
RATE_LIMIT_RETRIES = 10
HOSTILE_RUNNER_ID = 1_000_000
"""Runner ids of the hostile client's own streams (far above any real runner's)."""


class FaultInjector(threading.Thread):
    """Args:
        orchestrator: the running job.
        seed: seeds the intervals and the victims.
        every: ``(low, high)`` seconds between kills.
        kinds: which actor kinds may be killed.
    """

    def __init__(self, orchestrator, *, seed: int = 0, every: tuple[float, float] = (20.0, 40.0),
                 kinds: tuple[str, ...] = ("runner", "shard", "learner")):
        super().__init__(daemon=True, name="fault-injector")
        self.orch, self.rng, self.every, self.kinds = orchestrator, random.Random(seed), every, kinds
        self.faults: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        start = time.perf_counter()
        while not self._halt.wait(self.rng.uniform(*self.every)):
            kind = self.rng.choice(self.kinds)
            try:
                victim, pid = self._victim(kind)
            except Exception as exc:  # noqa: BLE001 - report, try again at the next tick
                self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                continue
            if pid is None:
                self.errors.append(f"{kind}: no process known yet")
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                self.errors.append(f"{kind} {victim}: pid {pid} already gone")
                continue
            self.faults.append({"t": time.perf_counter() - start, "kind": kind, "victim": victim, "pid": pid})

    def _victim(self, kind: str) -> tuple[Any, int | None]:
        import ray

        if kind == "runner":
            pids = dict(self.orch.runner_pids)
            if not pids:
                return None, None
            runner = self.rng.choice(sorted(pids))
            return runner, pids[runner]
        if kind == "shard":
            index = self.rng.randrange(len(self.orch.shards))
            return index, ray.get(self.orch.shards[index].pid.remote(), timeout=30)
        return 0, dict(self.orch.learner_pids).get(0)

    def counts(self) -> dict[str, int]:
        return dict(collections.Counter(f["kind"] for f in self.faults))

    def stop(self) -> None:
        self._halt.set()


def forge(chunk: SequenceChunk, edit) -> bytes:
    """``encode_chunks([chunk])`` with ``edit(header)`` applied to the decoded msgpack map first:
    the way to build payloads the encoder itself would refuse (it validates)."""
    header = msgpack.unpackb(encode_chunks([chunk]), raw=False)
    inner = msgpack.unpackb(header[0], raw=False)
    edit(inner)
    return msgpack.packb([msgpack.packb(inner, use_bin_type=True)], use_bin_type=True)


def _field(header: dict, name: str) -> dict:
    return next(f for f in header["fields"] if f["name"] == name)


class HostileClient(threading.Thread):
    """Args:
        shards: the shard actors (or, with ``insert``, anything with a length: one per shard).
        template: a valid chunk with the job's fields, dtypes and shapes (real frames).
        rate_hz: malformed inserts per second (all shards together).
        seed: seeds the kinds' order and the forged contents.
        insert: ``insert(shard index, payload)``; default a Ray call to ``shards[index].insert``.
    """

    def __init__(self, shards: list, template: SequenceChunk, *, rate_hz: float = 2.0, seed: int = 0,
                 insert=None):
        super().__init__(daemon=True, name="hostile-client")
        self.shards, self.template, self.period = shards, template, 1.0 / rate_hz
        self.insert = insert or self._ray_insert
        self.rng = np.random.default_rng(seed)
        self.sent = collections.Counter()
        self.refused = collections.Counter()
        self.accepted = collections.Counter()  # malformed inserts a shard took: must stay 0
        self.unanswered = collections.Counter()
        self.valid_acked: collections.Counter = collections.Counter()  # per shard index
        self.valid_refused = 0
        self.first_error: dict[str, str] = {}
        self._seq = collections.Counter()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.period):
            kind = MALFORMED_KINDS[int(self.rng.integers(len(MALFORMED_KINDS)))]
            self.send_one(kind, int(self.rng.integers(len(self.shards))))

    def _valid(self, index: int) -> tuple[SequenceChunk, bytes]:
        """A valid chunk of the client's own stream on shard ``index``, with fresh content."""
        t = self.template
        self._seq[index] += 1
        chunk = SequenceChunk(obs={k: v.copy() for k, v in t.obs.items()},
                              action=self.rng.uniform(-1, 1, t.action.shape).astype(t.action.dtype),
                              reward=t.reward.copy(), is_first=t.is_first.copy(), is_last=t.is_last.copy(),
                              is_terminal=t.is_terminal.copy(), policy_version=0, env_name=t.env_name,
                              intervention_id="none", split="train", runner_id=HOSTILE_RUNNER_ID + index,
                              seq=self._seq[index], env_index=0)
        return chunk, encode_chunks([chunk])

    def _malformed(self, kind: str, index: int) -> bytes:
        t = self.template
        if kind == "random_bytes":
            return self.rng.bytes(int(self.rng.integers(1, 4096)))
        if kind == "truncated":
            whole = encode_chunks([t])
            return whole[:int(self.rng.integers(1, len(whole)))]
        if kind == "oversized":  # twice the rows the shard's chunks have
            return forge(t, lambda h: _double_rows(h))
        if kind == "wrong_dtype":
            def edit(h):
                f = _field(h, "image")
                f["dtype"], f["data"] = "<f4", np.zeros(f["shape"], np.float32).tobytes()
            return forge(t, edit)
        if kind == "wrong_shape":
            def edit(h):
                f = _field(h, "image")
                shape = [f["shape"][0], f["shape"][1] // 2, f["shape"][2] // 2, f["shape"][3]]
                f["shape"], f["data"] = shape, np.zeros(shape, np.uint8).tobytes()
            return forge(t, edit)
        if kind in ("nan", "inf"):
            def edit(h):
                f = _field(h, "reward")
                values = np.zeros(f["shape"], np.float32)
                values[int(self.rng.integers(values.size))] = np.nan if kind == "nan" else np.inf
                f["data"] = values.tobytes()
            return forge(t, edit)
        if kind == "wrong_schema":
            return forge(t, lambda h: h.update(schema=99))
        if kind == "duplicate_seq":  # a valid chunk (acknowledged), then another reusing its seq
            chunk, payload = self._valid(index)
            self._send("valid", index, payload)
            chunk.action = chunk.action + 0.5
            return encode_chunks([chunk])
        raise ValueError(kind)

    def _ray_insert(self, index: int, payload: bytes) -> Any:
        import ray

        return ray.get(self.shards[index].insert.remote(payload), timeout=120)

    def send_one(self, kind: str, index: int = 0) -> None:
        """Forge and send one insert of ``kind`` (what ``run`` does at each tick)."""
        payload = self._malformed(kind, index)
        self.sent[kind] += 1
        self._send(kind, index, payload)

    def _send(self, kind: str, index: int, payload: bytes) -> None:
        from recore_dist.replay.rate_limiter import RateLimited

        try:
            for attempt in range(RATE_LIMIT_RETRIES):
                try:
                    self.insert(index, payload)
                    break
                except RateLimited:  # back-pressure, not an answer: send it again, as runners do
                    if attempt == RATE_LIMIT_RETRIES - 1:
                        raise
        except ChunkFormatError as exc:
            if kind == "valid":
                self.valid_refused += 1
            else:
                self.refused[kind] += 1
                self.first_error.setdefault(kind, str(exc).splitlines()[-1][:200])
            return
        except Exception as exc:  # noqa: BLE001 - a shard that stays down, rate limits: not an answer
            self.unanswered[kind] += 1
            self.first_error.setdefault(f"{kind} (unanswered)", f"{type(exc).__name__}: {str(exc)[:200]}")
            return
        if kind == "valid":
            self.valid_acked[index] += 1
        else:
            self.accepted[kind] += 1

    def stop(self) -> None:
        self._halt.set()


def _double_rows(header: dict) -> None:
    header["length"] = 2 * header["length"]
    for f in header["fields"]:
        rows = np.frombuffer(f["data"], np.dtype(f["dtype"])).reshape(f["shape"])
        doubled = np.concatenate([rows, rows])
        f["shape"], f["data"] = list(doubled.shape), doubled.tobytes()


class Monitor(threading.Thread):
    """Samples the learner's update count and each shard's limiter every ``every_s`` seconds."""

    def __init__(self, orchestrator, *, every_s: float = 2.0):
        super().__init__(daemon=True, name="chaos-monitor")
        self.orch, self.every_s = orchestrator, every_s
        self.samples: list[dict[str, Any]] = []
        self.longest_stall_s = 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        import ray

        last_updates, last_change = None, time.perf_counter()
        while not self._halt.wait(self.every_s):
            now, updates = time.perf_counter(), self.orch.counters["updates"]
            if updates != last_updates:  # a restored learner reports fewer: that is progress again too
                last_change, last_updates = now, updates
            self.longest_stall_s = max(self.longest_stall_s, now - last_change)
            try:
                limiters = ray.get([s.stats.remote() for s in self.orch.shards], timeout=20)
            except Exception:  # noqa: BLE001 - a shard restarting
                continue
            self.samples.append({"t": now, "updates": updates,
                                 "lag": [s["limiter/lag"] for s in limiters],
                                 "inserted": [s["limiter/inserted_steps"] for s in limiters],
                                 "sampled": [s["limiter/sampled_steps"] for s in limiters]})

    def stop(self) -> None:
        self._halt.set()
