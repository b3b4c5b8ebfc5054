"""``ReCoReConfig``: RLlib's ``AlgorithmConfig`` builder for recore-dist's algorithms.

RLlib's settings map onto one ``TrainConfig`` (``to_train_config``); nothing else is read:

=====================================  ======================================================
RLlib                                  recore-dist
=====================================  ======================================================
``environment(env, env_config)``       ``env.name`` and the ``EnvConfig`` fields in env_config
                                       (size, depth, segmentation, clean_image, interventions,
                                       difficulty, dynamic)
``env_runners(num_env_runners,         ``ray.runners``, ``ray.envs_per_runner``,
num_envs_per_env_runner,               ``ray.runner_cpus``
num_cpus_per_env_runner)``
``learners(num_learners,               ``ray.learners`` (RLlib's 0, its local learner, is 1),
num_gpus_per_learner,                  ``ray.learner_gpus`` (default ``None``: a GPU if the
num_cpus_per_learner)``                cluster has one; ``0`` forces the CPU),
                                       ``ray.learner_cpus`` (RLlib's ``"auto"`` is 1)
``training(objective, model_size,      ``learner.objective.name``, ``learner.model.size``,
batch_size_B, batch_length_T,          ``learner.batch_size``, ``learner.batch_length``,
training_ratio, recore={...})``        ``replay.ratio``; ``recore`` is a nested dict of any
                                       other ``TrainConfig`` fields, applied last
``debugging(seed)``                    ``seed``
``reporting(min_time_s_per_iteration,  how long one ``train()`` call runs the runtime
min_sample_timesteps_per_iteration)``
``evaluation(evaluation_interval)``    train + held-out evaluation every N iterations
=====================================  ======================================================

Errors quote the offending values, as RLlib's ``validate()`` does.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided

from recore_dist import config as config_lib
from recore_dist.objectives import OBJECTIVES as OBJECTIVE_CLASSES
from recore_dist.runtime.config import EnvConfig, TrainConfig

ENV_CONFIG_KEYS = tuple(f.name for f in dataclasses.fields(EnvConfig) if f.name != "name")
ALGORITHM_CLASSES: dict[str, type] = {}
"""``algo_name`` -> ``Algorithm`` class, filled by ``recore_dist.rllib.algorithm`` (which imports
this module, never the reverse) and so complete once ``recore_dist.rllib`` is imported. A module
table, not a class attribute: config -> algorithm -> config class references make Ray's actor
export (``dis`` over the class) recurse without end."""
OBJECTIVES = tuple(OBJECTIVE_CLASSES)


class ReCoReConfig(AlgorithmConfig):
    """Build a ReCoRe algorithm the RLlib way::

        config = (ReCoReConfig()
                  .environment("dmc:cartpole-swingup", env_config={"interventions": "colour,background"})
                  .env_runners(num_env_runners=2, num_envs_per_env_runner=4)
                  .training(model_size="xs", training_ratio=64))
        algo = config.build_algo()
        print(algo.train()["env_runners"]["episode_return_mean"])

    Training runs on recore-dist's own runtime (env-runner, replay-shard, learner and evaluator
    actors), not on RLlib's EnvRunnerGroup / LearnerGroup.
    """

    algo_name = "ReCoRe"
    """The name of the ``Algorithm`` this config builds (Tune's trainable name); the class itself
    is looked up in ``ALGORITHM_CLASSES`` when none is given."""
    objective_name = "recore"
    """The objective this config class trains by default (each variant's config sets its own)."""
    default_recore: dict[str, Any] = {}
    """The variant's default ``TrainConfig`` fields (e.g. CoRe's latent SAC behaviour)."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or ALGORITHM_CLASSES.get(self.algo_name))
        self.env = "dmc:cartpole-swingup"
        self.num_env_runners = 2
        self.num_envs_per_env_runner = 4
        self.objective = self.objective_name
        self.model_size = "xs"
        self.batch_size_B = 16
        self.batch_length_T = 64
        self.training_ratio = 256.0
        self.recore: dict[str, Any] = copy.deepcopy(self.default_recore)
        self.min_time_s_per_iteration = 10
        self.min_sample_timesteps_per_iteration = 0
        self.metrics_num_episodes_for_smoothing = 20
        self.num_gpus_per_learner = None  # None: one GPU if the cluster has one (0 forces the CPU)

    def training(self, *, objective: str | None = NotProvided, model_size: str | None = NotProvided,
                 batch_size_B: int | None = NotProvided, batch_length_T: int | None = NotProvided,
                 training_ratio: float | None = NotProvided, recore: dict[str, Any] | None = NotProvided,
                 **kwargs) -> "ReCoReConfig":
        """Args:
            objective: world-model objective (``recore``, ``recon``).
            model_size: ``xxs``, ``xs``, ``s``, ``m``.
            batch_size_B: sequences per batch.
            batch_length_T: steps per sequence.
            training_ratio: replayed steps per env step (``replay.ratio``).
            recore: any other ``TrainConfig`` fields as a nested dict, e.g.
                ``{"learner": {"behavior": {"discount": 0.95}}, "replay": {"prefill": 500}}``.
        """
        super().training(**kwargs)
        for name, value in (("objective", objective), ("model_size", model_size), ("batch_size_B", batch_size_B),
                            ("batch_length_T", batch_length_T), ("training_ratio", training_ratio)):
            if value is not NotProvided:
                setattr(self, name, value)
        if recore is not NotProvided:
            self.recore = _merge(self.recore, recore or {})
        return self

    # ------------------------------------------------------------------------------ mapping
    def to_train_config(self, logdir: str) -> TrainConfig:
        """The ``TrainConfig`` these settings describe (``runner: ray``, open-ended training)."""
        env_config = dict(self.env_config or {})
        unknown = sorted(set(env_config) - set(ENV_CONFIG_KEYS))
        if unknown:
            raise ValueError(f"env_config keys {unknown} are not env settings; allowed: {list(ENV_CONFIG_KEYS)}")
        data: dict[str, Any] = {
            "logdir": logdir, "seed": int(self.seed or 0), "runner": "ray", "env_steps": 10**15,
            "env": {"name": self.env, **env_config},
            "replay": {"ratio": float(self.training_ratio)},
            "learner": {"batch_size": self.batch_size_B, "batch_length": self.batch_length_T,
                        "model": {"size": self.model_size}, "objective": {"name": self.objective}},
            "ray": {"runners": self.num_env_runners, "envs_per_runner": self.num_envs_per_env_runner,
                    "runner_cpus": float(self.num_cpus_per_env_runner),
                    "learner_gpus": _learner_gpus(self.num_gpus_per_learner),
                    "learners": max(1, int(self.num_learners or 0)),
                    "learner_cpus": 1.0 if self.num_cpus_per_learner == "auto" else float(self.num_cpus_per_learner),
                    "eval_every_s": 0.0, "checkpoint_every_s": 0.0},
        }
        size = env_config.get("size")
        if size is not None:
            data["learner"]["model"]["image_size"] = size
        data = _merge(data, self.recore)
        try:
            return config_lib.from_dict(TrainConfig, data)
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"{type(self).__name__}: these settings do not make a valid recore-dist "
                             f"TrainConfig: {exc}") from exc

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.env, str):
            raise ValueError(f"env={self.env!r}: recore-dist algorithms take an env name such as "
                             "'dmc:cartpole-swingup' (see recore_dist.envs.registry)")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective={self.objective!r} is not one of {list(OBJECTIVES)}")
        if not isinstance(self.num_env_runners, int) or self.num_env_runners < 1:
            raise ValueError(f"num_env_runners={self.num_env_runners!r}: recore-dist needs >= 1 env runner "
                             "(simulators always run in env-runner actors)")
        if self.num_envs_per_env_runner < 1:
            raise ValueError(f"num_envs_per_env_runner={self.num_envs_per_env_runner!r} must be >= 1")
        if self.training_ratio is None or not self.training_ratio > 0:
            raise ValueError(f"training_ratio={self.training_ratio!r} must be > 0")
        if not (self.min_time_s_per_iteration or self.min_sample_timesteps_per_iteration):
            raise ValueError(f"min_time_s_per_iteration={self.min_time_s_per_iteration!r} and "
                             f"min_sample_timesteps_per_iteration={self.min_sample_timesteps_per_iteration!r}: "
                             "set at least one, or an iteration would never end")
        self.to_train_config("validate")  # every mapped value checked by the dataclasses

    @property
    def _model_config_auto_includes(self) -> dict[str, Any]:
        return {}


def _learner_gpus(value: Any) -> float | None:
    """``num_gpus_per_learner``: ``None`` / ``"auto"`` is one GPU when the cluster has one; a
    number (0 included) is taken as given."""
    return None if value in (None, "auto") else float(value)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Nested dict update (returns a new dict)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class CoReConfig(ReCoReConfig):
    """CoRe (Poudel et al. 2022): contrastive prediction of the next embedding from the RSSM prior,
    inverse dynamics and reward heads; latent SAC behaviour by default, as in the paper."""

    algo_name = "CoRe"
    objective_name = "core"
    default_recore = {"learner": {"behavior": {"kind": "sac"},  # the paper's learning rates (Table 5)
                                  "actor_opt": {"lr": 1e-3}, "critic_opt": {"lr": 1e-3}}}


class HRSSMConfig(ReCoReConfig):
    """HRSSM: masked branch + EMA raw branch, latent reconstruction, bisimulation."""

    algo_name = "HRSSM"
    objective_name = "hrssm"


class CoRALConfig(ReCoReConfig):
    """CoRAL: one encoder per modality; reconstruction for proprioception, contrastive for images."""

    algo_name = "CoRAL"
    objective_name = "coral"


