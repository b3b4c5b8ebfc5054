"""SequenceChunk and its msgpack codec: exact round trips, validation, hostile payloads, fuzzing."""

from __future__ import annotations

import ast
import inspect
import pickle
import tracemalloc
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recore_dist.data import (
    DEFAULT_MAX_CHUNKS,
    ChunkEncoder,
    SCHEMA_VERSION,
    ChunkFormatError,
    SequenceChunk,
    decode_chunk,
    decode_chunks,
    encode_chunk,
    encode_chunks,
)
from recore_dist.data import chunk as chunk_module

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_chunk(length: int = 64, size: int = 64, *, seed: int = 0, **meta: Any) -> SequenceChunk:
    """A realistic chunk: two episodes (the first terminal), image, proprio, depth, seg, clean image."""
    rng = np.random.default_rng(seed)
    is_first, is_last, is_terminal = (np.zeros(length, bool) for _ in range(3))
    is_first[0] = True
    if length > 2:
        cut = length * 5 // 8
        is_last[cut - 1] = is_terminal[cut - 1] = True
        is_first[cut] = True
    reward = rng.standard_normal(length).astype(np.float32)
    reward[is_first] = 0.0
    action = rng.uniform(-1, 1, (length, 6)).astype(np.float32)
    action[is_last] = 0.0
    defaults: dict[str, Any] = dict(
        policy_version=7, env_name="dmc:walker-walk", intervention_id="color:3", split="train",
        runner_id=2, seq=11, env_index=1,
    )
    defaults.update(meta)
    return SequenceChunk(
        obs={
            "image": rng.integers(0, 256, (length, size, size, 3), dtype=np.uint8),
            "proprio": rng.standard_normal((length, 24)).astype(np.float32),
            "depth": rng.uniform(0, 100, (length, size, size, 1)).astype(np.float32),
            "segmentation": rng.integers(0, 9, (length, size, size), dtype=np.int32),
            "clean_image": rng.integers(0, 256, (length, size, size, 3), dtype=np.uint8),
        },
        action=action, reward=reward, is_first=is_first, is_last=is_last, is_terminal=is_terminal,
        **defaults,
    )


def raw_encode(chunk: SequenceChunk) -> bytes:
    """Encode WITHOUT validation (dtype strings as numpy writes them), to feed bad chunks to decode."""
    header: dict[str, Any] = {"schema": SCHEMA_VERSION, "length": int(np.shape(chunk.reward)[0])}
    for key in ("policy_version", "runner_id", "seq", "env_index", "env_name", "intervention_id", "split"):
        header[key] = getattr(chunk, key)
    header["fields"] = [
        {"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape), "data": arr.tobytes()}
        for name, arr in chunk.arrays()
    ]
    return msgpack.packb(header, use_bin_type=True)


def small_payload(length: int = 4, size: int = 8) -> bytes:
    return encode_chunk(make_chunk(length, size))


def raw_header(length: int = 4, size: int = 8) -> dict[str, Any]:
    return msgpack.unpackb(small_payload(length, size), raw=False)


def field(header: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in header["fields"] if f["name"] == name)


# ---------------------------------------------------------------------------------------------
# Round trips.


def test_round_trip_realistic_chunk_is_exact() -> None:
    chunk = make_chunk()
    out = decode_chunk(encode_chunk(chunk), expected_length=64)
    assert out.equals(chunk)
    assert out.length == 64 and out.nbytes == chunk.nbytes
    assert list(out.obs) == ["image", "proprio", "depth", "segmentation", "clean_image"]
    for name, arr in chunk.arrays():
        got = dict(out.arrays())[name]
        assert got.dtype == arr.dtype and got.shape == arr.shape and got.tobytes() == arr.tobytes()
        assert got.flags.writeable and got.flags.c_contiguous
    assert out.metadata() == chunk.metadata()
    assert out.metadata()["split"] == "train" and out.env_index == 1 and out.seq == 11


@pytest.mark.parametrize("code", sorted(chunk_module.ALLOWED_DTYPES))
def test_round_trip_every_allowed_dtype(code: str) -> None:
    chunk = make_chunk(5, 4)
    dtype = np.dtype(code)
    rng = np.random.default_rng(1)
    high = 2 if dtype.kind == "b" else 256
    value = np.frombuffer(rng.integers(0, high, 30 * dtype.itemsize, dtype=np.uint8).tobytes(), dtype)
    value = value.reshape(5, 6).copy()
    if dtype.kind == "f":
        value[~np.isfinite(value)] = 1.5  # NaN payloads differ bitwise; keep the test exact.
    chunk.obs["extra"] = value
    out = decode_chunk(encode_chunk(chunk))
    assert out.obs["extra"].dtype == dtype and out.obs["extra"].tobytes() == value.tobytes()
    assert out.equals(chunk)


def test_round_trip_edge_shapes_and_big_endian_input() -> None:
    chunk = make_chunk(1, 4, policy_version=2**63 - 1, seq=0, env_name="x" * 256, intervention_id="")
    chunk.obs["empty"] = np.zeros((1, 0, 3), np.float32)
    chunk.obs["proprio"] = chunk.obs["proprio"].astype(">f4")  # encoded as little-endian
    chunk.obs["strided"] = np.arange(20, dtype=np.int16).reshape(1, 20)[:, ::2]
    out = decode_chunk(encode_chunk(chunk))
    assert out.obs["empty"].shape == (1, 0, 3)
    assert out.obs["proprio"].dtype == np.dtype("<f4")
    np.testing.assert_array_equal(out.obs["proprio"], chunk.obs["proprio"])
    np.testing.assert_array_equal(out.obs["strided"], np.arange(0, 20, 2, dtype=np.int16)[None])
    assert out.policy_version == 2**63 - 1 and out.env_name == "x" * 256


def test_batch_round_trip_and_errors() -> None:
    chunks = [make_chunk(8, 8, seed=i, seq=i) for i in range(3)]
    out = decode_chunks(encode_chunks(chunks), expected_length=8)
    assert len(out) == 3 and all(a.equals(b) for a, b in zip(out, chunks))
    assert decode_chunks(encode_chunks([])) == []
    bad = msgpack.packb([encode_chunk(chunks[0]), b"\xc1"], use_bin_type=True)
    with pytest.raises(ChunkFormatError, match=r"chunks\[1\]"):
        decode_chunks(bad)
    with pytest.raises(ChunkFormatError, match=r"chunks\[0\]: header 'length'"):
        decode_chunks(encode_chunks(chunks[:1]), expected_length=16)
    with pytest.raises(ChunkFormatError, match="expected bin"):
        decode_chunks(msgpack.packb(["text"]))
    with pytest.raises(ChunkFormatError, match="must be a msgpack array"):
        decode_chunks(encode_chunk(chunks[0]))
    with pytest.raises(ChunkFormatError, match="max_array_len"):
        decode_chunks(msgpack.packb([b"x"] * 4), max_count=3)
    with pytest.raises(ChunkFormatError, match="at most"):
        encode_chunks([chunks[0]] * (DEFAULT_MAX_CHUNKS + 1))


def test_chunk_encoder_gives_the_same_bytes_and_guards_its_buffer() -> None:
    encoder = ChunkEncoder()
    for count in (3, 0, 5, 1):  # buffers are reused across batches of other sizes
        chunks = [make_chunk(8, 8, seed=10 * count + i, seq=i) for i in range(count)]
        with encoder.encode(chunks) as view:
            assert bytes(view) == encode_chunks(chunks)
            assert all(a.equals(b) for a, b in zip(decode_chunks(view, expected_length=8), chunks))
    chunks = [make_chunk(8, 8, seed=1)]
    held = encoder.encode(chunks)
    with pytest.raises(BufferError):  # never rewrites a buffer someone still reads
        encoder.encode(chunks)
    held.release()
    with encoder.encode(chunks) as view:
        assert bytes(view) == encode_chunks(chunks)
    bad = make_chunk(8, 8, seed=2)
    bad.reward[3] = np.nan
    with pytest.raises(ChunkFormatError, match="non-finite"):
        encoder.encode([chunks[0], bad])
    with pytest.raises(ChunkFormatError, match="at most"):
        encoder.encode([chunks[0]] * (DEFAULT_MAX_CHUNKS + 1))
    with encoder.encode(chunks) as view:  # a failed batch leaves the encoder usable
        assert bytes(view) == encode_chunks(chunks)


def test_expected_length_mismatch() -> None:
    with pytest.raises(ChunkFormatError, match="expected_length=64"):
        decode_chunk(small_payload(), expected_length=64)


# ---------------------------------------------------------------------------------------------
# validate() catches what decode catches.


def _set(attr: str, value: Any) -> Callable[[SequenceChunk], None]:
    return lambda c: setattr(c, attr, value)


def _set_obs(name: str, value: Callable[[SequenceChunk], Any]) -> Callable[[SequenceChunk], None]:
    return lambda c: c.obs.__setitem__(name, value(c))


def _nan_reward(c: SequenceChunk) -> None:
    c.reward[2] = np.nan


def _inf_action(c: SequenceChunk) -> None:
    c.action[1, 3] = -np.inf


def _orphan_terminal(c: SequenceChunk) -> None:
    c.is_terminal[3] = True


INVALID_CHUNKS: list[tuple[str, Callable[[SequenceChunk], None], str]] = [
    ("nan reward", _nan_reward, r"'reward'.*non-finite"),
    ("inf action", _inf_action, r"'action'.*non-finite"),
    ("float image", _set_obs("image", lambda c: c.obs["image"].astype(np.float32)), r"'image'.*\|u1"),
    ("3-d image", _set_obs("image", lambda c: c.obs["image"][..., 0]), r"'image'.*4 dims"),
    ("T mismatch", _set_obs("depth", lambda c: c.obs["depth"][:-1]), r"'depth'.*leading dim 3 != T=4"),
    ("short reward", _set("reward", np.zeros(3, np.float32)), r"leading dim 4 != T=3"),
    ("f64 reward", _set("reward", np.zeros(4, np.float64)), r"'reward'.*<f4"),
    ("int flags", _set("is_first", np.zeros(4, np.int8)), r"'is_first'.*\|b1"),
    ("1-d action", _set("action", np.zeros(4, np.float32)), r"'action'.*2 dims"),
    ("0-dim action", _set("action", np.zeros((4, 0), np.float32)), r"'action'.*>= 1"),
    ("6 dims", _set_obs("big", lambda c: np.zeros((4, 1, 1, 1, 1, 1), np.uint8)), r"'big'.*ndim 6"),
    ("uint32", _set_obs("ids", lambda c: np.zeros((4, 2), np.uint32)), r"'ids'.*dtype '<u4'"),
    ("complex", _set_obs("z", lambda c: np.zeros((4, 2), np.complex64)), r"'z'.*dtype '<c8'"),
    ("uppercase name", _set_obs("Image", lambda c: c.obs["image"]), r"'Image'"),
    ("dotted name", _set_obs("a..b", lambda c: c.obs["image"]), r"'a\.\.b'"),
    ("long name", _set_obs("a" * 33, lambda c: c.obs["image"]), r"'a{33}'"),
    ("reserved name", _set_obs("reward", lambda c: c.obs["proprio"]), r"'reward' is reserved"),
    ("orphan terminal", _orphan_terminal, r"'is_terminal'.*rows \[3\]"),
    ("split", _set("split", "test"), r"split.*'test'"),
    ("negative version", _set("policy_version", -1), r"policy_version: -1 out of range"),
    ("huge seq", _set("seq", 2**63), r"seq: 9223372036854775808 out of range"),
    ("bool runner", _set("runner_id", True), r"runner_id: expected an int, got bool"),
    ("empty env_name", _set("env_name", ""), r"env_name: length 0"),
    ("long intervention", _set("intervention_id", "i" * 257), r"intervention_id: length 257"),
    ("str env_index", _set("env_index", "0"), r"env_index: expected an int, got str"),
]


@pytest.mark.parametrize(("label", "mutate", "match"), INVALID_CHUNKS, ids=[c[0] for c in INVALID_CHUNKS])
def test_validate_and_decode_reject_the_same_chunks(label: str, mutate: Callable, match: str) -> None:
    chunk = make_chunk(4, 8)
    chunk.validate()
    mutate(chunk)
    with pytest.raises(ChunkFormatError, match=match):
        chunk.validate()
    with pytest.raises(ChunkFormatError, match=match):
        encode_chunk(chunk)
    with pytest.raises(ChunkFormatError):
        decode_chunk(raw_encode(chunk))


def test_validate_rejects_non_arrays_and_empty_obs() -> None:
    chunk = make_chunk(4, 8)
    chunk.obs["proprio"] = [[0.0]] * 4  # type: ignore[assignment]
    with pytest.raises(ChunkFormatError, match="'proprio': expected a numpy array, got list"):
        chunk.validate()
    chunk.obs = {}
    with pytest.raises(ChunkFormatError, match="obs: need a non-empty dict"):
        chunk.validate()
    chunk.obs = {"image": np.zeros((4, 8, 8, 3), object)}
    with pytest.raises(ChunkFormatError, match="'image': dtype '\\|O'"):
        chunk.validate()


# ---------------------------------------------------------------------------------------------
# Hand-crafted hostile payloads.


def _pack(header: Any) -> bytes:
    return msgpack.packb(header, use_bin_type=True)


def _edit(fn: Callable[[dict[str, Any]], Any]) -> bytes:
    header = raw_header()
    fn(header)
    return _pack(header)


def _edit_field(target: str, /, **changes: Any) -> bytes:
    return _edit(lambda h: field(h, target).update(changes))


def _drop_field(name: str) -> bytes:
    return _edit(lambda h: h.__setitem__("fields", [f for f in h["fields"] if f["name"] != name]))


def _reward_bytes(value: float) -> bytes:
    return np.array([0.0, value, 0.0, 0.0], "<f4").tobytes()


def _action_with_inf() -> bytes:
    header = raw_header()
    action = np.frombuffer(field(header, "action")["data"], "<f4").copy()
    action[5] = np.inf
    field(header, "action")["data"] = action.tobytes()
    return _pack(header)


def _t_mismatch_image_vs_reward() -> bytes:
    header = raw_header()
    header["length"] = 3
    for f in header["fields"]:
        if f["name"] != "image":  # every other field is trimmed to T=3, the image keeps 4 rows
            f["data"] = f["data"][: len(f["data"]) * 3 // 4]
            f["shape"][0] = 3
    return _pack(header)


def _duplicate(name: str) -> bytes:
    return _edit(lambda h: h["fields"].append(dict(field(h, name))))


def _item(key: str, value: Any) -> bytes:
    return _edit(lambda h: h.__setitem__(key, value))


def _drop(key: str) -> bytes:
    return _edit(lambda h: h.pop(key))


VALID = small_payload()
HOSTILE: list[tuple[str, Any, str]] = [
    ("truncated", VALID[:-10], r"payload: not a single valid msgpack"),
    ("truncated header", VALID[:5], r"payload: not a single valid msgpack"),
    ("extra garbage", VALID + b"\x00", r"payload: not a single valid msgpack.*ExtraData"),
    ("empty", b"", r"payload: size 0"),
    ("not bytes", "text", r"payload: expected bytes, got str"),
    ("none", None, r"payload: expected bytes, got NoneType"),
    ("top-level list", _pack([1, 2, 3]), r"top level must be a map, got list"),
    ("top-level int", _pack(5), r"top level must be a map, got int"),
    ("schema 2", _item("schema", 2), r"'schema': unsupported schema version 2"),
    ("schema missing", _drop("schema"), r"'schema': unsupported schema version None"),
    ("schema str", _item("schema", "1"), r"'schema': unsupported schema version '1'"),
    ("schema float", _item("schema", 1.0), r"'schema': unsupported schema version 1.0"),
    ("missing seq", _drop("seq"), r"missing keys \['seq'\]"),
    ("extra key", _item("pickle", b"x"), r"unexpected keys \[\"'pickle'\"\]"),
    ("dtype object", _edit_field("image", dtype="object"), r"'image': dtype 'object' not allowed"),
    ("dtype |O", _edit_field("image", dtype="|O"), r"'image': dtype '\|O' not allowed"),
    ("dtype >f4", _edit_field("reward", dtype=">f4"), r"'reward': dtype '>f4' not allowed"),
    ("dtype V8", _edit_field("depth", dtype="V8"), r"'depth': dtype 'V8' not allowed"),
    ("dtype f4 no order", _edit_field("depth", dtype="f4"), r"'depth': dtype 'f4' not allowed"),
    ("dtype int", _edit_field("depth", dtype=4), r"'depth': dtype 4 not allowed"),
    ("shape/bytes", _edit_field("image", shape=[4, 8, 8, 4]), r"'image': buffer has 768 bytes.*needs 1024"),
    ("short buffer", _edit_field("proprio", data=b"\x00" * 7), r"'proprio': buffer has 7 bytes"),
    ("T image vs reward", _t_mismatch_image_vs_reward(), r"'image': leading dim 4 != header length T=3"),
    ("T reward", _edit_field("reward", shape=[3], data=b"\x00" * 12), r"'reward': leading dim 3 != header length T=4"),
    ("nan reward", _edit_field("reward", data=_reward_bytes(float("nan"))), r"'reward'.*non-finite.*nan"),
    ("inf reward", _edit_field("reward", data=_reward_bytes(float("inf"))), r"'reward'.*non-finite.*inf"),
    ("inf action", _action_with_inf(), r"'action'.*non-finite.*flat index 5"),
    ("negative dim", _edit_field("image", shape=[4, -8, 8, 3]), r"'image' shape \[4, -8, 8, 3\]: -8 out of range"),
    ("huge shape", _edit_field("image", shape=[10**9, 10**9]), r"'image' shape \[1000000000, 1000000000\]"),
    ("huge dims", _edit_field("image", shape=[4, 2**24, 2**24, 2**24]), r"'image': buffer has 768 bytes"),
    ("7 dims", _edit_field("image", shape=[4, 1, 1, 1, 1, 1, 1]), r"'image': shape must be a list of 1..5"),
    ("0 dims", _edit_field("image", shape=[]), r"'image': shape must be a list"),
    ("shape int", _edit_field("image", shape=4), r"'image': shape must be a list"),
    ("shape float", _edit_field("image", shape=[4.0, 8, 8, 3]), r"'image' shape.*expected an int, got float"),
    ("ext in data", _edit_field("image", data=msgpack.ExtType(1, b"abcd")), r"payload.*max_ext_len"),
    ("timestamp", _item("seq", msgpack.Timestamp(1, 0)), r"payload.*max_ext_len"),
    ("data as str", _edit_field("image", data="abc"), r"'image': data must be msgpack bin, got str"),
    ("bool byte 2", _edit_field("is_first", data=b"\x01\x02\x00\x00"), r"'is_first': bool buffer holds byte 2"),
    ("name ..", _edit_field("image", name=".."), r"field name '\.\.' does not match"),
    ("name upper", _edit_field("image", name="Image"), r"field name 'Image' does not match"),
    ("name bytes", _edit_field("image", name=b"image"), r"field name b'image' does not match"),
    ("duplicate image", _duplicate("image"), r"field 'image': duplicated"),
    ("duplicate reward", _duplicate("reward"), r"field 'reward': duplicated"),
    ("split test", _item("split", "test"), r"split: expected one of \['train', 'heldout'\], got 'test'"),
    ("split list", _item("split", ["train"]), r"split: expected one of"),
    ("missing action", _drop_field("action"), r"missing required fields \['action'\]"),
    ("missing flags", _drop_field("is_last"), r"missing required fields \['is_last'\]"),
    ("no obs", _edit(lambda h: h.__setitem__("fields", h["fields"][-5:])), r"obs: need a non-empty dict"),
    ("fields not list", _item("fields", {"image": 1}), r"'fields': expected a list, got dict"),
    ("fields entry int", _edit(lambda h: h["fields"].append(3)), r"fields entry: expected keys .*got int"),
    ("fields entry key", _edit_field("image", extra=1), r"fields entry: expected keys.*'extra'"),
    ("length 0", _item("length", 0), r"header 'length': 0 out of range \[1, 4096\]"),
    ("length 5000", _item("length", 5000), r"header 'length': 5000 out of range"),
    ("version -1", _item("policy_version", -1), r"policy_version: -1 out of range"),
    ("version 2**64-1", _item("policy_version", 2**64 - 1), r"policy_version: 18446744073709551615 out of range"),
    ("version bool", _item("policy_version", True), r"policy_version: expected an int, got bool"),
    ("version float", _item("policy_version", 1.5), r"policy_version: expected an int, got float"),
    ("env_name long", _item("env_name", "e" * 300), r"env_name: length 300"),
    ("env_name huge", _item("env_name", "e" * 5000), r"payload.*max_str_len"),
    ("env_name bytes", _item("env_name", b"dmc"), r"env_name: expected a str, got bytes"),
    ("int map key", _pack({1: 2}), r"payload.*map key"),
    ("deep nesting", b"\x91" * 5000 + b"\x00", r"payload: not a single valid msgpack"),
    ("bad utf8", b"\x81\xa2\xff\xfe\x01", r"payload: not a single valid msgpack"),
    ("never-used byte", b"\xc1", r"payload: not a single valid msgpack"),
]


@pytest.mark.parametrize(("label", "payload", "match"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_payloads_raise_chunk_format_error(label: str, payload: Any, match: str) -> None:
    with pytest.raises(ChunkFormatError, match=match):
        decode_chunk(payload)


def test_payload_over_max_bytes_is_refused_before_parsing() -> None:
    with pytest.raises(ChunkFormatError, match=rf"payload: size {len(VALID)} bytes not in \[1, max_bytes=100\]"):
        decode_chunk(VALID, max_bytes=100)
    with pytest.raises(ChunkFormatError, match="max_bytes=100"):
        decode_chunks(encode_chunks([make_chunk(4, 8)]), max_bytes=100)


def test_huge_shape_claims_do_not_allocate() -> None:
    claims = [[10**9, 10**9], [4, 2**24, 2**24, 2**24], [4, 2**24, 2**24, 0], [4, 10**18, 3]]
    payloads = [_edit_field("image", shape=shape) for shape in claims]
    tracemalloc.start()
    try:
        for payload in payloads:
            with pytest.raises(ChunkFormatError, match="'image'"):
                decode_chunk(payload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"decoding hostile shapes allocated {peak} bytes"


def test_bytearray_and_memoryview_payloads_decode() -> None:
    chunk = make_chunk(4, 8)
    assert decode_chunk(bytearray(VALID)).equals(chunk)
    assert decode_chunk(memoryview(VALID)).equals(chunk)


def test_codec_never_uses_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    tree = ast.parse(inspect.getsource(chunk_module))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {name for name in imported if any(bad in name for bad in ("pickle", "marshal", "dill", "shelve"))}
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    names |= {kw.arg for node in ast.walk(tree) if isinstance(node, ast.Call) for kw in node.keywords if kw.arg}
    assert not {name for name in names if "pickle" in name}

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle used while decoding")

    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "Unpickler", boom)
    assert decode_chunk(encode_chunk(make_chunk(8, 16))).length == 8
    with pytest.raises(ChunkFormatError):
        decode_chunk(_edit_field("image", dtype="|O"))


# ---------------------------------------------------------------------------------------------
# Fuzzing: nothing but a valid chunk or ChunkFormatError may come out of the decoder.


def _decode_or_format_error(data: Any) -> SequenceChunk | None:
    try:
        chunk = decode_chunk(data)
    except ChunkFormatError:
        return None
    chunk.validate()  # whatever decodes must be a valid chunk that encodes again
    assert decode_chunk(encode_chunk(chunk)).equals(chunk)
    return chunk


def test_every_prefix_of_a_small_payload_is_rejected() -> None:
    payload = small_payload(2, 2)
    for cut in range(len(payload)):
        with pytest.raises(ChunkFormatError):
            decode_chunk(payload[:cut])


BIG = encode_chunk(make_chunk())


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(BIG) - 1))
def test_truncated_realistic_payload_is_rejected(cut: int) -> None:
    with pytest.raises(ChunkFormatError):
        decode_chunk(BIG[:cut])


@FUZZ
@given(flips=st.lists(st.integers(min_value=0, max_value=8 * len(VALID) - 1), min_size=1, max_size=8))
def test_bit_flips_give_a_valid_chunk_or_format_error(flips: list[int]) -> None:
    data = bytearray(VALID)
    for bit in flips:
        data[bit // 8] ^= 1 << (bit % 8)
    _decode_or_format_error(bytes(data))


HEADER_LEN = len(_pack({k: v for k, v in raw_header().items() if k != "fields"}))


@FUZZ
@given(flips=st.lists(st.integers(min_value=0, max_value=8 * HEADER_LEN), min_size=1, max_size=4))
def test_bit_flips_in_the_header_region(flips: list[int]) -> None:
    data = bytearray(VALID)
    for bit in flips:
        data[bit // 8] ^= 1 << (bit % 8)
    _decode_or_format_error(bytes(data))


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(st.text(max_size=12) | st.sampled_from(sorted(chunk_module.HEADER_KEYS)), children, max_size=6),
    max_leaves=30,
)


@FUZZ
@given(value=msgpack_values)
def test_arbitrary_msgpack_structures_are_rejected(value: Any) -> None:
    with pytest.raises(ChunkFormatError):
        decode_chunk(_pack(value))
    try:
        batch = decode_chunks(_pack(value))
    except ChunkFormatError:
        return
    assert batch == []  # only the empty batch is a valid batch here


@FUZZ
@given(key=st.sampled_from(sorted(chunk_module.HEADER_KEYS)), value=msgpack_values)
def test_arbitrary_header_values_give_a_valid_chunk_or_format_error(key: str, value: Any) -> None:
    header = raw_header()
    header[key] = value
    _decode_or_format_error(_pack(header))


@FUZZ
@given(
    name=st.sampled_from(["image", "reward", "action", "is_first", "proprio"]),
    key=st.sampled_from(["name", "dtype", "shape", "data"]),
    value=msgpack_values,
)
def test_arbitrary_field_entries_give_a_valid_chunk_or_format_error(name: str, key: str, value: Any) -> None:
    header = raw_header()
    field(header, name)[key] = value
    _decode_or_format_error(_pack(header))


@FUZZ
@given(data=st.binary(max_size=512))
def test_random_bytes_are_rejected(data: bytes) -> None:
    with pytest.raises(ChunkFormatError):
        decode_chunk(data)
    if data != b"\x90":  # the one valid empty batch
        with pytest.raises(ChunkFormatError):
            decode_chunks(data)
