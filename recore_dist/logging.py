"""TensorBoard scalars and images, and throughput counters.

Uses torch's ``SummaryWriter`` (real event files, readable by ``tensorboard --logdir``).
TensorBoard itself binds to localhost by default: ``tensorboard --logdir runs --host 127.0.0.1``.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np


class Logger:
    """Writes scalars and image grids under ``logdir/tb``."""

    def __init__(self, logdir: str | Path):
        from torch.utils.tensorboard import SummaryWriter

        self.dir = Path(logdir) / "tb"
        self._writer = SummaryWriter(log_dir=str(self.dir))
        self._warned_video = False

    def scalars(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            if value is not None and np.isfinite(value):
                self._writer.add_scalar(key, float(value), global_step=step)

    def images(self, tag: str, frames: np.ndarray, step: int) -> None:
        """``frames``: uint8 ``[N, H, W, 3]`` shown as a row."""
        row = np.concatenate(list(frames), axis=1)
        self._writer.add_image(tag, row, global_step=step, dataformats="HWC")

    def video(self, tag: str, frames: np.ndarray, step: int, fps: float = 10.0) -> None:
        """``frames``: uint8 ``[T, H, W, 3]``, written as an animated image (TensorBoard plays it).
        Without Pillow this warns once and writes nothing (it never stops training)."""
        try:
            from recore_dist.video import tensorboard_video

            tensorboard_video(self._writer, tag, frames, step, fps)
        except ImportError as exc:
            if not self._warned_video:
                warnings.warn(f"no TensorBoard videos: {exc} (pip install pillow)", stacklevel=2)
                self._warned_video = True

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class Rate:
    """Counts events and reports their rate per second since the last call."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self._count = 0

    def add(self, n: int) -> None:
        self._count += n

    def rate(self) -> float:
        now = time.perf_counter()
        value = self._count / max(now - self._last, 1e-9)
        self._last, self._count = now, 0
        return value
