"""Replay: chunked sequence storage with uniform window sampling, and replay-ratio control."""

from __future__ import annotations

from recore_dist.replay.ratio import ReplayRatio
from recore_dist.replay.store import ReplayFormatError, ReplayStore

__all__ = ["ReplayFormatError", "ReplayRatio", "ReplayStore"]
