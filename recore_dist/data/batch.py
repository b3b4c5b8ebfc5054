"""msgpack codec for sampled ``[B, T, ...]`` batches (replay shard -> learner).

The same wire discipline as chunks (``recore_dist.data.chunk``): a map with a schema version and
a list of ``{name, dtype, shape, data}`` fields, raw little-endian bytes, allowed dtypes only,
sizes checked before anything is allocated, no pickle and no msgpack extension types. Every
field shares the leading ``[B, T]``.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from recore_dist.data.chunk import (
    DEFAULT_MAX_BYTES,
    MAX_DIM,
    MAX_FIELDS,
    ChunkFormatError,
    _check_int,
    _decode_field,
    _encode_field,
    _unpack,
)

BATCH_SCHEMA = 1
_BATCH_KEYS = frozenset(("batch_schema", "batch", "length", "fields"))


def encode_batch(batch: dict[str, np.ndarray]) -> bytes:
    """Encode a sampled batch; every array is ``[B, T, ...]`` with the same ``B`` and ``T``.

    Raises:
        ChunkFormatError: If the batch is empty, has too many fields, mismatched leading dims or
            a dtype outside the allowed set.
    """
    if not batch or len(batch) > MAX_FIELDS:
        raise ChunkFormatError(f"batch: need 1..{MAX_FIELDS} fields, got {len(batch)}")
    lead = None
    fields = []
    for name, arr in batch.items():
        arr = np.asarray(arr)
        if arr.ndim < 2 or (lead is not None and arr.shape[:2] != lead):
            raise ChunkFormatError(f"batch field {name!r}: shape {list(arr.shape)}, expected leading {lead or '[B, T]'}")
        lead = arr.shape[:2]
        fields.append(_encode_field(name, arr))
    return msgpack.packb({"batch_schema": BATCH_SCHEMA, "batch": lead[0], "length": lead[1], "fields": fields},
                         use_bin_type=True)


def decode_batch(data: bytes, *, max_bytes: int = 4 * DEFAULT_MAX_BYTES) -> dict[str, np.ndarray]:
    """Decode and check a batch from ``encode_batch``; arrays are fresh and writable.

    Raises:
        ChunkFormatError: For anything malformed; the message names the field.
    """
    top: Any = _unpack(data, max_bytes, max_array_len=MAX_FIELDS, max_map_len=2 * len(_BATCH_KEYS))
    if not isinstance(top, dict) or set(top) != _BATCH_KEYS or top.get("batch_schema") != BATCH_SCHEMA:
        got = sorted(map(repr, top)) if isinstance(top, dict) else type(top).__name__
        raise ChunkFormatError(f"batch header: expected keys {sorted(_BATCH_KEYS)} with batch_schema "
                               f"{BATCH_SCHEMA}, got {got}")
    size = _check_int("batch header 'batch'", top["batch"], 1, MAX_DIM)
    length = _check_int("batch header 'length'", top["length"], 1, MAX_DIM)
    if not isinstance(top["fields"], list) or not top["fields"]:
        raise ChunkFormatError("batch header 'fields': expected a non-empty list")
    out: dict[str, np.ndarray] = {}
    for entry in top["fields"]:
        name, arr = _decode_field(entry, size)
        if arr.ndim < 2 or arr.shape[1] != length:
            raise ChunkFormatError(f"batch field {name!r}: shape {list(arr.shape)}, expected [{size}, {length}, ...]")
        if name in out:
            raise ChunkFormatError(f"batch field {name!r}: duplicated")
        out[name] = arr
    return out
