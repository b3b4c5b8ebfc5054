"""ReplayStore (windows, segments, overlap, eviction, rejection, save/load) and ReplayRatio."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from recore_dist.data import SequenceChunk, SequenceChunker
from recore_dist.replay import ReplayFormatError, ReplayRatio, ReplayStore

EPISODE = 10  # rows per episode; is_first on steps 0, 10, 20, ... of each stream
SIZE = 8
OBS_KEYS = ("image", "depth", "proprio")
ALL_KEYS = (*OBS_KEYS, "action", "reward", "is_first", "is_last", "is_terminal")


def make_chunk(env: int, seq: int, start: int, rows: int, *, runner: int = 0) -> SequenceChunk:
    """Steps ``start .. start+rows-1`` of stream (runner, env); every field encodes (stream, step)."""
    steps = np.arange(start, start + rows)
    sid = runner * 100 + env
    first, last = steps % EPISODE == 0, steps % EPISODE == EPISODE - 1
    pixels = ((steps * 7 + sid) % 256).astype(np.uint8)
    return SequenceChunk(
        obs={
            "image": np.broadcast_to(pixels[:, None, None, None], (rows, SIZE, SIZE, 3)).copy(),
            "depth": np.broadcast_to(steps.astype(np.float32)[:, None, None, None], (rows, SIZE, SIZE, 1)).copy(),
            "proprio": np.stack([np.full(rows, sid), steps], 1).astype(np.float32),
        },
        action=np.stack([steps, -steps], 1).astype(np.float32),
        reward=np.where(first, 0.0, steps * 0.5).astype(np.float32),
        is_first=first, is_last=last, is_terminal=last & (steps // EPISODE % 2 == 0),
        policy_version=0, env_name="test:replay", intervention_id="none", split="train",
        runner_id=runner, seq=seq, env_index=env,
    )


def stream(env: int, chunks: int, rows: int, *, overlap: int = 0, seq0: int = 0, step0: int = 0,
           runner: int = 0) -> list[SequenceChunk]:
    """``chunks`` consecutive chunks of one stream (sharing ``overlap`` rows)."""
    stride = rows - overlap
    return [make_chunk(env, seq0 + k, step0 + k * stride, rows, runner=runner) for k in range(chunks)]


def trace(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Check every window is one stream's consecutive steps with consistent fields.

    Returns:
        ``(sid [B], first_step [B])`` of the windows.
    """
    sid, steps = batch["proprio"][..., 0], batch["proprio"][..., 1].astype(np.int64)  # [B, T]
    assert (sid == sid[:, :1]).all(), "window mixes streams"
    assert (np.diff(steps, axis=1) == 1).all(), f"window steps not consecutive:\n{steps}"
    np.testing.assert_array_equal(batch["image"][:, :, 0, 0, 0], (steps * 7 + sid.astype(np.int64)) % 256)
    np.testing.assert_array_equal(batch["depth"][..., 0, 0, 0], steps)
    np.testing.assert_array_equal(batch["action"][..., 0], steps)
    np.testing.assert_array_equal(batch["is_last"], steps % EPISODE == EPISODE - 1)
    np.testing.assert_array_equal(batch["is_first"][:, 1:], steps[:, 1:] % EPISODE == 0)
    assert batch["is_first"][:, 0].all()
    return sid[:, 0].astype(np.int64), steps[:, 0]


def filled(store: ReplayStore, chunks: list[SequenceChunk]) -> ReplayStore:
    for chunk in chunks:
        store.add(chunk)
    return store


def test_sample_shapes_and_dtypes() -> None:
    store = filled(ReplayStore(1000, length=5), stream(0, 3, 4) + stream(1, 2, 6))
    batch = store.sample(7)
    assert list(batch) == list(ALL_KEYS)
    expected = {
        "image": ((SIZE, SIZE, 3), np.uint8), "depth": ((SIZE, SIZE, 1), np.float32),
        "proprio": ((2,), np.float32), "action": ((2,), np.float32), "reward": ((), np.float32),
        "is_first": ((), np.bool_), "is_last": ((), np.bool_), "is_terminal": ((), np.bool_),
    }
    for name, (shape, dtype) in expected.items():
        assert batch[name].shape == (7, 5, *shape), name
        assert batch[name].dtype == dtype, name
    trace(batch)
    assert len(store) == 24 and store.num_windows == (12 - 4) + (12 - 4)
    assert store.stats() == {
        "steps": 24, "chunks": 5, "windows": 16, "inserted": 5, "rejected": 0, "sampled": 7,
        "evicted": 0,
    }


def test_windows_cross_contiguous_chunks_but_not_streams_or_gaps() -> None:
    store = ReplayStore(1000, length=6, seed=3)
    a = stream(0, 4, 4)  # steps 0..15, contiguous: 11 windows
    b = stream(1, 2, 4) + stream(1, 2, 4, seq0=3, step0=20)  # seq gap 1 -> 3: 3 + 3 windows
    c = stream(0, 3, 4, runner=1)  # same env index, other runner: own stream, 7 windows
    for k in range(4):  # interleaved arrival
        for chunks in (a, b, c):
            if k < len(chunks):
                store.add(chunks[k])
    assert store.num_windows == 11 + 6 + 7
    sid, start = trace(store.sample(3000))
    seen = set(zip(sid.tolist(), start.tolist()))
    expected = {(0, s) for s in range(11)} | {(1, s) for s in (0, 1, 2, 20, 21, 22)}
    expected |= {(100, s) for s in range(7)}
    assert seen == expected
    assert any(s % 4 for _, s in seen), "no window started inside a chunk"


def test_seq_restart_starts_new_segment() -> None:
    store = filled(ReplayStore(100, length=3), stream(0, 2, 4) + stream(0, 1, 4, step0=50))
    assert store.num_windows == 6 + 2  # seq 0 again: no window from step 7 to step 50
    sid, start = trace(store.sample(500))
    assert set(start.tolist()) == {0, 1, 2, 3, 4, 5, 50, 51}


def test_every_valid_start_is_sampled() -> None:
    chunks = stream(0, 2, 3) + stream(1, 1, 5) + stream(2, 1, 2) + stream(1, 1, 2, seq0=5, step0=40)
    store = filled(ReplayStore(50, length=3, seed=1), chunks)
    assert store.num_windows == 4 + 3  # the two 2-row segments are shorter than T
    sid, start = trace(store.sample(700))
    pairs = list(zip(sid.tolist(), start.tolist()))
    counts = {pair: pairs.count(pair) for pair in set(pairs)}
    assert set(counts) == {(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2)}
    assert min(counts.values()) > 50  # about 100 each


def test_overlap_rows_are_dropped() -> None:
    store = filled(ReplayStore(1000, length=5, overlap=2), stream(0, 4, 6, overlap=2))
    assert len(store) == 6 + 3 * 4  # steps 0..17 once each
    assert store.num_windows == 18 - 4
    sid, start = trace(store.sample(400))
    assert set(start.tolist()) == set(range(14))


def test_overlap_from_real_chunker() -> None:
    chunker = SequenceChunker(2, 5, env_name="test:replay", overlap=2)
    store = ReplayStore(1000, length=4, overlap=2)
    for t in range(20):
        flags = np.array([t % EPISODE == 0, t % EPISODE == EPISODE - 1, False])[:, None].repeat(2, 1)
        obs = {
            "proprio": np.array([[0, t], [1, t]], np.float32),
            "is_first": flags[0], "is_last": flags[1], "is_terminal": flags[2],
        }
        for chunk in chunker.add(obs, np.zeros((2, 1)), np.zeros(2), 0, ["none"] * 2, ["train"] * 2):
            store.add(chunk)
    # chunks cover steps 0-4, 3-7, ..., 15-19 (6 per env): 20 distinct steps per env
    assert len(store) == 2 * 20 and store.num_windows == 2 * 17
    batch = store.sample(300)
    steps = batch["proprio"][..., 1]
    assert (batch["proprio"][..., 0] == batch["proprio"][:, :1, 0]).all()
    assert (np.diff(steps, axis=1) == 1).all()
    assert set(steps[:, 0].tolist()) == set(range(17))


def test_eviction_drops_oldest_and_their_windows() -> None:
    store = ReplayStore(20, length=3)
    for a, b in zip(stream(0, 8, 3), stream(1, 8, 3)):
        store.add(a)
        store.add(b)
    assert len(store) == 18 and store.stats()["evicted"] == 10 and store.stats()["chunks"] == 6
    # live: last 3 chunks of each stream, steps 15..23 -> 7 windows each
    assert store.num_windows == 14
    sid, start = trace(store.sample(500))
    assert set(zip(sid.tolist(), start.tolist())) == {(e, s) for e in (0, 1) for s in range(15, 22)}


def test_eviction_of_one_stream_keeps_the_others() -> None:
    store = filled(ReplayStore(12, length=4), stream(0, 2, 4) + stream(1, 1, 4))
    store.add(make_chunk(1, 1, 4, 4))  # evicts stream 0's first chunk: steps 0..3
    assert len(store) == 12 and store.num_windows == 1 + 5
    sid, start = trace(store.sample(300))
    assert set(zip(sid.tolist(), start.tolist())) == {(0, 4)} | {(1, s) for s in range(5)}
    store.add(make_chunk(0, 2, 8, 4))  # continues stream 0 after eviction; evicts steps 4..7
    sid, start = trace(store.sample(300))
    assert set(zip(sid.tolist(), start.tolist())) == {(0, 8)} | {(1, s) for s in range(5)}


def test_sampling_is_deterministic_and_does_not_change_storage() -> None:
    stores = [filled(ReplayStore(100, length=4, seed=7), stream(0, 5, 4)) for _ in range(2)]
    for _ in range(3):
        one, two = stores[0].sample(5), stores[1].sample(5)
        for name in ALL_KEYS:
            np.testing.assert_array_equal(one[name], two[name])
    batch = stores[0].sample(200)
    assert batch["is_first"][:, 0].all()
    trace(batch)  # stored is_first (inside windows) was not overwritten by earlier samples


@pytest.mark.parametrize(
    ("field", "mutate"),
    [
        ("image", lambda c: c.obs.update(image=np.zeros((4, 4, 4, 3), np.uint8))),
        ("proprio", lambda c: c.obs.update(proprio=c.obs["proprio"].astype(np.float64))),
        ("action", lambda c: setattr(c, "action", np.zeros((4, 3), np.float32))),
        ("reward", lambda c: c.reward.__setitem__(2, np.nan)),
        ("depth", lambda c: c.obs["depth"].__setitem__((1, 0, 0, 0), np.inf)),
        ("depth", lambda c: c.obs.pop("depth")),
        ("segmentation", lambda c: c.obs.update(segmentation=np.zeros((4, SIZE, SIZE), np.int32))),
        ("is_terminal", lambda c: c.is_terminal.__setitem__(0, True)),  # without is_last
    ],
)
def test_rejected_chunks_change_nothing(field: str, mutate) -> None:
    store = filled(ReplayStore(100, length=3), stream(0, 2, 4))
    before, state = store.stats(), store._rng.bit_generator.state
    bad = make_chunk(0, 2, 8, 4)
    mutate(bad)
    with pytest.raises(ReplayFormatError, match=field):
        store.add(bad)
    assert store.stats() == {**before, "rejected": 1}
    assert len(store) == 8 and store._rng.bit_generator.state == state
    store.add(make_chunk(0, 2, 8, 4))  # the stream continues as if the bad chunk never came
    assert store.num_windows == 10
    trace(store.sample(50))


def test_shape_mismatch_message_names_both_shapes() -> None:
    store = filled(ReplayStore(100, length=3), stream(0, 1, 4))
    bad = make_chunk(0, 1, 4, 4)
    bad.obs["image"] = np.zeros((4, 16, 16, 3), np.uint8)
    with pytest.raises(ReplayFormatError, match=r"'image'.*\[16, 16, 3\].*\[8, 8, 3\]"):
        store.add(bad)


def test_rejects_chunk_larger_than_capacity_and_sampling_empty() -> None:
    store = ReplayStore(5, length=2)
    with pytest.raises(RuntimeError, match="no window of length 2"):
        store.sample(1)
    with pytest.raises(ReplayFormatError, match="capacity=5"):
        store.add(make_chunk(0, 0, 0, 6))
    assert len(store) == 0 and store.stats()["rejected"] == 1
    with pytest.raises(ValueError, match="capacity"):
        ReplayStore(3, length=4)


def test_keys_filter() -> None:
    store = filled(ReplayStore(100, length=3, keys=["proprio", "image"]), stream(0, 2, 4))
    batch = store.sample(4)
    assert list(batch) == ["proprio", "image", "action", "reward", "is_first", "is_last", "is_terminal"]
    bad = make_chunk(0, 2, 8, 4)
    del bad.obs["proprio"]
    with pytest.raises(ReplayFormatError, match="proprio"):
        store.add(bad)
    with pytest.raises(ValueError, match="keys"):
        ReplayStore(100, length=3, keys=["action"])


def test_save_load_restores_exactly(tmp_path) -> None:
    store = ReplayStore(30, length=5, seed=11, overlap=1, keys=["proprio", "depth"])
    for a, b in zip(stream(0, 6, 4, overlap=1), stream(2, 6, 5, overlap=1, runner=3)):
        store.add(a)
        store.add(b)
    store.sample(9)
    assert store.stats()["evicted"] > 0 and store.num_windows > 0
    bad = make_chunk(0, 6, 18, 4)
    bad.reward[0] = np.nan
    with pytest.raises(ReplayFormatError):
        store.add(bad)
    store.save(tmp_path / "replay")
    assert sorted(p.name for p in (tmp_path / "replay").iterdir()) == [
        "field.action.npy", "field.depth.npy", "field.is_first.npy", "field.is_last.npy",
        "field.is_terminal.npy", "field.proprio.npy", "field.reward.npy", "replay.json", "replay.npz"]
    json.loads((tmp_path / "replay" / "replay.json").read_text())
    loaded = ReplayStore.load(tmp_path / "replay")
    assert loaded.stats() == store.stats() and len(loaded) == len(store)
    for chunk in (None, make_chunk(0, 6, 18, 4), make_chunk(2, 6, 24, 5, runner=3)):
        if chunk is not None:  # stream state restored: both continue the same segments
            store.add(chunk)
            loaded.add(chunk)
        one, two = store.sample(16), loaded.sample(16)
        assert list(one) == list(two)
        for name in one:
            np.testing.assert_array_equal(one[name], two[name])
            assert one[name].dtype == two[name].dtype
    assert loaded.stats() == store.stats()


def test_save_load_empty_store(tmp_path) -> None:
    ReplayStore(10, length=2, seed=4).save(tmp_path)
    loaded = ReplayStore.load(tmp_path)
    assert len(loaded) == 0 and loaded.num_windows == 0
    filled(loaded, stream(0, 1, 3))
    assert loaded.num_windows == 2


@pytest.mark.parametrize("evict_during", [0, 1, 3])
def test_save_while_inserting_keeps_the_snapshot_minus_what_was_evicted(tmp_path, evict_during) -> None:
    """A checkpoint written in pieces while chunks keep arriving holds the store as it was when the
    checkpoint began, less the chunks the live store evicted before their rows were copied."""
    chunks = stream(0, 6, 4) + stream(1, 8, 4, runner=2)
    store, reference = ReplayStore(40, length=3, seed=5), ReplayStore(40, length=3, seed=5)
    for chunk in chunks[:10]:  # 40 rows: full
        store.add(chunk)
        reference.add(chunk)
    job = store.begin_save(tmp_path / "ckpt", piece_rows=5)
    assert job.copy_piece(store)  # rows 0..4 copied before anything is evicted
    for chunk in chunks[10:10 + evict_during]:  # each evicts one 4-row chunk from the tail
        store.add(chunk)
    while job.copy_piece(store):
        pass
    job.finish()
    assert job.rows_lost == max(0, 4 * evict_during - 5)  # evicted before they were copied
    loaded = ReplayStore.load(tmp_path / "ckpt")
    reference._evict_to(job.valid_from)
    assert loaded.stats() == reference.stats() and len(loaded) == len(reference)
    one, two = loaded.sample(32), reference.sample(32)
    trace(one)
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])
    loaded.add(chunks[10 + evict_during])  # stream state survives: both link it alike
    reference.add(chunks[10 + evict_during])
    assert loaded.num_windows == reference.num_windows


def test_capacity_bounded_in_bytes(tmp_path) -> None:
    row = SIZE * SIZE * 3 + SIZE * SIZE * 4 + 2 * 4 + 2 * 4 + 4 + 3  # image, depth, proprio, action, reward, flags
    store = ReplayStore(1000, length=3, max_bytes=10 * row + row // 2)
    filled(store, stream(0, 6, 4))
    assert store.capacity == 10 and len(store) <= 10 and store.stats()["evicted"] == 4
    assert sum(ring.nbytes for ring in store._data.values()) <= 10 * row + row // 2
    store.save(tmp_path)
    assert ReplayStore.load(tmp_path).capacity == 10
    with pytest.raises(ReplayFormatError, match="max_bytes"):
        ReplayStore(1000, length=3, max_bytes=2 * row).add(make_chunk(0, 0, 0, 4))


def test_save_job_refuses_to_finish_early(tmp_path) -> None:
    store = filled(ReplayStore(40, length=3), stream(0, 3, 4))
    job = store.begin_save(tmp_path, piece_rows=4)
    with pytest.raises(RuntimeError, match="not copied"):
        job.finish()


# ----------------------------------------------------------------------------------------------
# ReplayRatio.


def test_ratio_one_update_per_32_env_steps() -> None:
    ratio = ReplayRatio(2.0, batch_steps=64)
    assert [ratio.updates_due(n) for n in (0, 31, 32, 63, 64, 160)] == [0, 0, 1, 0, 1, 3]
    assert ratio.updates == 5


def test_ratio_carries_fractional_credit() -> None:
    ratio = ReplayRatio(0.3, batch_steps=16)
    due = [ratio.updates_due(n) for n in range(0, 1601, 7)]
    assert sum(due) == ratio.updates == 1596 * 3 // 160  # floor(1596 * 0.3 / 16)
    assert set(due) <= {0, 1}
    assert ReplayRatio(0.3, batch_steps=1).updates_due(10) == 3  # no float drift below 3


def test_ratio_min_steps_and_errors() -> None:
    ratio = ReplayRatio(2, batch_steps=64, min_steps=100)
    assert [ratio.updates_due(n) for n in (50, 100, 131, 132, 200)] == [0, 0, 0, 1, 2]
    with pytest.raises(ValueError, match="went down"):
        ratio.updates_due(199)
    for kwargs in ({"ratio": 0, "batch_steps": 1}, {"ratio": 1, "batch_steps": 0},
                   {"ratio": float("nan"), "batch_steps": 1}, {"ratio": 1, "batch_steps": 1, "min_steps": -1}):
        with pytest.raises(ValueError):
            ReplayRatio(**kwargs)


def test_ratio_state_round_trip() -> None:
    ratio = ReplayRatio(1.5, batch_steps=40, min_steps=10)
    ratio.updates_due(57)  # 47 counted steps: 70.5 / 40 -> 1 update, credit 30.5/40
    state = json.loads(json.dumps(ratio.state_dict()))
    assert Fraction(state["credit"]) == Fraction(61, 80)
    other = ReplayRatio(1.5, batch_steps=40, min_steps=10)
    other.load_state_dict(state)
    steps = range(60, 400, 13)
    assert [ratio.updates_due(n) for n in steps] == [other.updates_due(n) for n in steps]
    assert other.updates == ratio.updates
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict({"env_steps": 3})
