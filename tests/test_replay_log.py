"""The replay shard's write-ahead log: nothing acknowledged is lost to a SIGKILL, torn tails are
dropped and counted at every byte offset, logs of another schema are refused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from recore_dist.data import encode_chunks
from recore_dist.replay import log as log_lib
from recore_dist.replay.log import ReplayLog, ReplayLogError, read_segment, segments
from recore_dist.replay.shard import ReplayShard, ShardConfig
from tests.waiting import sigkill
from tests.test_replay import stream

CHUNK = 4


def _config(folder: Path, **overrides) -> ShardConfig:
    base = dict(capacity=10_000, length=3, chunk_length=CHUNK, ratio=float("inf"), min_size=1, max_sample=8,
                max_insert_chunks=4, timeout=5.0, checkpoint_dir=str(folder), log=True, log_fsync="none")
    base.update(overrides)
    return ShardConfig(**base)


def _payloads(n: int, env: int = 0) -> list[bytes]:
    return [encode_chunks([c]) for c in stream(env, n, CHUNK)]


@pytest.mark.parametrize("fsync", ["every", "interval", "none"])
def test_records_round_trip_under_every_fsync_policy(tmp_path, fsync):
    log = ReplayLog(tmp_path, fsync=fsync, interval_s=0.01)
    payloads = [os.urandom(n) for n in (1, 100, 70_000)]
    for p in payloads:
        log.append(p)
    log.close()
    (path,) = segments(tmp_path)
    read = read_segment(path)
    assert read.payloads == payloads and read.torn == 0 and read.dropped_bytes == 0
    assert log.appended["records"] == 3 and (log.appended["fsyncs"] > 0) == (fsync != "none")


def test_a_torn_last_record_is_dropped_at_every_byte_offset(tmp_path):
    """Cut the log anywhere inside its last record (a crash mid-append): the earlier records
    restore, the cut one is dropped and counted, nothing raises; a flipped byte is caught by the
    checksum."""
    payloads = _payloads(3)
    log = ReplayLog(tmp_path / "src", fsync="none")
    for p in payloads:
        log.append(p)
    log.close()
    (path,) = segments(tmp_path / "src")
    whole = path.read_bytes()
    last_start = len(whole) - (8 + len(payloads[-1]))
    for cut in range(last_start, len(whole)):
        folder = tmp_path / f"cut{cut}"
        (folder / "shard-0" / "log").mkdir(parents=True)
        (folder / "shard-0" / "log" / path.name).write_bytes(whole[:cut])
        shard = ReplayShard(_config(folder))
        assert len(shard.store) == 2 * CHUNK, cut
        assert shard.counts["log_torn_records"] == int(cut > last_start), cut
        assert shard.counts["log_dropped_bytes"] == cut - last_start
        shard.close()
        again = ReplayShard(_config(folder))  # the torn tail was cut off: counted once, appends continue cleanly
        assert len(again.store) == 2 * CHUNK and again.counts["log_torn_records"] == 0
        again.close()
    flipped = bytearray(whole)
    flipped[-5] ^= 0xFF
    bad = tmp_path / "flip" / "wal-000000000.log"
    bad.parent.mkdir()
    bad.write_bytes(bytes(flipped))
    read = read_segment(bad)
    assert read.payloads == payloads[:2] and read.torn == 1


def test_a_log_of_another_schema_is_refused_with_what_to_do(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    shard = ReplayShard(_config(folder))
    shard.insert(_payloads(1)[0])
    shard.close()
    monkeypatch.setattr(log_lib, "SCHEMA_VERSION", 99)  # this build now reads schema 99 only
    with pytest.raises(ReplayLogError, match=r"chunk schema 1; this recore-dist reads format 1, schema 99.*move"):
        ReplayShard(_config(folder))
    (folder / "shard-0" / "log" / "wal-000000001.log").write_bytes(b"not a log at all")
    monkeypatch.undo()
    with pytest.raises(ReplayLogError, match="not a recore-dist replay log"):
        ReplayShard(_config(folder))


def test_checkpoint_rotates_and_truncates_the_log_and_restore_replays_the_rest(tmp_path):
    shard = ReplayShard(_config(tmp_path))
    for p in _payloads(5):
        shard.insert(p)
    shard.checkpoint()
    assert [log_lib.segment_number(p) for p in segments(tmp_path / "shard-0" / "log")] == [1]  # 0 is covered
    for p in _payloads(3, env=1):
        shard.insert(p)
    before = shard.stats()
    shard.close()
    restored = ReplayShard(_config(tmp_path))
    after = restored.stats()
    assert after["replay/steps"] == before["replay/steps"] == 8 * CHUNK
    assert after["replay/inserted"] == before["replay/inserted"] == 8
    assert restored.counts["log_replayed_chunks"] == 3 and restored.counts["restores"] == 1
    assert after["limiter/inserted_steps"] == before["limiter/inserted_steps"]


CHILD = textwrap.dedent("""
    import sys
    from recore_dist.data import encode_chunks
    from recore_dist.replay.shard import ReplayShard, ShardConfig
    from tests.test_replay import stream
    folder, n, capacity, checkpoint_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    shard = ReplayShard(ShardConfig(capacity=capacity, length=3, chunk_length=4, ratio=float("inf"), min_size=1,
                                    max_sample=8, max_insert_chunks=4, timeout=5.0, checkpoint_dir=folder,
                                    log=True, log_fsync="none"))
    for k, chunk in enumerate(stream(0, n, 4)):
        shard.insert(encode_chunks([chunk]))
        if k + 1 == checkpoint_at:
            shard.checkpoint()
        print("acked", k + 1, flush=True)
    print("done", flush=True)
    sys.stdin.read()  # wait to be killed
""")


@pytest.mark.parametrize("capacity, checkpoint_at", [(10_000, 0), (10_000, 7), (40, 7)])
def test_sigkill_right_after_n_acknowledged_inserts_loses_none_of_them(tmp_path, capacity, checkpoint_at):
    """A shard process inserts N chunks (checkpointing after some of them, or never), says "acked"
    after each acknowledgement, and is SIGKILLed right after the N-th. The restarted shard holds
    exactly those N, less what capacity evicted (counted)."""
    n = 23
    folder = tmp_path / "replay"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(folder), str(n), str(capacity), str(checkpoint_at)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    acked = 0
    for line in proc.stdout:
        if line.startswith("acked"):
            acked = int(line.split()[1])
        if line.startswith("done"):
            break
    sigkill(proc)
    assert acked == n
    shard = ReplayShard(_config(folder, capacity=capacity))
    stats = shard.stats()
    stored_chunks, evicted = int(stats["replay/chunks"]), int(stats["replay/evicted"])
    assert stored_chunks + evicted == n and int(stats["replay/inserted"]) == n
    assert stored_chunks == min(n, capacity // CHUNK)
    batch_steps = shard.store.sample(4)["reward"].shape
    assert batch_steps == (4, 3)
    assert np.isfinite(stats["replay/steps"])


def test_duplicate_sequence_numbers_retries_are_idempotent_others_refused(tmp_path):
    from recore_dist.data import ChunkFormatError
    from tests.test_replay import make_chunk

    shard = ReplayShard(_config(tmp_path))
    a, b, c = stream(0, 3, CHUNK)
    shard.insert(encode_chunks([a]))
    shard.insert(encode_chunks([c]))  # out of order (concurrent calls): stored
    shard.insert(encode_chunks([b]))
    shard.insert(encode_chunks([b]))  # a retried call: acknowledged, not stored twice
    assert shard.stats()["replay/chunks"] == 3 and shard.counts["duplicate_retries"] == 1
    other = make_chunk(0, b.seq, 100, CHUNK)  # the same seq, other content
    with pytest.raises(ChunkFormatError, match="duplicate sequence number 1"):
        shard.insert(encode_chunks([other]))
    assert shard.stats()["replay/chunks"] == 3 and shard.counts["rejected_chunks"] == 1
    shard.checkpoint()
    shard.close()
    again = ReplayShard(_config(tmp_path))  # the seqs survive a restore
    again.insert(encode_chunks([c]))
    with pytest.raises(ChunkFormatError, match="duplicate"):
        again.insert(encode_chunks([other]))
    assert again.stats()["replay/chunks"] == 3 and again.counts["duplicate_retries"] == 2
    assert again.runner_counts() == {0: 3}
