"""EnvLoop on real dm_control pixels: row convention, episode returns, evaluation episodes."""

from __future__ import annotations

import numpy as np
import pytest

from recore_dist.envs import make_vector
from recore_dist.runtime.env_loop import EnvLoop, summarise


class RecordingPolicy:
    """A real ``ActingPolicy``: constant actions, records what it was asked."""

    version = 3

    def __init__(self, value: float):
        self.value, self.calls, self.resets = value, [], 0

    def act(self, image, is_first, *, explore=True):
        self.calls.append((image.shape, is_first.copy(), explore))
        return np.full((image.shape[0], 1), self.value, np.float32)

    def reset(self):
        self.resets += 1


@pytest.fixture(scope="module")
def envs():
    vec = make_vector("dmc:cartpole-swingup", 2, seed=0, size=32, depth=True, interventions="colour")
    yield vec
    vec.close()


def test_chunks_follow_row_convention(envs):
    loop = EnvLoop(envs, None, chunk_length=16, env_name="dmc:cartpole-swingup", seed=1)
    chunks, _ = loop.step(16, random=True)
    assert len(chunks) == 2 and chunks[0].length == 16
    for chunk in chunks:
        assert chunk.is_first[0] and chunk.reward[0] == 0.0  # no reward arrives with a first obs
        assert chunk.obs["image"].shape == (16, 32, 32, 3) and chunk.obs["depth"].shape == (16, 32, 32, 1)
        assert np.abs(chunk.action).max() <= 1.0 and chunk.policy_version == 0
        assert chunk.split == "train"


def test_policy_actions_versions_and_episode_returns(envs):
    policy = RecordingPolicy(0.5)
    loop = EnvLoop(envs, policy, chunk_length=125, env_name="dmc:cartpole-swingup")
    chunks, episodes = loop.step(126)
    assert len(episodes) == 2 and all(e["length"] == 125 for e in episodes)  # action repeat 8: 1000/8
    for chunk, episode in zip(chunks, episodes):
        assert np.all(chunk.action == 0.5) and chunk.policy_version == 3
        # The episode return is the sum of rewards of rows 1..124 plus the one arriving with obs 125.
        assert episode["return"] >= chunk.reward.sum() - 1e-4
    assert policy.calls[0][2] is True and policy.resets == 1  # the loop starts the policy fresh


def test_run_episodes_and_summary(envs):
    policy = RecordingPolicy(-1.0)
    loop = EnvLoop(envs, policy, chunk_length=0)
    episodes = loop.run_episodes(3, explore=False)
    assert len(episodes) == 3 and loop.chunker is None
    assert all(call[2] is False for call in policy.calls)
    stats = summarise(episodes, "eval")
    assert stats["eval/episodes"] == 3 and stats["eval/length"] == 125
    assert summarise([], "eval") == {}


def test_blind_prefill_policy_acts_on_prefill_steps_only():
    """``replay.prefill_policy: blind``: on ``random=True`` steps the goal-vector controller acts
    (the chunks' actions are its outputs for the observed goal vector); policy steps and the
    default prefill (uniform actions) are unaffected; non-navigation envs are refused."""
    from recore_dist import config as config_lib
    from recore_dist.behavior.baselines import GoalVectorController
    from recore_dist.envs import make_vector
    from recore_dist.runtime.config import TrainConfig
    from recore_dist.runtime.env_loop import EnvLoop, prefill_policy

    data = {"env": {"name": "nav:pointgoal", "size": 32}, "learner": {"model": {"image_size": 32}},
            "replay": {"prefill_policy": "blind"}, "num_envs": 2}
    cfg = config_lib.from_dict(TrainConfig, data)
    blind = prefill_policy(cfg, 2)
    assert isinstance(blind, GoalVectorController)
    envs = make_vector("nav:pointgoal", 2, seed=0, size=32)
    loop = EnvLoop(envs, None, chunk_length=8, prefill_policy=blind)
    chunks, proprio = [], []
    for _ in range(8):
        proprio.append(loop.obs["proprio"].copy())
        chunks += loop.step(1, random=True)[0]
    envs.close()
    assert len(chunks) == 2
    want = np.stack([GoalVectorController(2).act({"proprio": p}, None) for p in proprio], 1)  # [N, T, 2]
    np.testing.assert_allclose(np.stack([c.action for c in sorted(chunks, key=lambda c: c.env_index)]), want)
    assert prefill_policy(config_lib.from_dict(TrainConfig, {**data, "replay": {}}), 2) is None
    with pytest.raises(ValueError, match="prefill_policy=blind"):
        config_lib.from_dict(TrainConfig, {"replay": {"prefill_policy": "blind"}})
