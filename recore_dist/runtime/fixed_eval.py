"""Seeded, scene-balanced evaluation: every policy meets the same episodes.

The periodic evaluator (:mod:`recore_dist.runtime.evaluator`) draws fresh episodes each time,
which is right for a live curve but wrong for comparing policies: two policies evaluated that way
meet different start and goal pairs, and on navigation the draw alone moves the success rate by
more than the difference being measured. Here every comparison runs on one *plan*:

- one simulator per scene of the split (``scene=k`` for envs with a scene pool, the navigation
  tasks), so every scene gets the same number of episodes (``ceil(episodes / scenes)``);
- simulator ``i`` seeded ``seed + i`` (``seed`` derived from the split), so its sequence of
  episodes (scene, start, goal, heading; dm_control's initial state and intervention draw)
  depends only on the seed and never on the actions taken: an episode's draw happens at its
  reset, from the env's own generator;
- dm_control gets exactly ``episodes``: as many simulators (up to ``max_envs``) as divide it;
- each simulator's first ``per_env`` episodes count, in order, whatever the policy.

Policies: ``learned`` (the recurrent ``Policy`` in actor mode, given weights), ``random``
(uniform actions, seeded), ``blind`` (:class:`~recore_dist.behavior.baselines.GoalVectorController`,
only where the env has the goal vector in ``proprio``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch

from recore_dist.runtime.env_loop import EnvLoop, summarise

SPLIT_SEEDS = {"train": 1_000_003, "heldout": 2_000_003}  # fixed, apart from every training seed
POLICIES = ("learned", "random", "blind")


@dataclasses.dataclass(frozen=True)
class Plan:
    """Which simulators run and how many episodes each contributes."""

    split: str
    scenes: tuple[int, ...] | None
    """Scene index of simulator ``i`` (``None``: the env has no scene pool)."""
    num_envs: int
    per_env: int
    seed: int

    @property
    def episodes(self) -> int:
        return self.num_envs * self.per_env


def scene_count(env_name: str, options: dict[str, Any]) -> int | None:
    """Scenes in the split's pool of ``env_name`` (``None`` for envs without one)."""
    from recore_dist.envs import make

    env = make(env_name, **options)
    try:
        scenes = getattr(env.unwrapped, "scenes", None)
        return None if scenes is None else len(scenes)
    finally:
        env.close()


def make_plan(env_name: str, options: dict[str, Any], split: str, episodes: int, *, max_envs: int = 8,
              seed_offset: int = 0) -> Plan:
    """At least ``episodes`` episodes on ``split``, the same number per scene."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_SEEDS)}, got {split!r}")
    seed = SPLIT_SEEDS[split] + seed_offset
    count = scene_count(env_name, options)
    if count:
        return Plan(split, tuple(range(count)), count, math.ceil(episodes / count), seed)
    n = max(d for d in range(1, min(episodes, max_envs) + 1) if episodes % d == 0)  # exactly `episodes`
    return Plan(split, None, n, episodes // n, seed)


def make_plan_envs(env_name: str, options: dict[str, Any], plan: Plan, *, only: int | None = None):
    """The plan's simulators as one lock-step vector (simulator ``i`` seeded ``plan.seed + i``);
    ``only=i`` builds simulator ``i`` alone (a vector of one that meets the same episodes)."""
    from recore_dist.envs import make
    from recore_dist.envs.vector import VectorEnv

    def builder(i: int):
        extra = {} if plan.scenes is None else {"scene": plan.scenes[i]}
        return lambda: make(env_name, seed=plan.seed + i, **options, **extra)

    if only is not None:
        return VectorEnv([builder(only)], seed=plan.seed + only)
    return VectorEnv([builder(i) for i in range(plan.num_envs)], seed=plan.seed)


def record_episode(cfg, spaces, weights: dict, split: str, *, env_options: dict[str, Any] | None = None,
                   max_steps: int = 100_000) -> tuple[np.ndarray, dict[str, Any]]:
    """The learned policy's first episode on simulator 0 of ``split``'s plan (the same episode the
    plan evaluates first): ``(frames uint8 [T, H, W, 3], episode)``; frame 0 is the reset."""
    from recore_dist.behavior import Policy

    options = {**cfg.env.options(split), **(env_options or {})}
    plan = make_plan(cfg.env.name, options, split, 1)
    envs = make_plan_envs(cfg.env.name, options, plan, only=0)
    policy = Policy(cfg.learner.model, cfg.learner.behavior, spaces, num_envs=1,
                    modalities=cfg.learner.objective.modalities)
    policy.load(weights, 0)
    loop = EnvLoop(envs, policy, chunk_length=0, seed=plan.seed)
    try:
        with torch.random.fork_rng(devices=[]):  # the posterior samples, seeded; the caller's RNG untouched
            torch.manual_seed(plan.seed)
            loop.run_episodes(1, explore=False, max_steps=max_steps, record=True)
    finally:
        loop.close()
    episode = dict(loop.recorded or {})
    frames = episode.pop("frames")
    return frames, {**episode, "scene": None if plan.scenes is None else plan.scenes[0]}


def run_plan(envs, plan: Plan, policy=None, *, random: bool = False, max_steps: int = 1_000_000
             ) -> list[dict[str, Any]]:
    """Each simulator's first ``plan.per_env`` episodes, ordered by simulator then episode.

    ``policy`` follows :class:`~recore_dist.runtime.env_loop.ActingPolicy` (acts in mode, no
    exploration); ``None`` or ``random=True`` takes uniform actions seeded by the plan.
    """
    if envs.num_envs != plan.num_envs:
        raise ValueError(f"plan has {plan.num_envs} simulators, the vector {envs.num_envs}")
    loop = EnvLoop(envs, policy, chunk_length=0, seed=plan.seed)
    per_env: list[list[dict[str, Any]]] = [[] for _ in range(plan.num_envs)]
    steps = 0
    while any(len(eps) < plan.per_env for eps in per_env):
        if steps >= max_steps:
            raise RuntimeError(f"plan of {plan.episodes} episodes did not finish within {max_steps} steps")
        for episode in loop.step(1, random=random or policy is None, explore=False)[1]:
            i = episode["env"]
            if len(per_env[i]) < plan.per_env:
                per_env[i].append({**episode, "index": len(per_env[i]), "scene": None if plan.scenes is None
                                   else plan.scenes[i]})
        steps += 1
    return [episode for eps in per_env for episode in eps]


def summary(episodes: list[dict[str, Any]]) -> dict[str, float]:
    """Mean return and length, success rate ``sr`` and ``spl`` where the env reports them, and
    the standard error of the return (and of SR) over episodes."""
    flat = summarise(episodes, "x")
    out = {key.split("/", 1)[1]: value for key, value in flat.items()}
    returns = np.array([e["return"] for e in episodes], np.float64)
    out["return_se"] = float(returns.std(ddof=1) / math.sqrt(len(returns))) if len(returns) > 1 else 0.0
    if "success" in out:
        out["sr"] = out.pop("success")
        p, n = out["sr"], len(episodes)
        out["sr_se"] = float(math.sqrt(max(p * (1 - p), 0.0) / n))
    return out


class ActorOutputs:
    """Statistics of a continuous actor's outputs at the states a policy visits in mode.

    A bounded (or tanh-squashed) actor whose mean sits at +-1 acts as a constant action and its
    REINFORCE gradient on the pre-tanh mean is scaled by ``1 - tanh^2``: at a pre-tanh mean of 3.5
    that is 0.004 of its size at 0, so such a policy moves slowly out of the bound (issue 24's
    cartpole runs). Reported per split beside the return: ``actor_saturated`` (fraction of
    steps x action dims with ``|tanh(mean)| > 0.99``), ``actor_tanh_grad`` (mean ``1 - tanh^2``
    of the pre-tanh mean) and ``actor_std`` (median std). Discrete actors report nothing.
    """

    SATURATED = 0.99

    def __init__(self, policy) -> None:
        self.squashed: list[torch.Tensor] = []
        self.std: list[torch.Tensor] = []
        actor = policy.net.actor
        self._hook = None if actor.discrete else actor.register_forward_hook(self._record)

    def _record(self, module, inputs, dist) -> None:
        # both continuous distributions' mode is the squashed mean, tanh(pre-tanh mean)
        self.squashed.append(dist.mode().detach().float().reshape(-1))
        self.std.append(dist.std.detach().float().reshape(-1))

    def close(self) -> dict[str, float]:
        if self._hook is None:
            return {}
        self._hook.remove()
        if not self.squashed:
            return {}
        mean, std = torch.cat(self.squashed), torch.cat(self.std)
        return {"actor_saturated": float((mean.abs() > self.SATURATED).float().mean()),
                "actor_tanh_grad": float((1.0 - mean.square()).mean()),
                "actor_std": float(std.median())}


def has_goal_vector(env_name: str) -> bool:
    """Whether the blind goal-vector baseline applies (point-goal navigation tasks)."""
    return env_name.startswith(("nav:", "igibson:"))


def evaluate_policies(cfg, spaces, weights: dict | None, *, episodes: int, splits: tuple[str, ...] = ("train", "heldout"),
                      policies: tuple[str, ...] = POLICIES, env_options: dict[str, Any] | None = None
                      ) -> dict[str, dict[str, dict[str, float]]]:
    """``{policy: {split: summary}}`` for every policy on every split's plan.

    ``learned`` needs ``weights`` (``Learner.policy_weights()``); ``blind`` is skipped on envs
    without the goal vector. All policies run on the same plan per split. ``env_options`` are
    added to the config's env options (e.g. a shorter ``max_steps`` in tests).
    """
    from recore_dist.behavior import Policy
    from recore_dist.behavior.baselines import GoalVectorController

    unknown = set(policies) - set(POLICIES)
    if unknown:
        raise ValueError(f"unknown evaluation policies {sorted(unknown)}; known: {POLICIES}")
    if "learned" in policies and weights is None:
        raise ValueError("the learned policy needs weights")
    results: dict[str, dict[str, dict[str, float]]] = {}
    for split in splits:
        options = {**cfg.env.options(split), **(env_options or {})}
        plan = make_plan(cfg.env.name, options, split, episodes, seed_offset=0)
        envs = make_plan_envs(cfg.env.name, options, plan)
        try:
            for kind in policies:
                if kind == "blind" and not has_goal_vector(cfg.env.name):
                    continue
                policy = None
                if kind == "learned":
                    policy = Policy(cfg.learner.model, cfg.learner.behavior, spaces, num_envs=plan.num_envs,
                                    modalities=cfg.learner.objective.modalities)
                    policy.load(weights, 0)
                elif kind == "blind":
                    policy = GoalVectorController(plan.num_envs)
                outputs = ActorOutputs(policy) if kind == "learned" else None
                try:
                    with torch.random.fork_rng(devices=[]):  # the posterior samples, seeded; the caller's RNG untouched
                        torch.manual_seed(plan.seed)
                        eps = run_plan(envs, plan, policy, random=kind == "random")
                finally:
                    actor = outputs.close() if outputs else {}
                results.setdefault(kind, {})[split] = {**summary(eps), "episodes": float(len(eps)),
                                                       "scenes": float(len(plan.scenes or ())),
                                                       "per_scene": float(plan.per_env), **actor}
        finally:
            envs.close()
    return results
