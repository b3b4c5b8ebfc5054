"""``Evaluator``: runs a policy snapshot on the train and held-out intervention splits.

Mode actions (no exploration), fresh episodes every call, one simulator vector per split. The
local runner calls it in-process; the Ray runtime starts it as an actor (``remote_evaluator``)
and feeds it the learner's latest weights, so the out-of-distribution gap is reported live.
"""

from __future__ import annotations

from typing import Any

from recore_dist.runtime.env_loop import EnvLoop, summarise

SPLITS = ("train", "heldout")


class Evaluator:
    """Args:
        cfg: the training config.
        spaces: model spaces (as the learner's).
        make_env_vector: env factory ``(cfg, split, num_envs, seed)``.
    """

    def __init__(self, cfg, spaces, *, make_env_vector=None):
        from recore_dist.runtime.env_factory import make_envs

        self.cfg, self.spaces = cfg, spaces
        self.make_env_vector = make_env_vector or make_envs
        self.loops: dict[str, tuple[EnvLoop, Any]] = {}
        self.version = -1

    def _loop(self, split: str):
        from recore_dist.behavior import Policy

        if split not in self.loops:
            cfg = self.cfg
            seed = cfg.seed + (10_000 if split == "train" else 20_000)
            policy = Policy(cfg.learner.model, cfg.learner.behavior, self.spaces, num_envs=cfg.eval.num_envs,
                            modalities=cfg.learner.objective.modalities)
            envs = self.make_env_vector(cfg, split, cfg.eval.num_envs, seed)
            self.loops[split] = (EnvLoop(envs, policy, chunk_length=0, seed=seed), policy)
        return self.loops[split]

    def evaluate(self, weights: dict | None, version: int, *, episodes: int | None = None,
                 splits: tuple[str, ...] = SPLITS, random: bool = False, videos: bool = False) -> dict[str, Any]:
        """Mean return / length (and success / SPL) per split, keys ``eval_{policy|random}_{split}/*``,
        plus ``eval/generalization_gap`` (train minus held-out return) when both splits ran.

        ``videos``: also ``results["videos"] = {split: episode}``, simulator 0's first episode of
        each split with its ``frames`` (``EnvLoop.run_episodes(record=True)``); the caller logs
        and drops it (``summaries.log_evaluation``)."""
        episodes = episodes or self.cfg.eval.episodes
        results: dict[str, Any] = {}
        recorded: dict[str, Any] = {}
        kind = "random" if random else "policy"
        for split in splits:
            loop, policy = self._loop(split)
            if weights is not None:
                policy.load(weights, version)
            loop.reset()
            done = loop.run_episodes(episodes, random=random, explore=False, record=videos)
            results.update(summarise(done, f"eval_{kind}_{split}"))
            if videos and loop.recorded is not None:
                recorded[split] = loop.recorded
        if videos:
            results["videos"] = recorded
        train, held = results.get(f"eval_{kind}_train/return"), results.get(f"eval_{kind}_heldout/return")
        if train is not None and held is not None:
            results["eval/generalization_gap"] = train - held
        results["eval/policy_version"] = float(version)
        return results

    def evaluate_ref(self, version: int, weights: list, episodes: int | None = None,
                     videos: bool = False) -> dict[str, Any]:
        """``evaluate`` with weights given as ``[ObjectRef]`` (the Ray runtime's form)."""
        import ray

        return self.evaluate(ray.get(weights[0]), version, episodes=episodes, videos=videos)

    def close(self) -> None:
        for loop, _ in self.loops.values():
            loop.close()


def remote_evaluator(cfg, spaces, **options: Any):
    import ray

    opts = {"max_restarts": -1, "max_task_retries": -1, "num_cpus": cfg.ray.runner_cpus}
    opts.update(options)
    return ray.remote(Evaluator).options(**opts).remote(cfg, spaces)
