"""Distracting-Control-style interventions: colour, camera and background, with disjoint
train / held-out pools.

Every family is *static* (one value per episode) or *dynamic* (changing smoothly within the
episode) at an intensity ``easy | medium | hard`` = scale ``0.1 | 0.2 | 0.3`` (CoRe, Table 7).

**Disjoint splits by construction.** Colour and camera values live in a normalised box
``[-1, 1]^D`` cut into a grid of ``CELLS`` cells per axis. Cells whose index sum is even belong
to the train split, odd ones to the held-out split (a checkerboard). A pool is a finite set of
cells of its split (sizes per difficulty from CoRe Table 7: 4/4, 8/8, 60/30); an episode picks
one, starts at a point inside it, and a dynamic value random-walks (step std ``0.03`` in
normalised units, i.e. ``0.03 * scale``) reflecting at the cell's walls. So no value a held-out
episode shows can ever be shown in training, and the held-out cells are not a subset of any
train cell. Backgrounds come from :class:`~recore_dist.envs.backgrounds.BackgroundPool`, whose
train and held-out videos come from disjoint seed streams (or disjoint files of a user folder).

Actual values from normalised ``v``:

- colour: every material's and material-less geom's RGB shifted by ``v * scale`` (clipped).
- camera: elevation / azimuth / roll offsets ``v * pi/2 * scale`` about the tracked body; zoom
  factor on the distance ``1 + v * 0.5 * scale`` for ``v < 0`` (in) and ``1 + v * 1.5 * scale``
  for ``v > 0`` (out).
- background: the sky (pixels at the far plane, rendered without skybox) shows the video frame,
  the floor planes show it blended with the floor at ``floor_alpha`` (Distracting Control's
  ground-plane alpha, 0.3). Both masks come from the depth buffer of the same render pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import mujoco
import numpy as np

from recore_dist.envs.backgrounds import BackgroundPool, frame_at
from recore_dist.envs.render import FastCamera, Pose, orbit

Difficulty = Literal["easy", "medium", "hard"]
Split = Literal["train", "heldout"]
SCALES: dict[str, float] = {"easy": 0.1, "medium": 0.2, "hard": 0.3}  # CoRe Table 7
POOL_SIZES: dict[str, tuple[int, int]] = {"easy": (4, 4), "medium": (8, 8), "hard": (60, 30)}  # CoRe Table 7
CELLS = 4  # grid cells per normalised axis for the train/held-out checkerboard
WALK_STD = 0.03  # dynamic random-walk step std in normalised units (0.03 * scale)
SPLITS: tuple[str, ...] = ("train", "heldout")


@dataclass(frozen=True)
class InterventionConfig:
    """Which interventions to apply and how hard.

    Attributes:
        colour: shift geom / material colours.
        camera: move the camera (vertical, horizontal, roll, zoom).
        background: show videos / images behind the agent.
        dynamic: values change smoothly within an episode (else fixed per episode).
        difficulty: easy / medium / hard = scale 0.1 / 0.2 / 0.3 and pool sizes of CoRe Table 7.
        split: ``train`` or ``heldout`` pools (disjoint).
        seed: seed of the pools (not of the episodes): the same seed gives the same pools.
        background_folder: a folder of user images / videos instead of procedural videos.
        floor_alpha: opacity of the floor over the background (Distracting Control: 0.3).
        background_frames: frames of each procedural background video.
    """

    colour: bool = False
    camera: bool = False
    background: bool = False
    dynamic: bool = True
    difficulty: Difficulty = "easy"
    split: Split = "train"
    seed: int = 0
    background_folder: str | None = None
    floor_alpha: float = 0.3
    background_frames: int = 100

    def __post_init__(self) -> None:
        if self.difficulty not in SCALES:
            raise ValueError(f"difficulty must be one of {sorted(SCALES)}, got {self.difficulty!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if not 0.0 <= self.floor_alpha <= 1.0:
            raise ValueError(f"floor_alpha must be in [0, 1], got {self.floor_alpha!r}")

    @property
    def active(self) -> bool:
        return self.colour or self.camera or self.background

    @property
    def scale(self) -> float:
        return SCALES[self.difficulty]

    @classmethod
    def from_options(cls, options: "InterventionConfig | dict | str | None", **defaults) -> "InterventionConfig":
        """Build from a config, a dict, or a string like ``"colour,camera,background"``."""
        if isinstance(options, InterventionConfig):
            return options
        if options is None or options == "" or options == "none":
            return cls(**defaults)
        if isinstance(options, str):
            names = {n.strip() for n in options.split(",") if n.strip()}
            names = {"colour" if n == "color" else n for n in names}
            unknown = names - {"colour", "camera", "background", "all"}
            if unknown:
                raise ValueError(f"unknown interventions {sorted(unknown)} in {options!r}")
            every = "all" in names
            return cls(colour=every or "colour" in names, camera=every or "camera" in names,
                       background=every or "background" in names, **defaults)
        if isinstance(options, dict):
            return cls(**{**defaults, **options})
        raise TypeError(f"interventions must be a dict, str or InterventionConfig, got {type(options).__name__}")


# -- the checkerboard pools -----------------------------------------------------------------
def cell_parity(cell: np.ndarray) -> int:
    """0 for train cells, 1 for held-out cells."""
    return int(np.sum(cell)) % 2


def cell_of(value: np.ndarray) -> np.ndarray:
    """The grid cell index of a normalised value in [-1, 1]^D."""
    return np.clip(np.floor((np.asarray(value) + 1.0) / 2.0 * CELLS), 0, CELLS - 1).astype(np.int64)


def split_of(value: np.ndarray) -> Split:
    """Which split a normalised value belongs to."""
    return SPLITS[cell_parity(cell_of(value))]


class CellPool:
    """A finite pool of grid cells of one split in ``[-1, 1]^dim``; values walk inside a cell."""

    def __init__(self, family: str, dim: int, split: Split, count: int, seed: int):
        self.family, self.dim, self.split = family, dim, split
        rng = np.random.default_rng(np.random.SeedSequence([seed, dim, sum(map(ord, family))]))
        want = SPLITS.index(split)
        cells: list[np.ndarray] = []
        seen: set[tuple[int, ...]] = set()
        while len(cells) < count:  # pools are drawn from one stream for both splits, then filtered
            cell = rng.integers(0, CELLS, size=dim)
            key = tuple(int(c) for c in cell)
            if cell_parity(cell) == want and key not in seen:
                seen.add(key)
                cells.append(cell)
        self.cells = np.stack(cells)  # [N, dim]

    def __len__(self) -> int:
        return len(self.cells)

    def ids(self) -> list[str]:
        return [f"{self.family}-{self.split}-{i:03d}" for i in range(len(self))]

    def bounds(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        width = 2.0 / CELLS
        low = -1.0 + self.cells[index] * width
        return low, low + width

    def start(self, index: int, rng: np.random.Generator) -> np.ndarray:
        """A point strictly inside the cell (kept away from its walls)."""
        low, high = self.bounds(index)
        margin = 0.1 * (high - low)
        return rng.uniform(low + margin, high - margin)

    def walk(self, index: int, value: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One random-walk step that stays inside the cell (reflecting at its walls)."""
        low, high = self.bounds(index)
        value = value + rng.normal(0.0, WALK_STD, size=value.shape)
        value = np.where(value < low, 2 * low - value, value)
        value = np.where(value > high, 2 * high - value, value)
        eps = 1e-9
        return np.clip(value, low + eps, high - eps)


# -- applying them to a MuJoCo scene -----------------------------------------------------------
class Interventions:
    """The interventions of one env: chooses values per episode, updates them per step, and
    applies them to the model (colours), the camera pose and the rendered image (background).
    """

    def __init__(self, config: InterventionConfig, physics, camera: FastCamera, *, size: int):
        self.config = config
        self._physics = physics
        self._camera = camera
        model = physics.model
        self._mat_rgba0 = model.mat_rgba.copy()
        self._geom_rgba0 = model.geom_rgba.copy()
        self._free_geoms = np.flatnonzero(model.geom_matid < 0)
        colour_dim = 3 * (model.nmat + len(self._free_geoms))
        split, seed = config.split, config.seed
        n_train, n_heldout = POOL_SIZES[config.difficulty]
        count = n_train if split == "train" else n_heldout
        self.colour_pool = CellPool("colour", colour_dim, split, count, seed) if config.colour else None
        self.camera_pool = CellPool("camera", 4, split, count, seed) if config.camera else None
        self.background_pool = (
            BackgroundPool(split, config.difficulty, size=size, num_frames=config.background_frames, seed=seed,
                           folder=config.background_folder, dynamic=config.dynamic)
            if config.background else None
        )
        self._planes = np.flatnonzero((model.geom_type == int(mujoco.mjtGeom.mjGEOM_PLANE)) & (model.geom_bodyid == 0))
        self._colour = self._camera_value = None
        self._colour_index = self._camera_index = 0
        self._video: np.ndarray | None = None
        self._t = 0
        self.id = "none"

    # -- episode / step --------------------------------------------------------------------
    def reset(self, rng: np.random.Generator) -> None:
        """Choose this episode's values from the split's pools and apply the colours."""
        parts = []
        if self.colour_pool is not None:
            self._colour_index = int(rng.integers(len(self.colour_pool)))
            self._colour = self.colour_pool.start(self._colour_index, rng)
            parts.append(self.colour_pool.ids()[self._colour_index])
        if self.camera_pool is not None:
            self._camera_index = int(rng.integers(len(self.camera_pool)))
            self._camera_value = self.camera_pool.start(self._camera_index, rng)
            parts.append(self.camera_pool.ids()[self._camera_index])
        if self.background_pool is not None:
            bg_id, self._video = self.background_pool.sample(rng)
            parts.append(bg_id)
        self._t = 0
        self.id = "|".join(parts) if parts else "none"
        self.apply_colours()

    def step(self, rng: np.random.Generator) -> None:
        """Advance dynamic values by one env step."""
        self._t += 1
        if not self.config.dynamic:
            return
        if self.colour_pool is not None:
            self._colour = self.colour_pool.walk(self._colour_index, self._colour, rng)
            self.apply_colours()
        if self.camera_pool is not None:
            self._camera_value = self.camera_pool.walk(self._camera_index, self._camera_value, rng)

    @property
    def values(self) -> dict[str, np.ndarray]:
        """Current normalised values (for tests and logging)."""
        out = {}
        if self._colour is not None:
            out["colour"] = self._colour.copy()
        if self._camera_value is not None:
            out["camera"] = self._camera_value.copy()
        return out

    # -- colour ----------------------------------------------------------------------------
    def apply_colours(self) -> None:
        if self._colour is None:
            return
        model, scale, nmat = self._physics.model, self.config.scale, self._physics.model.nmat
        shift = (self._colour * scale).reshape(-1, 3)
        model.mat_rgba[:, :3] = np.clip(self._mat_rgba0[:, :3] + shift[:nmat], 0.0, 1.0)
        if len(self._free_geoms):
            free = self._free_geoms
            model.geom_rgba[free, :3] = np.clip(self._geom_rgba0[free, :3] + shift[nmat:], 0.0, 1.0)

    def restore_colours(self) -> None:
        self._physics.model.mat_rgba[:] = self._mat_rgba0
        self._physics.model.geom_rgba[:] = self._geom_rgba0

    # -- camera ----------------------------------------------------------------------------
    def camera_transform(self) -> Callable[[Pose], Pose] | None:
        """Maps the nominal camera pose to the intervened one (None: camera not intervened on)."""
        return None if self._camera_value is None else self.camera_pose

    def camera_pose(self, nominal: Pose) -> Pose:
        """The perturbed camera pose for a nominal pose at the current state."""
        v, s = self._camera_value, self.config.scale
        elevation, azimuth, roll = (v[:3] * np.pi / 2 * s).tolist()
        zoom = 1.0 + v[3] * (0.5 if v[3] < 0 else 1.5) * s
        com = self._physics.data.subtree_com[1] if self._physics.model.nbody > 1 else nominal.pos + nominal.forward
        distance = max(float(np.dot(com - nominal.pos, nominal.forward)), 0.1)
        pivot = nominal.pos + nominal.forward * distance
        return orbit(nominal, pivot, azimuth=azimuth, elevation=elevation, roll=roll, zoom=zoom)

    # -- background ------------------------------------------------------------------------
    def composite(self, rgb: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Put the current background frame behind the agent of the last render."""
        if self._video is None:
            return rgb
        frame = frame_at(self._video, self._t if self.config.dynamic else 0)
        sky = depth >= self._camera.zfar * 0.999  # nothing drawn there (rendered without skybox)
        weight = sky.astype(np.float32)  # [H, W]: how much of the background shows
        if len(self._planes) and self.config.floor_alpha < 1.0:
            weight += (1.0 - self.config.floor_alpha) * (self._floor_mask(depth) & ~sky)
        mixed = rgb + weight[..., None] * (frame.astype(np.float32) - rgb)
        return (mixed + 0.5).astype(np.uint8)

    def _floor_mask(self, depth: np.ndarray) -> np.ndarray:
        data = self._physics.data
        mask = np.zeros(depth.shape, bool)
        tol = 0.01 + 0.005 * depth
        for g in self._planes:
            normal, origin = data.geom_xmat[g].reshape(3, 3)[:, 2], data.geom_xpos[g]
            mask |= np.abs(self._camera.plane_distance(depth, normal, origin)) < tol
        return mask
