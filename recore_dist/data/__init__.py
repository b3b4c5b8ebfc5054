"""Replay data: ``SequenceChunk``, its msgpack codec, and the ``SequenceChunker``."""

from __future__ import annotations

from recore_dist.data.chunk import (
    DEFAULT_LENGTH,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_CHUNKS,
    MAX_LENGTH,
    SCHEMA_VERSION,
    ChunkFormatError,
    SequenceChunk,
    decode_chunk,
    decode_chunks,
    encode_chunk,
    ChunkEncoder,
    encode_chunks,
)
from recore_dist.data.chunker import SequenceChunker

__all__ = [
    "DEFAULT_LENGTH",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_CHUNKS",
    "MAX_LENGTH",
    "SCHEMA_VERSION",
    "ChunkFormatError",
    "SequenceChunk",
    "SequenceChunker",
    "decode_chunk",
    "decode_chunks",
    "encode_chunk",
    "ChunkEncoder",
    "encode_chunks",
]
