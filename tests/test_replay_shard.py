"""ReplayShard in-process: msgpack in and out, rejection, rate limiting, checkpoints under load."""

from __future__ import annotations

import threading
import time

import msgpack
import numpy as np
import pytest

from recore_dist.data import ChunkFormatError, encode_chunks
from recore_dist.data.batch import decode_batch, encode_batch
from recore_dist.replay.rate_limiter import RateLimited, RateLimiter
from recore_dist.replay.shard import ReplayShard, ShardConfig
from tests.test_replay import make_chunk, stream, trace


def shard_config(**overrides) -> ShardConfig:
    base = dict(capacity=400, length=3, chunk_length=4, ratio=2.0, min_size=8, max_sample=8, max_insert_chunks=4,
                timeout=5.0)
    base.update(overrides)
    return ShardConfig(**base)


# ------------------------------------------------------------------------------------------ limiter
def test_rate_limiter_band_and_deadlock_check() -> None:
    limiter = RateLimiter(2.0, min_size=10, tolerance=20, max_sample=12, max_insert=8)
    assert not limiter.can_sample(1)  # below min_size
    assert limiter.acquire_insert(10, 0) and limiter.lag() == 0
    assert limiter.can_sample(20) and not limiter.can_sample(21)  # lag may reach +tolerance
    assert limiter.acquire_insert(10, 0)  # lag -20: exactly the lower edge
    assert not limiter.acquire_insert(1, 0.01) and limiter.timeouts["insert"] == 1
    assert limiter.acquire_sample(40, 0) and limiter.lag() == 20
    assert not limiter.acquire_sample(1, 0.01)
    with pytest.raises(ValueError, match="deadlock"):
        RateLimiter(2.0, min_size=0, tolerance=10, max_sample=12, max_insert=8)


def test_rate_limiter_wakes_a_blocked_sampler() -> None:
    limiter = RateLimiter(1.0, min_size=4, tolerance=8, max_sample=4, max_insert=4)
    got = []
    thread = threading.Thread(target=lambda: got.append(limiter.acquire_sample(4, 5.0)))
    thread.start()
    time.sleep(0.1)
    assert not got
    limiter.acquire_insert(4, 0)
    thread.join(2.0)
    assert got == [True]


# ------------------------------------------------------------------------------------------ batch codec
def test_batch_codec_roundtrip_and_refusals() -> None:
    batch = {"image": np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4), "reward": np.ones((2, 3), np.float32),
             "is_first": np.zeros((2, 3), bool)}
    out = decode_batch(encode_batch(batch))
    assert list(out) == list(batch)
    for key in batch:
        np.testing.assert_array_equal(out[key], batch[key])
        assert out[key].dtype == batch[key].dtype and out[key].flags.writeable
    with pytest.raises(ChunkFormatError, match="leading"):
        encode_batch({"a": np.zeros((2, 3)), "b": np.zeros((2, 4))})
    with pytest.raises(ChunkFormatError):
        decode_batch(b"\x93garbage")
    evil = msgpack.packb({"batch_schema": 1, "batch": 2, "length": 3,
                          "fields": [{"name": "x", "dtype": "<f4", "shape": [2, 3], "data": b"\0" * 5}]})
    with pytest.raises(ChunkFormatError, match="buffer has 5 bytes"):
        decode_batch(evil)
    pickled = b"\x80\x04\x95" + b"\0" * 20  # a pickle stream is refused, never loaded
    with pytest.raises(ChunkFormatError):
        decode_batch(pickled)


# ------------------------------------------------------------------------------------------ shard
def test_insert_sample_roundtrip_through_msgpack() -> None:
    shard = ReplayShard(shard_config())
    assert shard.insert(encode_chunks(stream(0, 3, 4))) == {"chunks": 3, "steps": 12}
    batch = decode_batch(shard.sample(4))
    assert batch["image"].shape == (4, 3, 8, 8, 3) and batch["is_first"][:, 0].all()
    trace(batch)
    stats = shard.stats()
    assert stats["replay/steps"] == 12 and stats["limiter/sampled_steps"] == 12


def test_malformed_payloads_are_refused_counted_and_change_nothing() -> None:
    shard = ReplayShard(shard_config())
    shard.insert(encode_chunks(stream(0, 3, 4)))
    snapshot = (shard.store.stats(), {k: v.copy() for k, v in shard.store._data.items()})
    for payload in (b"", b"\xc1", b"not msgpack at all", encode_chunks(stream(0, 1, 4))[:-7],
                    msgpack.packb([b"\x80\x04pickle"]), msgpack.packb({"schema": 1})):
        with pytest.raises(ChunkFormatError):
            shard.insert(payload)
    wrong_length = make_chunk(5, 0, 0, 5)
    with pytest.raises(ChunkFormatError, match="expected_length"):
        shard.insert(encode_chunks([wrong_length]))
    assert shard.counts["rejected_payloads"] == 7
    stats, data = snapshot
    assert shard.store.stats() == stats
    for key, ring in shard.store._data.items():
        np.testing.assert_array_equal(ring, data[key])
    # a bad chunk among good ones: the good ones are stored, the bad one never touches the store
    good, bad = make_chunk(1, 0, 0, 4), make_chunk(2, 0, 0, 4)
    bad.obs["depth"] = bad.obs["depth"][..., :1, :]  # a different trailing shape from the stored data
    with pytest.raises(ChunkFormatError, match="1 of 2 chunks refused"):
        shard.insert(encode_chunks([good, bad]))
    assert shard.counts["rejected_chunks"] == 1 and shard.store.stats()["inserted"] == stats["inserted"] + 1
    assert shard.limiter.inserted == 16  # the refused chunk earned no samples


def test_flat_uint8_payloads_from_the_object_store_are_read_in_place() -> None:
    """``ReplayClient.put`` stores payloads as flat uint8 arrays; the shard reads those, and
    refuses any other array as malformed (counted, store unchanged)."""
    shard = ReplayShard(shard_config())
    payload = np.frombuffer(encode_chunks(stream(0, 2, 4)), np.uint8)
    payload.flags.writeable = False  # as Ray hands it out
    assert shard.insert(payload) == {"chunks": 2, "steps": 8}
    before = shard.store.stats()
    for bad in (payload.astype(np.int16), payload.reshape(1, -1), np.zeros(0, np.uint8)):
        with pytest.raises(ChunkFormatError):
            shard.insert(bad)
    assert shard.counts["rejected_payloads"] == 3 and shard.store.stats() == before


def test_rate_limited_calls_time_out_and_report() -> None:
    shard = ReplayShard(shard_config(timeout=0.2))
    with pytest.raises(RateLimited, match="inserted=0"):
        shard.sample(2)
    shard.insert(encode_chunks(stream(0, 2, 4)))  # 8 steps = min_size: 0 credit; tolerance 2*(24+32)/2
    for _ in range(9):  # 9 * 6 = 54 <= tolerance 56: the learner may run this far ahead
        shard.sample(2)
    with pytest.raises(RateLimited, match="lag"):
        shard.sample(2)
    shard.insert(encode_chunks(stream(0, 2, 4, seq0=2, step0=8)))  # 8 more steps earn 16 sampled steps
    shard.sample(2)


def test_checkpoint_while_inserting_and_sampling(tmp_path) -> None:
    cfg = shard_config(capacity=2000, checkpoint_dir=str(tmp_path), ratio=float("inf"), min_size=0)
    shard = ReplayShard(cfg)
    for seq in range(0, 200, 4):
        shard.insert(encode_chunks(stream(0, 4, 4, seq0=seq, step0=4 * seq)))
    stop, errors, inserted = threading.Event(), [], []

    def producer() -> None:
        seq = 1000
        try:
            while not stop.is_set():
                shard.insert(encode_chunks(stream(1, 2, 4, seq0=seq, step0=4 * seq)))
                shard.sample(4)
                inserted.append(8)
                seq += 2
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=producer)
    thread.start()
    figures = [shard.checkpoint(), shard.checkpoint()]
    stop.set()
    thread.join()
    assert not errors
    assert inserted, "the producer made no progress during the checkpoints"
    for fig in figures:
        assert fig["pieces"] >= 1 and fig["max_lock_hold_s"] < fig["seconds"]
    restored = ReplayShard(cfg)
    assert restored.restored and restored.counts["restores"] == 1
    assert len(restored.store) == figures[-1]["rows"] - figures[-1]["rows_lost"]
    trace(decode_batch(restored.sample(8)))
    assert sorted(p.name for p in (tmp_path / "shard-0").iterdir()) == ["LATEST", "ckpt-000000000", "ckpt-000000001"]
