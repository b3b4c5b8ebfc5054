"""Tests of the offline point-goal navigation env (``nav:pointgoal``)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from recore_dist.envs import navigation as nav
from recore_dist.envs.navigation import (
    CAMERA_HEIGHT,
    FLOOR_TEXTURES,
    HUE_RANGES,
    WALL_TEXTURES,
    GeodesicPlanner,
    Layout,
    PointGoalNavEnv,
    navigation_metrics,
    scene_pool,
    shortest_path_length,
)


@pytest.fixture(scope="module")
def env():
    e = PointGoalNavEnv(seed=0, depth=True, segmentation=True, clean_image=True)
    yield e
    e.close()


def _drive_to_goal(e: PointGoalNavEnv, max_steps: int = 400):
    """A scripted controller following a shortest path planned with robot-sized margins."""
    planner = GeodesicPlanner(e.layout, margin=0.25)
    field = planner.goal_field(e.goal)
    for _ in range(max_steps):
        x, y, yaw = e.robot_pose
        waypoints = planner.path(np.array([x, y]), field)
        target = waypoints[0]
        if len(waypoints) > 1 and np.linalg.norm(target - (x, y)) < 0.1:
            target = waypoints[1]
        err = nav._wrap(math.atan2(target[1] - y, target[0] - x) - yaw)
        turn = float(np.clip(err / (nav.MAX_TURN_RATE * 0.1), -1, 1))
        forward = float(np.clip(math.cos(err), 0, 1)) if abs(err) < 0.6 else 0.0
        obs, reward, terminated, truncated, info = e.step(np.array([forward, turn], np.float32))
        if terminated or truncated:
            return obs, reward, terminated, truncated, info
    raise AssertionError("scripted controller did not finish")


# -- contract --------------------------------------------------------------------------------
def test_observation_contract(env):
    obs, info = env.reset(seed=1)
    space = env.observation_space
    assert set(obs) == set(space.spaces) == {
        "image", "proprio", "depth", "segmentation", "clean_image", "is_first", "is_last", "is_terminal"
    }
    assert space.contains(obs)
    assert obs["image"].dtype == np.uint8 and obs["image"].shape == (64, 64, 3)
    assert obs["clean_image"].dtype == np.uint8 and np.array_equal(obs["clean_image"], obs["image"])
    assert obs["depth"].dtype == np.float32 and obs["depth"].shape == (64, 64, 1)
    assert obs["segmentation"].dtype == np.int32 and obs["segmentation"].shape == (64, 64)
    assert obs["proprio"].dtype == np.float32 and obs["proprio"].shape == (5,)
    assert obs["is_first"] and not obs["is_last"] and not obs["is_terminal"]
    for key in ("is_first", "is_last", "is_terminal"):
        assert np.asarray(obs[key]).dtype == np.bool_ and np.shape(obs[key]) == ()
    assert env.action_space.shape == (2,) and env.action_space.dtype == np.float32
    assert env.num_classes == 4
    # proprio: distance, sin/cos of the bearing, velocities (zero at reset)
    dist, s, c, v, w = obs["proprio"]
    assert dist == pytest.approx(info["distance"], rel=1e-5)
    assert s * s + c * c == pytest.approx(1.0, abs=1e-5)
    assert v == 0.0 and w == 0.0
    x, y, yaw = env.robot_pose
    gx, gy = env.goal
    assert math.atan2(s, c) == pytest.approx(nav._wrap(math.atan2(gy - y, gx - x) - yaw), abs=1e-4)
    assert info["intervention_id"] == env.scene_id == info["scene_id"]
    assert info["split"] == "train"
    obs, reward, terminated, truncated, info = env.step(np.array([1.0, 0.5], np.float32))
    assert space.contains(obs)
    assert not obs["is_first"]
    assert isinstance(reward, float)
    assert info["intervention_id"] == env.scene_id and info["split"] == "train"
    assert obs["proprio"][4] == pytest.approx(0.5 * nav.MAX_TURN_RATE, abs=1e-4)


@pytest.mark.parametrize("size", [64, 84])
def test_image_sizes(size):
    e = PointGoalNavEnv(size=size, seed=0)
    obs, _ = e.reset()
    assert set(obs) == {"image", "proprio", "is_first", "is_last", "is_terminal"}
    assert obs["image"].shape == (size, size, 3) and obs["image"].dtype == np.uint8
    assert obs["image"].std() > 5  # not a blank frame
    obs, *_ = e.step(e.action_space.sample())
    assert obs["image"].shape == (size, size, 3)
    e.close()


def test_depth_is_metres(env):
    obs, _ = env.reset(seed=2)
    depth, seg = obs["depth"][..., 0], obs["segmentation"]
    assert np.all(depth > 0) and np.all(depth <= env.max_depth)
    assert depth[seg != 0].max() < env.max_depth  # walls and floor are closer than the far clip
    assert np.all(depth[seg == 0] == env.max_depth)  # sky reads max_depth
    # The floor seen through the bottom pixel row lies CAMERA_HEIGHT below the camera: its
    # distance along the view axis is CAMERA_HEIGHT / tan(angle below the axis) (fovy = 90).
    size = depth.shape[0]
    tan_row = ((size - 0.5) / size) * 2 - 1
    bottom = seg[-1] == nav.CLASS_FLOOR
    assert bottom.any()
    np.testing.assert_allclose(depth[-1][bottom], CAMERA_HEIGHT / tan_row, rtol=0.02)


def test_segmentation_classes(env):
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        classes = set(np.unique(obs["segmentation"]).tolist())
        assert {nav.CLASS_FLOOR, nav.CLASS_WALL} <= classes
        assert classes <= {0, 1, 2}  # no goal marker by default


def test_goal_marker_segmentation():
    e = PointGoalNavEnv(seed=0, segmentation=True, goal_marker=True)
    e.reset(seed=0)
    gx, gy = e.goal
    obs = e.set_pose(gx + 0.3, gy, math.pi)  # 0.3 m east of the goal, facing it
    assert nav.CLASS_GOAL in np.unique(obs["segmentation"])
    e.close()


# -- seeding -------------------------------------------------------------------------------------
def test_seed_determinism():
    a = PointGoalNavEnv(seed=0)
    b = PointGoalNavEnv(seed=123)
    oa, ia = a.reset(seed=7)
    ob, ib = b.reset(seed=7)
    assert ia["scene_id"] == ib["scene_id"]
    np.testing.assert_array_equal(a.goal, b.goal)
    assert a.robot_pose == b.robot_pose
    np.testing.assert_array_equal(oa["image"], ob["image"])
    np.testing.assert_array_equal(oa["proprio"], ob["proprio"])
    # Re-seeding after other episodes (other cached scenes) reproduces the episode.
    for _ in range(3):
        a.reset()
    oa2, ia2 = a.reset(seed=7)
    assert ia2["scene_id"] == ia["scene_id"]
    np.testing.assert_array_equal(oa2["image"], oa["image"])
    # The constructor seed seeds the first reset.
    c, d = PointGoalNavEnv(seed=5), PointGoalNavEnv(seed=5)
    np.testing.assert_array_equal(c.reset()[0]["image"], d.reset()[0]["image"])
    for e in (a, b, c, d):
        e.close()


# -- scenes ------------------------------------------------------------------------------------------
def test_train_and_heldout_scenes_are_disjoint():
    train, heldout = scene_pool("train"), scene_pool("heldout")
    assert len(train) == 8 and len(heldout) == 4
    assert [s.scene_id for s in train] == [f"nav-train-{i:03d}" for i in range(8)]
    assert [s.scene_id for s in heldout] == [f"nav-heldout-{i:03d}" for i in range(4)]
    assert not {s.scene_id for s in train} & {s.scene_id for s in heldout}
    # layout seeds: disjoint by parity for any base seed and pool size
    for scene_seed in (0, 1, 12345):
        tr = nav.layout_seeds("train", 64, scene_seed)
        ho = nav.layout_seeds("heldout", 64, scene_seed)
        assert len(set(tr)) == 64 and len(set(ho)) == 64
        assert all(s % 2 == 0 for s in tr) and all(s % 2 == 1 for s in ho)
        assert not set(tr) & set(ho)
    # pools are prefixes of larger pools
    assert [s.layout_seed for s in scene_pool("train", 3)] == [s.layout_seed for s in train[:3]]
    # layouts differ: no held-out layout equals a train layout
    assert not {s.layout.key() for s in train} & {s.layout.key() for s in heldout}
    assert len({s.layout.key() for s in train}) == len(train)


def test_palettes_are_disjoint():
    def in_ranges(h, ranges):
        return any(lo <= h <= hi for lo, hi in ranges)

    for (lo1, hi1) in HUE_RANGES["train"]:
        for (lo2, hi2) in HUE_RANGES["heldout"]:
            assert hi1 < lo2 or hi2 < lo1
    assert not set(WALL_TEXTURES["train"]) & set(WALL_TEXTURES["heldout"])
    assert not set(FLOOR_TEXTURES["train"]) & set(FLOOR_TEXTURES["heldout"])
    for split in ("train", "heldout"):
        for spec in scene_pool(split, 16, scene_seed=3):
            assert all(in_ranges(h, HUE_RANGES[split]) for h in spec.palette.hues)
            assert spec.palette.wall_texture in WALL_TEXTURES[split]
            assert spec.palette.floor_texture in FLOOR_TEXTURES[split]


def test_heldout_env_uses_heldout_scenes():
    e = PointGoalNavEnv(split="heldout", seed=0, num_scenes=2)
    ids = set()
    for _ in range(6):
        _, info = e.reset()
        ids.add(info["scene_id"])
        assert info["split"] == "heldout" and info["intervention_id"].startswith("nav-heldout-")
    assert ids <= {"nav-heldout-000", "nav-heldout-001"}
    e.close()
    with pytest.raises(ValueError):
        PointGoalNavEnv(split="test")


def test_layouts_are_connected_and_start_goal_apart():
    for spec in scene_pool("train") + scene_pool("heldout"):
        layout = spec.layout
        assert 5 <= layout.n <= 7
        assert layout.hwalls[0].all() and layout.hwalls[-1].all()
        assert layout.vwalls[:, 0].all() and layout.vwalls[:, -1].all()
        assert (layout.cell_distances((0, 0)) >= 0).all()
    e = PointGoalNavEnv(seed=0)
    for _ in range(10):
        e.reset()
        start, goal = e.layout.cell_of(np.array(e.robot_pose[:2])), e.layout.cell_of(e.goal)
        assert e.layout.cell_distances(start)[goal] >= 2
        assert e.shortest_path_length >= np.linalg.norm(e.goal - e.robot_pose[:2]) - 1e-9
    e.close()


def test_uncached_scenes():
    e = PointGoalNavEnv(seed=0, cache_scenes=False, num_scenes=3)
    ids = set()
    for k in (0, 1, 2, 0, 1):
        obs, info = e.reset(options={"scene": k})
        ids.add(info["scene_id"])
        assert len(e._cache) == 1 and obs["image"].std() > 5
    assert len(ids) == 3
    e.close()


def test_box_mesh_faces_point_outwards():
    half, centre = np.array([1.5, 0.05, 0.5]), np.array([2.0, 3.0, 0.5])
    verts, faces, uvs = nav.box_mesh(half, centre, repeat=2.0)
    assert verts.shape == (24, 3) and faces.shape == (12, 3) and uvs.shape == (24, 2)
    assert np.allclose(np.abs(verts), half)
    for tri in faces:
        a, b, c = verts[tri]
        normal = np.cross(b - a, c - a)
        assert normal @ ((a + b + c) / 3) > 0  # counter-clockwise seen from outside
    # UVs are world metres x repeat: the +y face spans 3 m along x -> 6 texture units
    plus_y = slice(8, 12)
    assert np.ptp(uvs[plus_y, 0]) == pytest.approx(6.0) and np.ptp(uvs[plus_y, 1]) == pytest.approx(2.0)


def test_cached_reset_is_fast(env):
    for k in range(len(env.scenes)):
        env.reset(options={"scene": k})
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        env.reset()
        times.append(time.perf_counter() - t0)
    assert np.median(times) < 0.1


# -- episode end -----------------------------------------------------------------------------------
def test_success_by_teleport():
    e = PointGoalNavEnv(seed=4)
    e.reset()
    gx, gy = e.goal
    e.set_pose(gx + 0.1, gy, 0.0)
    obs, reward, terminated, truncated, info = e.step(np.zeros(2, np.float32))
    assert terminated and not truncated
    assert obs["is_last"] and obs["is_terminal"]
    assert info["success"] is True
    assert 0.0 < info["spl"] <= 1.0
    assert reward >= e.success_reward - 1.0
    with pytest.raises(RuntimeError):
        e.step(np.zeros(2, np.float32))
    e.close()


def test_success_by_scripted_controller():
    e = PointGoalNavEnv(seed=11)
    e.reset()
    shortest = e.shortest_path_length
    obs, reward, terminated, truncated, info = _drive_to_goal(e)
    assert terminated and obs["is_terminal"] and obs["is_last"]
    assert info["success"] is True
    assert info["shortest_path_length"] == pytest.approx(shortest)
    assert info["spl"] == pytest.approx(shortest / max(shortest, info["path_length"]))
    assert 0.5 < info["spl"] <= 1.0
    assert info["distance"] < e.success_distance
    metrics = e.metrics()
    assert metrics["success_rate"] == 1.0 and metrics["spl"] == pytest.approx(info["spl"])
    e.close()


def test_time_limit_truncates():
    e = PointGoalNavEnv(seed=0, max_steps=5)
    e.reset()
    for t in range(5):
        obs, reward, terminated, truncated, info = e.step(np.zeros(2, np.float32))
        if t < 4:
            assert not obs["is_last"] and "success" not in info
    assert truncated and not terminated
    assert obs["is_last"] and not obs["is_terminal"]
    assert info["success"] is False and info["spl"] == 0.0
    assert info["episode_length"] == 5
    e.close()


def test_collision_penalty():
    e = PointGoalNavEnv(seed=0, scene=0)
    e.reset()
    layout = e.layout
    r, c = next((r, c) for r in range(layout.n) for c in range(layout.n) if layout.vwalls[r, c + 1])
    x, y = layout.cell_center(r, c)
    wall_x = x + 0.5
    e.set_pose(x, y, 0.0)  # facing the wall on the east side of the cell
    prev = e.geodesic_distance()
    hits = 0
    for _ in range(20):
        obs, reward, terminated, truncated, info = e.step(np.array([1.0, 0.0], np.float32))
        assert not (terminated or truncated), "seeded scene 0: the goal is not in front of this wall"
        progress = prev - info["geodesic_distance"]
        prev = info["geodesic_distance"]
        if info["collision"]:
            hits += 1
            assert reward == pytest.approx(progress - e.collision_penalty, abs=1e-6)
        else:
            assert reward == pytest.approx(progress, abs=1e-6)
    assert hits >= 5
    # the wall stops the robot: its centre stays a robot radius from the wall face
    assert e.robot_pose[0] < wall_x - nav.WALL_THICKNESS / 2 - nav.ROBOT_RADIUS + 0.03
    assert abs(obs["proprio"][3]) < 0.1  # forward speed ~0 against the wall
    e.close()


@pytest.mark.filterwarnings("ignore:.*infinity")  # the contract's proprio Box is unbounded
def test_gymnasium_env_checker():
    from gymnasium.utils.env_checker import check_env

    e = PointGoalNavEnv(seed=0, depth=True, segmentation=True)
    check_env(e, skip_render_check=True)
    e.close()


def test_action_validation(env):
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(np.zeros(3, np.float32))
    with pytest.raises(ValueError):
        env.step(np.array([np.nan, 0.0], np.float32))
    env.step(np.array([5.0, -5.0], np.float32))  # clipped to [-1, 1]
    assert env.physics.data.qvel[2] == pytest.approx(-nav.MAX_TURN_RATE)


def test_euclidean_reward_mode():
    e = PointGoalNavEnv(seed=0, reward_distance="euclidean")
    _, info0 = e.reset()
    obs, reward, *_ , info = e.step(np.array([1.0, 0.0], np.float32))
    expected = info0["distance"] - info["distance"] - (e.collision_penalty if info["collision"] else 0.0)
    assert reward == pytest.approx(expected, abs=1e-6)
    e.close()


# -- shortest paths ---------------------------------------------------------------------------------
def _corridor_layout(n: int = 5, row: int = 2) -> Layout:
    h = np.ones((n + 1, n), bool)
    v = np.ones((n, n + 1), bool)
    v[row, 1:n] = False
    return Layout(n=n, hwalls=h, vwalls=v)


def test_straight_corridor_is_euclidean():
    layout = _corridor_layout()
    start, goal = layout.cell_center(2, 0), layout.cell_center(2, 4)
    assert shortest_path_length(layout, start, goal) == pytest.approx(4.0, abs=1e-9)
    off = start + np.array([0.1, 0.2])
    assert shortest_path_length(layout, off, goal) == pytest.approx(np.linalg.norm(goal - off), abs=1e-9)


def test_detour_path():
    # Two corridors (rows 0 and 2) joined at the east end through cell column 4.
    n = 5
    h = np.ones((n + 1, n), bool)
    v = np.ones((n, n + 1), bool)
    v[0, 1:n] = False
    v[2, 1:n] = False
    h[1, 4] = h[2, 4] = False
    layout = Layout(n=n, hwalls=h, vwalls=v)
    planner = GeodesicPlanner(layout)
    start, goal = layout.cell_center(0, 0), layout.cell_center(2, 0)
    field = planner.goal_field(goal)
    d = planner.distance(start, field)
    waypoints = planner.path(start, field)
    length = np.linalg.norm(waypoints[0] - start) + np.linalg.norm(np.diff(waypoints, axis=0), axis=1).sum()
    assert d == pytest.approx(length)
    np.testing.assert_allclose(waypoints[-1], goal)
    # It goes round the east end: longer than going straight down 2 m, and bounded by the
    # cell-centre path (4 + 2 + 4 m).
    assert 7.0 < d < 10.0
    for p0, p1 in zip(np.vstack([start, waypoints[:-1]]), waypoints):
        assert not nav.segments_blocked(p0[None], p1[None], planner.rects)[0]


def test_free_point_and_path_from_inside_a_wall_margin():
    layout = _corridor_layout()
    planner = GeodesicPlanner(layout, margin=0.25)
    goal = layout.cell_center(2, 4)
    field = planner.goal_field(goal)
    inside = np.array([0.0, 0.25])  # 0.25 m from the wall line y=0.5: inside its inflated box
    free = planner.free_point(inside)
    np.testing.assert_allclose(free, [0.0, 0.5 - 0.05 - 0.25], atol=1e-5)
    assert planner.distance(inside, field) == pytest.approx(abs(0.25 - free[1]) + np.linalg.norm(goal - free))
    np.testing.assert_allclose(planner.path(inside, field)[0], free)
    outside = np.array([0.0, 0.1])
    assert planner.free_point(outside) is not None and np.array_equal(planner.free_point(outside), outside)


def test_segments_blocked():
    rects = np.array([[0.0, 0.0, 1.0, 1.0]])
    p0 = np.array([[-1, 0.5], [-1, 1.0], [-1, -1], [0.5, 0.5], [2, 2], [0.0, -1.0]])
    p1 = np.array([[2, 0.5], [2, 1.0], [2, 2], [0.6, 0.6], [3, 3], [0.0, 2.0]])
    # through, along the top edge, through the diagonal, inside, away, along the left edge
    np.testing.assert_array_equal(nav.segments_blocked(p0, p1, rects), [True, False, True, True, False, False])


# -- metrics ----------------------------------------------------------------------------------------
def test_navigation_metrics():
    episodes = [
        {"success": True, "spl": 1.0},
        {"success": True, "spl": 0.5},
        {"success": False, "spl": 0.0},
        {"success": False, "spl": 0.0},
        {"intervention_id": "nav-train-000"},  # an intermediate step's info: skipped
    ]
    out = navigation_metrics(episodes)
    assert out == {"success_rate": 0.5, "spl": 0.375, "num_episodes": 4}
    empty = navigation_metrics([])
    assert empty["num_episodes"] == 0 and math.isnan(empty["success_rate"]) and math.isnan(empty["spl"])


def test_agent_action_repeat_scores_every_control_period():
    """``action_repeat=k`` is k control periods of the paper-faithful task per agent action:
    the same pose and image as k single steps, their rewards summed (each period's progress and
    wall penalty), time limit in control periods, early stop at success."""
    single, repeated = PointGoalNavEnv(seed=3), PointGoalNavEnv(seed=3, action_repeat=3)
    obs_a, _ = single.reset()
    obs_b, _ = repeated.reset()
    np.testing.assert_array_equal(obs_a["image"], obs_b["image"])
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.uniform(-1, 1, 2).astype(np.float32)
        rewards = []
        for _ in range(3):
            obs_a, r, *_ = single.step(action)
            rewards.append(r)
        obs_b, r_b, terminated, truncated, _ = repeated.step(action)
        assert r_b == pytest.approx(sum(rewards), abs=1e-9)
        np.testing.assert_array_equal(obs_a["image"], obs_b["image"])
        np.testing.assert_allclose(obs_a["proprio"], obs_b["proprio"])
        if terminated or truncated:
            break
    # 500 control periods at 3 per action: the 167th action truncates
    short = PointGoalNavEnv(seed=3, action_repeat=3, max_steps=10)
    short.reset()
    outcomes = [short.step(np.zeros(2, np.float32))[3] for _ in range(4)]
    assert outcomes == [False, False, False, True] and short._steps == 10
    # success ends the repeat at once: start next to the goal
    near = PointGoalNavEnv(seed=3, action_repeat=4)
    near.reset()
    goal = near._goal
    path = near.shortest_path()
    before = path[-2] if len(path) > 1 else near.physics.data.qpos[:2]
    d = (goal - before) / np.linalg.norm(goal - before)  # approach along the planned path's last leg
    near.set_pose(*(goal - 0.45 * d), float(np.arctan2(d[1], d[0])))
    _, reward, terminated, _, info = near.step(np.array([1.0, 0.0], np.float32))
    assert terminated and reward > 5 and info["episode_length"] <= 4
    with pytest.raises(ValueError, match="action_repeat"):
        PointGoalNavEnv(action_repeat=0)
