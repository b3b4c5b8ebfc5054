"""``ReplayLog``: a replay shard's write-ahead log of acknowledged inserts.

An insert is acknowledged only after its payload (the ``encode_chunks`` msgpack bytes, as they
arrived) is appended here. A shard restores from its last checkpoint plus the log written after
that checkpoint began; a completed checkpoint deletes the log segments it covers.

Files (``<shard folder>/log/``): segments ``wal-<n>.log``, numbered upwards. A segment starts
with ``MAGIC`` (8 bytes), a little-endian u32 length and a JSON header (``format``, the chunk
codec's ``schema`` version, the segment number); then records, each a little-endian u32 payload
length, the payload's u32 CRC-32, and the payload. No pickle anywhere.

Durability (``fsync``):

- ``every``: ``fsync`` after each append, before the acknowledgement (survives power loss);
- ``interval``: ``fsync`` at most every ``interval_s`` seconds (an append that finds the last one
  older syncs; a quiet log is synced by the next append or close). A power loss loses at most
  ``interval_s`` of acknowledged inserts;
- ``none``: the OS writes back when it likes.

Every policy survives the shard *process* being killed (SIGKILL, OOM): each append is one
``writev`` to the file, so the bytes are in the kernel's page cache before the acknowledgement.
The policies differ only on a machine crash. Their cost: ``recore-dist bench replay --log``.

Reading (``read_segment``): a record whose header or payload is cut short, or whose checksum does
not match, ends the segment: it and anything after it are dropped and counted (``torn`` records,
``dropped_bytes``), never fatal. A crash mid-append leaves exactly such a tail. A segment whose
header names another log format or chunk schema is refused (``ReplayLogError``) with what to do.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from recore_dist.data.chunk import SCHEMA_VERSION

MAGIC = b"RCDWAL\x00\x01"
LOG_FORMAT = 1
_RECORD = struct.Struct("<II")  # payload length, CRC-32 of the payload
_HEADER_LEN = struct.Struct("<I")
MAX_HEADER = 4096
MAX_RECORD = 1 << 30

FsyncPolicy = Literal["every", "interval", "none"]


class ReplayLogError(RuntimeError):
    """A log that cannot be used as it is (another format or schema); the message says why and what to do."""


@dataclasses.dataclass
class SegmentRead:
    """What ``read_segment`` found: the payloads of the intact records and what it dropped."""

    payloads: list[bytes]
    good_bytes: int
    """Offset just past the last intact record (where appends may continue)."""
    torn: int
    """Records dropped (0 or 1: reading stops at the first bad one)."""
    dropped_bytes: int
    """Bytes after ``good_bytes``."""


def segment_name(number: int) -> str:
    return f"wal-{number:09d}.log"


def segment_number(path: Path) -> int:
    return int(path.stem.split("-")[1])


def segments(folder: Path) -> list[Path]:
    """The segment files of ``folder``, oldest first."""
    return sorted(folder.glob("wal-*.log"), key=segment_number) if folder.is_dir() else []


def _header(number: int) -> bytes:
    body = json.dumps({"format": LOG_FORMAT, "schema": SCHEMA_VERSION, "segment": number}).encode()
    return MAGIC + _HEADER_LEN.pack(len(body)) + body


def read_segment(path: Path) -> SegmentRead:
    """The intact records of one segment (see the module docstring for what is dropped).

    Raises:
        ReplayLogError: the segment is not a replay log, or was written in another log format or
            chunk schema version.
    """
    data = path.read_bytes()
    start = len(MAGIC) + _HEADER_LEN.size
    if len(data) < start:  # created, killed before its header was complete: empty
        return SegmentRead([], 0, 0, len(data))
    if data[:len(MAGIC)] != MAGIC:
        raise ReplayLogError(f"{path}: not a recore-dist replay log (magic {data[:len(MAGIC)]!r}); "
                             f"move it out of the shard's log folder")
    (size,) = _HEADER_LEN.unpack_from(data, len(MAGIC))
    if size > MAX_HEADER or start + size > len(data):
        return SegmentRead([], 0, 0, len(data))  # the header itself was torn
    try:
        header = json.loads(data[start:start + size])
    except ValueError as exc:
        raise ReplayLogError(f"{path}: unreadable header ({exc}); move it out of the shard's log folder") from exc
    if header.get("format") != LOG_FORMAT or header.get("schema") != SCHEMA_VERSION:
        raise ReplayLogError(
            f"{path}: written with log format {header.get('format')!r} and chunk schema {header.get('schema')!r}; "
            f"this recore-dist reads format {LOG_FORMAT}, schema {SCHEMA_VERSION}. Replay it with the version that "
            f"wrote it, or move the shard's log folder aside (its inserts after the last checkpoint are then lost)")
    offset = start + size
    payloads = []
    while offset < len(data):
        if offset + _RECORD.size > len(data):
            break
        length, crc = _RECORD.unpack_from(data, offset)
        end = offset + _RECORD.size + length
        if length > MAX_RECORD or end > len(data):
            break
        payload = data[offset + _RECORD.size:end]
        if zlib.crc32(payload) != crc:
            break
        payloads.append(payload)
        offset = end
    dropped = len(data) - offset
    return SegmentRead(payloads, offset, int(dropped > 0), dropped)


class ReplayLog:
    """The appending side. Not thread-safe: the shard serialises appends (its log lock).

    Args:
        folder: the shard's log folder (created).
        fsync: durability policy (module docstring).
        interval_s: the ``interval`` policy's period.
        segment: number of the segment to start (``None``: one past the newest on disk).
    """

    def __init__(self, folder: str | os.PathLike[str], *, fsync: FsyncPolicy = "interval",
                 interval_s: float = 1.0, segment: int | None = None):
        if fsync not in ("every", "interval", "none"):
            raise ValueError(f"fsync={fsync!r} must be 'every', 'interval' or 'none'")
        if interval_s <= 0:
            raise ValueError(f"interval_s={interval_s} must be > 0")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fsync, self.interval_s = fsync, interval_s
        existing = segments(self.folder)
        self.segment = segment if segment is not None else (segment_number(existing[-1]) + 1 if existing else 0)
        self._fd = -1
        self._last_sync = time.monotonic()
        self.appended = {"records": 0, "bytes": 0, "fsyncs": 0}
        self._lock = threading.Lock()  # open/close against a concurrent rotate
        self._open(self.segment)

    def _open(self, number: int) -> None:
        path = self.folder / segment_name(number)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
        self._write(_header(number))
        self._sync()
        _sync_dir(self.folder)
        self.segment = number

    def _write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view.nbytes:
            written = os.write(self._fd, view)
            view = view[written:]

    def _writev(self, head: bytes, view: memoryview) -> None:
        """Header and payload in one ``writev`` (no copy of the payload), finishing short writes."""
        written = os.writev(self._fd, [head, view])
        total = len(head) + view.nbytes
        if written < total:  # rare (signals, full pipes): write the rest plainly
            rest = memoryview(head + view.tobytes())[written:]
            self._write(rest)

    def _sync(self) -> None:
        if self.fsync != "none":
            os.fsync(self._fd)
            self.appended["fsyncs"] += 1
        self._last_sync = time.monotonic()

    def append(self, payload: bytes | memoryview) -> int:
        """Append one record (one ``writev`` of header + payload); returns its size in bytes.
        Returns after the bytes are in the OS (and on disk, for ``every``)."""
        view = memoryview(payload).cast("B")
        head = _RECORD.pack(view.nbytes, zlib.crc32(view))
        with self._lock:
            self._writev(head, view)
            if self.fsync == "every" or (self.fsync == "interval"
                                         and time.monotonic() - self._last_sync >= self.interval_s):
                self._sync()
        self.appended["records"] += 1
        self.appended["bytes"] += len(head) + view.nbytes
        return len(head) + view.nbytes

    def rotate(self) -> int:
        """Close the current segment (synced) and start the next; returns the new number. A
        checkpoint that begins now covers every earlier segment."""
        with self._lock:
            self._sync()
            os.close(self._fd)
            self._open(self.segment + 1)
            return self.segment

    def delete_before(self, number: int) -> int:
        """Delete segments numbered below ``number`` (a completed checkpoint covers them); returns how many."""
        gone = 0
        for path in segments(self.folder):
            if segment_number(path) < number:
                path.unlink(missing_ok=True)
                gone += 1
        return gone

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                self._sync()
                os.close(self._fd)
                self._fd = -1


def replay(folder: str | os.PathLike[str], *, from_segment: int = 0, repair: bool = True
           ) -> Iterator[tuple[int, SegmentRead]]:
    """``(segment number, SegmentRead)`` for each segment numbered ``from_segment`` or above,
    oldest first. With ``repair`` a segment with a torn tail is truncated to its intact records,
    so appends after a restore never follow garbage and the tail is counted once."""
    for path in segments(Path(folder)):
        number = segment_number(path)
        if number < from_segment:
            continue
        read = read_segment(path)
        if repair and read.dropped_bytes and read.good_bytes:
            os.truncate(path, read.good_bytes)
        yield number, read


def _sync_dir(folder: Path) -> None:
    """Make a new file's directory entry durable (POSIX); harmless where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
