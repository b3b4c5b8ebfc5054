"""Tests of the iGibson PointNav adapter (``igibson:pointnav``).

The mapping functions and the error paths run everywhere (on synthetic dicts shaped like
iGibson's outputs, and with a stand-in ``igibson`` module); the test marked ``igibson`` builds the
real env and is skipped where igibson is not installed.
"""

from __future__ import annotations

import math
import os
import sys
import types

import numpy as np
import pytest
import yaml

from recore_dist.envs import igibson as ig
from recore_dist.envs.igibson import (
    INSTALL_HINT,
    IGibsonPointNavEnv,
    MissingDependencyError,
    config_yaml,
    depth_to_metres,
    episode_outcome,
    map_observation,
    map_segmentation,
    pointnav_config,
    rgb_to_uint8,
    segmentation_lut,
    task_obs_to_proprio,
)

H = W = 8


def igibson_depth(metres: np.ndarray, low: float, high: float) -> np.ndarray:
    """What iGibson's VisionSensor.get_depth returns for true depths ``metres`` ([H, W, 1])."""
    d = metres.astype(np.float32).copy()
    d[d < low] = 0.0
    d[d > high] = 0.0
    return d / high


def raw_observation(rng: np.random.Generator, depth_low=0.05, depth_high=10.0) -> dict:
    """A synthetic iGibson observation: task_obs (polar), rgb in [0, 1], depth, seg."""
    metres = rng.uniform(0.0, 12.0, (H, W, 1)).astype(np.float32)
    return {
        "task_obs": np.array([2.5, 0.3, 0.2, -0.1]),
        "rgb": rng.uniform(0, 1, (H, W, 3)).astype(np.float32),
        "depth": igibson_depth(metres, depth_low, depth_high),
        "seg": rng.integers(0, 8, (H, W, 1)).astype(np.int32),
        "_metres": metres,
    }


# -- config ------------------------------------------------------------------------------------
def test_pointnav_config():
    cfg = pointnav_config(scene_id="Rs", size=84, max_steps=300, depth_low=0.5, depth_high=5.0)
    assert cfg["scene"] == "gibson" and cfg["scene_id"] == "Rs"
    assert cfg["robot"]["name"] == "Turtlebot" and cfg["robot"]["action_type"] == "continuous"
    assert cfg["task"] == "point_nav_random" and cfg["goal_format"] == "polar"
    assert cfg["output"] == ["task_obs", "rgb", "depth", "seg"]
    assert cfg["image_width"] == cfg["image_height"] == 84
    assert (cfg["depth_low"], cfg["depth_high"]) == (0.5, 5.0)
    assert cfg["dist_tol"] == 0.36 and cfg["max_step"] == 300
    assert cfg["success_reward"] == 10.0 and cfg["collision_reward_weight"] == -0.1
    assert yaml.safe_load(config_yaml(cfg)) == cfg


def test_scene_lists_are_disjoint():
    assert not set(ig.TRAIN_SCENES) & set(ig.HELDOUT_SCENES)
    assert ig.TRAIN_SCENES[0] == "Rs"  # the demo-data scene
    assert ig.scene_list("train", 2) == ["Rs", "Allensville"]
    assert ig.scene_list("heldout", scenes=["X"]) == ["X"]
    with pytest.raises(ValueError):
        ig.scene_list("test")
    with pytest.raises(ValueError):
        ig.scene_list("train", 0)


# -- pure mapping ------------------------------------------------------------------------------
def test_rgb_to_uint8():
    rgb = np.zeros((H, W, 3), np.float32)
    rgb[0, 0] = (0.0, 0.5, 1.0)
    rgb[0, 1] = (-0.2, 1.3, 0.25)
    out = rgb_to_uint8(rgb)
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    assert out[0, 0].tolist() == [0, 128, 255]
    assert out[0, 1].tolist() == [0, 255, 64]
    rgba = np.concatenate([rgb, np.ones((H, W, 1), np.float32)], -1)
    np.testing.assert_array_equal(rgb_to_uint8(rgba), out)
    with pytest.raises(ValueError):
        rgb_to_uint8(np.zeros((H, W)))


def test_depth_to_metres_inverts_igibson():
    low, high = 0.8, 3.5
    metres = np.linspace(0.0, 5.0, H * W, dtype=np.float32).reshape(H, W, 1)
    out = depth_to_metres(igibson_depth(metres, low, high), low, high)
    assert out.dtype == np.float32 and out.shape == (H, W, 1)
    valid = (metres >= low) & (metres <= high)
    np.testing.assert_allclose(out[valid], metres[valid], rtol=1e-6)
    assert np.all(out[~valid] == 0.0)  # iGibson's invalid readings stay 0
    assert depth_to_metres(np.zeros((H, W), np.float32), low, high).shape == (H, W, 1)
    with pytest.raises(ValueError):
        depth_to_metres(metres, 2.0, 1.0)


def test_segmentation_mapping():
    names = {"agent": 1, "walls": 4, "floors": 5, "chairs": 6, "ceilings": 7}
    lut = segmentation_lut(names)
    seg = np.array([0, 1, 3, 4, 5, 6, 7, 511], np.int32).reshape(2, 4, 1)
    out = map_segmentation(seg, lut)
    assert out.dtype == np.int32 and out.shape == (2, 4)
    assert out.ravel().tolist() == [0, 0, 2, 2, 1, 2, 2, 2]
    # the renderer's normalised float output decodes to the same classes
    np.testing.assert_array_equal(map_segmentation(seg.astype(np.float32) / ig.MAX_CLASS_COUNT, lut), out)
    # without a class map: background / robot -> 0, the static Gibson mesh (id 3) -> walls
    assert map_segmentation(np.array([[0, 1, 3]]), None).tolist() == [[0, 0, 2]]
    assert out.max() < ig.NUM_CLASSES


def test_task_obs_to_proprio():
    polar = task_obs_to_proprio(np.array([2.0, math.pi / 6, 0.3, -0.2]))
    assert polar.dtype == np.float32 and polar.shape == (5,)
    np.testing.assert_allclose(polar, [2.0, 0.5, math.sqrt(3) / 2, 0.3, -0.2], rtol=1e-6)
    x, y = 2.0 * math.cos(math.pi / 6), 2.0 * math.sin(math.pi / 6)
    cart = task_obs_to_proprio(np.array([x, y, 0.3, -0.2]), "cartesian")
    np.testing.assert_allclose(cart, polar, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError):
        task_obs_to_proprio(np.zeros(3))
    with pytest.raises(ValueError):
        task_obs_to_proprio(np.zeros(4), "spherical")


def test_map_observation():
    rng = np.random.default_rng(0)
    raw = raw_observation(rng)
    out = map_observation(raw, 0.05, 10.0, seg_lut=segmentation_lut({"floors": 5}))
    assert set(out) == {"image", "proprio", "depth", "segmentation"}
    assert out["image"].dtype == np.uint8 and out["image"].shape == (H, W, 3)
    assert out["proprio"].dtype == np.float32 and out["proprio"].shape == (5,)
    assert out["depth"].dtype == np.float32 and out["depth"].shape == (H, W, 1)
    assert out["segmentation"].dtype == np.int32 and out["segmentation"].shape == (H, W)
    valid = (raw["_metres"] >= 0.05) & (raw["_metres"] <= 10.0)
    np.testing.assert_allclose(out["depth"][valid], raw["_metres"][valid], rtol=1e-5)
    assert np.all((out["segmentation"] == 1) == (raw["seg"][..., 0] == 5))
    minimal = map_observation({"task_obs": raw["task_obs"], "rgb": raw["rgb"]}, 0.05, 10.0)
    assert set(minimal) == {"image", "proprio"}
    with pytest.raises(KeyError):
        map_observation({"rgb": raw["rgb"]}, 0.05, 10.0)


def test_episode_outcome():
    # success -> terminated, spl from iGibson
    assert episode_outcome(True, {"success": True, "spl": 0.8}, 10, 500) == (True, False, True, 0.8)
    # time-out without success -> truncated
    assert episode_outcome(True, {"success": False, "spl": 0.0}, 500, 500) == (False, True, False, 0.0)
    # other failure (collision limit / out of bounds) -> terminated, no success
    assert episode_outcome(True, {"success": False}, 20, 500) == (True, False, False, 0.0)
    # our own time limit
    assert episode_outcome(False, {}, 500, 500) == (False, True, False, 0.0)
    assert episode_outcome(False, {}, 5, 500) == (False, False, False, 0.0)


# -- error paths -----------------------------------------------------------------------------
def test_missing_igibson_raises_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "igibson", None)  # `import igibson` raises ImportError
    with pytest.raises(ImportError) as excinfo:
        IGibsonPointNavEnv()
    assert isinstance(excinfo.value, MissingDependencyError)
    assert str(excinfo.value) == INSTALL_HINT
    assert "Python <= 3.10" in INSTALL_HINT and "--download_assets" in INSTALL_HINT
    assert "--download_demo_data" in INSTALL_HINT and "pip install 'recore-dist[igibson]'" in INSTALL_HINT


def test_bad_options_fail_before_import(monkeypatch):
    monkeypatch.setitem(sys.modules, "igibson", None)
    with pytest.raises(ValueError):
        IGibsonPointNavEnv(split="test")
    with pytest.raises(ValueError):
        IGibsonPointNavEnv(size=8)
    with pytest.raises(TypeError):
        IGibsonPointNavEnv(unknown_option=1)


class FakeIGibsonEnv:
    """Stands in for ``igibson.envs.igibson_env.iGibsonEnv``: same call signature and outputs."""

    instances: list["FakeIGibsonEnv"] = []

    def __init__(self, config_file, scene_id=None, mode="headless", action_timestep=0.1,
                 physics_timestep=1 / 240.0, device_idx=0, **kwargs):
        assert isinstance(config_file, dict)
        config_file["robot"].pop("name")  # as iGibson's BaseEnv.load does
        self.config = config_file
        self.scene_id = scene_id
        self.reloads: list[str] = []
        self.closed = False
        self.success_after = 3
        self.current_step = 0
        self.collision_links: list = []
        self.rng = np.random.default_rng(0)
        FakeIGibsonEnv.instances.append(self)

    def _state(self):
        size = self.config["image_width"]
        state = {"task_obs": np.array([1.0, 0.5, 0.1, 0.0]), "rgb": self.rng.uniform(0, 1, (size, size, 3))}
        if "depth" in self.config["output"]:
            state["depth"] = np.full((size, size, 1), 0.25, np.float32)
        if "seg" in self.config["output"]:
            state["seg"] = np.full((size, size, 1), 3, np.int32)
        return state

    def reset(self):
        self.current_step = 0
        return self._state()

    def step(self, action):
        assert action.shape == (2,) and np.all(np.abs(action) <= 1)
        self.current_step += 1
        success = self.current_step >= self.success_after
        timeout = self.current_step >= self.config["max_step"]
        done = success or timeout
        info = {"success": success, "path_length": 0.1 * self.current_step}
        info["spl"] = 0.75 if success else 0.0
        return self._state(), 1.0, done, info

    def reload_model(self, scene_id):
        self.reloads.append(scene_id)
        self.scene_id = scene_id

    def close(self):
        self.closed = True


@pytest.fixture
def fake_igibson(monkeypatch, tmp_path):
    """A stand-in ``igibson`` package with assets and two scene folders on disk."""
    assets, dataset = tmp_path / "assets", tmp_path / "g_dataset"
    assets.mkdir()
    for scene in ("Rs", "Allensville"):
        (dataset / scene).mkdir(parents=True)
    pkg = types.ModuleType("igibson")
    pkg.assets_path, pkg.g_dataset_path, pkg.ig_dataset_path = str(assets), str(dataset), str(tmp_path / "ig")
    envs = types.ModuleType("igibson.envs")
    env_mod = types.ModuleType("igibson.envs.igibson_env")
    env_mod.iGibsonEnv = FakeIGibsonEnv
    sem = types.ModuleType("igibson.utils.semantics_utils")
    sem.get_class_name_to_class_id = lambda: {"agent": 1, "walls": 4, "floors": 5}
    for name, mod in {
        "igibson": pkg, "igibson.envs": envs, "igibson.envs.igibson_env": env_mod,
        "igibson.utils": types.ModuleType("igibson.utils"), "igibson.utils.semantics_utils": sem,
    }.items():
        monkeypatch.setitem(sys.modules, name, mod)
    FakeIGibsonEnv.instances.clear()
    return pkg


def test_missing_assets_raise_file_not_found(fake_igibson, tmp_path):
    with pytest.raises(FileNotFoundError) as excinfo:
        IGibsonPointNavEnv(scenes=["Rs", "Beechwood"])
    message = str(excinfo.value)
    assert os.path.join(fake_igibson.g_dataset_path, "Beechwood") in message
    assert "--download_assets" in message and "--download_demo_data" in message
    fake_igibson.assets_path = str(tmp_path / "missing_assets")
    with pytest.raises(FileNotFoundError, match="missing_assets"):
        IGibsonPointNavEnv(num_scenes=1)


def test_adapter_with_stand_in_igibson(fake_igibson):
    env = IGibsonPointNavEnv(
        size=16, depth=True, segmentation=True, clean_image=True, num_scenes=2, seed=0, max_steps=50
    )
    fake = FakeIGibsonEnv.instances[-1]
    assert fake.config["image_width"] == 16 and fake.config["output"] == ["task_obs", "rgb", "depth", "seg"]
    assert "name" in env._config["robot"]  # our config was deep-copied before iGibson popped it
    obs, info = env.reset(options={"scene": "Allensville"})
    assert fake.reloads == ["Allensville"] and info["intervention_id"] == "Allensville"
    assert info["split"] == "train"
    assert env.observation_space.contains(obs)
    assert obs["is_first"] and not obs["is_last"]
    np.testing.assert_allclose(obs["depth"], 2.5)  # 0.25 * depth_high
    assert np.all(obs["segmentation"] == 2)  # a static Gibson mesh: structure
    np.testing.assert_array_equal(obs["clean_image"], obs["image"])
    for t in range(3):
        obs, reward, terminated, truncated, info = env.step(np.array([2.0, -0.5], np.float32))
    assert terminated and not truncated and obs["is_last"] and obs["is_terminal"]
    assert info["success"] is True and info["spl"] == 0.75 and reward == 1.0
    assert env.metrics() == {"success_rate": 1.0, "spl": 0.75, "num_episodes": 1}
    # time limit -> truncation
    fake.success_after = 10**6
    env.max_steps = 4
    env.reset()
    for _ in range(4):
        obs, reward, terminated, truncated, info = env.step(np.zeros(2, np.float32))
    assert truncated and not terminated and obs["is_last"] and not obs["is_terminal"]
    assert info["success"] is False and info["spl"] == 0.0
    env.close()
    assert fake.closed


# -- the real thing --------------------------------------------------------------------------
@pytest.mark.igibson
def test_real_igibson_pointnav():
    igibson = pytest.importorskip("igibson", reason="igibson not installed (needs Python <= 3.10 and its assets)")
    if not os.path.isdir(getattr(igibson, "assets_path", "")) or not os.path.isdir(
        os.path.join(getattr(igibson, "g_dataset_path", ""), "Rs")
    ):
        pytest.skip("igibson assets / the demo scene Rs are not downloaded")
    env = IGibsonPointNavEnv(size=64, depth=True, segmentation=True, num_scenes=1, seed=0, max_steps=20)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["intervention_id"] == "Rs"
    for _ in range(20):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        if terminated or truncated:
            break
    assert obs["is_last"] and "success" in info and 0.0 <= info["spl"] <= 1.0
    env.close()
