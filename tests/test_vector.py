"""make_vector: lock-step stepping, next-step autoreset, batched outputs; the registry."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from recore_dist.envs import gym_id, make, make_vector, register_gymnasium


def test_batched_outputs_and_autoreset():
    env = make_vector("dmc:cartpole-swingup", 3, seed=0, depth=True, interventions="colour")
    obs, infos = env.reset()
    assert obs["image"].shape == (3, 64, 64, 3) and obs["depth"].shape == (3, 64, 64, 1)
    assert obs["is_first"].all() and len(infos) == 3
    zeros = np.zeros((3, 1), np.float32)
    for t in range(125):
        obs, reward, terminated, truncated, infos = env.step(zeros)
        assert reward.shape == (3,) and reward.dtype == np.float32
    assert obs["is_last"].all() and truncated.all() and not terminated.any()
    obs, reward, *_ = env.step(zeros)  # next-step autoreset: first obs of the new episode
    assert obs["is_first"].all() and not obs["is_last"].any() and (reward == 0).all()
    obs, *_ = env.step(zeros)
    assert not obs["is_first"].any()


def test_envs_are_seeded_differently_and_reproducibly():
    a = make_vector("dmc:walker-walk", 2, seed=5)
    b = make_vector("dmc:walker-walk", 2, seed=5)
    oa, _ = a.reset()
    ob, _ = b.reset()
    assert np.array_equal(oa["image"], ob["image"])
    assert not np.array_equal(oa["proprio"][0], oa["proprio"][1])


def test_bad_inputs():
    env = make_vector("dmc:walker-walk", 2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=r"actions must have shape \(2, 6\)"):
        env.step(np.zeros((3, 6)))
    with pytest.raises(ValueError, match="num_envs"):
        make_vector("dmc:walker-walk", 0)


def test_registry_names_and_errors():
    assert make("dmc:reacher-easy").action_space.shape == (2,)
    for bad in ("walker-walk", "atari:pong", "dmc:", ""):
        with pytest.raises(ValueError, match="suite:task"):
            make(bad)
    with pytest.raises(ValueError, match="nav:pointgoal"):
        make("nav:maze")


def test_gymnasium_registration():
    ids = register_gymnasium()
    assert gym_id("dmc:walker-walk") in ids and gym_id("nav:pointgoal") in ids
    env = gym.make("recore/dmc-walker-walk-v0", size=84, depth=True)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (84, 84, 3) and obs["depth"].shape == (84, 84, 1)
