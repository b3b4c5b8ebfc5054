"""The RLlib adapter: ReCoReConfig validation and mapping, Tune registration, and (slow, on a real
local Ray) build / train / save / restore and a Tune run with a small search and checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.learner_utils import TINY_MODEL
from tests.test_ray_runtime import ray_cluster  # noqa: F401 - the module-scoped local Ray fixture

rllib = pytest.importorskip("recore_dist.rllib")
ReCoReConfig = rllib.ReCoReConfig


def small_config(config_cls=None, **training) -> "ReCoReConfig":
    """Tiny model, 32 px, short iterations: real actors, a few seconds per iteration."""
    recore = {"learner": {"model": dict(TINY_MODEL), "behavior": {"horizon": 4}, "device": "cpu", "threads": 1},
              "replay": {"capacity": 20_000, "chunk_length": 16, "prefill": 64},
              "eval": {"episodes": 1, "num_envs": 1},
              "ray": {"train_seconds": 1.0, "collect_steps": 8, "shards": 2, "insert_timeout": 5.0}}
    return ((config_cls or ReCoReConfig)()
            .environment("dmc:cartpole-swingup", env_config={"size": 32, "interventions": "colour,background"})
            .env_runners(num_env_runners=2, num_envs_per_env_runner=1)
            .training(batch_size_B=4, batch_length_T=8, training_ratio=8.0, recore=recore, **training)
            .reporting(min_time_s_per_iteration=4, min_sample_timesteps_per_iteration=64))


# ------------------------------------------------------------------------------------------ fast
def test_config_maps_rllib_settings_onto_one_train_config(tmp_path):
    config = small_config(objective="recon").learners(num_gpus_per_learner=0).debugging(seed=7)
    config.validate()
    cfg = config.to_train_config(str(tmp_path))
    assert cfg.runner == "ray" and cfg.logdir == str(tmp_path) and cfg.seed == 7
    assert cfg.env.name == "dmc:cartpole-swingup" and cfg.env.size == 32 and cfg.env.interventions == "colour,background"
    assert (cfg.ray.runners, cfg.ray.envs_per_runner, cfg.ray.shards, cfg.ray.learner_gpus) == (2, 1, 2, 0.0)
    assert (cfg.learner.batch_size, cfg.learner.batch_length, cfg.replay.ratio) == (4, 8, 8.0)
    assert cfg.learner.objective.name == "recon" and cfg.learner.model.deter == TINY_MODEL["deter"]
    assert cfg.replay.prefill == 64 and cfg.learner.behavior.horizon == 4
    assert ReCoReConfig().to_train_config("x").ray.learner_gpus is None  # default: a GPU if there is one
    assert ReCoReConfig().to_train_config("x").ray.learners == 1  # RLlib's 0 (a local learner) is one
    two = ReCoReConfig().learners(num_learners=2, num_cpus_per_learner=0.5).to_train_config("x")
    assert (two.ray.learners, two.ray.learner_cpus) == (2, 0.5)


@pytest.mark.parametrize("mutate, match", [
    (lambda c: c.env_runners(num_env_runners=0), r"num_env_runners=0"),
    (lambda c: c.env_runners(num_envs_per_env_runner=0), r"num_envs_per_env_runner"),
    (lambda c: c.training(objective="dreamer"), r"objective='dreamer'"),
    (lambda c: c.training(training_ratio=-1.0), r"training_ratio=-1.0"),
    (lambda c: c.environment(env_config={"size": 32, "colour": True}), r"env_config keys \['colour'\]"),
    (lambda c: c.training(recore={"replay": {"prefil": 10}}), r"prefil"),
    (lambda c: c.training(recore={"replay": {"capacity": 0}}), r"capacity=0"),
    (lambda c: c.environment(env_config={"size": 48}), r"48"),
    (lambda c: c.reporting(min_time_s_per_iteration=0, min_sample_timesteps_per_iteration=0),
     r"min_time_s_per_iteration=0"),
])
def test_validation_errors_quote_the_values(mutate, match):
    with pytest.raises(ValueError, match=match):  # at the setter (RLlib's own checks) or in validate()
        mutate(small_config()).validate()


def test_importing_registers_the_trainable_and_env_names():
    from ray.tune.registry import ENV_CREATOR, TRAINABLE_CLASS, _global_registry

    names = rllib.register()
    assert _global_registry.get(TRAINABLE_CLASS, "ReCoRe") is rllib.ReCoRe
    assert {"dmc:cartpole-swingup", "dmc:walker-walk", "nav:pointgoal", "igibson:pointnav"} <= set(names)
    env = _global_registry.get(ENV_CREATOR, "dmc:cartpole-swingup")({"size": 32, "depth": False})
    try:
        obs, _ = env.reset(seed=0)
        assert obs["image"].shape == (32, 32, 3)
    finally:
        env.close()


@pytest.mark.parametrize("name, objective", [("ReCoRe", "recore"), ("CoRe", "core"), ("HRSSM", "hrssm"),
                                             ("CoRAL", "coral")])
def test_variants_are_registered_by_name_with_their_objective(name, objective, tmp_path):
    from ray.tune.registry import TRAINABLE_CLASS, _global_registry

    algo_cls = _global_registry.get(TRAINABLE_CLASS, name)
    assert algo_cls is rllib.ALGORITHMS[name] and algo_cls.__name__ == name
    config = algo_cls.get_default_config()
    assert config.algo_class is algo_cls and config.objective == objective
    config.validate()
    cfg = config.to_train_config(str(tmp_path))
    assert cfg.learner.objective.name == objective
    assert cfg.learner.behavior.kind == ("sac" if name == "CoRe" else "imagine")  # CoRe acts with latent SAC


def test_algorithm_classes_export_to_ray_workers_and_configs_build_their_own():
    """Ray exports an actor class after ``dis.dis(cls, depth=2)`` over it (its collision check):
    a config <-> algorithm class reference cycle recurses without end there."""
    import dis
    import io

    for name, algo in rllib.ALGORITHMS.items():
        dis.dis(algo, file=io.StringIO(), depth=2)
        assert algo.config_class().algo_class is algo and algo.config_class.algo_name == name


# ------------------------------------------------------------------------------------------ slow
@pytest.mark.slow
def test_build_train_save_restore_continues_from_the_same_counters(ray_cluster, tmp_path):
    from ray.rllib.algorithms.algorithm import Algorithm

    algo = small_config().evaluation(evaluation_interval=2).build_algo()
    try:
        first = algo.train()
        second = algo.train()
        runners = second["env_runners"]
        assert runners["num_env_steps_sampled_lifetime"] > first["env_runners"]["num_env_steps_sampled_lifetime"] > 0
        assert runners["num_env_runners"] == 2 and second["training_iteration"] == 2
        assert second["learners"]["num_updates_lifetime"] > 0
        metrics = second["learners"]["default_policy"]  # the learner's own loss and perf figures
        assert metrics and all(np.isfinite(v) for v in metrics.values())
        evaluation = second["evaluation"]  # every 2nd iteration: train and held-out splits, and their gap
        assert {"heldout_episode_return_mean", "generalization_gap"} <= set(evaluation)
        assert evaluation["env_runners"]["episode_return_mean"] == evaluation["eval_policy_train/return"]
        path = algo.save_to_path(str(tmp_path / "ckpt"))
        saved = dict(algo.orchestrator.counters)
        tb = list(Path(algo.train_config.logdir).glob("tb/events.out.tfevents.*"))
        assert tb, "the runtime's TensorBoard events are written under the trial's logdir"
    finally:
        algo.stop()
    assert (Path(path) / "recore" / "learner.pt").is_file()

    restored = Algorithm.from_checkpoint(path)
    try:
        assert type(restored) is rllib.ReCoRe and restored.iteration == 2
        assert restored.orchestrator.counters["env_steps"] == saved["env_steps"]
        assert restored.orchestrator.counters["updates"] == saved["updates"] > 0
        third = restored.train()
        assert third["training_iteration"] == 3
        assert third["env_runners"]["num_env_steps_sampled_lifetime"] > saved["env_steps"]
        assert third["learners"]["num_updates_lifetime"] > saved["updates"]
    finally:
        restored.stop()


@pytest.mark.slow
def test_tune_runs_recore_by_name_with_a_search_and_checkpoints(ray_cluster, tmp_path):
    from ray import tune

    config = small_config().training(training_ratio=tune.grid_search([4.0, 8.0])).env_runners(num_env_runners=1)
    tuner = tune.Tuner(
        "ReCoRe", param_space=config,
        run_config=tune.RunConfig(storage_path=str(tmp_path), stop={"training_iteration": 2},
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=1)),
        tune_config=tune.TuneConfig(max_concurrent_trials=1, metric="env_runners/num_env_steps_sampled_lifetime",
                                    mode="max"))
    results = tuner.fit()
    assert not results.errors
    assert sorted(r.config["training_ratio"] for r in results) == [4.0, 8.0]
    for result in results:
        assert result.metrics["training_iteration"] == 2
        assert result.metrics["env_runners"]["num_env_steps_sampled_lifetime"] > 0
        assert result.checkpoint is not None
        assert (Path(result.checkpoint.path) / "recore" / "learner.pt").is_file()
    best = results.get_best_result()
    assert best.metrics["env_runners"]["num_env_steps_sampled_lifetime"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["CoRe", "HRSSM", "CoRAL"])
def test_variants_train_through_tune_by_name(ray_cluster, tmp_path, name):
    from ray import tune

    config = small_config(rllib.ALGORITHMS[name].config_class).env_runners(num_env_runners=1)
    assert config.to_train_config("x").learner.behavior.kind == ("sac" if name == "CoRe" else "imagine")
    results = tune.Tuner(name, param_space=config,
                         run_config=tune.RunConfig(storage_path=str(tmp_path), stop={
                             "learners/num_updates_lifetime": 1, "training_iteration": 8})).fit()
    assert not results.errors
    result = results[0]
    assert result.metrics["env_runners"]["num_env_steps_sampled_lifetime"] > 0
    assert result.metrics["learners"]["num_updates_lifetime"] > 0
