"""``Policy``: what an actor process runs. Encoder + RSSM + actor on CPU, one recurrent state per env.

Built from the same configs as the learner and loaded from a weights snapshot
(``Learner.policy_weights()``: a flat ``{name: numpy array}`` dict, so it crosses process and
machine boundaries as plain arrays). It filters each env's observations with the posterior and
samples (``explore=True``) or takes the mode of the actor. The encoder reads the fields the
objective's world model reads, which the objective's config answers
(``ObjectiveConfig.modalities``): the image, or image and proprioception.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from recore_dist.behavior.actor_critic import Actor, BehaviorConfig
from recore_dist.models.config import ModelConfig
from recore_dist.models.rssm import RSSM, State
from recore_dist.models.world_model import IMAGE_ONLY, MultiEncoder, Spaces, encoder_inputs, make_encoder

Weights = dict[str, np.ndarray]


class PolicyNet(nn.Module):
    """The modules a policy needs, named exactly as in the learner (``wm.encoder``, ...)."""

    def __init__(self, model: ModelConfig, behavior: BehaviorConfig, spaces: Spaces, *,
                 modalities: tuple[str, ...] = IMAGE_ONLY):
        super().__init__()
        self.encoder = make_encoder(model, spaces, modalities, channels_last=False)
        self.rssm = RSSM(model, embed_dim=self.encoder.embed_dim, action_dim=spaces.action_dim)
        self.actor = Actor(model, behavior, action_dim=spaces.action_dim, discrete=spaces.discrete)


class Policy:
    """Acts in ``num_envs`` envs at once, carrying each env's recurrent state and last action.

    Args:
        model, behavior: the learner's configs.
        spaces: the env's spaces (``proprio_dim`` when proprioception is encoded).
        num_envs: envs stepped together.
        modalities: observation fields the encoder reads (``ObjectiveConfig.modalities``);
            they are the policy's ``obs_keys``.
        device: torch device.
        state_mean: filter with the posterior's mode instead of a sample (DreamerV2's
            ``eval_state_mean``; off by default, as there). With it and ``explore=False`` the
            policy is deterministic, which is what ``recore-dist export`` writes.
    """

    def __init__(self, model: ModelConfig, behavior: BehaviorConfig, spaces: Spaces, *, num_envs: int,
                 modalities: tuple[str, ...] = IMAGE_ONLY, device: str = "cpu", state_mean: bool = False):
        self.net = PolicyNet(model, behavior, spaces, modalities=modalities).to(device).eval()
        self.state_mean = state_mean
        self.obs_keys: tuple[str, ...] = tuple(modalities)
        self.spaces, self.num_envs, self.device = spaces, num_envs, torch.device(device)
        self.version = -1
        self.reset()

    def reset(self) -> None:
        self.state: State = self.net.rssm.initial(self.num_envs, self.device)
        self.prev_action = torch.zeros(self.num_envs, self.spaces.action_dim, device=self.device)

    def load(self, weights: Weights, version: int) -> None:
        """Load a snapshot; every key must match (a mismatch names the keys)."""
        own = self.net.state_dict()
        missing, extra = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
        if missing or extra:
            raise ValueError(f"policy weights do not match the model: missing {missing[:5]}, unexpected {extra[:5]}")
        for name, value in weights.items():
            if tuple(value.shape) != tuple(own[name].shape):
                raise ValueError(f"policy weight {name!r}: shape {tuple(value.shape)} != {tuple(own[name].shape)}")
        self.net.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in weights.items()})
        self.version = version

    def _embed(self, obs: Mapping[str, np.ndarray] | np.ndarray) -> torch.Tensor:
        """Observation fields ``[N, ...]`` (or the bare uint8 image ``[N, H, W, C]``) -> ``[N, E]``."""
        fields = obs if isinstance(obs, Mapping) else {"image": obs}
        missing = [k for k in self.obs_keys if k not in fields]
        if missing:
            raise ValueError(f"policy reads observation fields {list(self.obs_keys)}; missing {missing} "
                             f"in {sorted(fields)}")
        raw = {k: torch.as_tensor(np.asarray(fields[k]), device=self.device) for k in self.obs_keys}
        for k, value in raw.items():
            if value.shape[0] != self.num_envs:
                raise ValueError(f"obs[{k!r}] has {value.shape[0]} rows for {self.num_envs} envs: {tuple(value.shape)}")
        inputs = encoder_inputs(raw, self.obs_keys)
        if isinstance(self.net.encoder, MultiEncoder):
            return self.net.encoder(inputs)
        return self.net.encoder(inputs["image"])

    @torch.inference_mode()
    def act(self, obs: Mapping[str, np.ndarray] | np.ndarray, is_first: np.ndarray, *,
            explore: bool = True) -> np.ndarray:
        """One step for every env.

        Args:
            obs: the observation dict (at least the fields of ``obs_keys``, each ``[N, ...]``:
                uint8 ``image [N, H, W, C]``, float ``proprio [N, P]``), or for an image-only
                policy the uint8 image array ``[N, H, W, C]`` itself.
            is_first: bool ``[N]``; the env's state resets there.
            explore: sample from the actor (training) or take its mode (evaluation).

        Returns:
            float32 actions ``[N, A]`` (one-hot for discrete actions).
        """
        first = torch.as_tensor(np.asarray(is_first, bool), device=self.device)
        embed_h = self.net.rssm.post_embed(self._embed(obs))
        self.state = self.net.rssm.obs_step(self.state, self.prev_action, embed_h, first, mode=self.state_mean)
        dist = self.net.actor(RSSM.feat(self.state))
        action = dist.sample()[0] if explore else dist.mode()
        self.prev_action = action.float()
        return action.cpu().numpy().astype(np.float32)


def policy_weights(wm_encoder: nn.Module, rssm: nn.Module, actor: nn.Module) -> Weights:
    """Flat numpy snapshot of the policy's modules, named as in ``PolicyNet`` (the encoder's own
    names: ``encoder.convs.*`` for the image CNN, ``encoder.image.*``/``encoder.proprio.*`` for a
    ``MultiEncoder``)."""
    out: Weights = {}
    for prefix, module in (("encoder", wm_encoder), ("rssm", rssm), ("actor", actor)):
        for name, value in module.state_dict().items():
            out[f"{prefix}.{name}"] = value.detach().float().cpu().numpy().copy()
    return out
