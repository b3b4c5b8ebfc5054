"""Procedural scenes of ``nav:pointgoal`` (pure numpy, no MuJoCo): constants, grid layouts, palettes.

A layout is a randomised DFS maze of ``n x n`` 1 m cells with opened rooms and extra doorways
(:func:`generate_layout`); a palette picks colours and builtin texture kinds from per-split,
disjoint hue ranges and texture sets (:func:`generate_palette`). :func:`layout_seeds` and
:func:`scene_pool` build a split's scene specs (train seeds even, held-out seeds odd). See
:mod:`recore_dist.envs.navigation` for the task as a whole.
"""

from __future__ import annotations

import colorsys
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

# -- constants ---------------------------------------------------------------------------------
SPLITS: tuple[str, ...] = ("train", "heldout")
SPLIT_CODE = {"train": 0, "heldout": 1}  # also the forced parity of the split's layout seeds
DEFAULT_NUM_SCENES = {"train": 8, "heldout": 4}
GRID_SIZES = (5, 7)  # inclusive range of the number of cells per side
CELL = 1.0  # metres
WALL_THICKNESS = 0.1
WALL_HEIGHT = 1.0
ROBOT_RADIUS = 0.17
CAMERA_HEIGHT = 0.3
CAMERA_FORWARD = 0.05
CAMERA_FOVY = 90.0
PLAN_MARGIN = 0.1
START_JITTER = 0.15
TIMESTEP = 0.025  # seconds per physics step; physics_steps=4 -> one 0.1 s control period
MAX_FORWARD_SPEED = 0.5  # m/s
MAX_TURN_RATE = 1.5  # rad/s
PROPRIO_DIM = 5
NUM_CLASSES = 4
CLASS_NOTHING, CLASS_FLOOR, CLASS_WALL, CLASS_GOAL = 0, 1, 2, 3

# Disjoint hue ranges (HSV hue in [0, 1)) and texture kinds per split.
HUE_RANGES: dict[str, tuple[tuple[float, float], ...]] = {
    "train": ((0.00, 0.10), (0.30, 0.42), (0.60, 0.72)),
    "heldout": ((0.15, 0.25), (0.47, 0.55), (0.78, 0.92)),
}
WALL_TEXTURES: dict[str, tuple[tuple[str, str], ...]] = {
    "train": (("checker", "none"), ("flat", "random")),
    "heldout": (("gradient", "random"), ("flat", "cross")),
}
FLOOR_TEXTURES: dict[str, tuple[tuple[str, str], ...]] = {
    "train": (("checker", "none"), ("checker", "random")),
    "heldout": (("gradient", "none"), ("flat", "edge")),
}


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


# -- layouts -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Walls of an ``n x n`` grid of 1 m cells centred on the origin.

    ``hwalls[i, c]`` is the wall along x at ``y = i - n/2`` over cell column ``c``
    (between cell rows ``i - 1`` and ``i``); ``vwalls[r, j]`` is the wall along y at
    ``x = j - n/2`` over cell row ``r`` (between cell columns ``j - 1`` and ``j``).
    Cell ``(r, c)`` is centred at ``(c + 0.5 - n/2, r + 0.5 - n/2)``. Borders are always walls.
    """

    n: int
    hwalls: np.ndarray  # bool [n + 1, n]
    vwalls: np.ndarray  # bool [n, n + 1]

    def key(self) -> bytes:
        """A byte string identifying the layout (for equality tests)."""
        return bytes([self.n]) + np.packbits(self.hwalls).tobytes() + np.packbits(self.vwalls).tobytes()

    def cell_center(self, r: int, c: int) -> np.ndarray:
        half = self.n / 2.0
        return np.array([(c + 0.5) * CELL - half * CELL, (r + 0.5) * CELL - half * CELL])

    def cell_of(self, xy: np.ndarray) -> tuple[int, int]:
        half = self.n / 2.0
        c = int(np.clip(math.floor(xy[0] / CELL + half), 0, self.n - 1))
        r = int(np.clip(math.floor(xy[1] / CELL + half), 0, self.n - 1))
        return r, c

    def neighbours(self, r: int, c: int) -> list[tuple[int, int]]:
        """Cells reachable from ``(r, c)`` through an open wall."""
        out = []
        if r > 0 and not self.hwalls[r, c]:
            out.append((r - 1, c))
        if r < self.n - 1 and not self.hwalls[r + 1, c]:
            out.append((r + 1, c))
        if c > 0 and not self.vwalls[r, c]:
            out.append((r, c - 1))
        if c < self.n - 1 and not self.vwalls[r, c + 1]:
            out.append((r, c + 1))
        return out

    def cell_distances(self, start: tuple[int, int]) -> np.ndarray:
        """BFS distance (in cells) from ``start`` to every cell; -1 = unreachable."""
        dist = np.full((self.n, self.n), -1, np.int64)
        dist[start] = 0
        queue = deque([start])
        while queue:
            cell = queue.popleft()
            for nb in self.neighbours(*cell):
                if dist[nb] < 0:
                    dist[nb] = dist[cell] + 1
                    queue.append(nb)
        return dist

    def wall_boxes(self) -> np.ndarray:
        """Merged wall boxes ``[B, 4]`` as ``(xmin, ymin, xmax, ymax)``.

        Horizontal runs cover the junction squares at both ends; vertical runs stop at a
        horizontal wall's face (no coplanar overlaps, hence no z-fighting) and cover the
        junction square themselves where no horizontal wall meets them.
        """
        n, t, half = self.n, WALL_THICKNESS, self.n * CELL / 2.0
        boxes = []
        for i in range(n + 1):
            for c0, c1 in _runs(self.hwalls[i]):
                y = i * CELL - half
                boxes.append((c0 * CELL - half - t / 2, y - t / 2, (c1 + 1) * CELL - half + t / 2, y + t / 2))
        for j in range(n + 1):
            for r0, r1 in _runs(self.vwalls[:, j]):
                x = j * CELL - half

                def capped(row: int) -> bool:
                    return bool((j > 0 and self.hwalls[row, j - 1]) or (j < n and self.hwalls[row, j]))

                y0 = r0 * CELL - half + (t / 2 if capped(r0) else -t / 2)
                y1 = (r1 + 1) * CELL - half - (t / 2 if capped(r1 + 1) else -t / 2)
                boxes.append((x - t / 2, y0, x + t / 2, y1))
        return np.asarray(boxes, np.float64)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive index ranges of consecutive True entries."""
    runs, start = [], None
    for k, v in enumerate(mask):
        if v and start is None:
            start = k
        elif not v and start is not None:
            runs.append((start, k - 1))
            start = None
    if start is not None:
        runs.append((start, len(mask) - 1))
    return runs


def generate_layout(layout_seed: int, sizes: tuple[int, int] = GRID_SIZES) -> Layout:
    """A maze of rooms from a seed: DFS maze, 1-2 opened room blocks, 15 % extra openings."""
    rng = np.random.default_rng(np.random.SeedSequence([int(layout_seed), 0]))
    n = int(rng.integers(sizes[0], sizes[1] + 1))
    h = np.ones((n + 1, n), bool)
    v = np.ones((n, n + 1), bool)

    def open_between(a: tuple[int, int], b: tuple[int, int]) -> None:
        (r0, c0), (r1, c1) = a, b
        if r0 != r1:
            h[max(r0, r1), c0] = False
        else:
            v[r0, max(c0, c1)] = False

    visited = np.zeros((n, n), bool)
    start = (int(rng.integers(n)), int(rng.integers(n)))
    visited[start] = True
    stack = [start]
    while stack:
        r, c = stack[-1]
        options = [
            (r + dr, c + dc)
            for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1))
            if 0 <= r + dr < n and 0 <= c + dc < n and not visited[r + dr, c + dc]
        ]
        if not options:
            stack.pop()
            continue
        nxt = options[int(rng.integers(len(options)))]
        open_between((r, c), nxt)
        visited[nxt] = True
        stack.append(nxt)
    for _ in range(int(rng.integers(1, 3))):  # rooms
        rh, rw = (2, 2) if rng.random() < 0.5 else ((2, 3) if rng.random() < 0.5 else (3, 2))
        r0, c0 = int(rng.integers(n - rh + 1)), int(rng.integers(n - rw + 1))
        h[r0 + 1 : r0 + rh, c0 : c0 + rw] = False
        v[r0 : r0 + rh, c0 + 1 : c0 + rw] = False
    extra_h = rng.random(h[1:n].shape) < 0.15
    extra_v = rng.random(v[:, 1:n].shape) < 0.15
    h[1:n] &= ~extra_h
    v[:, 1:n] &= ~extra_v
    return Layout(n=n, hwalls=h, vwalls=v)


# -- palettes and scene specs ------------------------------------------------------------------
@dataclass(frozen=True)
class Palette:
    """Colours and texture kinds of one scene."""

    wall_hue: float
    floor_hue: float
    sky_hue: float
    wall_texture: tuple[str, str]  # (builtin, mark)
    floor_texture: tuple[str, str]
    wall_rgb: tuple[tuple[float, float, float], tuple[float, float, float]]
    floor_rgb: tuple[tuple[float, float, float], tuple[float, float, float]]
    sky_rgb: tuple[tuple[float, float, float], tuple[float, float, float]]
    wall_mark_rgb: tuple[float, float, float]
    floor_mark_rgb: tuple[float, float, float]
    wall_random: float
    floor_random: float
    wall_repeat: float
    floor_repeat: float

    @property
    def hues(self) -> tuple[float, float, float]:
        return (self.wall_hue, self.floor_hue, self.sky_hue)


def _hue(rng: np.random.Generator, split: str) -> float:
    ranges = HUE_RANGES[split]
    lo, hi = ranges[int(rng.integers(len(ranges)))]
    return float(rng.uniform(lo, hi))


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    return tuple(round(x, 4) for x in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


def _colour_pair(rng: np.random.Generator, hue: float, sat: tuple[float, float], val: tuple[float, float]):
    s = float(rng.uniform(*sat))
    v1 = float(rng.uniform(*val))
    v2 = v1 * float(rng.uniform(0.45, 0.75))
    return _hsv(hue, s, v1), _hsv(hue, min(1.0, s * 1.1), v2)


def generate_palette(layout_seed: int, split: str) -> Palette:
    """A palette drawn from the split's hue ranges and texture kinds."""
    rng = np.random.default_rng(np.random.SeedSequence([int(layout_seed), 1]))
    wall_hue, floor_hue, sky_hue = _hue(rng, split), _hue(rng, split), _hue(rng, split)
    walls, floors = WALL_TEXTURES[split], FLOOR_TEXTURES[split]
    grey = lambda: _hsv(0.0, 0.0, float(rng.choice([rng.uniform(0.05, 0.2), rng.uniform(0.8, 0.95)])))  # noqa: E731
    return Palette(
        wall_hue=wall_hue,
        floor_hue=floor_hue,
        sky_hue=sky_hue,
        wall_texture=walls[int(rng.integers(len(walls)))],
        floor_texture=floors[int(rng.integers(len(floors)))],
        wall_rgb=_colour_pair(rng, wall_hue, (0.35, 0.8), (0.6, 0.95)),
        floor_rgb=_colour_pair(rng, floor_hue, (0.25, 0.7), (0.45, 0.8)),
        sky_rgb=_colour_pair(rng, sky_hue, (0.15, 0.45), (0.75, 1.0)),
        wall_mark_rgb=grey(),
        floor_mark_rgb=grey(),
        wall_random=round(float(rng.uniform(0.02, 0.1)), 3),
        floor_random=round(float(rng.uniform(0.02, 0.1)), 3),
        wall_repeat=round(float(rng.uniform(1.0, 3.0)), 2),
        floor_repeat=round(float(rng.uniform(0.5, 2.0)), 2),
    )


@dataclass(frozen=True)
class SceneSpec:
    """One scene of a split's pool: id, layout seed, layout and palette."""

    split: str
    index: int
    scene_id: str
    layout_seed: int
    layout: Layout = field(repr=False)
    palette: Palette = field(repr=False)


def layout_seeds(split: str, num_scenes: int, scene_seed: int = 0) -> list[int]:
    """The first ``num_scenes`` layout seeds of a split (train even, held-out odd; distinct)."""
    code = SPLIT_CODE[_check_split(split)]
    seeds: list[int] = []
    k = 0
    while len(seeds) < num_scenes:
        raw = int(np.random.SeedSequence([int(scene_seed), code, k]).generate_state(1, np.uint32)[0])
        seed = (raw & ~1) | code  # parity = split code: disjoint across splits by construction
        if seed not in seeds:
            seeds.append(seed)
        k += 1
    return seeds


def scene_pool(split: str, num_scenes: int | None = None, scene_seed: int = 0) -> list[SceneSpec]:
    """The scene specs of one split (``num_scenes`` default: 8 train, 4 held-out)."""
    split = _check_split(split)
    num = DEFAULT_NUM_SCENES[split] if num_scenes is None else int(num_scenes)
    if num < 1:
        raise ValueError(f"num_scenes must be >= 1, got {num_scenes!r}")
    return [
        SceneSpec(split, i, f"nav-{split}-{i:03d}", s, generate_layout(s), generate_palette(s, split))
        for i, s in enumerate(layout_seeds(split, num, scene_seed))
    ]
