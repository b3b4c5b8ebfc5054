"""``ReplayShard``: one shard of the replay service (a ``ReplayStore`` + rate limiter + checkpoints).

A plain class that runs in-process or as a threaded Ray actor (``remote_shard``). Inserts arrive
as msgpack bytes (``encode_chunks``) and are decoded and validated before they touch the store;
samples leave as msgpack bytes (``encode_batch``). Nothing here unpickles payloads.

Concurrency: calls run on several threads (a threaded Ray actor). Inserts and samples have
their own concurrency groups, so calls waiting on the rate limiter never occupy the threads that
``stats`` / ``size`` / ``checkpoint`` (and the other side's calls) need: a full set of blocked
inserts cannot starve the learner's samples that would unblock them. One lock guards the
store; decoding, encoding and disk writes happen outside it. A checkpoint holds
the lock only to snapshot the bookkeeping and then for one piece of rows at a time (see
``SaveJob``), so inserts and samples go on while it is written.

What a SIGKILL loses: nothing it acknowledged, with the write-ahead log (``log``, on in the Ray
runtime; ``replay/log.py``). An insert is appended to the log (its msgpack bytes as they came)
before it is stored and acknowledged; a restore loads the last completed checkpoint and replays
the log segments written after it began (a checkpoint rotates the log when it snapshots, and
deletes the segments it covers once complete). A torn last record (killed mid-append: never
acknowledged) is dropped and counted. Calls in flight at the crash are retried by Ray into the
restarted shard. Without the log, a SIGKILL loses what was inserted after the start of the last
completed checkpoint: about ``r * (c + w)`` steps at ``r`` steps/s, ``checkpoint_every_s = c``
and a write time ``w``.

Log and store stay in the same order: an insert holds the log lock across its append and its
store update (lock order: log lock, then the store lock), so a replay re-applies the same
sequence, with the same evictions and the same store-level refusals.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import ray

from recore_dist.data.batch import encode_batch
from recore_dist.data.chunk import ChunkFormatError, decode_chunks
from recore_dist.replay.log import FsyncPolicy, ReplayLog, replay
from recore_dist.replay.rate_limiter import RateLimited, RateLimiter
from recore_dist.replay.store import ReplayFormatError, ReplayStore

LATEST = "LATEST"
RECENT_SEQS = 64
"""Sequence numbers remembered per stream for duplicate detection (>> chunks a producer has in flight)."""


def _fingerprint(chunk) -> int:
    """CRC-32 over every field's name, dtype, shape and bytes (~1 ms for 64 rows of 64x64
    frames): tells a retried chunk from any other chunk that reuses its sequence number."""
    crc = 0
    for name, arr in chunk.arrays():
        crc = zlib.crc32(f"{name}|{arr.dtype.str}|{arr.shape}".encode(), crc)
        crc = zlib.crc32(np.ascontiguousarray(arr).data, crc)
    return crc


@dataclasses.dataclass
class ShardConfig:
    """One shard's storage, rate limit and checkpoint settings."""

    capacity: int = 1_000_000
    """Steps kept by this shard (the oldest chunks are evicted first)."""
    max_bytes: int | None = None
    """Bound on this shard's ring arrays in bytes (``None``: only ``capacity``)."""
    length: int = 64
    """T of sampled windows."""
    keys: tuple[str, ...] | None = None
    """Observation fields kept (``None``: all)."""
    chunk_length: int = 64
    """Rows per inserted chunk (others are refused)."""
    ratio: float = 256.0
    """Replayed steps per inserted step that the rate limiter holds."""
    min_size: int = 1000
    """Steps inserted before sampling starts."""
    tolerance: float | None = None
    """Rate-limiter slack in steps either side (``None``: 2x the deadlock-free minimum)."""
    max_sample: int = 16
    """Largest batch (windows) of one sample call, for the deadlock check."""
    max_insert_chunks: int = 16
    """Largest number of chunks in one insert call, for the deadlock check."""
    timeout: float = 30.0
    """Seconds a call waits on the rate limiter before raising ``RateLimited``."""
    checkpoint_dir: str | None = None
    """Where checkpoints go and are restored from (``None``: no checkpoints)."""
    checkpoint_every_s: float = 0.0
    """Checkpoint on a timer every this many seconds (0: only when asked)."""
    keep_checkpoints: int = 2
    """Completed checkpoints kept on disk."""
    seed: int = 0
    """Sampling seed."""
    log: bool = False
    """Write-ahead log of acknowledged inserts under ``checkpoint_dir`` (needs it): a SIGKILLed
    shard restores all of them. The Ray runtime turns it on (``ray.replay_log``)."""
    log_fsync: FsyncPolicy = "interval"
    """``every`` / ``interval`` / ``none``: when appends reach the disk (``replay/log.py``; a
    killed process loses nothing under any of them, a machine crash up to one interval)."""
    log_interval_s: float = 1.0
    """Period of the ``interval`` policy."""

    def limiter(self) -> RateLimiter:
        max_sample = self.max_sample * self.length
        max_insert = self.max_insert_chunks * self.chunk_length
        tol = self.tolerance
        if tol is None:
            tol = max_sample + (0 if self.ratio == float("inf") else self.ratio * max_insert)
        return RateLimiter(self.ratio, min_size=self.min_size, tolerance=tol, max_sample=max_sample,
                           max_insert=max_insert)


class ReplayShard:
    """See the module docstring. ``shard_id`` names its checkpoint folder."""

    def __init__(self, cfg: ShardConfig, shard_id: int = 0):
        self.cfg, self.shard_id = cfg, shard_id
        self.limiter = cfg.limiter()
        self.store = ReplayStore(cfg.capacity, length=cfg.length, keys=cfg.keys, seed=cfg.seed + shard_id,
                                 max_bytes=cfg.max_bytes)
        self._lock = threading.Lock()
        self._ckpt_lock = threading.Lock()
        self._log_lock = threading.Lock()
        self.recent_seqs: dict[tuple[int, int], dict[int, int]] = {}  # stream -> {seq: fingerprint}
        self.counts = {"rejected_payloads": 0, "rejected_chunks": 0, "restores": 0, "checkpoints": 0,
                       "duplicate_retries": 0,
                       "log_replayed_chunks": 0, "log_replay_refused": 0, "log_torn_records": 0,
                       "log_dropped_bytes": 0}
        self.last_checkpoint: dict[str, Any] = {}
        self.by_runner: dict[int, int] = {}  # chunks stored per runner id (kept by checkpoints and the log)
        self.folder = Path(cfg.checkpoint_dir) / f"shard-{shard_id}" if cfg.checkpoint_dir else None
        if cfg.log and self.folder is None:
            raise ValueError(f"shard {shard_id}: log=True needs a checkpoint_dir (the log lives beside the checkpoints)")
        self._pending_steps = 0  # acquired from the limiter, not yet logged + stored
        self.log: ReplayLog | None = None
        self.restored = self._restore()
        if cfg.log:
            self.log = ReplayLog(self.folder / "log", fsync=cfg.log_fsync, interval_s=cfg.log_interval_s)
        self._stop = threading.Event()
        if cfg.checkpoint_every_s > 0 and self.folder is not None:
            threading.Thread(target=self._timer, daemon=True, name=f"shard{shard_id}-ckpt").start()

    # ------------------------------------------------------------------------------ data
    @ray.method(concurrency_group="insert")
    def insert(self, payload: bytes, timeout: float | None = None) -> dict[str, int]:
        """Decode, validate and store a batch of chunks: ``encode_chunks`` bytes, or the flat
        uint8 array ``ReplayClient.put`` stores (read in place from the object store).

        Raises:
            ChunkFormatError: the payload or a chunk is malformed (counted; valid chunks of the
                same payload are stored, malformed ones never touch the store).
            RateLimited: the actors are too far ahead of the learner for ``timeout`` seconds.
        """
        try:
            chunks = decode_chunks(_as_bytes_like(payload), expected_length=self.cfg.chunk_length)
        except ChunkFormatError:
            self.counts["rejected_payloads"] += 1
            raise
        steps = sum(c.length for c in chunks)
        if not self.limiter.acquire_insert(steps, self.cfg.timeout if timeout is None else timeout):
            raise RateLimited(f"shard {self.shard_id}: insert of {steps} steps waited "
                              f"{self.cfg.timeout if timeout is None else timeout:g}s: {self.limiter.describe()}")
        prints = [_fingerprint(c) for c in chunks]  # ~1 ms per chunk: outside the locks samples need
        with self._lock:
            self._pending_steps += steps  # counted by the limiter, not yet in the log: see checkpoint()
        try:
            with self._log_lock:
                if self.log is not None:
                    self.log.append(_as_bytes_like(payload))
                with self._lock:
                    self._pending_steps -= steps
                    errors = self._store(chunks, release=True, prints=prints)
        except OSError:  # the append failed (disk full, ...): nothing logged or stored, not acknowledged
            with self._lock:
                self._pending_steps -= steps
            self.limiter.release_insert(steps)
            raise
        if errors:
            self.counts["rejected_chunks"] += len(errors)
            raise ChunkFormatError(f"shard {self.shard_id}: {len(errors)} of {len(chunks)} chunks refused, "
                                   f"{len(chunks) - len(errors)} stored; first: {next(iter(errors.values()))}")
        return {"chunks": len(chunks), "steps": steps}

    def _store(self, chunks, *, release: bool, prints: list[int] | None = None) -> dict[int, str]:
        """Add decoded chunks to the store (lock held); returns the refusals by index.

        Sequence numbers: a chunk whose ``(runner_id, env_index, seq)`` is among its stream's
        last ``RECENT_SEQS`` stored chunks is not stored again. With the same content (a call
        retried after a shard crash: at-least-once delivery) it is acknowledged as already held
        (``duplicate_retries``); with other content, or older than that window, it is refused.
        Chunks of one stream may arrive out of order (concurrent calls): that is not a duplicate.
        """
        errors = {}
        prints = prints if prints is not None else [_fingerprint(c) for c in chunks]
        for index, (chunk, print_) in enumerate(zip(chunks, prints)):
            key = (chunk.runner_id, chunk.env_index)
            recent = self.recent_seqs.setdefault(key, {})
            if chunk.seq in recent or (len(recent) >= RECENT_SEQS and chunk.seq < min(recent)):
                if recent.get(chunk.seq) == print_:
                    self.counts["duplicate_retries"] += 1
                    if release:
                        self.limiter.release_insert(chunk.length)
                    continue
                errors[index] = (f"chunks[{index}]: duplicate sequence number {chunk.seq} of stream (runner "
                                 f"{chunk.runner_id}, env {chunk.env_index}) with other content, or older than "
                                 f"its last {RECENT_SEQS} chunks; a restarted producer must start at a higher seq")
            else:
                try:
                    self.store.add(chunk)
                    self.by_runner[chunk.runner_id] = self.by_runner.get(chunk.runner_id, 0) + 1
                    recent[chunk.seq] = print_
                    if len(recent) > RECENT_SEQS:
                        del recent[min(recent)]
                    continue
                except ReplayFormatError as exc:
                    errors[index] = f"chunks[{index}]: {exc}"
            if release:
                self.limiter.release_insert(chunk.length)
        return errors

    @ray.method(concurrency_group="sample")
    def sample(self, batch_size: int, timeout: float | None = None) -> bytes:
        """``batch_size`` windows as ``encode_batch`` bytes.

        Raises:
            RateLimited: no data yet, or the learner is ahead of the actors, for ``timeout`` s.
        """
        steps = batch_size * self.cfg.length
        wait = self.cfg.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while True:
            if not self.limiter.acquire_sample(steps, max(0.0, deadline - time.monotonic())):
                raise RateLimited(f"shard {self.shard_id}: sample of {batch_size} windows waited {wait:g}s: "
                                  f"{self.limiter.describe()}, {self.store.num_windows} windows stored")
            with self._lock:
                if self.store.num_windows:
                    batch = self.store.sample(batch_size)
                    break
            self.limiter.release_sample(steps)  # enough steps, but no full window yet
            if time.monotonic() >= deadline:
                raise RateLimited(f"shard {self.shard_id}: no window of {self.cfg.length} steps after {wait:g}s "
                                  f"({len(self.store)} steps stored)")
            time.sleep(0.05)
        return encode_batch(batch)

    # ------------------------------------------------------------------------------ status
    def stats(self) -> dict[str, float]:
        with self._lock:
            out = {f"replay/{k}": float(v) for k, v in self.store.stats().items()}
            out["replay/capacity"] = float(self.store.capacity)
        out.update({f"replay/{k}": float(v) for k, v in self.counts.items()})
        out.update({f"limiter/{k}": float(v) for k, v in self.limiter.stats().items()})
        out.update({f"checkpoint/{k}": float(v) for k, v in self.last_checkpoint.items()
                    if isinstance(v, (int, float))})
        return out

    def runner_counts(self) -> dict[int, int]:
        """Chunks stored per runner id over the shard's life (evicted ones included; checkpoints and
        the log carry it across restarts): what each producer's acknowledgements should add up to."""
        with self._lock:
            return dict(self.by_runner)

    def size(self) -> int:
        return len(self.store)

    def pid(self) -> int:
        return os.getpid()

    def ping(self) -> bool:
        return True

    # ------------------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict[str, Any]:
        """Write a checkpoint while inserts and samples go on; returns its figures (seconds,
        rows, the longest lock hold, rows lost to eviction during the write)."""
        if self.folder is None:
            raise RuntimeError(f"shard {self.shard_id}: no checkpoint_dir configured")
        with self._ckpt_lock:
            start = time.perf_counter()
            done = sorted(self.folder.glob("ckpt-*"))
            number = int(done[-1].name.split("-")[1]) + 1 if done else 0
            target = self.folder / f"ckpt-{number:09d}"
            shutil.rmtree(target, ignore_errors=True)  # a partial write from a killed process
            holds = []
            with self._log_lock, self._lock:  # no insert between the snapshot and the log rotation
                t = time.perf_counter()
                job = self.store.begin_save(target)
                limiter, counts = self.limiter.state_dict(), dict(self.counts)
                streams = [[r, e, sorted(seqs.items())] for (r, e), seqs in self.recent_seqs.items()]
                by_runner = sorted(self.by_runner.items())
                limiter["inserted"] -= self._pending_steps  # acquired, not logged yet: the log replays them
                log_from = self.log.rotate() if self.log is not None else None
                holds.append(time.perf_counter() - t)
            more = True
            while more:
                with self._lock:
                    t = time.perf_counter()
                    more = job.copy_piece(self.store)
                    holds.append(time.perf_counter() - t)
            job.finish()
            (target / "shard.json").write_text(json.dumps({"limiter": limiter, "counts": counts, "log_from": log_from,
                                                           "recent_seqs": streams, "by_runner": by_runner}))
            pointer = self.folder / f"{LATEST}.tmp"
            pointer.write_text(target.name)
            os.replace(pointer, self.folder / LATEST)
            if self.log is not None:
                self.log.delete_before(log_from)
            self.counts["checkpoints"] += 1
            every = sorted(self.folder.glob("ckpt-*"))
            complete = [d for d in every if (d / "shard.json").is_file()][-self.cfg.keep_checkpoints:]
            for old in every:
                if old not in complete:  # older ones, and partial writes of a killed process
                    shutil.rmtree(old, ignore_errors=True)
            self.last_checkpoint = {"seconds": time.perf_counter() - start, "rows": job.head - job.tail,
                                    "rows_lost": job.rows_lost, "max_lock_hold_s": max(holds),
                                    "pieces": len(holds) - 1, "path": str(target)}
            return dict(self.last_checkpoint)

    def _restore(self) -> bool:
        """Last completed checkpoint (if any), then the log written after it (if ``log``)."""
        if self.folder is None:
            return False
        log_from, restored = 0, False
        if (self.folder / LATEST).is_file():
            target = self.folder / (self.folder / LATEST).read_text().strip()
            self.store = ReplayStore.load(target)
            state = json.loads((target / "shard.json").read_text())
            self.limiter.load_state_dict(state["limiter"])
            self.counts.update({k: int(v) for k, v in state["counts"].items() if k in self.counts})
            self.recent_seqs = {(int(r), int(e)): {int(q): int(f) for q, f in seqs}
                                for r, e, seqs in state.get("recent_seqs", [])}
            self.by_runner = {int(r): int(n) for r, n in state.get("by_runner", [])}
            log_from, restored = state.get("log_from") or 0, True
        if self.cfg.log:
            restored = self._replay_log(log_from) or restored
        if restored:
            self.counts["restores"] += 1
        return restored

    def _replay_log(self, log_from: int) -> bool:
        """Re-apply the logged inserts of segments ``>= log_from``; True if there were any."""
        found = False
        for _, read in replay(self.folder / "log", from_segment=log_from):
            self.counts["log_torn_records"] += read.torn
            self.counts["log_dropped_bytes"] += read.dropped_bytes
            for payload in read.payloads:
                found = True
                chunks = decode_chunks(payload, expected_length=self.cfg.chunk_length)  # was valid when logged
                errors = self._store(chunks, release=False)
                self.limiter.record_insert(sum(c.length for i, c in enumerate(chunks) if i not in errors))
                self.counts["log_replayed_chunks"] += len(chunks) - len(errors)
                self.counts["log_replay_refused"] += len(errors)
        return found

    def _timer(self) -> None:
        while not self._stop.wait(self.cfg.checkpoint_every_s):
            try:
                self.checkpoint()
            except Exception as exc:  # keep serving; report through stats
                self.last_checkpoint = {"error": f"{type(exc).__name__}: {exc}"}

    def close(self) -> None:
        self._stop.set()
        if self.log is not None:
            with self._log_lock:
                self.log.close()


def remote_shard(cfg: ShardConfig, shard_id: int, *, inserts: int = 16, samples: int = 4, **options: Any):
    """Start ``ReplayShard`` as a threaded Ray actor that restarts (from its last checkpoint) when
    its process dies; calls in flight at the crash are retried. ``inserts`` / ``samples`` threads
    serve those calls; 4 more serve the rest."""
    opts = {"max_restarts": -1, "max_task_retries": -1, "num_cpus": 0}
    opts.update(options)
    actor = ray.remote(concurrency_groups={"insert": inserts, "sample": samples}, max_concurrency=4)(ReplayShard)
    return actor.options(**opts).remote(cfg, shard_id)


def _as_bytes_like(payload: Any) -> Any:
    """A flat uint8 array (``ReplayClient.put``) as a memoryview; anything else unchanged (the
    decoder refuses what is not bytes-like)."""
    if isinstance(payload, np.ndarray):
        if payload.dtype != np.uint8 or payload.ndim != 1:
            raise ChunkFormatError(f"payload: expected a flat uint8 array, got {payload.dtype} {list(payload.shape)}")
        return payload.data if payload.flags.c_contiguous else payload.tobytes()
    return payload
