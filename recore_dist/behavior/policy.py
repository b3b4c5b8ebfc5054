"""``Policy``: what an actor process runs. Encoder + RSSM + actor on CPU, one recurrent state per env.

Built from the same configs as the learner and loaded from a weights snapshot
(``Learner.policy_weights()``: a flat ``{name: numpy array}`` dict, so it crosses process and
machine boundaries as plain arrays). It filters each env's observations with the posterior and
samples (``explore=True``) or takes the mode of the actor.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recore_dist.behavior.actor_critic import Actor, BehaviorConfig
from recore_dist.models.config import ModelConfig
from recore_dist.models.nets import ConvEncoder
from recore_dist.models.rssm import RSSM, State
from recore_dist.models.world_model import Spaces

Weights = dict[str, np.ndarray]


class PolicyNet(nn.Module):
    """The modules a policy needs, named exactly as in the learner (``wm.encoder``, ...)."""

    def __init__(self, model: ModelConfig, behavior: BehaviorConfig, spaces: Spaces):
        super().__init__()
        self.encoder = ConvEncoder(channels=spaces.image_channels, size=model.image_size, depth=model.cnn_depth,
                                   layers=model.cnn_layers, channels_last=False)
        self.rssm = RSSM(model, embed_dim=self.encoder.embed_dim, action_dim=spaces.action_dim)
        self.actor = Actor(model, behavior, action_dim=spaces.action_dim, discrete=spaces.discrete)


class Policy:
    """Acts in ``num_envs`` envs at once, carrying each env's recurrent state and last action."""

    def __init__(self, model: ModelConfig, behavior: BehaviorConfig, spaces: Spaces, *, num_envs: int,
                 device: str = "cpu"):
        self.net = PolicyNet(model, behavior, spaces).to(device).eval()
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

    @torch.inference_mode()
    def act(self, image: np.ndarray, is_first: np.ndarray, *, explore: bool = True) -> np.ndarray:
        """One step for every env.

        Args:
            image: uint8 ``[N, H, W, C]``.
            is_first: bool ``[N]``; the env's state resets there.
            explore: sample from the actor (training) or take its mode (evaluation).

        Returns:
            float32 actions ``[N, A]`` (one-hot for discrete actions).
        """
        x = torch.as_tensor(image, device=self.device).permute(0, 3, 1, 2).float().div_(255.0)
        first = torch.as_tensor(np.asarray(is_first, bool), device=self.device)
        embed_h = self.net.rssm.post_embed(self.net.encoder(x))
        self.state = self.net.rssm.obs_step(self.state, self.prev_action, embed_h, first)
        dist = self.net.actor(RSSM.feat(self.state))
        action = dist.sample()[0] if explore else dist.mode()
        self.prev_action = action.float()
        return action.cpu().numpy().astype(np.float32)


def policy_weights(wm_encoder: nn.Module, rssm: nn.Module, actor: nn.Module) -> Weights:
    """Flat numpy snapshot of the policy's modules, named as in ``PolicyNet``."""
    out: Weights = {}
    for prefix, module in (("encoder", wm_encoder), ("rssm", rssm), ("actor", actor)):
        for name, value in module.state_dict().items():
            out[f"{prefix}.{name}"] = value.detach().float().cpu().numpy().copy()
    return out
