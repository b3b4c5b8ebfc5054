"""Offline point-goal navigation from pixels (``nav:pointgoal``), built on MuJoCo directly.

ReCoRe's headline task is iGibson PointNav (a Turtlebot reaches a goal given in its own frame,
from egocentric RGB; success rate SR and SPL on held-out scenes). iGibson does not run here
(:mod:`recore_dist.envs.igibson` is the adapter for machines where it does), so this module
provides an offline stand-in with the same task structure, built from procedurally generated
rooms and rendered with :class:`~recore_dist.envs.render.FastCamera`.

Robot and control
-----------------
A low robot (collision sphere of radius 0.17 m, roughly a Turtlebot's footprint) with three joints:
``slide x``, ``slide y`` and ``hinge z``. The action (float32 ``[-1, 1]^2``) is
``(forward speed, turn rate)``, scaled to 0.5 m/s and 1.5 rad/s. Before every physics step the
joint velocities are set to the commanded body velocity rotated into the world frame (a
kinematic differential drive); MuJoCo's contact solver then stops the robot at walls. The
physics timestep is 0.025 s and ``action_repeat=4`` physics steps make one env step, so the
control period is **0.1 s** (10 Hz, as iGibson's ``action_timestep``). The robot's own geoms are
in geom group 3, which the camera does not draw, so it never sees itself.

Scenes
------
A scene is a square grid of ``n x n`` cells of 1 m (``n`` in 5..7) with walls (0.1 m thick,
1 m high) on the cell borders. The layout is a randomised depth-first-search maze (so every cell is
reachable), then one or two 2x2 / 2x3 blocks are opened into rooms, then 15 % of the remaining
interior walls are removed (loops and doorways). Collinear wall segments are merged into single
boxes (few geoms, cheap contacts and rendering); each wall is a hidden box geom for collisions
plus a visual box *mesh* with world-aligned texture coordinates (MuJoCo maps 2D textures on
primitives by their x-y coordinates, which smears them into stripes on vertical faces). Walls,
floor and sky use MuJoCo's builtin procedural textures (``checker`` / ``gradient`` / ``flat``
with ``random`` / ``edge`` / ``cross`` marks) coloured from a palette.

Train and held-out scenes differ in layout **and** appearance, by construction:

- layout seeds come from ``SeedSequence([scene_seed, split_code, index])`` with the parity forced
  per split (train even, held-out odd), so no held-out seed ever equals a train seed;
- palette hues come from disjoint hue ranges (:data:`HUE_RANGES`), and the (builtin, mark)
  texture kinds of walls and floors come from disjoint sets (:data:`WALL_TEXTURES`,
  :data:`FLOOR_TEXTURES`);
- ids carry the split: ``"nav-train-003"`` / ``"nav-heldout-001"``.

Pools have 8 train and 4 held-out scenes by default (``num_scenes``). Each reset draws a scene
from the split's pool (or uses ``scene=k`` / ``reset(options={"scene": k})``). The compiled physics,
its MuJoCo render context, camera and path planner are cached per scene (``cache_scenes=True``),
so a reset in a scene seen before costs ~5 ms; the first visit of a scene compiles it (~30-40 ms
here). All scenes of an env share one GL context: the first render context made on a fresh
software-GL context costs ~120 ms (once per env), later ones ~5 ms. With ``cache_scenes=False``
only the current scene is kept.

Episodes, observations, reward
------------------------------
Start and goal are drawn in two different cells at least ``min_goal_cells=2`` cells apart on the
cell graph (BFS through open walls), each jittered by up to 0.15 m around the cell centre; the
start heading is uniform. There is no visible goal marker by default (as in iGibson PointNav,
where the target is invisible to the agent); ``goal_marker=True`` adds a mocap cylinder geom.

- ``image`` uint8 ``[size, size, 3]`` from an egocentric camera (fovy 90 deg, 0.3 m above the
  floor, looking forward); ``depth`` float32 ``[size, size, 1]`` in metres from the same render
  pass, clipped to ``max_depth`` (the sky reads ``max_depth``); ``segmentation`` int32
  ``[size, size]`` with classes ``0`` = nothing / sky, ``1`` = floor, ``2`` = walls, ``3`` = goal
  marker (``num_classes = 4`` always, class 3 only appears with ``goal_marker=True``);
  ``clean_image`` is a copy of ``image``: this env applies no interventions.
- ``proprio`` float32 ``[5]``: goal distance (m), sin and cos of the goal's bearing in the
  robot frame, measured forward speed (m/s) and turn rate (rad/s), like iGibson's polar
  ``task_obs`` (goal in the robot frame plus base velocities).
- Reward (iGibson PointNav): potential-based progress ``d_prev - d_now`` with ``d`` the
  *geodesic* distance to the goal (``reward_distance="geodesic"``; ``"euclidean"`` also works),
  ``+10`` on success, ``-0.1`` on every env step in which the robot touched a wall (any MuJoCo
  contact; only robot-wall contacts exist), minus an optional ``time_penalty`` (default 0).
- **Success**: Euclidean distance to the goal below ``success_distance=0.36`` m (iGibson's
  ``dist_tol``, the Turtlebot's body width) ends the episode (``terminated``, ``is_terminal``).
  ``max_steps=500`` steps truncate it (``is_last`` without ``is_terminal``).

``info`` always has ``intervention_id`` (= ``scene_id``), ``split``, ``scene_id``, ``collision``,
``distance`` and ``geodesic_distance``; the step that ends an episode adds ``success``, ``spl``,
``path_length``, ``shortest_path_length`` and ``episode_length``.
``spl = success * L / max(L, P)`` (Anderson et al. 2018) with ``P`` the integrated travel of the
robot centre (sum of per-step displacements) and ``L`` the geodesic start-goal distance.

Shortest paths
--------------
Geodesic distances are exact shortest paths for a point among the wall boxes inflated by
``PLAN_MARGIN = 0.1`` m (square inflation): a visibility graph over the corners of the inflated
boxes (:class:`GeodesicPlanner`) with all-pairs corner distances (Floyd-Warshall) precomputed per
scene; per episode the goal's distance field is one min-plus product, and the distance from any
point is then one vectorised visibility query (~0.1 ms). A straight corridor therefore gives exactly the Euclidean
distance. The margin is smaller than the robot radius (0.17 m) so that the robot centre can never
be inside an inflated box (0.1 * sqrt(2) < 0.17); paths may cut wall corners by a few centimetres
more than the robot could, so ``L`` slightly underestimates the robot's best path (SPL is
conservative by the same amount).

Speed (2-core dev machine, pinned to one core with ``taskset``, software EGL, uniform random
actions, resets included, after a warm-up): 64x64 RGB ~1,400-2,000 steps/s, the same with depth
(read from the same pass), ~1,200 with depth + segmentation (a second pass), 84x84 ~1,500 steps/s.
``python -m recore_dist.envs.navigation`` runs :func:`benchmark` and prints steps/s.
"""

from __future__ import annotations

from recore_dist.envs.gl import ensure_mujoco_gl

ensure_mujoco_gl()

import colorsys  # noqa: E402
import math  # noqa: E402
from collections import deque  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any, Iterable, Mapping  # noqa: E402

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from dm_control import _render as dm_render  # noqa: E402
from dm_control import mujoco as dm_mujoco  # noqa: E402
from dm_control.mujoco import engine as dm_engine  # noqa: E402
from dm_control.mujoco.wrapper import core as dm_core  # noqa: E402

from recore_dist.envs import base  # noqa: E402
from recore_dist.envs.render import FastCamera  # noqa: E402

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
TIMESTEP = 0.025  # seconds per physics step; action_repeat=4 -> 0.1 s per env step
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


# -- geodesic planner --------------------------------------------------------------------------
def segments_blocked(p0: np.ndarray, p1: np.ndarray, rects: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Whether each segment ``p0[k] -> p1[k]`` passes through the open interior of any rect.

    ``p0``, ``p1``: ``[S, 2]``; ``rects``: ``[R, 4]`` as ``(xmin, ymin, xmax, ymax)``. Rects are
    shrunk by ``eps`` so that segments running along a rect's edge or touching its corner are free
    (slab / Liang-Barsky clipping, vectorised over segments x rects).
    """
    p0 = np.asarray(p0, np.float64)[:, None, :]
    d = np.asarray(p1, np.float64)[:, None, :] - p0
    if len(rects) == 0:
        return np.zeros(p0.shape[0], bool)
    lo = rects[None, :, :2] + eps
    hi = rects[None, :, 2:] - eps
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - p0) / d
        t2 = (hi - p0) / d
    tmin = np.minimum(t1, t2)
    tmax = np.maximum(t1, t2)
    flat = np.abs(d) < 1e-12
    inside = (p0 > lo) & (p0 < hi)
    tmin = np.where(flat, np.where(inside, -np.inf, np.inf), tmin)
    tmax = np.where(flat, np.where(inside, np.inf, -np.inf), tmax)
    t_enter = np.maximum(np.maximum(tmin[..., 0], tmin[..., 1]), 0.0)
    t_exit = np.minimum(np.minimum(tmax[..., 0], tmax[..., 1]), 1.0)
    return np.any(t_enter < t_exit, axis=1)


@dataclass
class GoalField:
    """Geodesic distances from every graph vertex to one goal (with Dijkstra predecessors)."""

    goal: np.ndarray
    dist: np.ndarray  # [V]
    pred: np.ndarray  # [V]; -1 = straight to the goal


class GeodesicPlanner:
    """Exact shortest paths for a point among the layout's wall boxes inflated by ``margin``.

    Vertices are the corners of the inflated boxes that lie inside the maze and outside every
    other inflated box; corner-to-corner visibility and all-pairs distances are computed once.
    """

    def __init__(self, layout: Layout, margin: float = PLAN_MARGIN):
        self.layout = layout
        self.margin = float(margin)
        boxes = layout.wall_boxes()
        self.rects = boxes + np.array([-margin, -margin, margin, margin])
        corners = np.concatenate(
            [self.rects[:, [0, 1]], self.rects[:, [0, 3]], self.rects[:, [2, 1]], self.rects[:, [2, 3]]]
        )
        half = layout.n * CELL / 2.0
        inside_maze = np.all(np.abs(corners) < half, axis=1)
        in_rect = np.any(
            (corners[:, None, 0] > self.rects[None, :, 0] + 1e-9)
            & (corners[:, None, 0] < self.rects[None, :, 2] - 1e-9)
            & (corners[:, None, 1] > self.rects[None, :, 1] + 1e-9)
            & (corners[:, None, 1] < self.rects[None, :, 3] - 1e-9),
            axis=1,
        )
        verts = corners[inside_maze & ~in_rect]
        self.vertices = np.unique(np.round(verts, 9), axis=0)
        v = len(self.vertices)
        iu, ju = np.triu_indices(v, k=1)
        blocked = segments_blocked(self.vertices[iu], self.vertices[ju], self.rects)
        w = np.full((v, v), np.inf)
        lengths = np.linalg.norm(self.vertices[iu] - self.vertices[ju], axis=1)
        w[iu[~blocked], ju[~blocked]] = lengths[~blocked]
        w[ju[~blocked], iu[~blocked]] = lengths[~blocked]
        np.fill_diagonal(w, 0.0)
        self.weights = w
        self.all_pairs = _floyd_warshall(w)

    def visible(self, p: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Which ``targets [T, 2]`` are visible from point ``p``."""
        p = np.asarray(p, np.float64)
        return ~segments_blocked(np.broadcast_to(p, targets.shape), targets, self.rects)

    def goal_field(self, goal: np.ndarray) -> GoalField:
        goal = np.asarray(goal, np.float64)
        v = len(self.vertices)
        direct = np.where(self.visible(goal, self.vertices), np.linalg.norm(self.vertices - goal, axis=1), np.inf)
        # dist[c] = min over vertices c' seen from the goal of |goal - c'| + APSP[c', c]
        via = direct[:, None] + self.all_pairs
        first = np.argmin(via, axis=0) if v else np.zeros(0, np.int64)
        dist = via[first, np.arange(v)] if v else np.zeros(0)
        # predecessor towards the goal: walk Dijkstra-style on the weights for path extraction
        pred = np.full(v, -1, np.int64)
        for c in range(v):
            if not np.isfinite(dist[c]) or dist[c] == direct[c]:
                continue
            cand = self.weights[c] + dist
            cand[c] = np.inf
            pred[c] = int(np.argmin(cand))
        return GoalField(goal=goal, dist=dist, pred=pred)

    def free_point(self, p: np.ndarray) -> np.ndarray:
        """``p`` itself if it is outside every inflated box, else the nearest point just outside.

        The robot centre cannot enter the default inflation (see the module docstring), but a
        planner with a larger margin (a scripted controller's) can see it inside a box.
        """
        p = np.asarray(p, np.float64)
        lo, hi = self.rects[:, :2], self.rects[:, 2:]
        containing = np.all((p > lo) & (p < hi), axis=1)
        if not containing.any():
            return p
        step = 1e-6
        cands = []
        for x0, y0, x1, y1 in self.rects[containing]:
            cands += [(x0 - step, p[1]), (x1 + step, p[1]), (p[0], y0 - step), (p[0], y1 + step)]
        cands = np.asarray(cands)
        free = ~np.any(np.all((cands[:, None] > lo[None]) & (cands[:, None] < hi[None]), axis=2), axis=1)
        if not free.any():  # a corner region of overlapping boxes: take the nearest corner vertex
            cands = self.vertices if len(self.vertices) else cands
            free = np.ones(len(cands), bool)
        d = np.where(free, np.linalg.norm(cands - p, axis=1), np.inf)
        return cands[int(np.argmin(d))]

    def distance(self, p: np.ndarray, gf: GoalField) -> float:
        """Geodesic distance from ``p`` to the field's goal.

        A point inside an inflated box is first moved to the nearest free point (that offset is
        added to the distance).
        """
        p = np.asarray(p, np.float64)
        q = self.free_point(p)
        offset = float(np.linalg.norm(q - p))
        targets = np.concatenate([gf.goal[None], self.vertices])
        vis = self.visible(q, targets)
        if vis[0]:
            return offset + float(np.linalg.norm(gf.goal - q))
        if len(self.vertices) == 0:
            return math.inf
        costs = np.where(vis[1:], np.linalg.norm(self.vertices - q, axis=1) + gf.dist, np.inf)
        return offset + float(costs.min())

    def path(self, p: np.ndarray, gf: GoalField) -> np.ndarray:
        """Waypoints ``[K, 2]`` of a shortest path from ``p`` (excluded) to the goal (included)."""
        p = np.asarray(p, np.float64)
        q = self.free_point(p)
        head = [q] if np.any(q != p) else []
        targets = np.concatenate([gf.goal[None], self.vertices])
        vis = self.visible(q, targets)
        if vis[0] or len(self.vertices) == 0:
            return np.asarray(head + [gf.goal])
        costs = np.where(vis[1:], np.linalg.norm(self.vertices - q, axis=1) + gf.dist, np.inf)
        node = int(np.argmin(costs))
        if not np.isfinite(costs[node]):
            return np.asarray(head + [gf.goal])
        out = head
        for _ in range(len(self.vertices) + 1):
            out.append(self.vertices[node])
            if gf.pred[node] < 0:
                break
            node = int(gf.pred[node])
        out.append(gf.goal)
        return np.asarray(out)


def _floyd_warshall(w: np.ndarray) -> np.ndarray:
    d = w.copy()
    for k in range(len(d)):
        np.minimum(d, d[:, k : k + 1] + d[k : k + 1, :], out=d)
    return d


def shortest_path_length(layout: Layout, start: np.ndarray, goal: np.ndarray, margin: float = PLAN_MARGIN) -> float:
    """Geodesic start-goal distance in a layout (see :class:`GeodesicPlanner`)."""
    planner = GeodesicPlanner(layout, margin)
    return planner.distance(np.asarray(start, float), planner.goal_field(np.asarray(goal, float)))


# -- MJCF --------------------------------------------------------------------------------------
def _rgb(c) -> str:
    return " ".join(f"{x:.4g}" for x in c)


def _fmt(a: np.ndarray) -> str:
    a = np.asarray(a).ravel()
    if np.issubdtype(a.dtype, np.integer):
        return " ".join(str(int(v)) for v in a)
    return " ".join(f"{v:.4f}" for v in a)


# Box faces: outward normal axis/sign and the in-plane (u, v) axes with u x v = normal.
_FACES = (
    ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    ((-1, 0, 0), (0, -1, 0), (0, 0, 1)),
    ((0, 1, 0), (-1, 0, 0), (0, 0, 1)),
    ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
    ((0, 0, 1), (1, 0, 0), (0, 1, 0)),
    ((0, 0, -1), (1, 0, 0), (0, -1, 0)),
)


def box_mesh(half: np.ndarray, centre: np.ndarray, repeat: float):
    """A box mesh (24 vertices, 12 triangles) with texture coordinates in world metres x ``repeat``.

    MuJoCo maps 2D textures on primitive geoms by their x-y object coordinates, which smears them
    into stripes on vertical faces; a mesh with explicit UVs shows walls with undistorted
    textures, continuous across adjacent wall pieces. Vertices are centred on the box centre.
    """
    half = np.asarray(half, np.float64)
    centre = np.asarray(centre, np.float64)
    verts, faces, uvs = [], [], []
    for normal, u_axis, v_axis in _FACES:
        n, a, b = (np.asarray(x, np.float64) for x in (normal, u_axis, v_axis))
        base_index = len(verts)
        for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            p = n * half + su * a * half + sv * b * half
            verts.append(p)
            world = p + centre
            uvs.append((float(a @ world) * repeat, float(b @ world) * repeat))
        faces += [(base_index, base_index + 1, base_index + 2), (base_index, base_index + 2, base_index + 3)]
    return np.asarray(verts), np.asarray(faces, np.int64), np.asarray(uvs)


def scene_xml(spec: SceneSpec, *, size: int, goal_marker: bool = False) -> str:
    """The MJCF of one scene (walls, floor, sky, robot with its egocentric camera)."""
    pal, layout = spec.palette, spec.layout
    half = layout.n * CELL / 2.0
    walls, meshes = [], []
    for k, (x0, y0, x1, y1) in enumerate(layout.wall_boxes()):
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2, WALL_HEIGHT / 2])
        extent = np.array([(x1 - x0) / 2, (y1 - y0) / 2, WALL_HEIGHT / 2])
        pos, size_ = " ".join(f"{v:.4f}" for v in centre), " ".join(f"{v:.4f}" for v in extent)
        # collision: a box, hidden (group 3); looks: a box mesh with world-aligned UVs
        walls.append(f'<geom name="wall{k}" type="box" pos="{pos}" size="{size_}" group="3"/>')
        vert, face, uv = box_mesh(extent, centre, pal.wall_repeat)
        meshes.append(
            f'<mesh name="wallmesh{k}" vertex="{_fmt(vert)}" face="{_fmt(face)}" texcoord="{_fmt(uv)}"/>'
        )
        walls.append(
            f'<geom name="wallvis{k}" type="mesh" mesh="wallmesh{k}" pos="{pos}" material="wall" '
            'contype="0" conaffinity="0" mass="0"/>'
        )
    wb, wm = pal.wall_texture
    fb, fm = pal.floor_texture
    goal = (
        '<body name="goal" mocap="true" pos="0 0 0">'
        '<geom name="goal_marker" type="cylinder" size="0.12 0.25" pos="0 0 0.25" contype="0" conaffinity="0" '
        'rgba="1 0.45 0.05 1"/></body>'
        if goal_marker
        else ""
    )
    return f"""
<mujoco model="{spec.scene_id}">
  <compiler angle="radian"/>
  <option timestep="{TIMESTEP}" gravity="0 0 0" integrator="Euler"/>
  <statistic extent="10" center="0 0 0.5"/>
  <visual>
    <global offwidth="{size}" offheight="{size}"/>
    <quality offsamples="0" shadowsize="0"/>
    <map znear="0.003" zfar="3"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.45 0.45 0.45" specular="0 0 0"/>
  </visual>
  <asset>
    <texture name="sky" type="skybox" builtin="gradient" rgb1="{_rgb(pal.sky_rgb[0])}" rgb2="{_rgb(pal.sky_rgb[1])}"
      width="64" height="64"/>
    <texture name="wall" type="2d" builtin="{wb}" mark="{wm}" random="{pal.wall_random}"
      rgb1="{_rgb(pal.wall_rgb[0])}" rgb2="{_rgb(pal.wall_rgb[1])}" markrgb="{_rgb(pal.wall_mark_rgb)}"
      width="128" height="128"/>
    <texture name="floor" type="2d" builtin="{fb}" mark="{fm}" random="{pal.floor_random}"
      rgb1="{_rgb(pal.floor_rgb[0])}" rgb2="{_rgb(pal.floor_rgb[1])}" markrgb="{_rgb(pal.floor_mark_rgb)}"
      width="128" height="128"/>
    <material name="wall" texture="wall" specular="0" shininess="0"/>
    {"".join(meshes)}
    <material name="floor" texture="floor" texrepeat="{pal.floor_repeat} {pal.floor_repeat}" texuniform="true"
      specular="0" shininess="0"/>
  </asset>
  <worldbody>
    <light directional="true" pos="0 0 5" dir="0.35 0.55 -1" diffuse="0.5 0.5 0.5" specular="0 0 0"
      castshadow="false"/>
    <geom name="floor" type="plane" size="{half:.3f} {half:.3f} 0.1" material="floor" contype="0" conaffinity="0"/>
    {"".join(walls)}
    {goal}
    <body name="robot" pos="0 0 0">
      <joint name="x" type="slide" axis="1 0 0"/>
      <joint name="y" type="slide" axis="0 1 0"/>
      <joint name="yaw" type="hinge" axis="0 0 1"/>
      <geom name="robot_collision" type="sphere" size="{ROBOT_RADIUS}" pos="0 0 {ROBOT_RADIUS}" mass="5"
        group="3" rgba="0.2 0.2 0.2 1"/>
      <geom name="robot_base" type="cylinder" size="{ROBOT_RADIUS} 0.05" pos="0 0 0.05" mass="1"
        contype="0" conaffinity="0" group="3" rgba="0.3 0.3 0.3 1"/>
      <camera name="egocam" pos="{CAMERA_FORWARD} 0 {CAMERA_HEIGHT}" xyaxes="0 -1 0 0 0 1" fovy="{CAMERA_FOVY}"/>
    </body>
  </worldbody>
</mujoco>
"""


def _shared_gl_context(size: int):
    """One GL context for all scenes of an env (held by the env through its refcount)."""
    gl = dm_render.Renderer(max_width=size, max_height=size)
    gl.increment_refcount()
    return gl


def _attach_gl(physics, gl) -> None:
    """Give ``physics`` a MuJoCo render context on the shared GL context ``gl``.

    The first ``MjrContext`` made on a fresh GL context costs ~120 ms in software GL (one-time
    driver set-up); later ones ~5 ms. dm_control makes one GL context per ``Physics``, so a
    scene switch would pay the 120 ms every time; sharing one GL context avoids that. dm_control
    refcounts GL contexts: ``physics.free()`` releases this scene's ``MjrContext`` and leaves the
    shared GL context alive while other holders remain.
    """
    ctx = dm_core.MjrContext(physics.model, gl)
    with physics._contexts_lock:  # dm_control has no public hook for a shared context
        physics._contexts = dm_engine.Contexts(gl=gl, mujoco=ctx)


class _Scene:
    """A compiled scene: physics, camera, planner and geom classes."""

    def __init__(self, spec: SceneSpec, *, size: int, goal_marker: bool, gl=None):
        self.spec = spec
        self.physics = dm_mujoco.Physics.from_xml_string(scene_xml(spec, size=size, goal_marker=goal_marker))
        if gl is not None:
            _attach_gl(self.physics, gl)
        model = self.physics.model
        names = [model.id2name(g, "geom") for g in range(model.ngeom)]
        classes = np.zeros(model.ngeom, np.int32)
        for g, name in enumerate(names):
            if name == "floor":
                classes[g] = CLASS_FLOOR
            elif name.startswith("wall"):
                classes[g] = CLASS_WALL
            elif name == "goal_marker":
                classes[g] = CLASS_GOAL
        self.geom_class = classes
        self.camera = FastCamera(self.physics, "egocam", size, classes, other_class=CLASS_NOTHING)
        self.planner = GeodesicPlanner(spec.layout)
        self.mocap_goal = model.body_mocapid[model.name2id("goal", "body")] if goal_marker else -1

    def free(self) -> None:
        self.physics.free()


# -- env -----------------------------------------------------------------------------------------
class PointGoalNavEnv(gym.Env):
    """Offline point-goal navigation in procedurally generated rooms (see the module docstring).

    Args:
        size: image height and width (64 default, 84 option).
        depth / segmentation / clean_image: add these targets (``clean_image`` equals ``image``).
        split: ``"train"`` or ``"heldout"`` scene pool.
        seed: seeds the episode draws (scene, start, goal, heading); ``reset(seed=...)`` re-seeds.
        max_steps: time limit in env steps (truncation).
        num_scenes: pool size (default 8 train, 4 held-out).
        action_repeat: physics steps of 0.025 s per env step (4: 0.1 s control period).
        scene: fix the scene index (``None``: draw one per episode).
        scene_seed: base seed of the scene pools (layouts and palettes).
        success_distance: success radius in metres (0.36, iGibson's ``dist_tol``).
        goal_marker: render a goal cylinder (segmentation class 3); off by default.
        collision_penalty, success_reward, time_penalty: reward terms.
        reward_distance: ``"geodesic"`` (default) or ``"euclidean"`` potential.
        min_goal_cells: minimum start-goal distance on the cell graph.
        max_depth: depth is clipped here (metres); the sky reads as ``max_depth``.
        cache_scenes: keep every compiled scene (fast resets) or only the current one.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        *,
        size: int = 64,
        depth: bool = False,
        segmentation: bool = False,
        clean_image: bool = False,
        split: str = "train",
        seed: int | None = None,
        max_steps: int = 500,
        num_scenes: int | None = None,
        action_repeat: int = 4,
        scene: int | None = None,
        scene_seed: int = 0,
        success_distance: float = 0.36,
        goal_marker: bool = False,
        collision_penalty: float = 0.1,
        success_reward: float = 10.0,
        time_penalty: float = 0.0,
        reward_distance: str = "geodesic",
        min_goal_cells: int = 2,
        max_depth: float = 10.0,
        cache_scenes: bool = True,
        render_mode: str | None = "rgb_array",
    ):
        self.size = base.check_size(size)
        self.split = _check_split(split)
        self.max_steps = int(max_steps)
        self.action_repeat = int(action_repeat)
        if self.max_steps < 1 or self.action_repeat < 1:
            raise ValueError(f"max_steps and action_repeat must be >= 1, got {max_steps!r}, {action_repeat!r}")
        if reward_distance not in ("geodesic", "euclidean"):
            raise ValueError(f"reward_distance must be 'geodesic' or 'euclidean', got {reward_distance!r}")
        self.scenes = scene_pool(self.split, num_scenes, scene_seed)
        if scene is not None and not 0 <= int(scene) < len(self.scenes):
            raise ValueError(f"scene must be in [0, {len(self.scenes)}), got {scene!r}")
        self.fixed_scene = None if scene is None else int(scene)
        self.success_distance = float(success_distance)
        self.goal_marker = bool(goal_marker)
        self.collision_penalty = float(collision_penalty)
        self.success_reward = float(success_reward)
        self.time_penalty = float(time_penalty)
        self.reward_distance = reward_distance
        self.min_goal_cells = int(min_goal_cells)
        self.max_depth = float(max_depth)
        self.cache_scenes = bool(cache_scenes)
        self.render_mode = render_mode
        self.num_classes = NUM_CLASSES
        self._want = {"depth": bool(depth), "segmentation": bool(segmentation), "clean_image": bool(clean_image)}
        self.observation_space = base.observation_space(
            size=self.size, proprio_dim=PROPRIO_DIM, num_classes=NUM_CLASSES, max_depth=self.max_depth, **self._want
        )
        self.action_space = base.action_space(2)
        if seed is not None:  # seeds the first reset (gymnasium's generator, as reset(seed=...) does)
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(int(seed))
        self._cache: dict[int, _Scene] = {}
        self._gl = None
        self._scene: _Scene | None = None
        self._field: GoalField | None = None
        self._goal = np.zeros(2)
        self._steps = 0
        self._path_length = 0.0
        self._shortest = 0.0
        self._potential = 0.0
        self._prev_xy = np.zeros(2)
        self._last_image: np.ndarray | None = None
        self._done = True
        self.finished_episodes: list[dict[str, Any]] = []

    # -- properties ----------------------------------------------------------------------------
    @property
    def scene(self) -> SceneSpec:
        if self._scene is None:
            raise RuntimeError("call reset() first")
        return self._scene.spec

    @property
    def scene_id(self) -> str:
        return self.scene.scene_id

    @property
    def layout(self) -> Layout:
        return self.scene.layout

    @property
    def physics(self):
        if self._scene is None:
            raise RuntimeError("call reset() first")
        return self._scene.physics

    @property
    def planner(self) -> GeodesicPlanner:
        if self._scene is None:
            raise RuntimeError("call reset() first")
        return self._scene.planner

    @property
    def goal(self) -> np.ndarray:
        return self._goal.copy()

    @property
    def robot_pose(self) -> tuple[float, float, float]:
        """``(x, y, yaw)`` of the robot, yaw wrapped to ``[-pi, pi)``."""
        q = self.physics.data.qpos
        return float(q[0]), float(q[1]), _wrap(float(q[2]))

    @property
    def shortest_path_length(self) -> float:
        """Geodesic start-goal distance of the current episode (metres)."""
        return self._shortest

    @property
    def path_length(self) -> float:
        """Distance travelled by the robot centre in the current episode (metres)."""
        return self._path_length

    # -- scenes ------------------------------------------------------------------------------
    def _activate(self, index: int) -> _Scene:
        if self._scene is not None and self._scene.spec.index == index:
            return self._scene
        scene = self._cache.get(index)
        if scene is None:
            if not self.cache_scenes:
                for old in self._cache.values():
                    old.free()
                self._cache.clear()
            if self._gl is None:
                self._gl = _shared_gl_context(self.size)
            scene = _Scene(self.scenes[index], size=self.size, goal_marker=self.goal_marker, gl=self._gl)
            self._cache[index] = scene
        self._scene = scene
        return scene

    # -- gymnasium API ---------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        index = options.pop("scene", self.fixed_scene)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; supported: 'scene'")
        rng = self.np_random
        if index is None:
            index = int(rng.integers(len(self.scenes)))
        elif not 0 <= int(index) < len(self.scenes):
            raise ValueError(f"scene must be in [0, {len(self.scenes)}), got {index!r}")
        scene = self._activate(int(index))
        layout = scene.spec.layout
        n = layout.n
        start_cell = (int(rng.integers(n)), int(rng.integers(n)))
        dist = layout.cell_distances(start_cell)
        far = np.argwhere(dist >= self.min_goal_cells)
        if len(far) == 0:  # tiny layouts only: take the farthest cell
            far = np.argwhere(dist == dist.max())
        goal_cell = tuple(int(x) for x in far[int(rng.integers(len(far)))])
        start = layout.cell_center(*start_cell) + rng.uniform(-START_JITTER, START_JITTER, 2)
        goal = layout.cell_center(*goal_cell) + rng.uniform(-START_JITTER, START_JITTER, 2)
        yaw = float(rng.uniform(-np.pi, np.pi))

        physics = scene.physics
        mujoco.mj_resetData(physics.model.ptr, physics.data.ptr)
        physics.data.qpos[:] = (start[0], start[1], yaw)
        if scene.mocap_goal >= 0:
            physics.data.mocap_pos[scene.mocap_goal] = (goal[0], goal[1], 0.0)
        mujoco.mj_forward(physics.model.ptr, physics.data.ptr)

        self._goal = goal
        self._field = scene.planner.goal_field(goal)
        self._shortest = scene.planner.distance(start, self._field)
        self._potential = self._distance_potential(start)
        self._path_length = 0.0
        self._prev_xy = start.copy()
        self._steps = 0
        self._done = False
        obs = self._observe(first=True, last=False, terminal=False)
        return obs, self._info(collision=False)

    def step(self, action):
        if self._done:
            raise RuntimeError("episode has ended: call reset()")
        action = np.asarray(action, np.float32).reshape(-1)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be finite float32 (2,) = (forward, turn), got {action!r}")
        a = np.clip(action, -1.0, 1.0)
        speed, turn = float(a[0]) * MAX_FORWARD_SPEED, float(a[1]) * MAX_TURN_RATE
        physics = self.physics
        model, data = physics.model.ptr, physics.data.ptr
        qpos, qvel = physics.data.qpos, physics.data.qvel
        collided = False
        for _ in range(self.action_repeat):
            yaw = qpos[2]
            qvel[0] = speed * math.cos(yaw)
            qvel[1] = speed * math.sin(yaw)
            qvel[2] = turn
            mujoco.mj_step(model, data)
            collided = collided or physics.data.ncon > 0
        xy = np.array(qpos[:2], np.float64)
        self._path_length += float(np.linalg.norm(xy - self._prev_xy))
        self._prev_xy = xy
        self._steps += 1

        potential = self._distance_potential(xy)
        reward = self._potential - potential
        self._potential = potential
        if collided:
            reward -= self.collision_penalty
        reward -= self.time_penalty
        success = bool(np.linalg.norm(self._goal - xy) < self.success_distance)
        if success:
            reward += self.success_reward
        truncated = not success and self._steps >= self.max_steps
        last = success or truncated
        self._done = last
        obs = self._observe(first=False, last=last, terminal=success)
        info = self._info(collision=collided)
        if last:
            spl = float(success) * self._shortest / max(self._shortest, self._path_length, 1e-9)
            info.update(
                success=success,
                spl=spl,
                path_length=self._path_length,
                shortest_path_length=self._shortest,
                episode_length=self._steps,
            )
            self.finished_episodes.append(
                {k: info[k] for k in ("scene_id", "split", "success", "spl", "path_length", "shortest_path_length")}
            )
        return obs, float(reward), success, truncated, info

    def render(self):
        return self._last_image

    def close(self):
        for scene in self._cache.values():
            scene.free()
        self._cache.clear()
        self._scene = None
        if self._gl is not None:
            self._gl.decrement_refcount()
            self._gl.free()
            self._gl = None

    # -- helpers -----------------------------------------------------------------------------
    def metrics(self, clear: bool = False) -> dict[str, float]:
        """SR and SPL over the episodes this env finished (``clear``: forget them afterwards)."""
        out = navigation_metrics(self.finished_episodes)
        if clear:
            self.finished_episodes = []
        return out

    def set_pose(self, x: float, y: float, yaw: float) -> dict[str, np.ndarray]:
        """Teleport the robot (tests / debugging). Does not add to the travelled path length.

        The reward potential is updated too, so the next step's progress reward only reflects
        motion after the teleport. Returns the observation at the new pose (no flags set).
        """
        physics = self.physics
        physics.data.qpos[:] = (x, y, yaw)
        physics.data.qvel[:] = 0.0
        mujoco.mj_forward(physics.model.ptr, physics.data.ptr)
        self._prev_xy = np.array([x, y], np.float64)
        self._potential = self._distance_potential(self._prev_xy)
        return self._observe(first=False, last=False, terminal=False)

    def shortest_path(self, margin: float | None = None) -> np.ndarray:
        """Waypoints ``[K, 2]`` of a shortest path from the robot to the goal (goal last).

        ``margin`` (metres) plans with walls inflated by another margin (e.g. the robot radius
        plus slack, for a scripted controller that should not scrape corners).
        """
        xy = np.array(self.physics.data.qpos[:2], np.float64)
        if margin is None:
            return self.planner.path(xy, self._field)
        planner = GeodesicPlanner(self.layout, margin)
        return planner.path(xy, planner.goal_field(self._goal))

    def geodesic_distance(self, xy: np.ndarray | None = None) -> float:
        """Geodesic distance from ``xy`` (default: the robot) to the goal."""
        if xy is None:
            xy = np.array(self.physics.data.qpos[:2], np.float64)
        return self.planner.distance(np.asarray(xy, np.float64), self._field)

    def _distance_potential(self, xy: np.ndarray) -> float:
        if self.reward_distance == "euclidean":
            return float(np.linalg.norm(self._goal - xy))
        d = self.planner.distance(xy, self._field)
        return d if math.isfinite(d) else self._potential

    def _info(self, *, collision: bool) -> dict[str, Any]:
        xy = np.array(self.physics.data.qpos[:2], np.float64)
        return {
            "intervention_id": self.scene_id,
            "split": self.split,
            "scene_id": self.scene_id,
            "collision": bool(collision),
            "distance": float(np.linalg.norm(self._goal - xy)),
            "geodesic_distance": float(
                self._potential if self.reward_distance == "geodesic" else self.planner.distance(xy, self._field)
            ),
        }

    def _proprio(self) -> np.ndarray:
        data = self.physics.data
        x, y, yaw = data.qpos[0], data.qpos[1], data.qpos[2]
        dx, dy = self._goal[0] - x, self._goal[1] - y
        bearing = math.atan2(dy, dx) - yaw
        c, s = math.cos(yaw), math.sin(yaw)
        forward = data.qvel[0] * c + data.qvel[1] * s
        return np.array([math.hypot(dx, dy), math.sin(bearing), math.cos(bearing), forward, data.qvel[2]], np.float32)

    def _observe(self, *, first: bool, last: bool, terminal: bool) -> dict[str, np.ndarray]:
        cam = self._scene.camera
        image, depth = cam.render(depth=self._want["depth"])
        obs: dict[str, np.ndarray] = {"image": image, "proprio": self._proprio()}
        if self._want["depth"]:
            obs["depth"] = np.minimum(depth, self.max_depth)[..., None]
        if self._want["segmentation"]:
            obs["segmentation"] = cam.segmentation()
        if self._want["clean_image"]:
            obs["clean_image"] = image.copy()
        obs.update(base.flags(first, last, terminal))
        self._last_image = image
        return obs


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def navigation_metrics(episodes: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Success rate and mean SPL over finished episodes.

    ``episodes``: the ``info`` dicts of episode-ending steps (or any dicts with ``success`` and
    ``spl``); dicts without both keys (infos of intermediate steps) are skipped. Returns
    ``{"success_rate", "spl", "num_episodes"}`` (NaN rates when there are no episodes).
    """
    done = [e for e in episodes if "success" in e and "spl" in e]
    if not done:
        return {"success_rate": float("nan"), "spl": float("nan"), "num_episodes": 0}
    success = np.array([float(bool(e["success"])) for e in done])
    spl = np.array([float(e["spl"]) for e in done])
    return {"success_rate": float(success.mean()), "spl": float(spl.mean()), "num_episodes": len(done)}


# -- benchmark -----------------------------------------------------------------------------------
def benchmark(steps: int = 1000, **options) -> float:
    """Env steps per second with uniform random actions (resets included)."""
    import time

    env = PointGoalNavEnv(seed=0, **options)
    env.reset(seed=0)
    for k in range(len(env.scenes)):  # compile every scene first: measure steady state
        env.reset(options={"scene": k})
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
        if term or trunc:
            env.reset()
    rate = steps / (time.perf_counter() - t0)
    env.close()
    return rate


if __name__ == "__main__":  # pragma: no cover
    for opts in ({}, {"depth": True}, {"depth": True, "segmentation": True}, {"size": 84}):
        print(opts, f"{benchmark(**opts):.0f} steps/s")
