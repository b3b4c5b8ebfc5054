"""The blind goal-vector baseline on the real navigation task."""

from __future__ import annotations

import numpy as np
import pytest

from recore_dist.behavior.baselines import GoalVectorConfig, GoalVectorController


def test_controller_turns_towards_the_goal_and_drives_when_facing_it():
    ctrl = GoalVectorController(3)
    proprio = np.array([[2.0, 0.0, 1.0, 0, 0],  # straight ahead
                        [2.0, 1.0, 0.0, 0, 0],  # 90 degrees left
                        [2.0, -0.5, -0.8, 0, 0]], np.float32)  # behind, to the right
    action = ctrl.act({"proprio": proprio}, np.zeros(3, bool))
    assert action.shape == (3, 2) and action.dtype == np.float32
    assert action[0, 0] == pytest.approx(1.0) and action[0, 1] == pytest.approx(0.0)
    assert action[1, 0] == 0.0 and action[1, 1] == pytest.approx(1.0)
    assert action[2, 0] == 0.0 and action[2, 1] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="proprio"):
        ctrl.act({"proprio": proprio[:, :2]}, np.zeros(3, bool))
    with pytest.raises(ValueError, match="positive"):
        GoalVectorConfig(turn_gain=0.0)


def test_blind_baseline_reaches_some_goals_but_not_all():
    from recore_dist.envs import make_vector
    from recore_dist.runtime.env_loop import EnvLoop

    envs = make_vector("nav:pointgoal", 2, seed=3, size=32, split="train")
    loop = EnvLoop(envs, GoalVectorController(2), chunk_length=0, seed=3)
    try:
        episodes = loop.run_episodes(8)
    finally:
        loop.close()
    success = [e["success"] for e in episodes]
    assert 0.0 < np.mean(success) < 1.0, success
    assert all(0.0 <= e["spl"] <= 1.0 for e in episodes)
