"""``SequenceChunk``: a fixed-length slice of one simulator's stream, and its msgpack codec.

Wire format (``SCHEMA_VERSION`` 1): one msgpack map

.. code-block:: text

    {"schema": 1, "length": T, "policy_version": int, "env_name": str, "intervention_id": str,
     "split": "train" | "heldout", "runner_id": int, "seq": int, "env_index": int,
     "fields": [{"name": str, "dtype": str, "shape": [int, ...], "data": bin}, ...]}

``fields`` holds every observation field (in ``obs`` order) followed by ``action``, ``reward``,
``is_first``, ``is_last`` and ``is_terminal``. ``dtype`` is a numpy type string with an explicit
byte order (``"<f4"``, ``"|u1"``, ``"|b1"``, ...) from a short whitelist, and ``data`` is the raw
little-endian C-order buffer of the array. Only plain msgpack types are used; no object
serialisation of any kind is involved, and the decoder treats every payload as hostile: msgpack
size caps bound what it can allocate, extension types are refused, and every key, type, dtype,
shape, size and value is checked before an array is built.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgpack
import numpy as np

SCHEMA_VERSION = 1
DEFAULT_LENGTH = 64
MIN_LENGTH = 1
MAX_LENGTH = 4096
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_CHUNKS = 1024
MAX_FIELDS = 64
MAX_NDIM = 5
MAX_DIM = 1 << 24
MAX_STR_LEN = 256  # characters; the msgpack cap is 4x this in (UTF-8) bytes
MAX_INT = 2**63 - 1

FIELD_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
FLAG_FIELDS: tuple[str, ...] = ("is_first", "is_last", "is_terminal")
RESERVED_FIELDS: tuple[str, ...] = ("action", "reward", *FLAG_FIELDS)
SPLITS: tuple[str, ...] = ("train", "heldout")
IMAGE_FIELDS: tuple[str, ...] = ("image", "clean_image")

# numpy type string (explicit byte order) -> dtype; bool is checked to hold only 0/1 bytes.
ALLOWED_DTYPES: dict[str, np.dtype] = {
    code: np.dtype(code)
    for code in ("|u1", "|i1", "<i2", "<i4", "<i8", "<u2", "<f2", "<f4", "<f8", "|b1")
}
_INT_META: tuple[str, ...] = ("policy_version", "runner_id", "seq", "env_index")
_STR_META: tuple[str, ...] = ("env_name", "intervention_id", "split")
HEADER_KEYS: frozenset[str] = frozenset(("schema", "length", "fields", *_INT_META, *_STR_META))
_FIELD_KEYS: frozenset[str] = frozenset(("name", "dtype", "shape", "data"))


class ChunkFormatError(ValueError):
    """A chunk (in memory or on the wire) breaks the format; the message names field and values."""


@dataclass(eq=False)
class SequenceChunk:
    """A fixed-length (``T``) slice of ONE simulator's stream; it may cross episode boundaries.

    Row convention: row ``t`` holds ``obs_t``; ``reward[t]``, the reward that arrived with
    ``obs_t`` (``0.0`` on ``is_first`` rows); ``is_first/is_last/is_terminal[t]``, the flags of
    ``obs_t`` (``is_terminal`` implies ``is_last``); and ``action[t]``, the action the policy
    chose at ``obs_t`` and applied after it (zeros on ``is_last`` rows are fine, the action there
    is never applied). A new episode starts at every ``is_first`` row.

    Attributes:
        obs: Observation fields, each an array with leading dim ``T``, e.g. ``image`` uint8
            ``[T, H, W, 3]``, ``proprio`` float32 ``[T, P]``, ``depth`` float32
            ``[T, H, W, 1]``, ``segmentation`` int32 ``[T, H, W]``, ``clean_image`` uint8
            ``[T, H, W, 3]``. Names match ``FIELD_NAME_RE`` and are not in ``RESERVED_FIELDS``.
        action: float32 ``[T, A]``, finite.
        reward: float32 ``[T]``, finite.
        is_first: bool ``[T]``.
        is_last: bool ``[T]``.
        is_terminal: bool ``[T]``.
        policy_version: Version of the policy that acted (>= 0).
        env_name: Environment id, e.g. ``"dmc:walker-walk"``.
        intervention_id: Id of the intervention applied to ``image``.
        split: ``"train"`` or ``"heldout"``.
        runner_id: Id of the runner that produced the chunk.
        seq: Sequence number of the chunk within its (runner, env_index) stream.
        env_index: Which simulator of the runner's vector produced it.
    """

    obs: dict[str, np.ndarray]
    action: np.ndarray
    reward: np.ndarray
    is_first: np.ndarray
    is_last: np.ndarray
    is_terminal: np.ndarray
    policy_version: int
    env_name: str
    intervention_id: str
    split: Literal["train", "heldout"]
    runner_id: int
    seq: int
    env_index: int = field(default=0)

    @property
    def length(self) -> int:
        """``T``, the number of rows."""
        return int(np.shape(self.reward)[0])

    @property
    def nbytes(self) -> int:
        """Total bytes of all arrays (observations, action, reward, flags)."""
        return sum(int(arr.nbytes) for _, arr in self.arrays())

    def arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(name, array)`` in wire order: observations, action, reward, flags."""
        yield from self.obs.items()
        for name in RESERVED_FIELDS:
            yield name, getattr(self, name)

    def metadata(self) -> dict[str, int | str]:
        """The scalar metadata as plain Python ints/strings."""
        meta: dict[str, int | str] = {key: int(getattr(self, key)) for key in _INT_META}
        meta.update({key: str(getattr(self, key)) for key in _STR_META})
        return meta

    def validate(self) -> None:
        """Apply the checks ``decode_chunk`` applies, so producers can check before sending.

        Raises:
            ChunkFormatError: Naming the offending field and its values.
        """
        _check_metadata({key: getattr(self, key) for key in (*_INT_META, *_STR_META)})
        length = _check_length(self.reward)
        if not isinstance(self.obs, dict) or not self.obs:
            raise ChunkFormatError(f"obs: need a non-empty dict of arrays, got {self.obs!r:.80}")
        if len(self.obs) + len(RESERVED_FIELDS) > MAX_FIELDS:
            raise ChunkFormatError(f"obs: {len(self.obs)} fields, at most {MAX_FIELDS - 5}")
        for name in self.obs:
            _check_name(name, obs=True)
        for name, arr in self.arrays():
            _check_array(name, arr, length)
        _check_semantics(self)

    def equals(self, other: SequenceChunk) -> bool:
        """Exact equality: same metadata, field names/order, dtypes, shapes and values."""
        if self.metadata() != other.metadata():
            return False
        mine, theirs = list(self.arrays()), list(other.arrays())
        if [n for n, _ in mine] != [n for n, _ in theirs]:
            return False
        return all(
            a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
            for (_, a), (_, b) in zip(mine, theirs)
        )


# --------------------------------------------------------------------------------------------
# Checks shared by SequenceChunk.validate and decode_chunk.


def _dtype_code(dtype: np.dtype) -> str:
    """The little-endian type string of ``dtype`` (``'<f4'``, ``'|u1'``, ...)."""
    return dtype.newbyteorder("<").str


def _check_int(key: str, value: Any, lo: int = 0, hi: int = MAX_INT) -> int:
    """``value`` as an int in ``[lo, hi]`` (Python or numpy int, never bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ChunkFormatError(f"{key}: expected an int, got {type(value).__name__} {value!r:.80}")
    if not lo <= int(value) <= hi:
        raise ChunkFormatError(f"{key}: {int(value)} out of range [{lo}, {hi}]")
    return int(value)


def _check_str(key: str, value: Any, *, nonempty: bool = False) -> str:
    """``value`` as a str of at most ``MAX_STR_LEN`` characters (and non-empty if asked)."""
    if not isinstance(value, str):
        raise ChunkFormatError(f"{key}: expected a str, got {type(value).__name__} {value!r:.80}")
    if len(value) > MAX_STR_LEN or (nonempty and not value):
        raise ChunkFormatError(f"{key}: length {len(value)} not in [{int(nonempty)}, {MAX_STR_LEN}]")
    return value


def _check_metadata(meta: dict[str, Any]) -> None:
    """The scalar metadata: ints in range, bounded strings, a known split."""
    for key in _INT_META:
        _check_int(key, meta[key])
    _check_str("env_name", meta["env_name"], nonempty=True)
    _check_str("intervention_id", meta["intervention_id"])
    if meta["split"] not in SPLITS:
        raise ChunkFormatError(f"split: expected one of {list(SPLITS)}, got {meta['split']!r:.80}")


def _check_length(reward: Any) -> int:
    """``T`` from the reward array, checked against ``[MIN_LENGTH, MAX_LENGTH]``."""
    if not isinstance(reward, np.ndarray) or reward.ndim != 1:
        raise ChunkFormatError(f"reward: expected a 1-D array [T], got {_describe(reward)}")
    return _check_int("length (T)", reward.shape[0], MIN_LENGTH, MAX_LENGTH)


def _check_name(name: Any, *, obs: bool) -> str:
    """A field name matching ``FIELD_NAME_RE``; observation names must not be reserved."""
    if not isinstance(name, str) or not FIELD_NAME_RE.match(name):
        raise ChunkFormatError(f"field name {name!r:.80} does not match {FIELD_NAME_RE.pattern}")
    if obs and name in RESERVED_FIELDS:
        raise ChunkFormatError(f"obs field name {name!r} is reserved ({list(RESERVED_FIELDS)})")
    return name


def _describe(arr: Any) -> str:
    """A short description of ``arr`` for error messages."""
    if isinstance(arr, np.ndarray):
        return f"array dtype={arr.dtype.str} shape={list(arr.shape)}"
    return f"{type(arr).__name__}"


def _check_array(name: str, arr: Any, length: int) -> None:
    """Type, dtype whitelist, rank and leading dim of one in-memory array."""
    if not isinstance(arr, np.ndarray):
        raise ChunkFormatError(f"field {name!r}: expected a numpy array, got {_describe(arr)}")
    if _dtype_code(arr.dtype) not in ALLOWED_DTYPES:
        raise ChunkFormatError(
            f"field {name!r}: dtype {arr.dtype.str!r} not allowed (allowed: {sorted(ALLOWED_DTYPES)})"
        )
    if not 1 <= arr.ndim <= MAX_NDIM:
        raise ChunkFormatError(
            f"field {name!r}: ndim {arr.ndim} not in [1, {MAX_NDIM}], shape {list(arr.shape)}"
        )
    if arr.shape[0] != length:
        raise ChunkFormatError(
            f"field {name!r}: leading dim {arr.shape[0]} != T={length} (from reward), shape {list(arr.shape)}"
        )


def _require(name: str, arr: np.ndarray, code: str, ndim: int, *, finite: bool = False) -> None:
    """Field ``name`` must have dtype ``code`` and rank ``ndim`` (and be finite if asked)."""
    if _dtype_code(arr.dtype) != code or arr.ndim != ndim:
        raise ChunkFormatError(
            f"field {name!r}: expected dtype {code} with {ndim} dims, got {_describe(arr)}"
        )
    if finite and not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr.reshape(-1)))
        raise ChunkFormatError(
            f"field {name!r}: {bad.size} non-finite values, first at flat index {int(bad[0])}: "
            f"{arr.reshape(-1)[bad[0]]!r}"
        )


def _check_semantics(chunk: SequenceChunk) -> None:
    """Per-field dtype/rank rules: float32 finite action/reward, bool flags, uint8 images."""
    _require("action", chunk.action, "<f4", 2, finite=True)
    if chunk.action.shape[1] < 1:
        raise ChunkFormatError(
            f"field 'action': action dim must be >= 1, shape {list(chunk.action.shape)}"
        )
    _require("reward", chunk.reward, "<f4", 1, finite=True)
    for name in FLAG_FIELDS:
        _require(name, getattr(chunk, name), "|b1", 1)
    orphan = np.flatnonzero(chunk.is_terminal & ~chunk.is_last)
    if orphan.size:
        raise ChunkFormatError(f"field 'is_terminal': set without is_last at rows {orphan[:8].tolist()}")
    for name in IMAGE_FIELDS:
        if name in chunk.obs:
            _require(name, chunk.obs[name], "|u1", 4)


# --------------------------------------------------------------------------------------------
# Encoding.


def _encode_field(name: str, arr: np.ndarray) -> dict[str, Any]:
    """One wire entry; ``data`` is a zero-copy byte view of the little-endian C-order array."""
    code = _dtype_code(arr.dtype)
    contiguous = np.ascontiguousarray(arr, dtype=ALLOWED_DTYPES[code])
    data: bytes | memoryview = memoryview(contiguous).cast("B") if contiguous.size else b""
    return {"name": name, "dtype": code, "shape": list(contiguous.shape), "data": data}


def encode_chunk(chunk: SequenceChunk) -> bytes:
    """Validate ``chunk`` and encode it as one msgpack map (see the module docstring).

    Raises:
        ChunkFormatError: If ``chunk.validate()`` fails.
    """
    chunk.validate()
    header: dict[str, Any] = {"schema": SCHEMA_VERSION, "length": chunk.length, **chunk.metadata()}
    header["fields"] = [_encode_field(name, arr) for name, arr in chunk.arrays()]
    return msgpack.packb(header, use_bin_type=True)


def encode_chunks(chunks: Sequence[SequenceChunk]) -> bytes:
    """Encode several chunks for one batched push: a msgpack array of encoded chunks (bin)."""
    if len(chunks) > DEFAULT_MAX_CHUNKS:
        raise ChunkFormatError(
            f"chunks: {len(chunks)} chunks, at most {DEFAULT_MAX_CHUNKS} per batch"
        )
    return msgpack.packb([encode_chunk(chunk) for chunk in chunks], use_bin_type=True)


class ChunkEncoder:
    """``encode_chunks`` into buffers that are kept and reused between calls.

    The bytes are identical to ``encode_chunks``. What differs is memory traffic: a fresh
    ``packb`` of a 30 MB batch grows a new buffer by reallocation and first-touches every page
    of it (about 7,000 page faults), which cost an env runner more than the copy itself. Two
    packers that never reset their buffers (``autoreset=False``) make each batch two plain copies
    into memory that is already mapped.

    ``encode`` returns a view into the encoder's buffer. Copy what you need (``bytes(view)``,
    ``ray.put``) and release it (``with encoder.encode(chunks) as view: ...``) before the next
    ``encode``, which otherwise raises ``BufferError`` (the buffer is never changed under a view).
    """

    def __init__(self) -> None:
        self._outer = msgpack.Packer(use_bin_type=True, autoreset=False)
        self._inner = msgpack.Packer(use_bin_type=True, autoreset=False)

    def encode(self, chunks: Sequence[SequenceChunk]) -> memoryview:
        if len(chunks) > DEFAULT_MAX_CHUNKS:
            raise ChunkFormatError(f"chunks: {len(chunks)} chunks, at most {DEFAULT_MAX_CHUNKS} per batch")
        self._outer.reset()
        self._outer.pack_array_header(len(chunks))
        for chunk in chunks:
            chunk.validate()
            header: dict[str, Any] = {"schema": SCHEMA_VERSION, "length": chunk.length, **chunk.metadata()}
            header["fields"] = [_encode_field(name, arr) for name, arr in chunk.arrays()]
            self._inner.reset()
            self._inner.pack(header)
            with self._inner.getbuffer() as inner:
                self._outer.pack(inner)  # a memoryview packs as bin
        return self._outer.getbuffer()


# --------------------------------------------------------------------------------------------
# Decoding.


def _refuse_ext(code: int, data: bytes) -> Any:
    """``ext_hook`` for msgpack: extension types are never accepted."""
    raise ChunkFormatError(f"msgpack extension type {code} ({len(data)} bytes) is not allowed")


def _unpack(data: Any, max_bytes: int, *, max_array_len: int, max_map_len: int) -> Any:
    """Size-checked, capped msgpack decoding of ``data``; any failure is a ChunkFormatError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ChunkFormatError(f"payload: expected bytes, got {type(data).__name__}")
    size = memoryview(data).nbytes
    if size == 0 or size > max_bytes:
        raise ChunkFormatError(f"payload: size {size} bytes not in [1, max_bytes={max_bytes}]")
    try:
        return msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=True, ext_hook=_refuse_ext,
            max_bin_len=size, max_str_len=4 * MAX_STR_LEN, max_array_len=max_array_len,
            max_map_len=max_map_len, max_ext_len=0,
        )
    except ChunkFormatError:
        raise
    except Exception as exc:  # msgpack raises ValueError/TypeError subclasses on bad input.
        raise ChunkFormatError(
            f"payload: not a single valid msgpack message ({type(exc).__name__}: {exc})"
        ) from exc


def _check_header(top: Any) -> dict[str, Any]:
    """Top-level map, schema version first, then the exact key set and metadata values."""
    if not isinstance(top, dict):
        raise ChunkFormatError(f"payload: top level must be a map, got {type(top).__name__}")
    schema = top.get("schema")
    if type(schema) is not int or schema != SCHEMA_VERSION:
        raise ChunkFormatError(
            f"header 'schema': unsupported schema version {schema!r:.40}, expected {SCHEMA_VERSION}"
        )
    keys = set(top)
    if keys != HEADER_KEYS:
        raise ChunkFormatError(
            f"header: missing keys {sorted(HEADER_KEYS - keys)}, "
            f"unexpected keys {sorted(map(repr, keys - HEADER_KEYS))}"
        )
    _check_int("header 'length'", top["length"], MIN_LENGTH, MAX_LENGTH)
    _check_metadata(top)
    if not isinstance(top["fields"], list):
        raise ChunkFormatError(f"header 'fields': expected a list, got {type(top['fields']).__name__}")
    return top


def _check_shape(name: str, shape: Any, length: int) -> tuple[int, ...]:
    """A wire shape: 1..MAX_NDIM ints in ``[0, MAX_DIM]`` with leading dim ``length``."""
    if not isinstance(shape, list) or not 1 <= len(shape) <= MAX_NDIM:
        raise ChunkFormatError(
            f"field {name!r}: shape must be a list of 1..{MAX_NDIM} ints, got {shape!r:.80}"
        )
    for dim in shape:
        _check_int(f"field {name!r} shape {shape!r:.80}", dim, 0, MAX_DIM)
    if shape[0] != length:
        raise ChunkFormatError(
            f"field {name!r}: leading dim {shape[0]} != header length T={length}, shape {shape}"
        )
    return tuple(shape)


def _decode_field(entry: Any, length: int) -> tuple[str, np.ndarray]:
    """Check one ``{name, dtype, shape, data}`` entry and build its (writable) array."""
    if not isinstance(entry, dict) or set(entry) != _FIELD_KEYS:
        got = sorted(map(repr, entry)) if isinstance(entry, dict) else type(entry).__name__
        raise ChunkFormatError(f"fields entry: expected keys {sorted(_FIELD_KEYS)}, got {got}")
    name = _check_name(entry["name"], obs=False)
    code = entry["dtype"]
    if not isinstance(code, str) or code not in ALLOWED_DTYPES:
        raise ChunkFormatError(
            f"field {name!r}: dtype {code!r:.40} not allowed (allowed: {sorted(ALLOWED_DTYPES)})"
        )
    dtype = ALLOWED_DTYPES[code]
    shape = _check_shape(name, entry["shape"], length)
    data = entry["data"]
    if not isinstance(data, bytes):
        raise ChunkFormatError(f"field {name!r}: data must be msgpack bin, got {type(data).__name__}")
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise ChunkFormatError(
            f"field {name!r}: buffer has {len(data)} bytes, shape {list(shape)} x {dtype.itemsize} needs {expected}"
        )
    if dtype.kind == "b" and data and (peak := int(np.frombuffer(data, np.uint8).max())) > 1:
        raise ChunkFormatError(f"field {name!r}: bool buffer holds byte {peak}, only 0/1 allowed")
    return name, np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _decode_fields(entries: list[Any], length: int) -> dict[str, np.ndarray]:
    """All field entries as arrays by name: no duplicates, the reserved fields present."""
    arrays: dict[str, np.ndarray] = {}
    for entry in entries:
        name, arr = _decode_field(entry, length)
        if name in arrays:
            raise ChunkFormatError(f"field {name!r}: duplicated")
        arrays[name] = arr
    missing = [name for name in RESERVED_FIELDS if name not in arrays]
    if missing:
        raise ChunkFormatError(f"fields: missing required fields {missing}, got {list(arrays)}")
    return arrays


def decode_chunk(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, expected_length: int | None = None
) -> SequenceChunk:
    """Decode and fully validate one chunk produced by ``encode_chunk``.

    Returned arrays are fresh, writable and owned by the chunk (one copy out of the payload).

    Args:
        data: The payload (bytes, bytearray or memoryview).
        max_bytes: Payloads larger than this are refused before parsing.
        expected_length: If given, ``T`` must equal it.

    Raises:
        ChunkFormatError: For anything malformed or hostile; the message names the field.
    """
    top = _unpack(data, max_bytes, max_array_len=MAX_FIELDS, max_map_len=2 * len(HEADER_KEYS))
    header = _check_header(top)
    length = header["length"]
    if expected_length is not None and length != expected_length:
        raise ChunkFormatError(f"header 'length': T={length} != expected_length={expected_length}")
    arrays = _decode_fields(header["fields"], length)
    reserved = {name: arrays.pop(name) for name in RESERVED_FIELDS}
    meta = {key: header[key] for key in (*_INT_META, *_STR_META)}
    chunk = SequenceChunk(obs=arrays, **reserved, **meta)
    chunk.validate()
    return chunk


def decode_chunks(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    expected_length: int | None = None,
    max_count: int = DEFAULT_MAX_CHUNKS,
) -> list[SequenceChunk]:
    """Decode a batch from ``encode_chunks``; every chunk is validated like ``decode_chunk``.

    Raises:
        ChunkFormatError: If the batch or any chunk is malformed (the message names the index).
    """
    top = _unpack(data, max_bytes, max_array_len=max_count, max_map_len=2 * len(HEADER_KEYS))
    if not isinstance(top, list):
        raise ChunkFormatError(f"payload: a batch must be a msgpack array, got {type(top).__name__}")
    chunks = []
    for index, item in enumerate(top):
        if not isinstance(item, bytes):
            raise ChunkFormatError(f"chunks[{index}]: expected bin, got {type(item).__name__}")
        try:
            chunks.append(decode_chunk(item, max_bytes=max_bytes, expected_length=expected_length))
        except ChunkFormatError as exc:
            raise ChunkFormatError(f"chunks[{index}]: {exc}") from exc
    return chunks
