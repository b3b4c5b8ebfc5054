"""What every world-model objective shares: the RSSM's KL, reward and continue terms.

An objective owns its ``WorldModel`` (built with the decoders / projections it needs) plus any
objective-only state (momentum encoders, temperatures), and maps a replay batch to
``(loss, metrics, posterior states)``. The learner optimises the objective's parameters and
starts imagination from the returned posterior states.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recore_dist.models.rssm import State, kl_loss
from recore_dist.models.world_model import WorldModel

Batch = dict[str, Tensor]
Metrics = dict[str, Tensor]


@dataclasses.dataclass
class DynamicsConfig:
    """Weights of the terms every objective shares (DreamerV2, Hafner et al. 2021, Table D.1)."""

    kl_scale: float = 1.0
    """Weight of the KL between posterior and prior (DreamerV2 beta = 1.0 for discrete latents)."""
    kl_balance: float = 0.8
    """KL balancing alpha: share of the KL that trains the prior (DreamerV2: 0.8)."""
    free_nats: float = 1.0
    """KL per row below this many nats is not penalised (DreamerV2/V3: 1.0)."""
    reward_scale: float = 1.0
    """Weight of the reward regression (squared error in reward units: order 1 for DMC's per-step
    rewards in [0, action_repeat]; DreamerV2: 1.0)."""
    cont_scale: float = 1.0
    """Weight of the continue (1 - is_terminal) cross-entropy (DreamerV2: 1.0 in Atari)."""
    continue_head: Literal["auto", "learn", "never"] = "auto"
    """Continue probability in imagination. ``learn``: the continue head is trained on
    ``is_terminal`` and multiplies the discount (DreamerV2/V3). ``never``: continue = 1, no
    head loss: a task that cannot terminate gains nothing from it and a learned ~0.994 turned
    DMC's 0.99 discount into ~0.984. ``auto`` (default): ``learn`` when the env can terminate
    (``Spaces.terminates``: navigation success), else ``never`` (dm_control)."""

    def __post_init__(self) -> None:
        if self.continue_head not in ("auto", "learn", "never"):
            raise ValueError(f"continue_head={self.continue_head!r} must be auto, learn or never")
        if not 0.0 <= self.kl_balance <= 1.0:
            raise ValueError(f"kl_balance={self.kl_balance} must be in [0, 1]")
        for key in ("kl_scale", "free_nats", "reward_scale", "cont_scale"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}={getattr(self, key)} must be >= 0")


class Objective(nn.Module, abc.ABC):
    """Base of world-model objectives. Subclasses set ``name`` and implement ``forward``."""

    name: str = ""
    batch_keys: tuple[str, ...] = ("image",)
    """Observation fields the objective reads from replay (besides action, reward, flags)."""

    def __init__(self, wm: WorldModel, dynamics: DynamicsConfig):
        super().__init__()
        self.wm = wm
        self.dynamics = dynamics
        mode = dynamics.continue_head
        wm.learned_continue = mode == "learn" or (mode == "auto" and wm.spaces.terminates)
        self.encoder_out: Tensor | None = None
        """The fused encoder output ``[B, T, E]`` of the latest ``forward`` (with its graph), for
        the learner's per-term gradient diagnostics."""

    @abc.abstractmethod
    def forward(self, batch: Batch) -> tuple[Tensor, Metrics, State]:
        """``batch`` ``[B, T, ...]`` tensors -> ``(loss, metrics, posterior states)``."""

    def after_step(self) -> None:
        """Called after each optimiser step (momentum encoders update here)."""

    def check_batch(self, batch: Batch) -> None:
        """Refuse a batch without the fields or shapes this objective needs, naming them."""
        missing = [k for k in (*self.batch_keys, "action", "reward", "is_first", "is_terminal") if k not in batch]
        if missing:
            raise ValueError(f"{self.name} objective needs batch fields {missing}; got {sorted(batch)}")
        image = batch["image"]
        size, channels = self.wm.cfg.image_size, self.wm.spaces.image_channels
        if image.dim() != 5 or tuple(image.shape[2:]) != (size, size, channels):
            raise ValueError(f"batch image must be [B, T, {size}, {size}, {channels}], got {tuple(image.shape)}")
        if batch["action"].shape[-1] != self.wm.spaces.action_dim:
            raise ValueError(f"batch action width {batch['action'].shape[-1]} != model action_dim "
                             f"{self.wm.spaces.action_dim}")

    def dynamics_terms(self, post: State, prior_stats: Tensor, feat: Tensor, batch: Batch) -> Metrics:
        """Weighted KL, reward and (when learned) continue losses (``loss/*``) plus ``wm/*`` diagnostics."""
        cfg = self.dynamics
        kl, kl_value = kl_loss(self.wm.rssm, post["stats"], prior_stats, balance=cfg.kl_balance,
                               free=cfg.free_nats)
        reward_pred = self.wm.reward(feat)  # [B, T]
        arrived = (~batch["is_first"]).float()  # no reward arrives with a first observation
        reward = ((reward_pred - batch["reward"].float()).square() * arrived).sum() / arrived.sum().clamp(min=1)
        out = {"loss/kl": cfg.kl_scale * kl, "loss/reward": cfg.reward_scale * reward, "wm/kl": kl_value,
               "wm/reward_mse": reward.detach(),
               "wm/prior_entropy": self.wm.rssm.entropy(prior_stats).mean().detach(),
               "wm/post_entropy": self.wm.rssm.entropy(post["stats"]).mean().detach()}
        if self.wm.learned_continue:
            cont_target = (~batch["is_terminal"]).float()
            out["loss/cont"] = cfg.cont_scale * F.binary_cross_entropy_with_logits(self.wm.cont(feat), cont_target)
        return out

    def decoder_terms(self, feat: Tensor, batch: Batch, scales: dict[str, float]) -> Metrics:
        """``loss/<target>`` for each decoder (normalised per element, ``TargetDecoder.loss``),
        weighted by ``scales[target]``; ``wm/<target>_error`` is its unweighted value."""
        out = {}
        for name, decoder in self.wm.decoders.items():
            value = decoder.loss(decoder(feat), batch[name]).mean()
            out[f"loss/{name}"] = scales[name] * value
            out[f"wm/{name}_error"] = value.detach()
        return out


def total(metrics: Metrics) -> Tensor:
    """Sum of every ``loss/*`` entry."""
    return sum(v for k, v in metrics.items() if k.startswith("loss/"))

