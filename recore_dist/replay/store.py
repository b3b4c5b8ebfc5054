"""``ReplayStore``: FIFO ring storage of ``SequenceChunk`` rows, sampled as uniform ``[B, T]`` windows.

Layout. Every stored step gets an absolute index ``a`` (0, 1, 2, ... in insertion order) and
lives in slot ``a % capacity`` of one preallocated ring array per field (``[capacity, ...]``).
The live steps are the absolute range ``[tail, head)``; eviction drops whole chunks from the
tail (FIFO), oldest first.

Segments. Chunks of one stream ``(runner_id, env_index)`` whose ``seq`` follows the previous
chunk's form a *segment*: a window may cross their boundary although their rows are not adjacent
in the ring (other streams' chunks sit in between). A ``seq`` gap or restart starts a new
segment. With ``overlap > 0`` a continuing chunk's first ``overlap`` rows repeat the previous
chunk's last rows and are dropped. Per slot the store keeps:

- ``succ[slot]``: the slot of the next step of the same segment (``-1`` at a segment's end);
- ``where[slot]``: the position of ``slot`` in the dense set ``starts[:num_starts]`` of slots
  where a full window of ``length`` steps begins (``-1`` if it is not a start).

Sampling draws ``B`` positions of ``starts`` uniformly (so every valid window is equally likely),
follows ``succ`` ``length - 1`` times (one ``[B]`` fancy index per step) and gathers each field
with one fancy index. Evicting a chunk removes its steps from ``starts``; a segment's later
chunks are always newer than its earlier ones, so every window from a remaining start touches
live steps only.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recore_dist.data.chunk import (
    FIELD_NAME_RE,
    RESERVED_FIELDS,
    ChunkFormatError,
    SequenceChunk,
)

SAVE_VERSION = 2
DATA_FILE = "replay.npz"
META_FILE = "replay.json"
_STAT_KEYS: tuple[str, ...] = ("inserted", "rejected", "sampled", "evicted")


class ReplayFormatError(ValueError):
    """A chunk was refused by the store; the message names the field and both shapes/dtypes."""


@dataclass
class _Stream:
    """Where the current segment of one ``(runner_id, env_index)`` stream ends.

    Attributes:
        seq: ``seq`` of the stream's last accepted chunk.
        recent: int64 ``[<= length - 1]`` absolute indices of the segment's last steps, the
            ones that do not yet have ``length - 1`` successors (so are not window starts yet).
    """

    seq: int
    recent: np.ndarray


class ReplayStore:
    """Chunked sequence storage with uniform sampling of ``[B, T]`` windows (see module doc).

    Counters (``stats``): ``inserted``/``rejected``/``evicted`` count chunks, ``sampled`` counts
    windows (``batch_size`` per ``sample`` call).
    """

    def __init__(
        self,
        capacity: int,
        *,
        length: int,
        keys: Sequence[str] | None = None,
        seed: int = 0,
        overlap: int = 0,
        max_bytes: int | None = None,
    ) -> None:
        """Create an empty store; ring arrays are allocated by the first accepted chunk.

        Args:
            capacity: Most steps kept; the oldest chunks are evicted beyond it (>= ``length``).
            length: T, steps per sampled window (>= 1).
            keys: Observation fields to keep (others are dropped on insert); ``None`` keeps all.
            seed: Seed of the sampling RNG.
            overlap: Rows a chunk shares with the previous chunk of its stream (the chunker's
                ``overlap``); they are dropped when the chunk continues that stream's segment.
            max_bytes: Bound on the ring arrays' bytes; the first chunk fixes the bytes per step
                and the capacity becomes ``min(capacity, max_bytes // bytes_per_step)`` steps
                (refused if that is below ``length``).
        """
        self.length = _check_count("length", length, 1)
        self.capacity = _check_count("capacity", capacity, self.length)
        self.overlap = _check_count("overlap", overlap, 0)
        self.seed = _check_count("seed", seed, 0)
        self.max_bytes = None if max_bytes is None else _check_count("max_bytes", max_bytes, 1)
        self.keys: tuple[str, ...] | None = None if keys is None else _check_keys(keys)
        self._rng = np.random.default_rng(seed)
        self._spec: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None
        self._data: dict[str, np.ndarray] = {}
        self._succ = np.full(capacity, -1, np.int64)
        self._where = np.full(capacity, -1, np.int64)
        self._starts = np.zeros(capacity, np.int64)
        self._num_starts = 0
        self._head = 0  # absolute index of the next step to write
        self._tail = 0  # absolute index of the oldest live step
        self._chunks: deque[tuple[int, int]] = deque()  # (absolute start, rows), oldest first
        self._streams: dict[tuple[int, int], _Stream] = {}
        self._counts = dict.fromkeys(_STAT_KEYS, 0)

    # ----------------------------------------------------------------------------------------
    # Public API.

    def __len__(self) -> int:
        """Steps stored."""
        return self._head - self._tail

    @property
    def num_windows(self) -> int:
        """Number of distinct windows of ``length`` steps that ``sample`` can return."""
        return self._num_starts

    def stats(self) -> dict[str, int]:
        """``steps``, ``chunks``, ``windows`` now, and the ``inserted``, ``rejected``,
        ``sampled`` and ``evicted`` counters."""
        return {
            "steps": len(self), "chunks": len(self._chunks), "windows": self._num_starts,
            **self._counts,
        }

    def add(self, chunk: SequenceChunk) -> None:
        """Validate and store ``chunk``, evicting the oldest chunks if over capacity.

        Raises:
            ReplayFormatError: If the chunk is invalid, has non-finite floats, or its field
                names, dtypes or trailing shapes differ from the stored ones; the store is then
                left unchanged except for the ``rejected`` counter.
        """
        try:
            arrays, continues = self._check(chunk)
        except ReplayFormatError:
            self._counts["rejected"] += 1
            raise
        self._insert(chunk, arrays, continues)

    def sample(self, batch_size: int) -> dict[str, np.ndarray]:
        """``batch_size`` windows drawn uniformly (with replacement) from all valid windows.

        Returns:
            Every stored observation field and ``action``, ``reward``, ``is_first``,
            ``is_last``, ``is_terminal``, each ``[B, T, ...]`` in its stored dtype, with
            ``is_first[:, 0] = True`` so the learner resets its recurrent state there.

        Raises:
            ValueError: If ``batch_size`` is not an int >= 1.
            RuntimeError: If no window of ``length`` steps is stored yet.
        """
        _check_count("batch_size", batch_size, 1)
        if self._num_starts == 0:
            raise RuntimeError(
                f"no window of length {self.length} available yet: {len(self)} steps in "
                f"{len(self._chunks)} chunks, no segment has >= {self.length} steps"
            )
        picks = self._rng.integers(0, self._num_starts, size=batch_size)  # [B]
        index = np.empty((batch_size, self.length), np.int64)  # [B, T] slots
        index[:, 0] = self._starts[picks]
        for t in range(1, self.length):
            index[:, t] = self._succ[index[:, t - 1]]
        assert (index >= 0).all(), "internal error: a window ran past its segment end"
        batch = {name: ring[index] for name, ring in self._data.items()}  # [B, T, ...]
        batch["is_first"][:, 0] = True
        self._counts["sampled"] += batch_size
        return batch

    # ----------------------------------------------------------------------------------------
    # Validation (no state is touched here).

    def _check(self, chunk: SequenceChunk) -> tuple[dict[str, np.ndarray], bool]:
        """The arrays to store (kept fields, in order) and whether ``chunk`` continues a segment."""
        if not isinstance(chunk, SequenceChunk):
            raise ReplayFormatError(f"chunk: expected a SequenceChunk, got {type(chunk).__name__}")
        try:
            chunk.validate()
        except ChunkFormatError as exc:
            raise ReplayFormatError(f"invalid chunk: {exc}") from exc
        arrays = self._select(chunk)
        self._check_spec(arrays)
        for name, arr in arrays.items():
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                bad = int(np.flatnonzero(~np.isfinite(arr.reshape(-1)))[0])
                raise ReplayFormatError(
                    f"field {name!r}: non-finite value {arr.reshape(-1)[bad]!r} at flat index {bad}"
                )
        stream = self._streams.get((chunk.runner_id, chunk.env_index))
        continues = stream is not None and chunk.seq == stream.seq + 1
        rows = chunk.length - (self.overlap if continues else 0)
        if not 1 <= rows <= self.capacity:
            raise ReplayFormatError(
                f"chunk length: {chunk.length} rows (overlap dropped: {chunk.length - rows}) "
                f"leave {rows} new rows, need 1..capacity={self.capacity}"
            )
        return arrays, continues

    def _select(self, chunk: SequenceChunk) -> dict[str, np.ndarray]:
        """The kept observation fields followed by action, reward and the flags."""
        if self.keys is None:
            names: Sequence[str] = list(chunk.obs)
        else:
            missing = [name for name in self.keys if name not in chunk.obs]
            if missing:
                raise ReplayFormatError(
                    f"obs field {missing[0]!r}: missing from chunk (keys={list(self.keys)}, "
                    f"chunk has {sorted(chunk.obs)})"
                )
            names = self.keys
        arrays = {name: chunk.obs[name] for name in names}
        arrays.update((name, getattr(chunk, name)) for name in RESERVED_FIELDS)
        return arrays

    def _check_spec(self, arrays: dict[str, np.ndarray]) -> None:
        """Same field names, dtypes and trailing shapes as the stored data."""
        if self._spec is None:
            return
        odd = [n for n in arrays if n not in self._spec] + [n for n in self._spec if n not in arrays]
        if odd:
            raise ReplayFormatError(
                f"obs field {odd[0]!r}: chunk fields {sorted(arrays)} != stored fields "
                f"{sorted(self._spec)}"
            )
        for name, arr in arrays.items():
            shape, dtype = self._spec[name]
            if arr.shape[1:] != shape or _little(arr.dtype) != dtype:
                raise ReplayFormatError(
                    f"field {name!r}: chunk has dtype {arr.dtype.str} trailing shape "
                    f"{list(arr.shape[1:])}, stored data has dtype {dtype.str} trailing shape "
                    f"{list(shape)}"
                )

    # ----------------------------------------------------------------------------------------
    # Insertion and eviction.

    def _insert(self, chunk: SequenceChunk, arrays: dict[str, np.ndarray], continues: bool) -> None:
        """Write the new rows, link them to their segment and register the new window starts."""
        if self._spec is None:
            self._allocate({name: (arr.shape[1:], _little(arr.dtype)) for name, arr in arrays.items()})
        skip = self.overlap if continues else 0
        rows = chunk.length - skip
        self._make_room(rows)
        first = self._head
        for name, arr in arrays.items():
            self._write(self._data[name], first, arr[skip:])
        new = np.arange(first, first + rows, dtype=np.int64)  # [rows] absolute indices
        slots = new % self.capacity
        self._succ[slots[:-1]] = slots[1:]
        self._succ[slots[-1]] = -1
        key = (chunk.runner_id, chunk.env_index)
        recent = self._streams[key].recent if continues else np.zeros(0, np.int64)
        recent = recent[recent >= self._tail]  # steps evicted meanwhile are gone
        if recent.size:
            self._succ[recent[-1] % self.capacity] = slots[0]
        segment_end = np.concatenate([recent, new])
        ready = max(segment_end.size - self.length + 1, 0)  # entries with length-1 successors
        self._add_starts(segment_end[:ready] % self.capacity)
        self._streams[key] = _Stream(seq=chunk.seq, recent=segment_end[ready:].copy())
        self._chunks.append((first, rows))
        self._head += rows
        self._counts["inserted"] += 1

    def _allocate(self, spec: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        """Fix the field spec (and the byte-bounded capacity) and allocate one ``[capacity, ...]``
        ring per field."""
        if self.max_bytes is not None:
            row = sum(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize for shape, dtype in spec.values())
            fits = self.max_bytes // max(row, 1)
            if fits < self.length:
                raise ReplayFormatError(
                    f"max_bytes={self.max_bytes} holds {fits} steps of {row} bytes, fewer than a window "
                    f"of length {self.length}"
                )
            if fits < self.capacity:  # the store is empty here: shrink the bookkeeping too
                self.capacity = int(fits)
                self._succ = np.full(self.capacity, -1, np.int64)
                self._where = np.full(self.capacity, -1, np.int64)
                self._starts = np.zeros(self.capacity, np.int64)
        self._spec = spec
        self._data = {
            name: np.zeros((self.capacity, *shape), dtype) for name, (shape, dtype) in spec.items()
        }

    def _write(self, ring: np.ndarray, first: int, rows: np.ndarray) -> None:
        """Copy ``rows`` into ``ring`` from absolute index ``first`` on (two slices if it wraps)."""
        start = first % self.capacity
        split = min(rows.shape[0], self.capacity - start)
        ring[start:start + split] = rows[:split]
        ring[:rows.shape[0] - split] = rows[split:]

    def _make_room(self, rows: int) -> None:
        """Evict the oldest chunks until ``rows`` more steps fit."""
        self._evict_to(self._head + rows - self.capacity)

    def _evict_to(self, first_kept: int) -> None:
        """Evict the oldest chunks until the tail is at or after absolute index ``first_kept``."""
        old_tail = self._tail
        while self._tail < first_kept:
            start, size = self._chunks.popleft()
            assert start == self._tail, f"chunk at {start} is not the tail {self._tail}"
            self._tail = start + size
            self._counts["evicted"] += 1
        if self._tail > old_tail:
            gone = np.arange(old_tail, self._tail, dtype=np.int64) % self.capacity
            self._discard_starts(gone)
            self._succ[gone] = -1

    def _add_starts(self, slots: np.ndarray) -> None:
        """Append ``slots`` to the dense set of window starts."""
        end = self._num_starts + slots.size
        self._starts[self._num_starts:end] = slots
        self._where[slots] = np.arange(self._num_starts, end)
        self._num_starts = end

    def _discard_starts(self, slots: np.ndarray) -> None:
        """Remove ``slots`` (where they are starts) by moving surviving tail entries into holes."""
        pos = self._where[slots]
        pos = pos[pos >= 0]
        if not pos.size:
            return
        keep_size = self._num_starts - pos.size
        self._where[self._starts[pos]] = -1
        holes = np.sort(pos[pos < keep_size])
        movers = np.setdiff1d(np.arange(keep_size, self._num_starts), pos)  # sorted
        self._starts[holes] = self._starts[movers]
        self._where[self._starts[holes]] = holes
        self._num_starts = keep_size

    # ----------------------------------------------------------------------------------------
    # Checkpointing: one ``.npy`` per field plus ``.npz`` bookkeeping (no pickle), JSON metadata.

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the store to directory ``path`` (see ``SaveJob`` for the files)."""
        job = self.begin_save(path)
        while job.copy_piece(self):
            pass
        job.finish()

    def begin_save(self, path: str | os.PathLike[str], *, piece_rows: int = 4096) -> SaveJob:
        """Start a checkpoint that copies the rows in pieces (for an owner that keeps inserting
        and sampling while it is written); see ``SaveJob``. Takes O(capacity) int64 copies of the
        bookkeeping, not of the rows."""
        return SaveJob(self, Path(path), piece_rows)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReplayStore:
        """Restore a store written by ``save`` / ``SaveJob``: contents, RNG state, stream state
        and counters. Chunks that were evicted while the checkpoint was being written (before
        their rows were copied) are dropped, as the live store dropped them."""
        folder = Path(path)
        meta = json.loads((folder / META_FILE).read_text())
        if meta.get("version") != SAVE_VERSION:
            raise ValueError(
                f"{folder / META_FILE}: save version {meta.get('version')!r}, expected {SAVE_VERSION}"
            )
        store = cls(
            meta["capacity"], length=meta["length"], keys=meta["keys"], seed=meta["seed"],
            overlap=meta["overlap"], max_bytes=meta["max_bytes"],
        )
        store._head, store._tail = meta["head"], meta["tail"]
        store._counts = {key: int(meta["counts"][key]) for key in _STAT_KEYS}
        store._rng.bit_generator.state = meta["rng"]
        with np.load(folder / DATA_FILE, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        for name, _, _ in meta["spec"] or []:
            arrays[f"field.{name}"] = np.load(folder / f"field.{name}.npy", allow_pickle=False)
        store._restore_arrays(meta["spec"], arrays)
        store._evict_to(int(meta["valid_from"]))
        return store

    def _restore_arrays(self, spec: list[list[Any]] | None, arrays: dict[str, np.ndarray]) -> None:
        """Fill rings, bookkeeping and streams from ``save``'s arrays."""
        live = np.arange(self._tail, self._head, dtype=np.int64) % self.capacity
        if spec is not None:
            self._allocate({name: (tuple(shape), np.dtype(code)) for name, code, shape in spec})
            for name, ring in self._data.items():
                stored = arrays[f"field.{name}"]
                if stored.shape != (live.size, *ring.shape[1:]) or stored.dtype != ring.dtype:
                    raise ValueError(
                        f"field {name!r}: saved array {stored.dtype.str} {list(stored.shape)} does "
                        f"not match {ring.dtype.str} {[live.size, *ring.shape[1:]]}"
                    )
                ring[live] = stored
        self._succ[live] = arrays["succ"]
        starts = arrays["starts"]
        self._num_starts = starts.size
        self._starts[:starts.size] = starts
        self._where[starts] = np.arange(starts.size)
        self._chunks = deque((int(start), int(rows)) for start, rows in arrays["chunks"])
        for (runner, env), seq, size, recent in zip(
            arrays["stream_keys"], arrays["stream_seq"], arrays["stream_recent_len"],
            arrays["stream_recent"],
        ):
            self._streams[(int(runner), int(env))] = _Stream(int(seq), recent[:size].copy())


def _little(dtype: np.dtype) -> np.dtype:
    """``dtype`` in little-endian byte order (``'|u1'`` and ``'|b1'`` are unchanged)."""
    return dtype.newbyteorder("<")


def _check_count(name: str, value: Any, low: int) -> int:
    """``value`` must be a (non-bool) int >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _check_keys(keys: Sequence[str]) -> tuple[str, ...]:
    """Observation field names: non-empty, unique, well-formed, not reserved."""
    if isinstance(keys, str):
        raise ValueError(f"keys must be a sequence of field names, got the str {keys!r}")
    names = tuple(keys)
    bad = [
        k for k in names
        if not isinstance(k, str) or not FIELD_NAME_RE.match(k) or k in RESERVED_FIELDS
    ]
    if not names or bad or len(set(names)) != len(names):
        raise ValueError(
            f"keys must be unique obs field names matching {FIELD_NAME_RE.pattern} and not in "
            f"{list(RESERVED_FIELDS)}; got {list(names)} (bad: {bad})"
        )
    return names


class SaveJob:
    """A checkpoint of a ``ReplayStore`` written while its owner keeps using the store.

    Protocol (the owner serialises store access with its own lock):

    1. ``store.begin_save(path)`` under the lock: copies the bookkeeping (successor links, window
       starts, chunk table, stream state, counters, RNG) as of now (the *snapshot*) and opens one
       ``.npy`` file per field for the snapshot's rows ``[tail, head)``.
    2. ``copy_piece(store)`` under the lock, repeatedly, releasing it between calls: copies the
       next ``piece_rows`` rows of the snapshot from the live rings into the files. Rows the live
       store evicted since the snapshot (their slots may hold new data) are not copied; the
       snapshot's tail moves past them (to the live tail, a chunk boundary), so the checkpoint
       loses only what the store itself dropped.
    3. ``finish()`` without the lock: flushes the rows and writes ``replay.npz`` (bookkeeping)
       and ``replay.json`` (metadata, last, via a temp file and rename).

    Inserts and samples wait at most one piece copy (4096 rows of 64x64x3 frames: ~50 MB,
    ~10-20 ms) instead of the whole write.
    """

    def __init__(self, store: ReplayStore, folder: Path, piece_rows: int) -> None:
        self.folder = folder
        self.piece_rows = _check_count("piece_rows", piece_rows, 1)
        folder.mkdir(parents=True, exist_ok=True)
        self.capacity = store.capacity
        self.tail, self.head = store._tail, store._head
        self.next = self.tail  # absolute index of the next row to copy
        self.valid_from = self.tail  # rows before this were lost to eviction before being copied
        live = np.arange(self.tail, self.head, dtype=np.int64) % store.capacity
        recent = np.full((len(store._streams), max(store.length - 1, 0)), -1, np.int64)
        for row, stream in enumerate(store._streams.values()):
            recent[row, :stream.recent.size] = stream.recent
        self.bookkeeping = {
            "succ": store._succ[live], "starts": store._starts[:store._num_starts].copy(),
            "chunks": np.array(store._chunks, np.int64).reshape(-1, 2),
            "stream_keys": np.array(list(store._streams), np.int64).reshape(-1, 2),
            "stream_seq": np.array([s.seq for s in store._streams.values()], np.int64),
            "stream_recent_len": np.array([s.recent.size for s in store._streams.values()], np.int64),
            "stream_recent": recent,
        }
        self.meta: dict[str, Any] = {
            "version": SAVE_VERSION, "capacity": store.capacity, "length": store.length,
            "keys": None if store.keys is None else list(store.keys), "seed": store.seed,
            "overlap": store.overlap, "max_bytes": store.max_bytes, "head": self.head, "tail": self.tail,
            "counts": dict(store._counts), "rng": store._rng.bit_generator.state,
            "spec": None if store._spec is None else [
                [name, dtype.str, list(shape)] for name, (shape, dtype) in store._spec.items()
            ],
        }
        self.files: dict[str, np.ndarray] = {}
        for name, ring in store._data.items():
            shape = (self.head - self.tail, *ring.shape[1:])
            target = folder / f"field.{name}.npy"
            if shape[0] == 0:  # a zero-length memmap is not allowed
                np.save(target, np.zeros(shape, ring.dtype))
            else:
                self.files[name] = np.lib.format.open_memmap(target, mode="w+", dtype=ring.dtype, shape=shape)
        self.rows_lost = 0

    @property
    def done(self) -> bool:
        return self.next >= self.head

    def copy_piece(self, store: ReplayStore) -> bool:
        """Copy the next piece of rows (call with the owner's lock held); ``False`` when done."""
        if self.done:
            return False
        if store._tail > self.next:  # evicted before we got to them: their slots may be reused
            lost_to = min(store._tail, self.head)
            self.rows_lost += lost_to - self.next
            self.next = self.valid_from = lost_to
            if self.done:
                return False
        end = min(self.next + self.piece_rows, self.head)
        slots = np.arange(self.next, end, dtype=np.int64) % self.capacity
        for name, out in self.files.items():
            out[self.next - self.tail:end - self.tail] = store._data[name][slots]
        self.next = end
        return not self.done

    def finish(self) -> None:
        """Flush the rows and write bookkeeping and metadata (metadata last: it marks completion)."""
        if not self.done:
            raise RuntimeError(f"SaveJob.finish: rows {self.next}..{self.head} not copied yet")
        for out in self.files.values():
            out.flush()
        self.files.clear()
        with open(self.folder / f"{DATA_FILE}.tmp", "wb") as handle:
            np.savez(handle, **self.bookkeeping)
        os.replace(self.folder / f"{DATA_FILE}.tmp", self.folder / DATA_FILE)
        meta = {**self.meta, "valid_from": self.valid_from, "rows_lost": self.rows_lost}
        (self.folder / f"{META_FILE}.tmp").write_text(json.dumps(meta))
        os.replace(self.folder / f"{META_FILE}.tmp", self.folder / META_FILE)
