"""Episode and prediction videos: frames side by side with a caption, written as GIF or MP4, or
logged to TensorBoard.

Frames are uint8 ``[T, H, W, 3]``. GIF needs Pillow (installed with matplotlib); MP4 needs
``imageio`` with its ffmpeg plugin (``pip install 'recore-dist[video]'``): without it, writing a
``.mp4`` raises :class:`VideoError` naming the install line. TensorBoard videos are animated
GIFs in an image summary, which is what ``SummaryWriter.add_video`` writes too (it needs
``moviepy`` to make them; Pillow does it here).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


class VideoError(RuntimeError):
    """A video cannot be written (format or missing library); the message says what to do."""


def _check(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"video frames must be uint8 [T, H, W, 3] with T >= 1, got {frames.dtype} {frames.shape}")
    return frames


def side_by_side(clips: list[np.ndarray], gap: int = 2) -> np.ndarray:
    """Clips ``[T_i, H, W_i, 3]`` next to each other; shorter clips hold their last frame."""
    clips = [_check(c) for c in clips]
    if len({c.shape[1] for c in clips}) != 1:
        raise ValueError(f"clips must share their height, got {[c.shape for c in clips]}")
    length = max(len(c) for c in clips)
    padded = [np.concatenate([c, np.repeat(c[-1:], length - len(c), 0)]) if len(c) < length else c for c in clips]
    sep = np.full((length, clips[0].shape[1], gap, 3), 255, np.uint8)
    parts = []
    for i, c in enumerate(padded):
        parts += [sep, c] if i else [c]
    return np.concatenate(parts, 2)


def captioned(frames: np.ndarray, text: str, height: int = 12) -> np.ndarray:
    """A white strip with ``text`` above every frame (Pillow's built-in font)."""
    from PIL import Image, ImageDraw

    frames = _check(frames)
    strip = Image.new("RGB", (frames.shape[2], height), (255, 255, 255))
    ImageDraw.Draw(strip).text((2, 0), text, fill=(0, 0, 0))
    header = np.repeat(np.asarray(strip)[None], len(frames), 0)
    return np.concatenate([header, frames], 1)


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour ``factor`` x enlargement (64 px frames are small to look at)."""
    frames = _check(frames)
    return frames.repeat(factor, 1).repeat(factor, 2) if factor > 1 else frames


def gif_bytes(frames: np.ndarray, fps: float = 10.0) -> bytes:
    """An animated GIF of ``frames`` (looping)."""
    from PIL import Image

    frames = _check(frames)
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=int(round(1000 / fps)),
                   loop=0)
    return buf.getvalue()


def write_video(path: str | Path, frames: np.ndarray, fps: float = 10.0) -> Path:
    """Write ``frames`` to ``path`` (``.gif`` or ``.mp4``)."""
    path = Path(path)
    frames = _check(frames)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise VideoError(f"{path}: video must end in .gif or .mp4")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        path.write_bytes(gif_bytes(frames, fps))
        return path
    try:
        import imageio.v2 as imageio
    except ImportError:
        raise VideoError(f"{path}: writing .mp4 needs imageio and its ffmpeg plugin "
                         "(pip install 'recore-dist[video]'); or write a .gif") from None
    even = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]  # H.264 wants even sizes
    try:
        imageio.mimwrite(path, list(even), fps=fps, macro_block_size=1)
    except (ValueError, RuntimeError, OSError) as exc:
        raise VideoError(f"{path}: the mp4 writer failed ({exc}); install imageio-ffmpeg or write a .gif") from None
    return path


def tensorboard_video(writer, tag: str, frames: np.ndarray, step: int, fps: float = 10.0) -> None:
    """Log ``frames`` as an animated image summary (TensorBoard's Images tab plays it)."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    frames = _check(frames)
    image = Summary.Image(height=frames.shape[1], width=frames.shape[2], colorspace=3,
                          encoded_image_string=gif_bytes(frames, fps))
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
