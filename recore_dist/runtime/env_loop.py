"""``EnvLoop``: steps a vector of envs with a policy (or uniform random actions) and chunks it.

The one piece of acting code: the local runner uses it in-process, the Ray env runner wraps it
in an actor. It follows the ``SequenceChunk`` row convention (row ``t``: ``obs_t``, the reward
that arrived with it, the action chosen at it) and reports each finished episode.
"""

from __future__ import annotations

import collections
import time
from typing import Any, Protocol

import numpy as np

from recore_dist.data import SequenceChunk, SequenceChunker
from recore_dist.envs.vector import VectorEnv

EPISODE_INFO_KEYS = ("success", "spl", "shortest_path_length")


class ActingPolicy(Protocol):
    """What the loop needs from a policy (``recore_dist.behavior.Policy`` is one).

    A policy with an ``obs_keys`` attribute (a tuple of observation field names) is passed a
    dict of those fields, ``[N, ...]`` each; one without it is passed the uint8 image array
    ``[N, H, W, C]``.
    """

    version: int

    def act(self, obs: dict[str, np.ndarray] | np.ndarray, is_first: np.ndarray, *,
            explore: bool = True) -> np.ndarray: ...

    def reset(self) -> None: ...


class EnvLoop:
    """Steps ``envs`` in lock-step.

    Args:
        envs: the simulators.
        policy: acting policy; ``None`` (or ``random=True`` per call) uses uniform random actions.
        chunk_length: rows per chunk; ``0`` records no chunks (evaluation).
        env_name: stamped on every chunk.
        runner_id: stamped on every chunk.
        seed: seed of the random actions.
        prefill_policy: who acts on ``random=True`` steps instead of uniform actions (the
            ``replay.prefill_policy: blind`` controller); ``None``: uniform actions.
    """

    def __init__(self, envs: VectorEnv, policy: ActingPolicy | None = None, *, chunk_length: int = 64,
                 env_name: str = "env", runner_id: int = 0, seed: int = 0, seq_start: int = 0,
                 prefill_policy: ActingPolicy | None = None):
        self.envs, self.policy, self.prefill_policy = envs, policy, prefill_policy
        self.chunker = (SequenceChunker(envs.num_envs, chunk_length, env_name=env_name, runner_id=runner_id,
                                        seq_start=seq_start) if chunk_length else None)
        self.rng = np.random.default_rng(seed)
        self.action_shape = (envs.num_envs, *envs.single_action_space.shape)
        self.steps = 0
        self.seconds: collections.Counter = collections.Counter()  # policy_s, env_s, chunk_s
        self.recorded: dict[str, Any] | None = None  # run_episodes(record=True)
        self.reset()

    def reset(self) -> None:
        """Start every simulator on a fresh episode (and the policy on fresh recurrent states)."""
        n = self.envs.num_envs
        self.obs, self.infos = self.envs.reset()
        self.reward = np.zeros(n, np.float32)
        self.returns = np.zeros(n, np.float64)
        self.lengths = np.zeros(n, np.int64)
        if self.policy is not None:
            self.policy.reset()

    def random_actions(self) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, self.action_shape).astype(np.float32)

    def step(self, steps: int, *, random: bool = False, explore: bool = True
             ) -> tuple[list[SequenceChunk], list[dict[str, Any]]]:
        """Take ``steps`` lock-step steps. Returns ``(finished chunks, finished episodes)``."""
        chunks: list[SequenceChunk] = []
        episodes: list[dict[str, Any]] = []
        for _ in range(steps):
            use_random = random or self.policy is None
            start = time.perf_counter()
            if use_random and self.prefill_policy is not None:
                action = self.prefill_policy.act(self._policy_obs(self.prefill_policy), self.obs["is_first"])
                version = 0
            elif use_random:
                action = self.random_actions()
                version = 0
            else:
                action = self.policy.act(self._policy_obs(self.policy), self.obs["is_first"], explore=explore)
                version = max(0, self.policy.version)
            chunked = time.perf_counter()
            if self.chunker is not None:
                chunks += self.chunker.add(self.obs, action, self.reward, policy_version=version,
                                           intervention_ids=[i["intervention_id"] for i in self.infos],
                                           splits=[i["split"] for i in self.infos])
            stepped = time.perf_counter()
            self.obs, reward, _, _, self.infos = self.envs.step(action)
            done = time.perf_counter()
            self.seconds["policy_s"] += chunked - start
            self.seconds["chunk_s"] += stepped - chunked
            self.seconds["env_s"] += done - stepped
            first = self.obs["is_first"]
            self.reward = np.where(first, 0.0, reward).astype(np.float32)
            self.returns = np.where(first, 0.0, self.returns + self.reward)
            self.lengths = np.where(first, 0, self.lengths + 1)
            self.steps += self.envs.num_envs
            for i in np.flatnonzero(self.obs["is_last"]):
                episodes.append(self._episode(i))
        return chunks, episodes

    def _policy_obs(self, policy: ActingPolicy) -> dict[str, np.ndarray] | np.ndarray:
        """The observation fields ``policy`` reads (``obs_keys``), or the image for a policy
        that declares none."""
        keys = getattr(policy, "obs_keys", None)
        if keys is None:
            return self.obs["image"]
        missing = [k for k in keys if k not in self.obs]
        if missing:
            raise ValueError(f"policy reads observation fields {list(keys)}; the envs give {sorted(self.obs)}")
        return {k: self.obs[k] for k in keys}

    def _episode(self, i: int) -> dict[str, Any]:
        info = self.infos[i]
        out = {"return": float(self.returns[i]), "length": int(self.lengths[i]), "split": info.get("split"),
               "intervention_id": info.get("intervention_id"), "env": int(i)}
        out.update({k: float(info[k]) for k in EPISODE_INFO_KEYS if k in info})
        return out

    def run_episodes(self, episodes: int, *, random: bool = False, explore: bool = False,
                     max_steps: int = 100_000, record: bool = False) -> list[dict[str, Any]]:
        """Step until ``episodes`` episodes finish (evaluation); returns the first ``episodes``.

        ``record``: simulator 0's first episode from this call (which should follow a ``reset``)
        is also kept as ``self.recorded``, its episode dict with ``frames``: the images, uint8
        ``[T, H, W, 3]``, from the reset to the last step (stepping goes on until it ends).
        """
        done: list[dict[str, Any]] = []
        frames = [self.obs["image"][0].copy()] if record else None
        self.recorded = None
        taken = 0
        while len(done) < episodes or frames is not None:
            if taken >= max_steps:
                raise RuntimeError(f"{episodes} episodes did not finish within {max_steps} steps")
            finished = self.step(1, random=random, explore=explore)[1]
            taken += 1
            if frames is not None:
                frames.append(self.obs["image"][0].copy())
                for episode in finished:
                    if episode["env"] == 0:
                        self.recorded = {**episode, "frames": np.stack(frames)}
                        frames = None
                        break
            done += finished
        return done[:episodes]

    def close(self) -> None:
        self.envs.close()


def summarise(episodes: list[dict[str, Any]], prefix: str) -> dict[str, float]:
    """Mean return / length (and success / SPL when present) as ``{prefix}/return`` etc."""
    if not episodes:
        return {}
    out = {f"{prefix}/return": float(np.mean([e["return"] for e in episodes])),
           f"{prefix}/length": float(np.mean([e["length"] for e in episodes])),
           f"{prefix}/episodes": float(len(episodes))}
    for key in EPISODE_INFO_KEYS:
        values = [e[key] for e in episodes if key in e]
        if values:
            out[f"{prefix}/{key}"] = float(np.mean(values))
    return out


def prefill_policy(cfg, num_envs: int) -> ActingPolicy | None:
    """The policy that acts during the replay prefill of ``cfg`` (a ``TrainConfig``): the blind
    goal-vector controller with ``replay.prefill_policy: blind``, else ``None`` (uniform actions)."""
    if cfg.replay.prefill_policy != "blind":
        return None
    from recore_dist.behavior.baselines import GoalVectorController

    return GoalVectorController(num_envs)
