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


DREAMER_KL = {"kl_scale": 1.0, "kl_balance": 0.8, "free_nats": 1.0}
"""The KL settings of an objective that names none of its own (DreamerV2, Hafner et al. 2021,
Table D.1: beta 1.0 for discrete latents, balancing 0.8, free nats 1.0)."""


@dataclasses.dataclass
class DynamicsConfig:
    """Weights and heads of the terms every objective shares (DreamerV2 / DreamerV3).

    ``kl_scale``, ``kl_balance`` and ``free_nats`` left at ``None`` take the objective's own
    defaults (``Objective.kl_defaults``): DreamerV2's (``DREAMER_KL``) for every objective but
    ``core``, which follows apple/ml-core's DCS config (weight 0.01, balance 0.5, free 1.0).
    """

    kl_scale: float | None = None
    """Weight of the KL between posterior and prior (``None``: the objective's; DreamerV2 beta =
    1.0 for discrete latents; CoRe 0.01, ml-core ``eta_fwd``)."""
    kl_balance: float | None = None
    """KL balancing alpha: share of the KL that trains the prior (``None``: the objective's;
    DreamerV2 0.8; ml-core's ``eta_q`` 0.5 for CoRe)."""
    free_nats: float | None = None
    """KL per row below this many nats is not penalised (``None``: the objective's; DreamerV2/V3
    and ml-core: 1.0)."""
    reward_scale: float = 1.0
    """Weight of the reward loss (DreamerV2/V3: 1.0)."""
    reward_head: Literal["twohot", "mse"] = "twohot"
    """Reward head: ``twohot`` (DreamerV3, default): a symexp two-hot distribution over
    ``reward_bins`` bins trained by cross-entropy, so navigation's rare +10 (1% of steps beside
    +-0.05 progress) is learned as fast as the small rewards (``models/twohot.py``); ``mse``:
    DreamerV2's squared error in reward units, whose loss a rare large reward barely moves."""
    reward_bins: int = 255
    """Bins of the two-hot reward head (DreamerV3: 255)."""
    vector_scale: float = 10.0
    """Weight of decoding the ``proprio`` vector from the latent feature whenever the encoder
    reads it (``objective.inputs`` with ``proprio``): symlog squared error summed over its
    dimensions (DreamerV3 decodes every vector observation this way, at scale 1.0 beside a
    pixel loss summed over ~12k elements; our other terms are per-element means). 10, measured
    on navigation (ReCoRe, xs, random-policy replay of the train scenes, docs/BENCHMARKS.md): at
    1 the decoder's R^2 for the goal distance and bearing was ~0 after 200 updates (the goal
    enters one 256-wide embedding beside the image's 4,096) and a ridge probe reached 0.23 after
    500; at 10 the decoder read the bearing (sin, cos) at R^2 0.95-0.97 on the segments it
    trained on and 0.80-0.89 on unseen ones after 300 updates. Without it nothing asks
    ``[h, z]`` to keep what only the vector carries (navigation's goal distance and bearing: the
    KL charges every nat the latent keeps, and contrastive terms drop what is constant within an
    episode, CoRe's reacher lesson), yet the actor, critic and reward head read only ``[h, z]``.
    0 turns it off. CoRAL decodes proprio with its own loss (``objective.coral``) instead."""
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
        if self.reward_head not in ("twohot", "mse"):
            raise ValueError(f"reward_head={self.reward_head!r} must be twohot or mse")
        if self.reward_bins < 2:
            raise ValueError(f"reward_bins={self.reward_bins} must be >= 2")
        if self.kl_balance is not None and not 0.0 <= self.kl_balance <= 1.0:
            raise ValueError(f"kl_balance={self.kl_balance} must be in [0, 1]")
        for key in ("kl_scale", "free_nats", "reward_scale", "cont_scale", "vector_scale"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise ValueError(f"{key}={value} must be >= 0")

    def resolved(self, kl_defaults: dict[str, float]) -> DynamicsConfig:
        """A copy with every ``None`` KL setting replaced by ``kl_defaults`` (the objective's)."""
        return dataclasses.replace(self, **{k: v for k, v in kl_defaults.items() if getattr(self, k) is None})

    def heads(self, *, decode_vectors: bool = True) -> dict[str, object]:
        """``WorldModel`` keyword arguments for the heads these settings train."""
        return {"reward": self.reward_head, "reward_bins": self.reward_bins,
                "decode_vectors": decode_vectors and self.vector_scale > 0}


class Objective(nn.Module, abc.ABC):
    """Base of world-model objectives. Subclasses set ``name`` and implement ``forward``."""

    name: str = ""
    batch_keys: tuple[str, ...] = ("image",)
    """Observation fields the objective reads from replay (besides action, reward, flags)."""

    kl_defaults: dict[str, float] = DREAMER_KL
    """KL settings used where ``DynamicsConfig`` leaves them ``None``."""

    def __init__(self, wm: WorldModel, dynamics: DynamicsConfig):
        super().__init__()
        self.wm = wm
        self.dynamics = dynamics.resolved(self.kl_defaults)
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

    def dynamics_terms(self, post: State, prior_stats: Tensor, feat: Tensor, batch: Batch,
                       rows: Tensor | None = None) -> Metrics:
        """Weighted KL, reward, (when learned) continue and (when the encoder reads ``proprio``)
        vector-decoder losses (``loss/*``) plus ``wm/*`` diagnostics.

        Args:
            rows: optional ``[B, T]`` bool, the rows these terms are averaged over (all by default).
        """
        cfg = self.dynamics
        weight = torch.ones(feat.shape[:2], device=feat.device) if rows is None else rows.float()
        kl, kl_value = kl_loss(self.wm.rssm, post["stats"], prior_stats, balance=cfg.kl_balance,
                               free=cfg.free_nats, weight=weight)
        arrived = weight * (~batch["is_first"]).float()  # no reward arrives with a first observation
        reward_loss, reward_pred = self.wm.reward.loss(feat, batch["reward"])  # [B, T] each
        reward = _masked_mean(reward_loss, arrived)
        out = {"loss/kl": cfg.kl_scale * kl, "loss/reward": cfg.reward_scale * reward, "wm/kl": kl_value,
               "wm/reward_mse": _masked_mean((reward_pred - batch["reward"].float()).square(), arrived),
               "wm/prior_entropy": self.wm.rssm.entropy(prior_stats).mean().detach(),
               "wm/post_entropy": self.wm.rssm.entropy(post["stats"]).mean().detach()}
        if self.wm.learned_continue:
            cont_target = (~batch["is_terminal"]).float()
            cont = F.binary_cross_entropy_with_logits(self.wm.cont(feat), cont_target, reduction="none")
            out["loss/cont"] = cfg.cont_scale * _masked_mean(cont, weight)
        decoder = self.wm.vector_decoder
        if decoder is not None:
            per_dim = decoder.loss(decoder(feat), batch["proprio"])  # [B, T], mean over dimensions
            value = _masked_mean(per_dim, weight)
            out["loss/proprio"] = cfg.vector_scale * self.wm.spaces.proprio_dim * value  # DreamerV3: sum over dims
            out["wm/proprio_error"] = value.detach()
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


def _masked_mean(value: Tensor, weight: Tensor) -> Tensor:
    return (value * weight).sum() / weight.sum().clamp(min=1.0)


def total(metrics: Metrics) -> Tensor:
    """Sum of every ``loss/*`` entry."""
    return sum(v for k, v in metrics.items() if k.startswith("loss/"))

