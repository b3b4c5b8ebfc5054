"""DMC env: the observation contract, action repeat, flags, targets, with real rendering."""

from __future__ import annotations

import numpy as np
import pytest

from recore_dist.envs import make
from recore_dist.envs.dmc import ACTION_REPEAT, DMCEnv


@pytest.mark.parametrize("size", [64, 84])
def test_observation_contract(size):
    env = make("dmc:walker-walk", size=size, depth=True, segmentation=True, clean_image=True, seed=0)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs["image"].shape == (size, size, 3) and obs["image"].dtype == np.uint8
    assert obs["depth"].shape == (size, size, 1) and obs["depth"].dtype == np.float32
    assert obs["segmentation"].shape == (size, size) and obs["segmentation"].dtype == np.int32
    assert obs["proprio"].dtype == np.float32 and obs["proprio"].shape == (24,)
    assert obs["is_first"] and not obs["is_last"] and not obs["is_terminal"]
    assert info == {"intervention_id": "none", "split": "train"}
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert not obs["is_first"] and isinstance(reward, np.float32)
    assert obs["image"].std() > 5  # a real picture, not a blank buffer
    # depth is metres and positive; the walker is nearer than the sky; segmentation has classes
    assert 0 < obs["depth"].min() < 5 and obs["depth"].max() == pytest.approx(env.max_depth)
    assert {0, 1}.issubset(set(np.unique(obs["segmentation"]))) and obs["segmentation"].max() >= 2
    assert obs["segmentation"].max() < env.num_classes


def test_action_repeat_from_core_table6():
    assert ACTION_REPEAT == {"ball_in_cup-catch": 4, "cartpole-swingup": 8, "cheetah-run": 4,
                             "finger-spin": 2, "reacher-easy": 4, "walker-walk": 2}
    assert DMCEnv("cartpole-swingup").action_repeat == 8
    assert DMCEnv("walker-run").action_repeat == 2
    assert DMCEnv("cartpole-swingup", action_repeat=3).action_repeat == 3


def test_time_limit_is_last_not_terminal():
    env = make("dmc:cartpole-swingup", seed=1)  # 1000 control steps / repeat 8 = 125 env steps
    env.reset(seed=1)
    for t in range(125):
        obs, _, terminated, truncated, _ = env.step(np.zeros(1, np.float32))
        if obs["is_last"]:
            break
    assert t == 124 and obs["is_last"] and not obs["is_terminal"] and truncated and not terminated


def test_actions_in_unit_box_and_rejected_when_bad():
    env = make("dmc:cheetah-run", seed=0)
    env.reset(seed=0)
    assert env.action_space.low.min() == -1 and env.action_space.high.max() == 1
    with pytest.raises(ValueError, match="action must be finite"):
        env.step(np.full(6, np.nan, np.float32))
    with pytest.raises(ValueError, match="action must be finite"):
        env.step(np.zeros(3, np.float32))


def test_seeded_reset_is_deterministic():
    a = make("dmc:walker-walk", seed=3, interventions="colour,camera,background")
    b = make("dmc:walker-walk", seed=3, interventions="colour,camera,background")
    oa, ia = a.reset(seed=7)
    ob, ib = b.reset(seed=7)
    assert ia == ib and np.array_equal(oa["image"], ob["image"])
    action = np.linspace(-1, 1, 6).astype(np.float32)
    assert np.array_equal(a.step(action)[0]["image"], b.step(action)[0]["image"])


def test_bad_names_and_sizes():
    with pytest.raises(ValueError, match="unknown dm_control task"):
        DMCEnv("walker-fly")
    with pytest.raises(ValueError, match="domain-task"):
        DMCEnv("walker")
    with pytest.raises(ValueError, match="image size"):
        DMCEnv("walker-walk", size=8)
