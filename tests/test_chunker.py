"""SequenceChunker: K lock-step streams cut into T-row chunks, with and without overlap."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from recore_dist.data import SequenceChunk, SequenceChunker, decode_chunk, encode_chunk

K = 3
EPISODE_ROWS = (5, 11, 3)  # rows per episode (reset row included) for env 0, 1, 2
TERMINAL = (True, False, True)  # env 1 ends by time limit: is_last without is_terminal
SIZE = 8


def flags_at(t: int, k: int) -> tuple[bool, bool, bool]:
    i = t % EPISODE_ROWS[k]
    last = i == EPISODE_ROWS[k] - 1
    return i == 0, last, last and TERMINAL[k]


def version_at(t: int) -> int:
    return t // 4


def step(t: int, version: int | None = None) -> dict[str, Any]:
    """Inputs of global step ``t``; every value encodes (t, k) so rows can be traced."""
    image = np.zeros((K, SIZE, SIZE, 3), np.uint8)
    proprio = np.zeros((K, 2), np.float32)
    action = np.zeros((K, 2), np.float32)
    reward = np.zeros(K, np.float32)
    flags = np.zeros((3, K), bool)
    for k in range(K):
        image[k] = (t * 3 + k) % 256
        proprio[k] = (t, k)
        action[k] = (-t, k)
        flags[:, k] = flags_at(t, k)
        reward[k] = 0.0 if flags[0, k] else t + 0.25 * k
    obs = {"image": image, "proprio": proprio, "is_first": flags[0], "is_last": flags[1], "is_terminal": flags[2]}
    return dict(
        obs=obs, action=action, reward=reward,
        policy_version=version_at(t) if version is None else version,
        intervention_ids=[f"iv{t}-{k}" for k in range(K)],
        splits=["train", "heldout", "train" if t % 2 else "heldout"],
    )


def run(chunker: SequenceChunker, steps: int, versions: dict[int, int] | None = None) -> list[list[SequenceChunk]]:
    """Feed ``steps`` steps; return the non-empty results of ``add`` in order."""
    emitted = []
    for t in range(steps):
        out = chunker.add(**step(t, (versions or {}).get(t)))
        if out:
            emitted.append(out)
    return emitted


def check_rows(chunk: SequenceChunk, k: int, start: int, length: int) -> None:
    """Chunk rows hold global steps ``start .. start+length-1`` of env ``k``."""
    ts = np.arange(start, start + length)
    np.testing.assert_array_equal(chunk.obs["proprio"][:, 0], ts)
    np.testing.assert_array_equal(chunk.obs["proprio"][:, 1], k)
    np.testing.assert_array_equal(chunk.obs["image"][:, 0, 0, 0], (ts * 3 + k) % 256)
    np.testing.assert_array_equal(chunk.action[:, 0], -ts)
    expected = np.array([flags_at(int(t), k) for t in ts])
    np.testing.assert_array_equal(chunk.is_first, expected[:, 0])
    np.testing.assert_array_equal(chunk.is_last, expected[:, 1])
    np.testing.assert_array_equal(chunk.is_terminal, expected[:, 2])
    np.testing.assert_array_equal(chunk.reward, np.where(expected[:, 0], 0.0, ts + 0.25 * k).astype(np.float32))
    last = start + length - 1
    assert chunk.intervention_id == f"iv{last}-{k}"
    assert chunk.split == step(last)["splits"][k]


def test_rows_flags_and_seq_across_episode_boundaries() -> None:
    length = 8
    chunker = SequenceChunker(K, length, env_name="dmc:walker-walk", runner_id=4)
    emitted = run(chunker, 3 * length + 5)
    assert len(emitted) == 3 and chunker.pending_rows == 5
    for c, chunks in enumerate(emitted):
        assert [ch.env_index for ch in chunks] == [0, 1, 2]
        for k, chunk in enumerate(chunks):
            assert chunk.seq == c and chunk.runner_id == 4 and chunk.env_name == "dmc:walker-walk"
            assert chunk.length == length and list(chunk.obs) == ["image", "proprio"]
            assert chunk.policy_version == version_at(c * length)  # minimum over the rows
            check_rows(chunk, k, c * length, length)
            chunk.validate()
            assert decode_chunk(encode_chunk(chunk), expected_length=length).equals(chunk)
    # Episodes really cross chunk boundaries: env 1 (11-row episodes) starts one mid-chunk 1.
    assert emitted[1][1].is_first.tolist() == [False, False, False, True, False, False, False, False]
    assert emitted[0][2].is_terminal.sum() == 2 and not emitted[0][1].is_last.any()


def test_emitted_chunks_do_not_alias_later_buffers() -> None:
    chunker = SequenceChunker(K, 4, env_name="x")
    first = run(chunker, 4)[0]
    snapshot = [ch.obs["proprio"].copy() for ch in first]
    for t in range(4, 11):
        chunker.add(**step(t))
    for chunk, before in zip(first, snapshot):
        np.testing.assert_array_equal(chunk.obs["proprio"], before)


def test_policy_version_is_the_minimum_over_rows() -> None:
    chunker = SequenceChunker(K, 4, env_name="x")
    emitted = run(chunker, 8, versions={0: 9, 1: 9, 2: 3, 3: 9, 4: 5, 5: 6, 6: 7, 7: 8})
    assert [chunks[0].policy_version for chunks in emitted] == [3, 5]


def test_overlap_carries_the_last_rows_into_the_next_chunk() -> None:
    length, overlap = 8, 3
    chunker = SequenceChunker(K, length, env_name="x", overlap=overlap)
    versions = {t: 10 + t for t in range(30)}
    versions[6] = 1  # in chunk 0's overlap tail: chunk 1 must report it too
    emitted = run(chunker, 30, versions=versions)
    stride = length - overlap
    assert len(emitted) == 1 + (30 - length) // stride
    for c, chunks in enumerate(emitted):
        for k, chunk in enumerate(chunks):
            assert chunk.seq == c
            check_rows(chunk, k, c * stride, length)
    assert [chunks[0].policy_version for chunks in emitted] == [1, 1, 20, 25, 30][: len(emitted)]
    np.testing.assert_array_equal(emitted[0][0].obs["proprio"][-overlap:], emitted[1][0].obs["proprio"][:overlap])


def test_length_one_chunks() -> None:
    chunker = SequenceChunker(K, 1, env_name="x")
    for t in range(3):
        chunks = chunker.add(**step(t))
        assert [ch.seq for ch in chunks] == [t] * K
        for k, chunk in enumerate(chunks):
            check_rows(chunk, k, t, 1)


def test_debug_poisons_fresh_buffers() -> None:
    chunker = SequenceChunker(K, 4, env_name="x", debug=True)
    chunker.add(**step(0))
    buffers = chunker._buffers  # noqa: SLF001 - looking at unwritten rows on purpose
    assert np.isnan(buffers["proprio"][:, 1:]).all() and np.isnan(buffers["reward"][:, 1:]).all()
    assert (buffers["image"][:, 1:] == 0xAB).all()
    assert (buffers["is_first"][:, 1:].view(np.uint8) == 0xAB).all()
    assert (buffers["proprio"][:, 0, 0] == 0).all()


def _with(t: int = 0, **changes: Any) -> dict[str, Any]:
    inputs = step(t)
    for key, value in changes.items():
        if key in inputs:
            inputs[key] = value
        else:
            inputs["obs"][key] = value
    return inputs


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        (_with(is_first=np.zeros(K, np.int8)), r"'is_first'.*bool"),
        (_with(is_last=np.zeros(K + 1, bool)), r"'is_last'.*bool \[3\]"),
        (_with(image=np.zeros((K + 1, SIZE, SIZE, 3), np.uint8)), r"'image': leading dim must be num_envs=3"),
        (_with(action=np.zeros(K, np.float32)), r"action must be \[3, A\]"),
        (_with(reward=np.zeros((K, 1), np.float32)), r"reward \[3\]"),
        (_with(reward=np.zeros(K, np.float32), action=np.zeros((K, 2, 1))), r"action must be"),
        (_with(Image=np.zeros((K, 1), np.uint8)), r"'Image'"),
        (_with(action_mask=np.zeros((K, 1)), splits=["train", "test", "train"]), r"splits must be 3"),
        (_with(intervention_ids=["a", "b"]), r"intervention_ids must be 3"),
        (_with(policy_version=-1), r"policy_version must be an int >= 0, got -1"),
        (_with(policy_version=True), r"policy_version"),
    ],
)
def test_bad_inputs_raise_value_error(inputs: dict[str, Any], match: str) -> None:
    chunker = SequenceChunker(K, 4, env_name="x")
    with pytest.raises(ValueError, match=match):
        chunker.add(**inputs)


def test_reserved_and_missing_keys() -> None:
    chunker = SequenceChunker(K, 4, env_name="x")
    inputs = step(0)
    inputs["obs"]["reward"] = np.zeros((K, 1), np.float32)
    with pytest.raises(ValueError, match="'reward' is reserved"):
        chunker.add(**inputs)
    inputs = step(0)
    del inputs["obs"]["is_terminal"]
    with pytest.raises(ValueError, match=r"missing flags \['is_terminal'\]"):
        chunker.add(**inputs)
    inputs = step(0)
    inputs["obs"] = {key: inputs["obs"][key] for key in ("is_first", "is_last", "is_terminal")}
    with pytest.raises(ValueError, match="no observation field"):
        chunker.add(**inputs)


def test_fields_are_fixed_by_the_first_call() -> None:
    chunker = SequenceChunker(K, 4, env_name="x")
    chunker.add(**step(0))
    changed = step(1)
    changed["obs"]["image"] = changed["obs"]["image"].astype(np.float32)
    with pytest.raises(ValueError, match=r"'image': expected per-env shape \(8, 8, 3\) dtype uint8, got .* float32"):
        chunker.add(**changed)
    extra = step(1)
    extra["obs"]["depth"] = np.zeros((K, SIZE, SIZE, 1), np.float32)
    with pytest.raises(ValueError, match="fields changed"):
        chunker.add(**extra)
    wider = step(1)
    wider["action"] = np.zeros((K, 3), np.float32)
    with pytest.raises(ValueError, match=r"'action': expected per-env shape \(2,\)"):
        chunker.add(**wider)
    assert chunker.pending_rows == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(num_envs=0), "num_envs"),
        (dict(length=0), "length"),
        (dict(length=5000), "length"),
        (dict(overlap=4), r"overlap must be an int in \[0, length=4\), got 4"),
        (dict(overlap=-1), "overlap"),
        (dict(env_name=""), "env_name"),
        (dict(runner_id=-2), "runner_id"),
    ],
)
def test_constructor_checks(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = dict(num_envs=K, length=4, env_name="x")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        SequenceChunker(**args)
