"""TensorBoard scalars and images, and throughput counters.

Uses torch's ``SummaryWriter`` (real event files, readable by ``tensorboard --logdir``).
TensorBoard itself binds to localhost by default: ``tensorboard --logdir runs --host 127.0.0.1``.
"""

from __future__ import annotations

import secrets
import string
import time
import warnings
from pathlib import Path

import numpy as np


class Logger:
    """Writes scalars, image grids and videos under ``logdir/tb``, and mirrors them to W&B when
    ``wandb`` (a ``LoggingConfig`` with ``wandb: true``) is given.

    Args:
        logdir: the run's directory.
        wandb: the job's ``logging`` settings (``None`` or ``wandb: false``: TensorBoard only).
        config: the resolved config as a dict, stored with the W&B run.
    """

    def __init__(self, logdir: str | Path, *, wandb=None, config: dict | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.dir = Path(logdir) / "tb"
        self._writer = SummaryWriter(log_dir=str(self.dir))
        self._warned_video = False
        self.wandb = WandbMirror(Path(logdir), wandb, config or {}) if wandb is not None and wandb.wandb else None

    def scalars(self, values: dict[str, float], step: int) -> None:
        finite = {k: float(v) for k, v in values.items() if v is not None and np.isfinite(v)}
        for key, value in finite.items():
            self._writer.add_scalar(key, value, global_step=step)
        if self.wandb is not None:
            self.wandb.log(finite, step)

    def images(self, tag: str, frames: np.ndarray, step: int) -> None:
        """``frames``: uint8 ``[N, H, W, 3]`` shown as a row."""
        row = np.concatenate(list(frames), axis=1)
        self._writer.add_image(tag, row, global_step=step, dataformats="HWC")
        if self.wandb is not None:
            self.wandb.image(tag, row, step)

    def video(self, tag: str, frames: np.ndarray, step: int, fps: float = 10.0) -> None:
        """``frames``: uint8 ``[T, H, W, 3]``, written as an animated image (TensorBoard plays it).
        Without Pillow this warns once and writes nothing (it never stops training)."""
        try:
            from recore_dist.video import tensorboard_video

            tensorboard_video(self._writer, tag, frames, step, fps)
            if self.wandb is not None:
                self.wandb.video(tag, frames, step, fps)
        except ImportError as exc:
            if not self._warned_video:
                warnings.warn(f"no TensorBoard videos: {exc} (pip install pillow)", stacklevel=2)
                self._warned_video = True

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
        if self.wandb is not None:
            self.wandb.close()


class WandbMirror:
    """The W&B side of :class:`Logger`: one W&B run per logdir, resumed with the job.

    The run id is created once and kept in ``logdir/wandb_id``; a later start with the same
    logdir passes it with ``resume="allow"``, so a resumed job continues the same W&B run.
    Steps are env steps, as in TensorBoard. Videos are written as GIFs under
    ``logdir/wandb_media`` and handed to W&B as files (its numpy path needs moviepy).
    """

    def __init__(self, logdir: Path, cfg, config: dict):
        try:
            import wandb
        except ImportError:
            raise RuntimeError("logging.wandb: true needs the wandb package: pip install 'recore-dist[wandb]'") from None
        self._wandb, self.logdir = wandb, logdir
        logdir.mkdir(parents=True, exist_ok=True)
        id_file = logdir / "wandb_id"
        alphabet = string.ascii_lowercase + string.digits
        run_id = id_file.read_text().strip() if id_file.is_file() else "".join(secrets.choice(alphabet) for _ in range(8))
        id_file.write_text(run_id)
        self.run = wandb.init(project=cfg.wandb_project, entity=cfg.wandb_entity, mode=cfg.wandb_mode,
                              id=run_id, resume="allow", dir=str(logdir), config=config, name=logdir.name,
                              settings=wandb.Settings(console="off", x_disable_stats=True))
        self.media = logdir / "wandb_media"

    def log(self, values: dict[str, float], step: int) -> None:
        if values:
            self.run.log(values, step=step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        self.run.log({tag: self._wandb.Image(image)}, step=step)

    def video(self, tag: str, frames: np.ndarray, step: int, fps: float) -> None:
        from recore_dist.video import write_video

        path = write_video(self.media / f"{tag.replace('/', '_')}_{step}.gif", frames, fps)
        self.run.log({tag: self._wandb.Video(str(path), format="gif")}, step=step)

    def close(self) -> None:
        self.run.finish()


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
