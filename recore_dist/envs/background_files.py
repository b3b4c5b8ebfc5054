"""User background media: split a folder into train / held-out files and load them as videos.

A folder with ``train/`` and ``heldout/`` subfolders is split by them; otherwise each file goes to
a split by a stable SHA-256 hash of its relative path (about 2/3 train), so a file is never in
both and adding files never moves existing ones. Images, GIFs and ``.npy``/``.npz`` arrays load
with numpy and Pillow; ``.mp4/.avi/.webm`` need ``imageio[ffmpeg]``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

Video = np.ndarray  # uint8 [F, H, W, 3]
SPLITS: tuple[str, ...] = ("train", "heldout")
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")
GIF_EXTENSIONS: tuple[str, ...] = (".gif",)
ARRAY_EXTENSIONS: tuple[str, ...] = (".npy", ".npz")
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".webm")
ACCEPTED_EXTENSIONS: tuple[str, ...] = (
    IMAGE_EXTENSIONS + GIF_EXTENSIONS + ARRAY_EXTENSIONS + VIDEO_EXTENSIONS
)


def _file_hash(rel: str) -> int:
    return int.from_bytes(hashlib.sha256(rel.encode("utf-8")).digest()[:8], "big")


def _accepted_msg() -> str:
    return ", ".join(ACCEPTED_EXTENSIONS)


def _list_media(root: Path) -> list[Path]:
    """Usable media files under ``root`` (recursive, hidden files skipped), sorted by rel path."""
    files = [
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in ACCEPTED_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def folder_split(folder: str | Path) -> dict[str, list[tuple[str, Path]]]:
    """``{"train": [(rel, path), ...], "heldout": [...]}`` for a background folder, sorted by rel.

    Uses ``train/`` and ``heldout/`` subfolders when both exist, else a SHA-256 hash split of
    relative paths (``hash % 3 == 0`` -> held-out).
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"background folder {str(root)!r} does not exist or is not a directory "
            f"(expected media files with extensions: {_accepted_msg()})"
        )
    has_train, has_heldout = (root / "train").is_dir(), (root / "heldout").is_dir()
    if has_train or has_heldout:
        if not (has_train and has_heldout):
            missing = "heldout" if has_train else "train"
            raise ValueError(
                f"background folder {str(root)!r} has a "
                f"{'train' if has_train else 'heldout'}/ subfolder but no {missing}/ subfolder; "
                "provide both, or neither to split files by a hash of their names"
            )
        out = {}
        for split in SPLITS:
            sub = root / split
            files = _list_media(sub)
            if not files:
                raise ValueError(
                    f"background folder {str(sub)!r} has no usable files "
                    f"(accepted extensions: {_accepted_msg()})"
                )
            out[split] = [(f.relative_to(sub).as_posix(), f) for f in files]
        return out

    files = _list_media(root)
    if not files:
        raise ValueError(
            f"background folder {str(root)!r} has no usable files "
            f"(accepted extensions: {_accepted_msg()})"
        )
    if len(files) < 2:
        raise ValueError(
            f"background folder {str(root)!r} has only {len(files)} usable file; need at least 2 "
            "to form disjoint train and held-out splits (or add train/ and heldout/ subfolders)"
        )
    entries = [(f.relative_to(root).as_posix(), f) for f in files]
    hashes = {rel: _file_hash(rel) for rel, _ in entries}
    heldout = {rel for rel, _ in entries if hashes[rel] % 3 == 0}
    if not heldout:  # every file hashed to train: move the largest hash over
        heldout = {max(hashes, key=hashes.__getitem__)}
    elif len(heldout) == len(entries):  # every file hashed to held-out: move the smallest back
        heldout.discard(min(hashes, key=hashes.__getitem__))
    return {
        "train": [e for e in entries if e[0] not in heldout],
        "heldout": [e for e in entries if e[0] in heldout],
    }


def _fit(frames: list[np.ndarray] | np.ndarray, size: int) -> np.ndarray:
    """Centre-crop each frame to a square, resize to ``size`` (Pillow), return uint8 RGB video."""
    from PIL import Image

    out = []
    for fr in frames:
        fr = np.asarray(fr)
        h, w = fr.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        fr = fr[top : top + side, left : left + side]
        if side != size:
            fr = np.asarray(
                Image.fromarray(np.ascontiguousarray(fr)).resize(
                    (size, size), Image.Resampling.BILINEAR
                )
            )
        out.append(fr)
    return np.ascontiguousarray(np.stack(out), dtype=np.uint8)


def _import_video_reader():
    try:
        import imageio.v2 as imageio  # noqa: PLC0415
        import imageio_ffmpeg  # noqa: F401, PLC0415
    except ImportError as e:
        raise ImportError(
            "reading .mp4/.avi/.webm backgrounds needs imageio with ffmpeg: "
            "pip install imageio[ffmpeg]"
        ) from e
    return imageio


def load_media(path: str | Path, *, size: int = 64, num_frames: int = 100) -> Video:
    """Load one media file as a uint8 ``[F, size, size, 3]`` video (at most ``num_frames``)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext in IMAGE_EXTENSIONS or ext in GIF_EXTENSIONS:
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            frames = []
            for fr in ImageSequence.Iterator(im):
                frames.append(np.asarray(fr.convert("RGB")))
                if len(frames) >= num_frames:
                    break
        return _fit(frames, size)
    if ext in ARRAY_EXTENSIONS:
        if ext == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as z:
                if not z.files:
                    raise ValueError(f"{str(path)!r}: empty .npz archive")
                key = next((k for k in ("video", "frames") if k in z.files), z.files[0])
                arr = z[key]
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] not in (3, 4) or arr.dtype != np.uint8 or not len(arr):
            raise ValueError(
                f"{str(path)!r}: expected a uint8 array [F, H, W, 3] or [H, W, 3], "
                f"got dtype {arr.dtype} shape {arr.shape}"
            )
        return _fit(arr[:num_frames, ..., :3], size)
    if ext in VIDEO_EXTENSIONS:
        imageio = _import_video_reader()
        frames = []
        reader = imageio.get_reader(str(path), format="FFMPEG")
        try:
            for fr in reader:
                fr = np.asarray(fr)
                if fr.ndim == 2:
                    fr = np.repeat(fr[..., None], 3, axis=-1)
                frames.append(fr[..., :3])
                if len(frames) >= num_frames:
                    break
        finally:
            reader.close()
        if not frames:
            raise ValueError(f"{str(path)!r}: no frames could be read")
        return _fit(frames, size)
    raise ValueError(f"{str(path)!r}: unsupported extension (accepted: {_accepted_msg()})")
