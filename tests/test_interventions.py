"""Interventions: real pixels change, invariant targets do not; train and held-out are disjoint."""

from __future__ import annotations

import numpy as np
import pytest

from recore_dist.envs import InterventionConfig, make
from recore_dist.envs.interventions import CELLS, POOL_SIZES, SCALES, CellPool, cell_of, split_of

TARGETS = dict(depth=True, segmentation=True, clean_image=True)


def _obs_after(env, steps=5, seed=0):
    env.reset(seed=seed)
    obs = None
    for _ in range(steps):
        obs, *_ = env.step(np.zeros(env.action_space.shape, np.float32))
    return obs


@pytest.mark.parametrize("family", ["colour", "camera", "background"])
@pytest.mark.parametrize("task", ["walker-walk", "reacher-easy"])
def test_intervention_changes_image_but_not_targets(family, task):
    plain = _obs_after(make(f"dmc:{task}", seed=0, **TARGETS))
    other = _obs_after(make(f"dmc:{task}", seed=0, interventions=family, difficulty="hard", **TARGETS))
    changed = np.mean(np.any(plain["image"] != other["image"], axis=-1))
    assert changed > 0.05, f"{family} changed only {changed:.3f} of the pixels"
    np.testing.assert_array_equal(plain["depth"], other["depth"])
    np.testing.assert_array_equal(plain["segmentation"], other["segmentation"])
    np.testing.assert_array_equal(plain["clean_image"], other["clean_image"])
    np.testing.assert_array_equal(plain["image"], plain["clean_image"])  # no intervention: identical


def test_background_fills_the_sky_and_blends_the_floor():
    env = make("dmc:walker-walk", seed=0, interventions="background", segmentation=True, clean_image=True)
    obs = _obs_after(env)
    sky, floor = obs["segmentation"] == 0, obs["segmentation"] == 1
    agent = obs["segmentation"] >= 2
    frame = env.unwrapped.interventions
    assert np.any(obs["image"][sky] != obs["clean_image"][sky])
    assert np.any(obs["image"][floor] != obs["clean_image"][floor])
    # the agent is drawn over the background, untouched
    assert np.mean(np.all(obs["image"][agent] == obs["clean_image"][agent], axis=-1)) > 0.95
    assert frame.id.startswith("proc-train-")


def test_dynamic_changes_within_episode_static_does_not():
    for dynamic in (True, False):
        env = make("dmc:walker-walk", seed=0, interventions="colour,camera", dynamic=dynamic)
        env.reset(seed=0)
        v0 = env.interventions.values
        for _ in range(10):
            env.step(np.zeros(6, np.float32))
        v1 = env.interventions.values
        for key in ("colour", "camera"):
            moved = np.abs(v1[key] - v0[key]).max()
            if dynamic:
                assert 0 < moved < 0.5, (key, moved)  # smooth: a bounded walk, not a jump
            else:
                assert moved == 0


def test_dynamic_background_plays_static_does_not():
    images = {}
    for dynamic in (True, False):
        env = make("dmc:cartpole-swingup", seed=0, interventions="background", dynamic=dynamic,
                   segmentation=True)
        env.reset(seed=0)
        a, *_ = env.step(np.zeros(1, np.float32))
        b, *_ = env.step(np.zeros(1, np.float32))
        sky = (a["segmentation"] == 0) & (b["segmentation"] == 0)
        images[dynamic] = np.abs(a["image"][sky].astype(int) - b["image"][sky].astype(int)).mean()
    assert images[True] > 0 and images[False] == 0


def test_difficulty_scales_colour_shift():
    shifts = {}
    for difficulty in ("easy", "hard"):
        env = make("dmc:walker-walk", seed=0, interventions="colour", difficulty=difficulty)
        env.reset(seed=0)
        mat = env.physics.model.mat_rgba[:, :3]
        base = env.interventions._mat_rgba0[:, :3]
        shifts[difficulty] = np.abs(mat - base).max()
        assert shifts[difficulty] <= SCALES[difficulty] + 1e-6
    assert shifts["hard"] > shifts["easy"]


def test_pools_are_disjoint_across_splits():
    for difficulty, (n_train, n_heldout) in POOL_SIZES.items():
        for seed in (0, 1, 2):
            for dim in (4, 39):
                train = CellPool("camera", dim, "train", n_train, seed)
                held = CellPool("camera", dim, "heldout", n_heldout, seed)
                assert len(train) == n_train and len(held) == n_heldout
                train_cells = {tuple(c) for c in train.cells}
                assert not train_cells & {tuple(c) for c in held.cells}
                assert not set(train.ids()) & set(held.ids())


def test_walks_never_leave_their_split():
    rng = np.random.default_rng(0)
    for split in ("train", "heldout"):
        pool = CellPool("colour", 12, split, 8, seed=0)
        for i in range(len(pool)):
            value = pool.start(i, rng)
            for _ in range(300):
                value = pool.walk(i, value, rng)
                assert split_of(value) == split
                assert np.array_equal(cell_of(value), pool.cells[i])


def test_env_values_belong_to_their_split():
    for split in ("train", "heldout"):
        env = make("dmc:walker-walk", seed=1, interventions="colour,camera,background", split=split, dynamic=True)
        for episode in range(3):
            _, info = env.reset()
            assert info["split"] == split and f"-{split}-" in info["intervention_id"]
            for _ in range(5):
                env.step(env.action_space.sample())
                for value in env.interventions.values.values():
                    assert split_of(value) == split


def test_camera_offsets_bounded_by_scale():
    env = make("dmc:walker-walk", seed=0, interventions="camera", difficulty="medium")
    env.reset(seed=0)
    cam = env.unwrapped._camera
    nominal = cam.nominal_pose()
    moved = env.interventions.camera_pose(nominal)
    angle = np.arccos(np.clip(nominal.forward @ moved.forward, -1, 1))
    assert 0 < angle <= np.sqrt(2) * np.pi / 2 * SCALES["medium"] + 1e-6
    assert CELLS >= 2


def test_config_parsing_and_errors():
    cfg = InterventionConfig.from_options("color,camera", difficulty="hard", split="heldout")
    assert cfg.colour and cfg.camera and not cfg.background and cfg.scale == 0.3
    assert InterventionConfig.from_options("all").background
    assert not InterventionConfig.from_options(None).active
    with pytest.raises(ValueError, match="unknown interventions"):
        InterventionConfig.from_options("colour,lighting")
    with pytest.raises(ValueError, match="difficulty"):
        InterventionConfig(difficulty="extreme")
    with pytest.raises(ValueError, match="split"):
        InterventionConfig(split="test")
