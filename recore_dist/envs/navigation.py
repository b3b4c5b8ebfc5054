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
physics timestep is 0.025 s and ``physics_steps=4`` physics steps make one control period of
**0.1 s** (10 Hz, as iGibson's ``action_timestep``). ``action_repeat`` (default 1) repeats each
agent action for that many control periods: every period is scored as in the paper-faithful
task (its own progress, its own -0.1 if it touched a wall, the success check), the rewards are
summed, a success ends the repeat early, ``max_steps`` still counts control periods, and only
the last period is rendered (an agent at ``action_repeat=k`` renders ``k`` times less). The robot's own geoms are
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
``PLAN_MARGIN = 0.1`` m (:class:`GeodesicPlanner`, ~0.1 ms per query; details in
:mod:`recore_dist.envs.nav_geodesic`). The margin is below the robot radius, so paths may cut wall
corners slightly: ``L`` slightly underestimates the robot's best path (SPL is conservative).

Speed (2-core dev machine, pinned to one core with ``taskset``, software EGL, uniform random
actions, resets included, after a warm-up): 64x64 RGB ~1,400-2,000 steps/s, the same with depth
(read from the same pass), ~1,200 with depth + segmentation (a second pass), 84x84 ~1,500 steps/s.
``python -m recore_dist.envs.navigation`` runs :func:`benchmark` and prints steps/s.
"""

from __future__ import annotations

from recore_dist.envs.gl import ensure_mujoco_gl

ensure_mujoco_gl()

import math  # noqa: E402
from typing import Any, Mapping  # noqa: E402

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from recore_dist.envs import base  # noqa: E402
# Re-exported: everything below was importable from this module before it was split up.
from recore_dist.envs.nav_geodesic import (  # noqa: E402,F401
    GeodesicPlanner, GoalField, navigation_metrics, segments_blocked, shortest_path_length,
)
from recore_dist.envs.nav_layout import (  # noqa: E402,F401
    CAMERA_FORWARD, CAMERA_FOVY, CAMERA_HEIGHT, CELL, CLASS_FLOOR, CLASS_GOAL, CLASS_NOTHING, CLASS_WALL,
    DEFAULT_NUM_SCENES, FLOOR_TEXTURES, GRID_SIZES, HUE_RANGES, MAX_FORWARD_SPEED, MAX_TURN_RATE, NUM_CLASSES,
    PLAN_MARGIN, PROPRIO_DIM, ROBOT_RADIUS, SPLIT_CODE, SPLITS, START_JITTER, TIMESTEP, WALL_HEIGHT, WALL_TEXTURES,
    WALL_THICKNESS, Layout, Palette, SceneSpec, _check_split, generate_layout, generate_palette, layout_seeds,
    scene_pool,
)
from recore_dist.envs.nav_scene import _Scene, _attach_gl, _shared_gl_context, box_mesh, scene_xml  # noqa: E402,F401


# -- env -----------------------------------------------------------------------------------------
class PointGoalNavEnv(gym.Env):
    """Offline point-goal navigation in procedurally generated rooms (see the module docstring).

    Args:
        size: image height and width (64 default, 84 option).
        depth / segmentation / clean_image: add these targets (``clean_image`` equals ``image``).
        split: ``"train"`` or ``"heldout"`` scene pool.
        seed: seeds the episode draws (scene, start, goal, heading); ``reset(seed=...)`` re-seeds.
        max_steps: time limit in control periods (truncation), whatever ``action_repeat``.
        num_scenes: pool size (default 8 train, 4 held-out).
        physics_steps: physics steps of 0.025 s per control period (4: 0.1 s, 10 Hz).
        action_repeat: control periods per agent action (1: the paper's 10 Hz agent).
        scene: fix the scene index (``None``: draw one per episode).
        scene_seed: base seed of the scene pools (layouts and palettes).
        success_distance: success radius in metres (0.36, iGibson's ``dist_tol``).
        goal_marker: render a goal cylinder (segmentation class 3); off by default.
        collision_penalty, success_reward, time_penalty: reward terms.
        reward_distance: ``"geodesic"`` (default) or ``"euclidean"`` potential.
        min_goal_cells: minimum start-goal distance on the cell graph.
        max_goal_cells: maximum start-goal distance on the cell graph (``None``: no limit); a
            training curriculum moves it between episodes with ``set_max_goal_cells``.
        max_depth: depth is clipped here (metres); the sky reads as ``max_depth``.
        cache_scenes: keep every compiled scene (fast resets) or only the current one.
    """

    terminates: bool = True
    """Whether the task has terminal states: reaching the goal ends an episode (``is_terminal``)."""

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
        physics_steps: int = 4,
        action_repeat: int = 1,
        scene: int | None = None,
        scene_seed: int = 0,
        success_distance: float = 0.36,
        goal_marker: bool = False,
        collision_penalty: float = 0.1,
        success_reward: float = 10.0,
        time_penalty: float = 0.0,
        reward_distance: str = "geodesic",
        min_goal_cells: int = 2,
        max_goal_cells: int | None = None,
        max_depth: float = 10.0,
        cache_scenes: bool = True,
        render_mode: str | None = "rgb_array",
    ):
        self.size = base.check_size(size)
        self.split = _check_split(split)
        self.max_steps = int(max_steps)
        self.physics_steps = int(physics_steps)
        self.action_repeat = int(action_repeat)
        if self.max_steps < 1 or self.physics_steps < 1 or self.action_repeat < 1:
            raise ValueError(f"max_steps, physics_steps and action_repeat must be >= 1, got {max_steps!r}, "
                             f"{physics_steps!r}, {action_repeat!r}")
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
        self.max_goal_cells: int | None = None
        self.set_max_goal_cells(max_goal_cells)
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
        top = np.inf if self.max_goal_cells is None else self.max_goal_cells
        far = np.argwhere((dist >= self.min_goal_cells) & (dist <= top))
        if len(far) == 0:  # tiny layouts, or no cell this far from the start: the nearest allowed
            reachable = dist[dist >= self.min_goal_cells]
            goal_dist = reachable.min() if reachable.size else dist.max()
            far = np.argwhere(dist == goal_dist)
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
        reward, collided_any, success = 0.0, False, False
        for _ in range(self.action_repeat):
            period_reward, collided, success = self._control_period(speed, turn)
            reward += period_reward
            collided_any = collided_any or collided
            if success or self._steps >= self.max_steps:
                break
        collided = collided_any
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

    def _control_period(self, speed: float, turn: float) -> tuple[float, bool, bool]:
        """One 0.1 s control period at the commanded body velocity: ``(reward, touched a wall,
        reached the goal)``; the path length and the period counter advance."""
        physics = self.physics
        model, data = physics.model.ptr, physics.data.ptr
        qpos, qvel = physics.data.qpos, physics.data.qvel
        collided = False
        for _ in range(self.physics_steps):
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
        return float(reward), collided, success

    def set_max_goal_cells(self, cells: int | None) -> None:
        """Limit the start-goal distance (cells on the layout's graph) of the next episodes (the
        training curriculum's level); ``None`` lifts the limit."""
        if cells is not None and int(cells) < self.min_goal_cells:
            raise ValueError(f"max_goal_cells={cells} must be >= min_goal_cells={self.min_goal_cells} (or None)")
        self.max_goal_cells = None if cells is None else int(cells)

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
