"""iGibson 2.x PointNav (``igibson:pointnav``): ReCoRe's benchmark, behind the recore-dist contract.

A Turtlebot in Gibson static scenes must reach a random goal given in its own frame
(``point_nav_random``), seeing egocentric RGB (+ depth and semantic segmentation as targets).
The env is real code against iGibson 2.2's API: :class:`IGibsonPointNavEnv` writes a PointNav
config (:func:`pointnav_config`, a dict equal to iGibson's ``turtlebot_static_nav.yaml`` up to
the sensors; :func:`config_yaml` renders it as YAML), builds
``igibson.envs.igibson_env.iGibsonEnv(config_file=<dict>, scene_id=..., mode="headless")``, and maps
its observations with small pure functions that are unit-tested without iGibson.

Requirements
------------
iGibson 2.2.2 builds only on Python <= 3.10 (its bundled pybind11 fails on 3.11) and needs its
downloaded assets::

    pip install 'recore-dist[igibson]'
    python -m igibson.utils.assets_utils --download_assets
    python -m igibson.utils.assets_utils --download_demo_data      # the Gibson scene "Rs"

The other Gibson scenes need the Gibson dataset, which is distributed under a signed licence
(see the iGibson docs, "Datasets"). igibson is imported lazily in the constructor: without it the
constructor raises :class:`MissingDependencyError` (an ``ImportError``) with the commands above; with
igibson but without the assets or a scene directory it raises ``FileNotFoundError`` naming the
missing path.

Scenes and splits
-----------------
``split="train"`` uses :data:`TRAIN_SCENES` (``Rs``, the demo scene, then Gibson-tiny training
scenes); ``split="heldout"`` uses :data:`HELDOUT_SCENES` (the Gibson-tiny validation scenes), so
held-out scenes are never trained on. ``num_scenes`` takes the first N of the split's list and
``scenes=[...]`` overrides it. A reset draws a scene from the pool every ``episodes_per_scene``
episodes; switching calls ``iGibsonEnv.reload_model`` (seconds), so raise ``episodes_per_scene``
to amortise it.

Observation mapping (iGibson -> contract)
-----------------------------------------
- ``rgb`` float ``[H, W, 3]`` in ``[0, 1]`` -> ``image`` uint8 (:func:`rgb_to_uint8`).
- ``depth`` float ``[H, W, 1]``: iGibson sets readings outside ``[depth_low, depth_high]`` to 0
  (invalid) and divides by ``depth_high``; :func:`depth_to_metres` multiplies back, so ``depth``
  is float32 metres with 0 marking invalid pixels (too close or too far). Defaults
  ``depth_low=0.05``, ``depth_high=10`` (the Turtlebot's Xtion preset is 0.8 / 3.5).
- ``seg`` int ``[H, W, 1]`` iGibson class ids (``0`` background, ``1`` robots, scene categories
  from ``igibson.utils.semantics_utils``) -> ``segmentation`` int32 ``[H, W]`` with the navigation
  classes of ``nav:pointgoal``: ``0`` background / robot, ``1`` floor, ``2`` walls and every other
  static structure or object, ``3`` goal (never visible: iGibson's target marker is hidden from
  the agent). A Gibson static scene is one mesh with a single class, so there it is all ``2``
  except the background; interactive (``igibson``) scenes have ``floors`` -> 1.
- ``task_obs`` (polar ``goal_format``: goal distance, goal angle in the robot frame, linear and
  angular velocity) -> ``proprio`` float32 ``[5]`` = distance, sin / cos of the angle,
  velocities: the same layout as ``nav:pointgoal`` (:func:`task_obs_to_proprio`).
- ``clean_image`` is a copy of ``image`` (no interventions here).

Episode end: iGibson's ``done`` with ``info["success"]`` -> ``terminated`` (success, collision
limit, out of bounds); reaching ``max_steps`` without success -> truncation (``is_last`` without
``is_terminal``). ``info`` carries ``intervention_id`` (the scene id) and ``split`` at every step and
``success`` / ``spl`` (iGibson's ``success * min(1, geodesic / path_length)``) at the end.
Seeding: iGibson samples start and goal with the global ``numpy.random``; ``reset(seed=...)`` seeds
it (and Python's ``random``).
"""

from __future__ import annotations

import copy
import math
import os
import random
from typing import Any, Iterable, Mapping

import gymnasium as gym
import numpy as np

from recore_dist.envs import base

INSTALL_HINT = (
    "igibson:pointnav needs iGibson 2.2.2 on Python <= 3.10 (`pip install 'recore-dist[igibson]'`) "
    "and its assets: `python -m igibson.utils.assets_utils --download_assets` and `--download_demo_data` "
    "(Gibson scenes need the signed dataset licence: see iGibson docs)"
)
DOWNLOAD_HINT = (
    "download them with `python -m igibson.utils.assets_utils --download_assets` and "
    "`python -m igibson.utils.assets_utils --download_demo_data` (the Gibson scene 'Rs'); other Gibson "
    "scenes need the Gibson dataset under its signed licence (see the iGibson docs)"
)

# Gibson static scenes. Rs comes with iGibson's demo data; the rest are the Gibson "tiny" split
# (training scenes for train, its validation scenes for held-out): disjoint by construction.
TRAIN_SCENES: tuple[str, ...] = (
    "Rs", "Allensville", "Beechwood", "Benevolence", "Coffeen", "Cosmos", "Forkland", "Hanson",
)
HELDOUT_SCENES: tuple[str, ...] = ("Collierville", "Corozal", "Darden", "Markleeville", "Wiconisco")
SPLIT_SCENES = {"train": TRAIN_SCENES, "heldout": HELDOUT_SCENES}

MAX_CLASS_COUNT = 512  # igibson.utils.constants.MAX_CLASS_COUNT
IGIBSON_BACKGROUND, IGIBSON_ROBOTS = 0, 1  # igibson.utils.constants.SemanticClass
CLASS_BACKGROUND, CLASS_FLOOR, CLASS_WALL, CLASS_GOAL = 0, 1, 2, 3
NUM_CLASSES = 4
FLOOR_CATEGORIES = ("floors", "floor", "carpet")
PROPRIO_DIM = 5


class MissingDependencyError(ImportError):
    """igibson (or one of its compiled dependencies) is not importable here."""


# -- pure mapping functions (no igibson needed) ---------------------------------------------------
def pointnav_config(
    *,
    scene_id: str = "Rs",
    size: int = 64,
    max_steps: int = 500,
    depth_low: float = 0.05,
    depth_high: float = 10.0,
    success_distance: float = 0.36,
    outputs: Iterable[str] = ("task_obs", "rgb", "depth", "seg"),
    vertical_fov: float = 90.0,
) -> dict[str, Any]:
    """The iGibson config (a dict ``iGibsonEnv(config_file=...)`` accepts) of Turtlebot PointNav.

    Same task, reward and termination as iGibson's ``turtlebot_static_nav.yaml``
    (``point_nav_random``, geodesic potential reward, +10 success, -0.1 collision,
    ``dist_tol=0.36``), with square images of ``size`` pixels and our sensors.
    """
    return {
        # scene
        "scene": "gibson",
        "scene_id": scene_id,
        "build_graph": True,
        "load_texture": True,
        "pybullet_load_texture": True,
        "trav_map_type": "no_obj",
        "trav_map_resolution": 0.1,
        "trav_map_erosion": 2,
        "should_open_all_doors": True,
        "texture_randomization_freq": None,
        "object_randomization_freq": None,
        # robot
        "robot": {
            "name": "Turtlebot",
            "action_type": "continuous",
            "action_normalize": True,
            "base_name": None,
            "scale": 1.0,
            "self_collision": False,
            "rendering_params": None,
            "controller_config": {"base": {"name": "DifferentialDriveController"}},
        },
        # task
        "task": "point_nav_random",
        "target_dist_min": 1.0,
        "target_dist_max": 10.0,
        "goal_format": "polar",
        "task_obs_dim": 4,
        # reward
        "reward_type": "geodesic",
        "success_reward": 10.0,
        "potential_reward_weight": 1.0,
        "collision_reward_weight": -0.1,
        "discount_factor": 0.99,
        # termination
        "dist_tol": float(success_distance),
        "max_step": int(max_steps),
        "max_collisions_allowed": int(max_steps),
        # misc
        "initial_pos_z_offset": 0.1,
        "collision_ignore_link_a_ids": [1, 2, 3, 4],
        # sensors
        "output": list(outputs),
        "fisheye": False,
        "image_width": int(size),
        "image_height": int(size),
        "vertical_fov": float(vertical_fov),
        "depth_low": float(depth_low),
        "depth_high": float(depth_high),
        "depth_noise_rate": 0.0,
        "scan_noise_rate": 0.0,
        # the target is not shown to the agent
        "visible_target": False,
        "visible_path": False,
    }


def config_yaml(config: Mapping[str, Any]) -> str:
    """The config as a YAML string (what iGibson's example ``.yaml`` files contain)."""
    import yaml

    return yaml.safe_dump(dict(config), sort_keys=False)


def rgb_to_uint8(rgb: np.ndarray) -> np.ndarray:
    """iGibson ``rgb`` (float ``[H, W, 3|4]`` in ``[0, 1]``) -> uint8 ``[H, W, 3]``."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] not in (3, 4):
        raise ValueError(f"rgb must be [H, W, 3] (or 4), got shape {rgb.shape}")
    rgb = rgb[..., :3]
    if rgb.dtype == np.uint8:
        return rgb.copy()
    return np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def depth_to_metres(depth: np.ndarray, depth_low: float, depth_high: float) -> np.ndarray:
    """Undo iGibson's depth normalisation: float32 metres ``[H, W, 1]``, 0 = invalid.

    iGibson's ``VisionSensor.get_depth`` sets readings below ``depth_low`` or above
    ``depth_high`` to 0 and divides by ``depth_high``; so metres = value * ``depth_high`` and 0
    stays 0. Values that would decode outside ``[depth_low, depth_high]`` (float noise) are
    clipped into it.
    """
    if not 0.0 <= depth_low < depth_high:
        raise ValueError(f"need 0 <= depth_low < depth_high, got {depth_low!r}, {depth_high!r}")
    d = np.asarray(depth, np.float32)
    if d.ndim == 2:
        d = d[..., None]
    if d.ndim != 3 or d.shape[-1] != 1:
        raise ValueError(f"depth must be [H, W, 1] or [H, W], got shape {np.shape(depth)}")
    metres = d * np.float32(depth_high)
    valid = d > 0
    return np.where(valid, np.clip(metres, depth_low, depth_high), 0.0).astype(np.float32)


def segmentation_lut(
    class_name_to_id: Mapping[str, int] | None = None, max_class_count: int = MAX_CLASS_COUNT
) -> np.ndarray:
    """iGibson class id -> navigation class (``int32 [max_class_count + 1]``).

    Background and robots -> 0; floor categories -> 1; every other id -> 2 (walls and other
    static structure / objects). ``class_name_to_id`` is iGibson's
    ``semantics_utils.get_class_name_to_class_id()`` (``None``: ids unknown, so no floor class).
    """
    lut = np.full(max_class_count + 1, CLASS_WALL, np.int32)
    lut[IGIBSON_BACKGROUND] = CLASS_BACKGROUND
    lut[IGIBSON_ROBOTS] = CLASS_BACKGROUND
    for name, cid in (class_name_to_id or {}).items():
        cid = int(cid)
        if not 0 <= cid <= max_class_count:
            continue
        if name in FLOOR_CATEGORIES:
            lut[cid] = CLASS_FLOOR
        elif name == "agent":
            lut[cid] = CLASS_BACKGROUND
    return lut


def map_segmentation(seg: np.ndarray, lut: np.ndarray | None = None) -> np.ndarray:
    """iGibson ``seg`` (int ``[H, W, 1]`` class ids) -> int32 ``[H, W]`` navigation classes.

    A floating-point ``seg`` is taken as the renderer's normalised output (id / MAX_CLASS_COUNT)
    and decoded first, as iGibson's ``VisionSensor.get_seg`` does.
    """
    lut = segmentation_lut() if lut is None else np.asarray(lut, np.int32)
    s = np.asarray(seg)
    if s.ndim == 3:
        if s.shape[-1] != 1:
            raise ValueError(f"seg must be [H, W, 1] or [H, W], got shape {s.shape}")
        s = s[..., 0]
    if s.ndim != 2:
        raise ValueError(f"seg must be [H, W, 1] or [H, W], got shape {np.shape(seg)}")
    if np.issubdtype(s.dtype, np.floating):
        s = np.rint(s * (len(lut) - 1))
    ids = np.clip(s.astype(np.int64), 0, len(lut) - 1)
    return lut[ids].astype(np.int32)


def task_obs_to_proprio(task_obs: np.ndarray, goal_format: str = "polar") -> np.ndarray:
    """iGibson PointNav ``task_obs`` -> float32 ``[5]`` (distance, sin, cos, v, w).

    ``polar``: ``[rho, phi, v, w]`` (goal distance and angle in the robot frame, forward and
    angular velocity); ``cartesian``: ``[x, y, v, w]`` in the robot frame.
    """
    t = np.asarray(task_obs, np.float64).reshape(-1)
    if t.shape[0] < 4:
        raise ValueError(f"task_obs must have >= 4 entries (goal 2 + velocities 2), got {t.shape[0]}")
    if goal_format == "polar":
        rho, phi = t[0], t[1]
    elif goal_format == "cartesian":
        rho, phi = math.hypot(t[0], t[1]), math.atan2(t[1], t[0])
    else:
        raise ValueError(f"goal_format must be 'polar' or 'cartesian', got {goal_format!r}")
    return np.array([rho, math.sin(phi), math.cos(phi), t[2], t[3]], np.float32)


def map_observation(
    raw: Mapping[str, Any],
    depth_low: float,
    depth_high: float,
    *,
    goal_format: str = "polar",
    seg_lut: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """An iGibson observation dict -> the contract's ``image`` / ``proprio`` / ``depth`` / ``segmentation``.

    Keys present in ``raw`` are mapped (``rgb``, ``task_obs``, ``depth``, ``seg``); ``rgb`` and
    ``task_obs`` are required. Flags are added by the env.
    """
    missing = [k for k in ("rgb", "task_obs") if k not in raw]
    if missing:
        raise KeyError(f"iGibson observation lacks {missing}; the config's 'output' must include them")
    out = {
        "image": rgb_to_uint8(raw["rgb"]),
        "proprio": task_obs_to_proprio(raw["task_obs"], goal_format),
    }
    if "depth" in raw:
        out["depth"] = depth_to_metres(raw["depth"], depth_low, depth_high)
    if "seg" in raw:
        out["segmentation"] = map_segmentation(raw["seg"], seg_lut)
    return out


def episode_outcome(
    done: bool, info: Mapping[str, Any], steps: int, max_steps: int
) -> tuple[bool, bool, bool, float]:
    """``(terminated, truncated, success, spl)`` of a step.

    Success -> terminated. ``done`` without success at the step limit -> truncated (iGibson's
    ``Timeout``); other failures (collision limit, out of bounds) -> terminated. Not ``done`` but
    at ``max_steps`` -> truncated (our own time limit).
    """
    success = bool(done and info.get("success", False))
    at_limit = steps >= max_steps
    truncated = (bool(done) and not success and at_limit) or (not done and at_limit)
    terminated = bool(done) and not truncated
    spl = float(info.get("spl", 0.0)) if success else 0.0
    return terminated, truncated, success, float(np.clip(spl, 0.0, 1.0))


def scene_list(split: str, num_scenes: int | None = None, scenes: Iterable[str] | None = None) -> list[str]:
    """The scene ids of a split (``scenes`` overrides; ``num_scenes`` takes the first N)."""
    if split not in SPLIT_SCENES:
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    ids = list(SPLIT_SCENES[split] if scenes is None else scenes)
    if num_scenes is not None:
        if int(num_scenes) < 1:
            raise ValueError(f"num_scenes must be >= 1, got {num_scenes!r}")
        ids = ids[: int(num_scenes)]
    if not ids:
        raise ValueError("empty scene list")
    return ids


def check_assets(assets_path: str, dataset_path: str, scene_ids: Iterable[str]) -> None:
    """Raise ``FileNotFoundError`` naming the first missing iGibson asset / scene directory."""
    if not assets_path or not os.path.isdir(assets_path):
        raise FileNotFoundError(f"iGibson assets not found at {assets_path!r}: {DOWNLOAD_HINT}")
    for scene_id in scene_ids:
        path = os.path.join(dataset_path or "", scene_id)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"Gibson scene {scene_id!r} not found at {path!r}: {DOWNLOAD_HINT}")


def _import_igibson():
    """``(igibson module, iGibsonEnv class)``; :class:`MissingDependencyError` when unavailable."""
    try:
        import igibson  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(INSTALL_HINT) from exc
    return igibson


def _import_env_class(igibson_module):
    try:
        from igibson.envs.igibson_env import iGibsonEnv
    except ImportError as exc:
        raise MissingDependencyError(f"{INSTALL_HINT} (importing igibson.envs.igibson_env failed: {exc})") from exc
    except OSError as exc:  # igibson reads dataset metadata at import time
        raise FileNotFoundError(
            f"iGibson could not read its data ({exc}); dataset at "
            f"{getattr(igibson_module, 'ig_dataset_path', '?')!r}: {DOWNLOAD_HINT}"
        ) from exc
    return iGibsonEnv


def _class_name_to_id() -> dict[str, int]:
    try:
        from igibson.utils.semantics_utils import get_class_name_to_class_id
    except Exception:  # pragma: no cover - older layouts
        return {}
    try:
        return {str(k): int(v) for k, v in get_class_name_to_class_id().items()}
    except Exception:  # pragma: no cover - missing metadata
        return {}


# -- env ------------------------------------------------------------------------------------------
class IGibsonPointNavEnv(gym.Env):
    """iGibson Turtlebot PointNav as a recore-dist env (see the module docstring).

    Args:
        size: image height and width (64 default, 84 option).
        depth / segmentation / clean_image: add these targets (``clean_image`` equals ``image``).
        split: ``"train"`` or ``"heldout"`` scene list.
        seed: seeds the scene draws and (at the first reset) iGibson's global RNG.
        max_steps: time limit in env steps (truncation).
        num_scenes: use the first N scenes of the split; ``scenes`` overrides the list.
        action_repeat: iGibson steps (0.1 s each) per env step; rewards are summed.
        depth_low / depth_high: iGibson's depth range in metres (see :func:`depth_to_metres`).
        success_distance: iGibson's ``dist_tol`` (0.36 m).
        episodes_per_scene: episodes before drawing a new scene (scene reloads are slow).
        mode / device_idx: ``iGibsonEnv``'s renderer mode and GPU.
        config_overrides: entries merged into :func:`pointnav_config`'s dict.
    """

    terminates: bool = True
    """Whether the task has terminal states: success and failures end an episode (``is_terminal``)."""

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
        action_repeat: int = 1,
        scenes: Iterable[str] | None = None,
        depth_low: float = 0.05,
        depth_high: float = 10.0,
        success_distance: float = 0.36,
        episodes_per_scene: int = 1,
        mode: str = "headless",
        device_idx: int = 0,
        config_overrides: Mapping[str, Any] | None = None,
        render_mode: str | None = "rgb_array",
    ):
        # Validate everything that needs no igibson first, so option errors read as such.
        self.size = base.check_size(size)
        self.split = split
        self.scene_ids = scene_list(split, num_scenes, scenes)
        self.max_steps = int(max_steps)
        self.action_repeat = int(action_repeat)
        if self.max_steps < 1 or self.action_repeat < 1:
            raise ValueError(f"max_steps and action_repeat must be >= 1, got {max_steps!r}, {action_repeat!r}")
        if not 0.0 <= depth_low < depth_high:
            raise ValueError(f"need 0 <= depth_low < depth_high, got {depth_low!r}, {depth_high!r}")
        self.depth_low, self.depth_high = float(depth_low), float(depth_high)
        self.episodes_per_scene = max(1, int(episodes_per_scene))
        self.render_mode = render_mode
        self.num_classes = NUM_CLASSES
        self._want = {"depth": bool(depth), "segmentation": bool(segmentation), "clean_image": bool(clean_image)}
        self.observation_space = base.observation_space(
            size=self.size, proprio_dim=PROPRIO_DIM, num_classes=NUM_CLASSES, max_depth=self.depth_high, **self._want
        )
        self.action_space = base.action_space(2)
        outputs = ["task_obs", "rgb"] + (["depth"] if depth else []) + (["seg"] if segmentation else [])
        self._config = pointnav_config(
            scene_id=self.scene_ids[0],
            size=self.size,
            max_steps=self.max_steps * self.action_repeat,
            depth_low=self.depth_low,
            depth_high=self.depth_high,
            success_distance=success_distance,
            outputs=outputs,
        )
        self._config.update(dict(config_overrides or {}))
        self.goal_format = self._config.get("goal_format", "polar")
        if seed is not None:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(int(seed))
        self._pending_global_seed = seed

        igibson = _import_igibson()
        check_assets(getattr(igibson, "assets_path", ""), getattr(igibson, "g_dataset_path", ""), self.scene_ids)
        env_class = _import_env_class(igibson)
        self._seg_lut = segmentation_lut(_class_name_to_id())
        self._scene_id = self.scene_ids[0]
        self._env = env_class(
            config_file=copy.deepcopy(self._config),  # iGibson pops keys from its config
            scene_id=self._scene_id,
            mode=mode,
            action_timestep=0.1,
            physics_timestep=1 / 40.0,
            device_idx=device_idx,
        )
        self._episodes = 0
        self._steps = 0
        self._done = True
        self._last_image: np.ndarray | None = None
        self.finished_episodes: list[dict[str, Any]] = []

    @property
    def scene_id(self) -> str:
        return self._scene_id

    # -- gymnasium API ---------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        super().reset(seed=seed)
        global_seed = seed if seed is not None else self._pending_global_seed
        self._pending_global_seed = None
        if global_seed is not None:  # iGibson samples start / goal with the global RNGs
            np.random.seed(int(global_seed) % 2**32)
            random.seed(int(global_seed))
        options = dict(options or {})
        scene = options.pop("scene", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; supported: 'scene'")
        if scene is not None:
            target = scene if isinstance(scene, str) else self.scene_ids[int(scene)]
        elif self._episodes % self.episodes_per_scene == 0:
            target = self.scene_ids[int(self.np_random.integers(len(self.scene_ids)))]
        else:
            target = self._scene_id
        if target != self._scene_id:
            self._env.reload_model(target)
            self._scene_id = target
        self._episodes += 1
        raw = self._env.reset()
        self._steps = 0
        self._done = False
        obs = self._observe(raw, first=True, last=False, terminal=False)
        return obs, self._info()

    def step(self, action):
        if self._done:
            raise RuntimeError("episode has ended: call reset()")
        action = np.asarray(action, np.float32).reshape(-1)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be finite float32 (2,) = (forward, turn), got {action!r}")
        action = np.clip(action, -1.0, 1.0)
        reward, done, info, raw = 0.0, False, {}, None
        for _ in range(self.action_repeat):
            out = self._env.step(action)
            if len(out) == 5:  # a gymnasium-style iGibson fork
                raw, r, term, trunc, info = out
                done = bool(term or trunc)
            else:
                raw, r, done, info = out
            reward += float(r)
            if done:
                break
        self._steps += 1
        terminated, truncated, success, spl = episode_outcome(bool(done), info or {}, self._steps, self.max_steps)
        last = terminated or truncated
        self._done = last
        obs = self._observe(raw, first=False, last=last, terminal=terminated)
        out_info = self._info()
        out_info["collision"] = len(getattr(self._env, "collision_links", None) or []) > 0
        if last:
            out_info.update(
                success=success,
                spl=spl,
                path_length=float(info.get("path_length", float("nan"))) if info else float("nan"),
                episode_length=self._steps,
            )
            self.finished_episodes.append(
                {"scene_id": self._scene_id, "split": self.split, "success": success, "spl": spl}
            )
        return obs, float(reward), terminated, truncated, out_info

    def render(self):
        return self._last_image

    def close(self):
        env = getattr(self, "_env", None)
        if env is not None:
            env.close()
            self._env = None

    def metrics(self, clear: bool = False) -> dict[str, float]:
        """SR and SPL over the episodes this env finished."""
        done = self.finished_episodes
        if clear:
            self.finished_episodes = []
        if not done:
            return {"success_rate": float("nan"), "spl": float("nan"), "num_episodes": 0}
        return {
            "success_rate": float(np.mean([e["success"] for e in done])),
            "spl": float(np.mean([e["spl"] for e in done])),
            "num_episodes": len(done),
        }

    # -- helpers -------------------------------------------------------------------------------
    def _info(self) -> dict[str, Any]:
        return {"intervention_id": self._scene_id, "split": self.split, "scene_id": self._scene_id}

    def _observe(self, raw: Mapping[str, Any], *, first: bool, last: bool, terminal: bool) -> dict[str, np.ndarray]:
        mapped = map_observation(
            raw, self.depth_low, self.depth_high, goal_format=self.goal_format, seg_lut=self._seg_lut
        )
        obs: dict[str, np.ndarray] = {"image": mapped["image"], "proprio": mapped["proprio"]}
        for key in ("depth", "segmentation"):
            if self._want[key]:
                if key not in mapped:
                    raise KeyError(f"iGibson returned no {key!r}; check the config's 'output'")
                obs[key] = mapped[key]
        if self._want["clean_image"]:
            obs["clean_image"] = mapped["image"].copy()
        obs.update(base.flags(first, last, terminal))
        self._last_image = obs["image"]
        return obs
