"""Seeded, scene-balanced evaluation: the same episodes for every policy, the same count per scene."""

from __future__ import annotations

import numpy as np
import pytest

from recore_dist.behavior.baselines import GoalVectorController
from recore_dist.runtime.fixed_eval import make_plan, make_plan_envs, run_plan, summary

NAV = {"size": 32, "max_steps": 40}


def test_plan_balances_episodes_over_scenes():
    train = make_plan("nav:pointgoal", {**NAV, "split": "train"}, "train", 40)
    held = make_plan("nav:pointgoal", {**NAV, "split": "heldout"}, "heldout", 40)
    assert (train.num_envs, train.per_env, train.scenes) == (8, 5, tuple(range(8)))
    assert (held.num_envs, held.per_env, held.episodes) == (4, 10, 40)
    assert make_plan("nav:pointgoal", {**NAV, "split": "heldout"}, "heldout", 41).per_env == 11  # never fewer
    assert train.seed != held.seed
    dmc = make_plan("dmc:cartpole-swingup", {"size": 32, "split": "train"}, "train", 10)
    assert (dmc.scenes, dmc.num_envs, dmc.per_env) == (None, 5, 2)  # exactly 10, spread over 5 simulators
    with pytest.raises(ValueError, match="split"):
        make_plan("nav:pointgoal", NAV, "test", 4)
    with pytest.raises(ValueError, match="episodes"):
        make_plan("nav:pointgoal", NAV, "train", 0)


def test_every_policy_meets_the_same_episodes():
    options = {**NAV, "split": "heldout"}
    plan = make_plan("nav:pointgoal", options, "heldout", 8)  # 4 scenes x 2
    runs = {}
    for kind in ("random", "blind", "blind-again"):
        envs = make_plan_envs("nav:pointgoal", options, plan)
        try:
            policy = None if kind == "random" else GoalVectorController(plan.num_envs)
            runs[kind] = run_plan(envs, plan, policy)
        finally:
            envs.close()
    for eps in runs.values():
        assert [(e["scene"], e["index"]) for e in eps] == [(k, i) for k in range(4) for i in range(2)]
        assert {e["split"] for e in eps} == {"heldout"}
    # the start-goal geodesic distance is drawn at reset: the same list whatever the actions
    paths = {kind: [e["shortest_path_length"] for e in eps] for kind, eps in runs.items()}
    assert paths["random"] == paths["blind"] == paths["blind-again"]
    assert len(set(paths["random"])) == len(paths["random"])  # distinct episodes, not one repeated
    assert [e["return"] for e in runs["blind"]] == [e["return"] for e in runs["blind-again"]]
    assert [e["return"] for e in runs["random"]] != [e["return"] for e in runs["blind"]]
    s = summary(runs["blind"])
    assert 0.0 <= s["sr"] <= 1.0 and s["sr_se"] >= 0.0 and 0.0 <= s["spl"] <= s["sr"] + 1e-9
    assert s["return_se"] > 0.0 and s["episodes"] == 8.0


def _small_nav_learner():
    """The navigation preset at 32 px with an xxs model: ``(cfg, spaces, learner)``."""
    from recore_dist import config as config_lib
    from recore_dist.learner import Learner
    from recore_dist.runtime.config import TrainConfig
    from recore_dist.runtime.env_factory import make_envs, spaces_of

    cfg = config_lib.load(TrainConfig, "configs/bench_nav.yaml",
                          ["env.size=32", "learner.model.image_size=32", "learner.model.size=xxs",
                           "learner.compile=false"])
    envs = make_envs(cfg, "train", 1, 0)
    spaces = spaces_of(envs)
    envs.close()
    return cfg, spaces, Learner(cfg.learner, spaces)


def test_learned_random_and_blind_on_both_splits():
    from recore_dist.runtime.fixed_eval import evaluate_policies

    cfg, spaces, learner = _small_nav_learner()
    results = evaluate_policies(cfg, spaces, learner.policy_weights(), episodes=4, env_options={"max_steps": 20})
    assert set(results) == {"learned", "random", "blind"}
    for policy, splits in results.items():
        assert splits["train"]["episodes"] == 8.0 and splits["train"]["per_scene"] == 1.0  # 8 scenes, 1 each
        assert splits["heldout"]["episodes"] == 4.0 and splits["heldout"]["scenes"] == 4.0
        for s in splits.values():
            assert np.isfinite(s["return"]) and 0.0 <= s["sr"] <= 1.0 and s["length"] <= 20
    # the same starts and goals for all three policies
    for split in ("train", "heldout"):
        lengths = {p: results[p][split]["shortest_path_length"] for p in results}
        assert len(set(lengths.values())) == 1, lengths
    with pytest.raises(ValueError, match="weights"):
        evaluate_policies(cfg, spaces, None, episodes=1, policies=("learned",))
    with pytest.raises(ValueError, match="unknown"):
        evaluate_policies(cfg, spaces, None, episodes=1, policies=("expert",))


def test_evaluation_reports_how_saturated_the_actors_mean_is():
    """A bounded actor whose pre-tanh mean is 5 everywhere sits at the bound (saturated 1, tanh
    gradient 1 - tanh(5)^2); one whose mean is 0 does not (saturated 0, gradient 1). The std is
    the actor's bounded std at logit 0: 0.9 sigmoid(2) + 0.1. Random policies report nothing."""
    import math

    from recore_dist.evaluate import format_table
    from recore_dist.runtime.fixed_eval import evaluate_policies

    cfg, spaces, learner = _small_nav_learner()
    weights = learner.policy_weights()
    head = [k for k, v in weights.items() if k.startswith("actor.") and k.endswith(".weight") and v.ndim == 2][-1]
    assert weights[head].shape[0] == 2 * spaces.action_dim  # mean and std logits
    std = 0.9 / (1 + math.exp(-2.0)) + 0.1
    for pre_tanh, saturated, grad in ((5.0, 1.0, 1 - math.tanh(5.0) ** 2), (0.0, 0.0, 1.0)):
        weights[head] = np.zeros_like(weights[head])
        bias = np.zeros(2 * spaces.action_dim, np.float32)
        bias[:spaces.action_dim] = pre_tanh
        weights[head.replace(".weight", ".bias")] = bias
        results = evaluate_policies(cfg, spaces, weights, episodes=1, splits=("heldout",),
                                    policies=("learned", "random"), env_options={"max_steps": 10})
        learned = results["learned"]["heldout"]
        assert learned["actor_saturated"] == saturated
        assert learned["actor_tanh_grad"] == pytest.approx(grad, rel=1e-4, abs=1e-6)
        assert learned["actor_std"] == pytest.approx(std, rel=1e-5)
        assert "actor_saturated" not in results["random"]["heldout"]
        table = format_table({"env": cfg.env.name, "checkpoint": "ckpt", "updates": 0, "env_steps": 0,
                              "splits": results["learned"]})
        assert f"actor on heldout: mean at the bound (|tanh| > 0.99) {saturated:.0%} of steps" in table
