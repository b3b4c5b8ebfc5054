"""Background distractions: procedural background videos and user-supplied video folders.

The Distracting Control Suite shows DAVIS videos behind the agent. Those videos cannot be
downloaded here, so this module *generates* background videos deterministically from a seed, and
also accepts a folder of the user's own images / videos. It only provides frames; the env
composites a frame wherever the segmentation says "sky / background".

Videos
------
A ``Video`` is a uint8 array ``[F, H, W, 3]``. :func:`procedural_video` draws one from an integer
seed in one of four styles:

- ``"shapes"``: coloured circles, rectangles and triangles moving with constant velocity and
  bouncing off the image edges (closed-form triangle-wave reflection), slowly rotating, drawn with
  one-pixel anti-aliasing over a two-colour base gradient.
- ``"noise"``: fractal value noise (three octaves) that scrolls in a random direction per octave
  while each octave's lattice is rotated between two random lattices, colourised with a random
  3-5 colour palette. Bilinear/smoothstep interpolation of a lattice is a product of two sparse
  interpolation matrices, so a whole video is a pair of batched matmuls (no per-pixel Python).
- ``"gradient"``: a linear (rotating) or radial (drifting centre) gradient whose hue, brightness
  bands and phase shift over time, converted from HSV to RGB.
- ``"mixed"``: a shapes layer over a noise or gradient layer.

``style=None`` picks the style from the seed. Every random parameter comes from
``np.random.SeedSequence([seed, <style code>])`` and is expressed in normalised image coordinates
and per-frame steps, so the output is a pure function of ``(seed, size, num_frames, style)``;
changing ``size`` renders the same scene at another resolution, and a longer video extends a
shorter one. Motion is a few tenths of a pixel to about two pixels per frame at 64x64, so
consecutive frames are close. Videos are not periodic: :func:`frame_at` plays them forward then
backward (ping-pong), so any ``t >= 0`` indexes a frame and playback never jumps.

Pools and the train / held-out guarantee
----------------------------------------
:class:`BackgroundPool` is the set of videos of one split (``"train"`` or ``"heldout"``) at one
difficulty. Sizes follow the Distracting Control Suite (CoRe paper, Table 7): easy 4 / 4,
medium 8 / 8, hard 60 / 30 (train / held-out).

Procedural pools derive their video seeds from ``np.random.SeedSequence([seed, split_code, tag])``
and then force the parity of every derived seed: train seeds are even, held-out seeds are odd.
Disjointness is therefore structural, not probabilistic: for any base seed, no train video seed
equals a held-out video seed, and because a video is a function of its seed, the held-out videos
are never seen in training. Within a split, seeds are distinct, and each difficulty takes the first
N seeds of the same per-split stream, so the easy pool is a prefix of the medium and hard pools.
Ids (``"proc-train-0007-s123456"``) carry the split name, so ids never coincide across splits.
Videos are generated lazily on first use and cached (optionally up to ``max_cached`` videos).

Folder pools read ``.png/.jpg/.jpeg/.bmp`` images, animated ``.gif``, ``.npy``/``.npz`` arrays
(``[F, H, W, 3]`` or ``[H, W, 3]`` uint8) and, when ``imageio`` with ffmpeg is installed,
``.mp4/.avi/.webm`` videos. If the folder has ``train/`` and ``heldout/`` subfolders, those are the
splits. Otherwise each file goes to a split by the SHA-256 of its relative path (about 2/3 train,
1/3 held-out), which depends only on that file's name, so a file is never in both splits; if all
files hash to one side (only possible for tiny folders) the file with the extreme hash is moved so
that both splits are non-empty. The difficulty caps each split to the first N files in sorted
order. Frames are centre-cropped to a square, resized to ``size x size`` with Pillow, converted to
RGB uint8, and at most ``num_frames`` frames are read from each file.

``dynamic=False`` turns every video into a single still frame (``F == 1``): static background
images.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Literal

import numpy as np

from recore_dist.envs.background_files import (  # noqa: F401  (re-exported)
    ACCEPTED_EXTENSIONS,
    folder_split,
    load_media,
)

Video = np.ndarray
"""uint8 ``[F, H, W, 3]``."""

Split = Literal["train", "heldout"]
Difficulty = Literal["easy", "medium", "hard"]
Style = Literal["shapes", "noise", "gradient", "mixed"]

STYLES: tuple[str, ...] = ("shapes", "noise", "gradient", "mixed")
SPLITS: tuple[str, ...] = ("train", "heldout")

# Distracting Control Suite background counts (CoRe paper, Table 7): difficulty -> split -> count.
NUM_VIDEOS: dict[str, dict[str, int]] = {
    "easy": {"train": 4, "heldout": 4},
    "medium": {"train": 8, "heldout": 8},
    "hard": {"train": 60, "heldout": 30},
}

_SPLIT_CODE = {"train": 0, "heldout": 1}
_STYLE_CODE = {"shapes": 1, "noise": 2, "gradient": 3, "mixed": 4}
_STYLE_PICK_TAG = 0x5717E
_POOL_TAG = 0xBA6D
_SEED_STREAM_LEN = 256  # words drawn per split; more than any pool needs, so dedup never runs dry


# --------------------------------------------------------------------------------------------
# Procedural videos
# --------------------------------------------------------------------------------------------


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1]: ``ys`` ``[1, H, 1]`` and ``xs`` ``[1, 1, W]``."""
    c = ((np.arange(size, dtype=np.float32) + 0.5) / size).astype(np.float32)
    return c[None, :, None], c[None, None, :]


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB, all inputs in [0, 1] (hue wraps); returns ``[..., 3]`` float32."""
    h = np.mod(h, 1.0) * 6.0
    out = []
    for n in (5.0, 3.0, 1.0):
        k = np.mod(n + h, 6.0)
        out.append(v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))
    return np.stack(out, axis=-1).astype(np.float32)


def _random_colour(rng: np.random.Generator, sat=(0.4, 1.0), val=(0.3, 1.0)) -> np.ndarray:
    h = rng.random()
    s = rng.uniform(*sat)
    v = rng.uniform(*val)
    return _hsv_to_rgb(np.float32(h), np.float32(s), np.float32(v))


def _reflect(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Fold ``x`` into ``[lo, hi]`` as a ball bouncing between walls (triangle wave)."""
    span = hi - lo
    u = np.mod(x - lo, 2.0 * span)
    return lo + span - np.abs(u - span)


def _interp_matrix(coords: np.ndarray, g: int) -> np.ndarray:
    """Rows of smoothstep-interpolation weights on a periodic lattice of ``g`` cells.

    ``coords`` ``[F, N]`` in lattice units -> ``[F, N, g]`` with two non-zeros per row.
    """
    i0 = np.floor(coords)
    w = coords - i0
    w = w * w * (3.0 - 2.0 * w)
    i0 = i0.astype(np.int64) % g
    i1 = (i0 + 1) % g
    cells = np.arange(g)
    m = (cells == i0[..., None]) * (1.0 - w)[..., None] + (cells == i1[..., None]) * w[..., None]
    return m.astype(np.float32)


def _noise_field(rng: np.random.Generator, size: int, num_frames: int) -> np.ndarray:
    """Drifting fractal value noise, ``[F, H, W]`` float32 in (0, 1)."""
    t = np.arange(num_frames, dtype=np.float32)[:, None]
    pix = ((np.arange(size, dtype=np.float32) + 0.5) / size)[None, :]
    base = int(rng.integers(2, 5))
    total = np.zeros((num_frames, size, size), dtype=np.float32)
    amp_sum = 0.0
    for octave in range(3):
        g = base * 2**octave
        amp = 0.55**octave
        la = rng.standard_normal((g, g)).astype(np.float32)
        lb = rng.standard_normal((g, g)).astype(np.float32)
        # Lattice morph: cos/sin mix of two Gaussian lattices keeps the per-cell variance.
        omega = rng.uniform(0.01, 0.04) * rng.choice([-1.0, 1.0])
        phase = rng.uniform(0, 2 * np.pi) + omega * t[:, 0]
        lat = (
            np.cos(phase)[:, None, None] * la + np.sin(phase)[:, None, None] * lb
        ).astype(np.float32)
        # Scroll: at most ~1.2 px/frame at 64 px for every octave.
        speed = rng.uniform(0.15, 1.0) * 0.018  # image widths per frame
        ang = rng.uniform(0, 2 * np.pi)
        oy = rng.uniform(0, g) + speed * np.sin(ang) * g * t
        ox = rng.uniform(0, g) + speed * np.cos(ang) * g * t
        ay = _interp_matrix(pix * g + oy, g)  # [F, H, g]
        ax = _interp_matrix(pix * g + ox, g)  # [F, W, g]
        total += amp * (ay @ lat @ ax.transpose(0, 2, 1))
        amp_sum += amp
    total /= amp_sum
    # Fixed per-pixel squashing (no per-video min/max), so frame f does not depend on num_frames.
    # The field's std is ~0.3-0.6; tanh(1.6 x) spreads it over most of [0, 1].
    return (0.5 + 0.5 * np.tanh(1.6 * total)).astype(np.float32)


def _palette(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """Map ``values`` in [0, 1] through a random 3-5 colour palette -> ``[..., 3]`` float32."""
    n = int(rng.integers(3, 6))
    stops = np.sort(rng.uniform(0, 1, n))
    stops[0], stops[-1] = 0.0, 1.0
    colours = np.stack([_random_colour(rng, sat=(0.2, 1.0), val=(0.15, 1.0)) for _ in range(n)])
    # Piecewise-linear interpolation for all channels at once.
    idx = np.clip(np.searchsorted(stops, values, side="right") - 1, 0, n - 2)
    lo, hi = stops[idx], stops[idx + 1]
    w = ((values - lo) / np.maximum(hi - lo, 1e-6)).astype(np.float32)[..., None]
    return (colours[idx] * (1.0 - w) + colours[idx + 1] * w).astype(np.float32)


def _noise_layer(rng: np.random.Generator, size: int, num_frames: int) -> np.ndarray:
    return _palette(rng, _noise_field(rng, size, num_frames))


def _gradient_layer(rng: np.random.Generator, size: int, num_frames: int) -> np.ndarray:
    ys, xs = _grid(size)
    t = np.arange(num_frames, dtype=np.float32)[:, None, None]
    if rng.random() < 0.5:  # linear, rotating
        theta = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.02, 0.02) * t
        s = (xs - 0.5) * np.cos(theta) + (ys - 0.5) * np.sin(theta) + 0.5
    else:  # radial, centre drifting on a Lissajous curve
        fy, fx = rng.uniform(0.01, 0.03, 2)
        py, px = rng.uniform(0, 2 * np.pi, 2)
        cy = 0.5 + 0.35 * np.sin(fy * t + py)
        cx = 0.5 + 0.35 * np.sin(fx * t + px)
        s = np.sqrt((ys - cy) ** 2 + (xs - cx) ** 2)
    hue0 = rng.random()
    spread = rng.uniform(0.15, 0.8) * rng.choice([-1.0, 1.0])
    hue_speed = rng.uniform(0.002, 0.008) * rng.choice([-1.0, 1.0])
    bands = rng.uniform(1.0, 3.0)
    band_speed = rng.uniform(0.02, 0.06) * rng.choice([-1.0, 1.0])
    sat = rng.uniform(0.45, 0.95)
    val0 = rng.uniform(0.55, 0.85)
    h = hue0 + spread * s + hue_speed * t
    v = val0 + 0.15 * np.sin(2 * np.pi * bands * s + band_speed * t)
    return _hsv_to_rgb(h, np.broadcast_to(np.float32(sat), h.shape), np.clip(v, 0, 1))


def _base_layer(rng: np.random.Generator, size: int, num_frames: int) -> np.ndarray:
    """A static two-colour linear gradient (the canvas under shapes)."""
    ys, xs = _grid(size)
    c0 = _random_colour(rng, sat=(0.1, 0.8), val=(0.2, 0.9))
    c1 = _random_colour(rng, sat=(0.1, 0.8), val=(0.2, 0.9))
    theta = rng.uniform(0, 2 * np.pi)
    s = np.clip((xs - 0.5) * np.cos(theta) + (ys - 0.5) * np.sin(theta) + 0.5, 0, 1)[0]
    frame = c0 * (1.0 - s[..., None]) + c1 * s[..., None]
    return np.broadcast_to(frame, (num_frames, size, size, 3)).astype(np.float32)


def _draw_shapes(
    rng: np.random.Generator, canvas: np.ndarray, *, min_shapes: int = 3, max_shapes: int = 8
) -> np.ndarray:
    """Composite bouncing, rotating, anti-aliased shapes onto ``canvas`` ``[F, H, W, 3]``."""
    num_frames, size = canvas.shape[0], canvas.shape[1]
    ys, xs = _grid(size)
    t = np.arange(num_frames, dtype=np.float32)[:, None, None]
    out = canvas.copy()
    for _ in range(int(rng.integers(min_shapes, max_shapes + 1))):
        kind = rng.choice(["circle", "rect", "triangle"])
        r = rng.uniform(0.06, 0.2)  # bounding radius (image widths)
        colour = _random_colour(rng)
        speed = rng.uniform(0.004, 0.025)  # image widths per frame: 0.25-1.6 px at 64 px
        ang = rng.uniform(0, 2 * np.pi)
        lo, hi = r, 1.0 - r
        cy = _reflect(rng.uniform(lo, hi) + speed * np.sin(ang) * t, lo, hi)
        cx = _reflect(rng.uniform(lo, hi) + speed * np.cos(ang) * t, lo, hi)
        dy, dx = ys - cy, xs - cx  # [F, H, 1], [F, 1, W]
        spin = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.04, 0.04) * t
        if kind == "circle":
            dist = np.sqrt(dy * dy + dx * dx) - r
        else:
            c, s_ = np.cos(spin), np.sin(spin)
            u = dx * c + dy * s_
            v = -dx * s_ + dy * c
            if kind == "rect":
                aspect = rng.uniform(0.4, 1.0)
                hw, hh = r / np.sqrt(1 + aspect**2), r * aspect / np.sqrt(1 + aspect**2)
                dist = np.maximum(np.abs(u) - hw, np.abs(v) - hh)
            else:  # equilateral triangle: max over edge half-planes (exact inside, close outside)
                apothem = r / 2.0
                dist = None
                for k in range(3):
                    a = 2 * np.pi * k / 3
                    d = u * np.cos(a) + v * np.sin(a) - apothem
                    dist = d if dist is None else np.maximum(dist, d)
        alpha = np.clip(0.5 - dist * size, 0.0, 1.0).astype(np.float32)[..., None]
        out += alpha * (colour - out)
    return out


def procedural_video(
    seed: int,
    *,
    size: int = 64,
    num_frames: int = 100,
    style: Style | None = None,
) -> Video:
    """A deterministic procedural background video, uint8 ``[num_frames, size, size, 3]``.

    Same ``(seed, size, num_frames, style)`` -> identical bytes. ``style=None`` picks one of
    :data:`STYLES` from the seed.
    """
    seed = _check_seed(seed)
    if int(size) < 1 or int(num_frames) < 1:
        raise ValueError(
            f"size and num_frames must be >= 1, got size={size}, num_frames={num_frames}"
        )
    size, num_frames = int(size), int(num_frames)
    if style is None:
        pick = np.random.default_rng(np.random.SeedSequence([seed, _STYLE_PICK_TAG]))
        style = STYLES[int(pick.integers(len(STYLES)))]
    if style not in _STYLE_CODE:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES} or None")
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STYLE_CODE[style]]))
    if style == "shapes":
        frames = _draw_shapes(rng, _base_layer(rng, size, num_frames))
    elif style == "noise":
        frames = _noise_layer(rng, size, num_frames)
    elif style == "gradient":
        frames = _gradient_layer(rng, size, num_frames)
    else:  # mixed
        under = _noise_layer if rng.random() < 0.5 else _gradient_layer
        frames = _draw_shapes(rng, under(rng, size, num_frames), min_shapes=2, max_shapes=5)
    return np.clip(frames * 255.0 + 0.5, 0, 255).astype(np.uint8)


def pingpong_index(num_frames: int, t: int) -> int:
    """Frame index at time ``t >= 0`` playing ``0..F-1`` forward, then back, and so on."""
    t = int(t)
    if t < 0:
        raise ValueError(f"t must be >= 0, got {t}")
    if num_frames < 1:
        raise ValueError("video has no frames")
    if num_frames == 1:
        return 0
    period = 2 * (num_frames - 1)
    i = t % period
    return i if i < num_frames else period - i


def frame_at(video: Video, t: int) -> np.ndarray:
    """Frame ``[H, W, 3]`` shown at time ``t >= 0`` (ping-pong playback, no jump at the ends)."""
    return video[pingpong_index(len(video), t)]


# --------------------------------------------------------------------------------------------
# Pool
# --------------------------------------------------------------------------------------------


def split_seeds(seed: int, split: Split, n: int) -> list[int]:
    """The first ``n`` video seeds of ``split`` for base ``seed``.

    Train seeds are even and held-out seeds odd, so the two splits never share a seed.
    """
    seed = _check_seed(seed)
    if split not in _SPLIT_CODE:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    words = np.random.SeedSequence([seed, _SPLIT_CODE[split], _POOL_TAG]).generate_state(
        _SEED_STREAM_LEN, dtype=np.uint32
    )
    parity = _SPLIT_CODE[split]
    out: list[int] = []
    seen: set[int] = set()
    for w in words.tolist():
        s = (w >> 1) * 2 + parity  # force the parity: even = train, odd = held-out
        if s not in seen:
            seen.add(s)
            out.append(s)
            if len(out) == n:
                return out
    raise ValueError(f"cannot draw {n} distinct seeds (max {_SEED_STREAM_LEN})")


class BackgroundPool:
    """The background videos of one split at one difficulty (procedural or from a folder).

    Videos are produced lazily by :meth:`video` and cached (at most ``max_cached`` of them if
    given, least recently used evicted). Cached videos are read-only arrays.
    """

    def __init__(
        self,
        split: Split,
        difficulty: Difficulty,
        *,
        size: int = 64,
        num_frames: int = 100,
        seed: int = 0,
        folder: str | None = None,
        dynamic: bool = True,
        max_cached: int | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if difficulty not in NUM_VIDEOS:
            raise ValueError(
                f"unknown difficulty {difficulty!r}; expected one of {tuple(NUM_VIDEOS)}"
            )
        if int(size) < 1 or int(num_frames) < 1:
            raise ValueError("size and num_frames must be >= 1")
        self.split = split
        self.difficulty = difficulty
        self.size = int(size)
        self.num_frames = int(num_frames) if dynamic else 1
        self.dynamic = bool(dynamic)
        self.seed = _check_seed(seed)
        self.folder = None if folder is None else str(folder)
        self.max_cached = max_cached
        n = NUM_VIDEOS[difficulty][split]
        self.seeds: list[int] | None
        self.paths: list[Path] | None
        if folder is None:
            self.seeds = split_seeds(self.seed, split, n)
            self.paths = None
            self.ids = [f"proc-{split}-{i:04d}-s{s}" for i, s in enumerate(self.seeds)]
        else:
            entries = folder_split(folder)[split][:n]
            self.seeds = None
            self.paths = [p for _, p in entries]
            self.ids = [f"file-{split}-{rel}" for rel, _ in entries]
        self._cache: OrderedDict[int, Video] = OrderedDict()

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        src = "procedural" if self.folder is None else f"folder={self.folder!r}"
        return (
            f"BackgroundPool(split={self.split!r}, difficulty={self.difficulty!r}, n={len(self)}, "
            f"size={self.size}, num_frames={self.num_frames}, dynamic={self.dynamic}, {src})"
        )

    @property
    def num_cached(self) -> int:
        return len(self._cache)

    def video(self, i: int) -> Video:
        """Video ``i`` as uint8 ``[F, size, size, 3]`` (``F == 1`` when not dynamic)."""
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"video index {i} out of range for a pool of {len(self)}")
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        if self.seeds is not None:
            v = procedural_video(self.seeds[i], size=self.size, num_frames=self.num_frames)
        else:
            assert self.paths is not None
            v = load_media(self.paths[i], size=self.size, num_frames=self.num_frames)
        v.setflags(write=False)
        self._cache[i] = v
        if self.max_cached is not None:
            while len(self._cache) > max(int(self.max_cached), 0):
                self._cache.popitem(last=False)
        return v

    def sample(self, rng: np.random.Generator) -> tuple[str, Video]:
        """A uniformly random ``(id, video)`` of this pool."""
        i = int(rng.integers(len(self)))
        return self.ids[i], self.video(i)
