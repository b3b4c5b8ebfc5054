"""``ReCoRe``: an RLlib ``Algorithm`` that runs recore-dist's own runtime underneath.

A thin adapter. ``setup`` builds an ``Orchestrator`` (env-runner, replay-shard, learner and
evaluator actors) from ``ReCoReConfig.to_train_config``; ``step`` advances it for one iteration
and reports RLlib-style results; checkpoints go through RLlib's ``Checkpointable`` API
(``save_to_path`` / ``restore_from_path`` / ``Algorithm.from_checkpoint``, and Tune's trial
checkpoints), holding the counters in RLlib's state file and the learner's full state (world
model, actor-critic, optimisers) as ``recore/learner.pt`` beside it. There is no second copy of
any loss, model or replay code here.

RLlib's own EnvRunnerGroup, LearnerGroup and RLModule are not created: ``get_module`` and
``compute_single_action`` are not available; act with ``recore_dist.behavior.Policy`` and
``policy_weights()`` instead.

Resources (Tune): the trial's placement group holds the driver, the learner (with its GPU) and
the evaluator; env runners are placed by resources across the cluster (``SPREAD``), outside
the trial's bundles, so they follow nodes the autoscaler adds. Replay shards take no CPU.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.utils.checkpoints import Checkpointable
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    EPISODE_RETURN_MEAN,
    EVALUATION_RESULTS,
    LEARNER_RESULTS,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
)
from ray.tune.execution.placement_groups import PlacementGroupFactory

from recore_dist.rllib.config import ALGORITHM_CLASSES, CoRALConfig, CoReConfig, HRSSMConfig, ReCoReConfig

LEARNER_FILE = Path("recore") / "learner.pt"
COUNTERS = "recore_counters"


class ReCoRe(Algorithm):
    """ReCoRe (and, through ``ReCoReConfig.training(objective=...)``, its relatives)."""

    config_class = ReCoReConfig

    @classmethod
    def get_default_config(cls) -> ReCoReConfig:
        return cls.config_class(cls)

    @classmethod
    def default_resource_request(cls, config):
        if isinstance(config, dict):
            config = cls.get_default_config().update_from_dict(config)
        train = config.to_train_config("resources")
        gpus = train.ray.learner_gpus
        if gpus is None:  # "one if the cluster has a GPU", as the runtime decides
            from recore_dist.runtime.learner_worker import learner_gpus

            gpus = learner_gpus(train)
        learner = {"CPU": train.ray.learner_cpus, **({"GPU": gpus} if gpus else {})}
        return PlacementGroupFactory([{"CPU": 1}, learner, {"CPU": train.ray.runner_cpus}], strategy="PACK")

    # ------------------------------------------------------------------------------ life cycle
    def setup(self, config: ReCoReConfig) -> None:
        """Start the runtime (not ``Algorithm.setup``: no RLlib env runners or learners)."""
        from ray.rllib.utils import force_list

        from recore_dist.runtime.orchestrator import Orchestrator

        self.config = config
        self.callbacks = [cls() for cls in force_list(config.callbacks_class)]
        self.env_runner_group = self.eval_env_runner_group = self.learner_group = None
        self.offline_data = self.offline_eval_runner_group = None
        self._set_up_metrics()
        logdir = Path(self.logdir) / "recore" if self.logdir else Path(os.getcwd()) / "recore"
        self.train_config = config.to_train_config(str(logdir))
        self.orchestrator = Orchestrator(self.train_config, progress=False)
        self.orchestrator.start()

    def step(self) -> dict[str, Any]:
        cfg = self.config
        out = self.orchestrator.advance(seconds=cfg.min_time_s_per_iteration or 0.0,
                                        env_steps=cfg.min_sample_timesteps_per_iteration or 0)
        returns = out["episode_returns"]
        recent = self.orchestrator.recent_returns(cfg.metrics_num_episodes_for_smoothing)
        results: dict[str, Any] = {
            ENV_RUNNER_RESULTS: {
                EPISODE_RETURN_MEAN: float(sum(recent) / len(recent)) if recent else float("nan"),
                "episode_return_max": max(returns) if returns else float("nan"),
                "episode_return_min": min(returns) if returns else float("nan"),
                NUM_ENV_STEPS_SAMPLED: out["env_steps"],
                NUM_ENV_STEPS_SAMPLED_LIFETIME: self.orchestrator.counters["env_steps"],
                NUM_EPISODES: len(returns),
                NUM_EPISODES_LIFETIME: self.orchestrator.counters["episodes"],
                "num_env_runners": len(self.orchestrator.runners),
            },
            LEARNER_RESULTS: {"default_policy": dict(out["learner_metrics"]),
                              "num_updates": out["updates"],
                              "num_updates_lifetime": self.orchestrator.counters["updates"]},
            "perf_recore": out["throughput"],
        }
        if cfg.evaluation_interval and (self.iteration + 1) % cfg.evaluation_interval == 0:
            ev = self.orchestrator.evaluate()
            results[EVALUATION_RESULTS] = {
                ENV_RUNNER_RESULTS: {EPISODE_RETURN_MEAN: ev.get("eval_policy_train/return", float("nan"))},
                "heldout_episode_return_mean": ev.get("eval_policy_heldout/return", float("nan")),
                "generalization_gap": ev.get("eval/generalization_gap", float("nan")), **ev}
        return results

    def cleanup(self) -> None:
        orchestrator = getattr(self, "orchestrator", None)
        if orchestrator is not None:
            orchestrator.stop()
            orchestrator.close()
            self.orchestrator = None

    # ------------------------------------------------------------------------------ checkpoints
    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict[str, Any]:
        return {COUNTERS: dict(self.orchestrator.counters), "training_iteration": self.training_iteration}

    def set_state(self, state: dict[str, Any]) -> None:
        if COUNTERS in state:
            self.orchestrator.counters.update(state[COUNTERS])
        if "training_iteration" in state:
            self._iteration = state["training_iteration"]

    def get_checkpointable_components(self) -> list:
        return []

    def save_to_path(self, path=None, *, state=None, filesystem=None, use_msgpack=False) -> str:
        """RLlib's checkpoint (counters, iteration, class and config) plus the learner's state."""
        path = Path(path) if path is not None else Path(tempfile.mkdtemp())
        target = path / LEARNER_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        # The learner trains on between iterations: record the update count the file holds.
        self.orchestrator.counters["updates"] = self.orchestrator.save_learner(target)
        return Checkpointable.save_to_path(self, path, state=state, filesystem=filesystem, use_msgpack=use_msgpack)

    def restore_from_path(self, path, *args, **kwargs) -> None:
        Checkpointable.restore_from_path(self, path, *args, **kwargs)
        learner = Path(path) / LEARNER_FILE
        if not learner.is_file():
            raise FileNotFoundError(f"{path} is not a recore-dist checkpoint: {LEARNER_FILE} is missing")
        self.orchestrator.load_learner(learner)

    # ------------------------------------------------------------------------------ RLlib API we do not back
    def get_module(self, *args, **kwargs):
        raise NotImplementedError("recore-dist algorithms have no RLModule; act with recore_dist.behavior.Policy "
                                  "loaded from the learner's policy weights")


class CoRe(ReCoRe):
    """CoRe on the same runtime (``CoReConfig``: objective ``core``, latent SAC behaviour)."""

    config_class = CoReConfig


class HRSSM(ReCoRe):
    """HRSSM on the same runtime (``HRSSMConfig``: objective ``hrssm``)."""

    config_class = HRSSMConfig


class CoRAL(ReCoRe):
    """CoRAL on the same runtime (``CoRALConfig``: objective ``coral``)."""

    config_class = CoRALConfig


for _algo in (ReCoRe, CoRe, HRSSM, CoRAL):  # ``ReCoReConfig()`` builds ReCoRe, ``CoReConfig()`` CoRe, ...
    ALGORITHM_CLASSES[_algo.config_class.algo_name] = _algo
