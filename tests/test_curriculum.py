"""The navigation start-goal curriculum: promotion rule, env limit, logging, checkpoint and resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recore_dist import config as config_lib
from recore_dist.envs.navigation import PointGoalNavEnv
from recore_dist.runtime.config import TrainConfig
from recore_dist.runtime.curriculum import Curriculum, CurriculumConfig
from tests.learner_utils import TINY_MODEL


def _episodes(outcomes):
    return [{"success": float(s), "return": 0.0} for s in outcomes]


def test_promotes_after_a_full_window_at_the_threshold_and_lifts_the_limit_past_the_top():
    cur = Curriculum(CurriculumConfig(enabled=True, start_cells=2, step_cells=2, max_cells=5, threshold=0.5,
                                      window=4))
    assert cur.cells == 2
    assert not cur.observe(_episodes([1, 1, 1]))  # 3 of 4: the window is not full yet
    assert cur.observe(_episodes([0])) and cur.cells == 4  # 3/4 >= 0.5
    assert not cur.observe(_episodes([1, 0, 0, 0, 1, 0]))  # the window restarted at level 4: 1/4, then 1/4
    assert cur.cells == 4 and cur.success_rate() == pytest.approx(0.25)
    assert cur.observe(_episodes([1, 1])) and cur.cells is None  # 6 > max_cells: the full task
    assert not cur.observe(_episodes([1] * 10)) and cur.scalars()["train/curriculum_cells"] == -1.0
    assert cur.success_rate() == 1.0  # lifted: the rate goes on, on the full task
    assert not cur.observe(_episodes([0, 0, 1, 0])) and cur.scalars()["train/curriculum_success_rate"] == 0.25
    assert not cur.observe([{"return": 1.0}])  # episodes without an outcome (dm_control) do not count
    off = Curriculum(CurriculumConfig())
    assert off.cells is None and not off.observe(_episodes([1] * 50))
    with pytest.raises(ValueError):
        CurriculumConfig(start_cells=5, max_cells=3)
    with pytest.raises(ValueError, match="curriculum"):
        config_lib.from_dict(TrainConfig, {"env": {"curriculum": {"enabled": True}}})  # cartpole has no goal


def test_state_round_trips_and_a_disabled_state_keeps_the_start():
    cfg = CurriculumConfig(enabled=True, window=3)
    cur = Curriculum(cfg)
    cur.observe(_episodes([1, 1, 1, 0]))
    other = Curriculum(cfg)
    other.load_state_dict(cur.state_dict())
    assert (other.cells, list(other.outcomes), other.promotions) == (3, [False], 1)
    fresh = Curriculum(cfg)
    fresh.load_state_dict(Curriculum(CurriculumConfig()).state_dict())
    assert fresh.cells == 2


def test_nav_env_draws_goals_within_the_limit():
    env = PointGoalNavEnv(seed=0, size=32)
    for cells in (2, 3):
        env.set_max_goal_cells(cells)
        for _ in range(12):
            env.reset()
            layout = env._scene.spec.layout
            start = tuple(int(v) for v in layout.cell_of(env.physics.data.qpos[:2]))
            goal = tuple(int(v) for v in layout.cell_of(env._goal))
            assert 2 <= layout.cell_distances(start)[goal] <= cells
    env.set_max_goal_cells(None)
    far = []
    for _ in range(30):
        env.reset()
        layout = env._scene.spec.layout
        start = tuple(int(v) for v in layout.cell_of(env.physics.data.qpos[:2]))
        far.append(layout.cell_distances(start)[tuple(int(v) for v in layout.cell_of(env._goal))])
    assert max(far) > 3
    with pytest.raises(ValueError, match="min_goal_cells"):
        env.set_max_goal_cells(1)
    env.close()


@pytest.mark.slow
def test_local_runner_applies_logs_checkpoints_and_resumes_the_level(tmp_path: Path):
    """A real navigation run with the curriculum on: its simulators (not the evaluator's) get
    the level, TensorBoard shows it, the checkpoint keeps it and a resumed run starts there."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from recore_dist.runtime.local import LocalRunner

    def cfg(steps):
        return config_lib.from_dict(TrainConfig, {
            "logdir": str(tmp_path / "run"), "env_steps": steps, "num_envs": 2, "torch_threads": 1,
            "env": {"name": "nav:pointgoal", "size": 32, "curriculum": {"enabled": True, "start_cells": 3}},
            "replay": {"capacity": 10_000, "chunk_length": 16, "prefill": 64, "ratio": 8},
            "learner": {"model": dict(TINY_MODEL), "batch_size": 2, "batch_length": 8, "behavior": {"horizon": 3},
                        "device": "cpu", "objective": {"inputs": ["image", "proprio"]}},
            "eval": {"every": 0, "episodes": 1, "num_envs": 1}, "log_every": 2, "image_every": 1000,
            "checkpoint_every": 1000})

    def short_episodes(cfg_, split, num_envs, seed):
        from recore_dist.envs.navigation import PointGoalNavEnv
        from recore_dist.envs.vector import VectorEnv

        return VectorEnv([lambda i=i: PointGoalNavEnv(seed=seed + i, size=32, depth=True, max_steps=20)
                          for i in range(num_envs)])

    runner = LocalRunner(cfg(80), make_env_vector=short_episodes, progress=False)
    try:
        assert [e.max_goal_cells for e in runner.envs.envs] == [3, 3]
        runner.run()
        runner.curriculum.level = 6  # as if promoted; the checkpoint must carry it
        runner.checkpoint()
    finally:
        runner.close()
    acc = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.value for e in acc.Scalars("train/curriculum_cells")][0] == 3.0
    resumed = LocalRunner(cfg(96), make_env_vector=short_episodes, progress=False)
    try:
        assert resumed.curriculum.cells == 6 and [e.max_goal_cells for e in resumed.envs.envs] == [6, 6]
        loop, _ = resumed.evaluator._loop("train")  # evaluation: the full task
        assert [e.max_goal_cells for e in loop.envs.envs] == [None]
    finally:
        resumed.close()
