"""CoRe (Srivastava et al. 2021, arXiv 2112.01163): contrastive prediction from the RSSM prior.

Per batch ``[B, T]`` (CoRe sec. 2.2, ``J_M = L_c + beta L_KL + alpha_r (r - r_hat)^2 + alpha_a ||a - a_hat||^2``):
  1. Every sequence gets one random shift, the same for all its frames (CoRe A.3 takes random
     84 px crops of 100 px renders, the same crop position along a sequence; our frames arrive at
     model size, so the equivalent is a pad-and-crop shift). ``augment=False`` feeds raw frames.
  2. The encoder embeds each frame, ``x_t = P(f(o_t))`` with a projection ``P`` owned here (the
     conv stack has no final linear layer of its own); the RSSM filters the embeddings.
  3. The prediction ``y_t = g(z_hat_t)`` decodes the *prior* state ``z_hat_t = [h_t, s_hat_t]``,
     ``s_hat_t ~ p(s | h_t)``, i.e. before ``o_t`` was seen (CoRe sec. 2.1; the posterior variant
     of appendix C.3 is an option).
  4. Two-sided InfoNCE between ``x`` and ``y`` over all ``B*T`` pairs with a learned inverse
     temperature (eq. 1), or with negatives from the same sequence only (fig. 3, bottom).
  5. KL(posterior || prior), reward and continue terms shared with every objective
     (``DynamicsConfig``; CoRe's DMC model has no continue head, keeping it is harmless).
  6. Inverse dynamics: an MLP predicts ``a_{t-1}`` from ``[feat_{t-1}, feat_t]`` (posterior
     features); squared error for continuous actions, cross-entropy for discrete ones.

The paper's behaviour learner (latent SAC on posterior features) is ``behavior.kind: sac``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from recore_dist.models.augment import ALL_OFF, Augment, AugmentConfig
from recore_dist.models.config import ModelConfig
from recore_dist.models.heads import Projection
from recore_dist.models.nets import mlp
from recore_dist.models.rssm import State
from recore_dist.models.world_model import Spaces, WorldModel
from recore_dist.objectives.base import Batch, DynamicsConfig, Metrics, Objective, total
from recore_dist.objectives.contrastive import InverseTemperature, candidate_count, info_nce_two_sided, near_in_time


@dataclasses.dataclass
class CoReConfig:
    """CoRe's loss weights and contrastive set-up.

    Table 5 of our copy of the paper lost its row names (the values survive without labels), so
    weights that cannot be matched to a value are 1, the coefficient of ``L_c`` in ``J_M``.
    ``beta`` and ``alpha_r`` are ``objective.dynamics.kl_scale`` / ``reward_scale``. Eq. 2 is a
    plain KL; ``DynamicsConfig`` defaults to DreamerV2's balancing (0.8) and free nats (1.0): the
    plain ``beta * KL`` gradient is ``kl_balance=0.5, kl_scale=2 * beta, free_nats=0``.
    """

    contrastive_scale: float = 1.0
    """Weight of the contrastive term (CoRe sec. 2.2: ``L_c`` enters ``J_M`` with weight 1)."""
    inverse_dynamics_scale: float = 1.0
    """Weight ``alpha_a`` of the inverse-dynamics loss (CoRe sec. 2.2 and appendix C.1: on by default)."""
    negatives: Literal["batch", "sequence"] = "batch"
    """``batch``: all other ``B*T - 1`` pairs of the batch compete (CoRe eq. 1); ``sequence``: only
    the other frames of the same sequence (CoRe fig. 3 bottom: often better, worse on reacher)."""
    predict_from: Literal["prior", "posterior"] = "prior"
    """Decode ``y_t`` from the prior state (CoRe sec. 2.1) or the posterior (the ablation of appendix C.3)."""
    prior_sample: Literal["sample", "mode"] = "sample"
    """Stochastic part of the prior state: a sample (CoRe A.1: ``s_hat = mu + sigma * N(0, 1)``) or its mode."""
    inverse_temperature: float = 10.0
    """Initial learned inverse temperature ``lambda`` (clamped to [1, 100]); CoRe learns it but its
    initial value is not legible in our copy of Table 5; 10 as ReCoRe's default."""
    normalize: bool = True
    """L2-normalise ``x`` and ``y`` before the dot product. Eq. 1 writes raw dot products; with
    cosine similarity the learned ``lambda`` stays in a bounded, well-conditioned range."""
    skip_first: bool = True
    """Rows with ``is_first`` are not contrastive anchors (their prior has seen nothing, it is the
    same for every sequence); they still serve as negatives. Not specified by the paper."""
    augment: bool = True
    """Randomly shift every sequence, the same shift for all its frames (CoRe A.3: random crops at
    one position per sequence; crops are CoRe's only augmentation). ``False`` feeds raw frames."""
    negative_window: int = 8
    """Other pairs of an anchor's own sequence closer than this many steps do not compete
    (``near_in_time``; 1 keeps all): neighbouring frames differ by less than the shift does.
    The same choice as ReCoRe's (docs/BENCHMARKS.md, ``bench objectives``)."""
    shift: int = 4
    """Pixels of the replicate-pad-and-crop shift (DrQ's 4 px pad; CoRe crops 84 of 100 px, i.e.
    offsets of up to 16 px, from renders larger than the model's input, which we do not have)."""

    def __post_init__(self) -> None:
        if self.negative_window < 1:
            raise ValueError(f"negative_window={self.negative_window} must be >= 1")
        if self.shift < 0:
            raise ValueError(f"shift={self.shift} must be >= 0")
        for key in ("contrastive_scale", "inverse_dynamics_scale"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}={getattr(self, key)} must be >= 0")


def inverse_dynamics_pairs(feat: Tensor, action: Tensor, is_first: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Inputs, targets and mask of the inverse-dynamics model under the replay row convention.

    Row ``t`` holds ``o_t`` and the action chosen *at* ``o_t``, so ``action[:, t-1]`` moved the
    agent from ``feat[:, t-1]`` to ``feat[:, t]``; no transition leads into a row with ``is_first``.

    Args:
        feat: ``[B, T, F]`` posterior features.
        action: ``[B, T, A]`` actions.
        is_first: ``[B, T]`` bool.

    Returns:
        ``(inputs [B, T-1, 2F], targets [B, T-1, A], valid [B, T-1] float)``.
    """
    inputs = torch.cat([feat[:, :-1], feat[:, 1:]], -1)
    return inputs, action[:, :-1], (~is_first[:, 1:]).float()


class CoRe(Objective):
    """The CoRe world-model objective; see the module docstring."""

    name = "core"
    batch_keys = ("image",)

    def __init__(self, model: ModelConfig, spaces: Spaces, dynamics: DynamicsConfig, cfg: CoReConfig, *,
                 modalities: tuple[str, ...] = ("image",)):
        super().__init__(WorldModel(model, spaces, modalities=modalities), dynamics)
        self.cfg = cfg
        self.batch_keys = self.wm.modalities
        self.embed_projection = Projection(self.wm.image_embed_dim, model.hidden, model.projection)  # x_t
        self.prediction = Projection(model.feat, model.hidden, model.projection)  # g: y_t = g(z_hat_t)
        self.inverse_dynamics = mlp(2 * model.feat, model.hidden, model.mlp_layers, spaces.action_dim)
        self.temperature = InverseTemperature(cfg.inverse_temperature)
        shift_only = AugmentConfig(**{**ALL_OFF, "shift": cfg.shift})  # type: ignore[arg-type]
        self.augment = Augment(shift_only) if cfg.augment and cfg.shift > 0 else None

    def images(self, image: Tensor) -> Tensor:
        """uint8 ``[B, T, H, W, C]`` -> float ``[B, T, C, H, W]`` in [0, 1], augmented per sequence."""
        if self.augment is None:
            return self.wm.images(image)
        with torch.autocast(image.device.type, enabled=False):  # augment in float32
            return self.augment(image.permute(0, 1, 4, 2, 3).contiguous())

    def predicted_state(self, post: State, prior_stats: Tensor) -> State:
        """The state ``y_t`` is decoded from: the prior ``[h_t, s_hat_t]`` or the posterior."""
        if self.cfg.predict_from == "posterior":
            return post
        stoch = self.wm.rssm.sample(prior_stats, mode=self.cfg.prior_sample == "mode")
        return {"deter": post["deter"], "stoch": stoch}

    def forward(self, batch: Batch) -> tuple[Tensor, Metrics, State]:
        self.check_batch(batch)
        cfg = self.cfg
        embed, image_embed = self.wm.encode_views(self.images(batch["image"]), batch)  # [B, T, E], [B, T, E_image]
        self.encoder_out = embed
        post, prior_stats = self.wm.observe(embed, batch["action"], batch["is_first"])
        feat = self.wm.feat(post)  # [B, T, F]
        metrics = self.dynamics_terms(post, prior_stats, feat, batch)
        x = self.embed_projection(image_embed)  # [B, T, P]
        y = self.prediction(self.wm.feat(self.predicted_state(post, prior_stats)))  # [B, T, P]
        lam = self.temperature()
        valid = ~batch["is_first"] if cfg.skip_first else None
        exclude = near_in_time(*x.shape[:2], cfg.negative_window, x.device)
        loss, acc = info_nce_two_sided(x, y, lam, negatives=cfg.negatives, valid=valid, normalize=cfg.normalize,
                                       exclude=exclude)
        metrics["loss/contrastive"] = cfg.contrastive_scale * loss
        metrics["loss/inverse_dynamics"] = cfg.inverse_dynamics_scale * self.inverse_dynamics_loss(feat, batch)
        metrics["wm/contrastive_acc"] = acc
        metrics["wm/contrastive_chance"] = torch.tensor(1.0 / self.candidates(x.shape[0], x.shape[1], exclude))
        metrics["wm/inverse_temperature"] = lam.detach()
        return total(metrics), metrics, post

    def candidates(self, batch: int, length: int, exclude: Tensor | None) -> float:
        """Mean candidates per anchor (positive included) under ``negatives`` and the window."""
        return candidate_count(exclude, length if self.cfg.negatives == "sequence" else batch * length)

    def inverse_dynamics_loss(self, feat: Tensor, batch: Batch) -> Tensor:
        """Mean over transitions of ``||a_{t-1} - a_hat_{t-1}||^2 / A`` (continuous, per action dimension) or the
        cross-entropy (discrete)."""
        inputs, target, valid = inverse_dynamics_pairs(feat, batch["action"], batch["is_first"])
        pred = self.inverse_dynamics(inputs).float()  # [B, T-1, A]
        if self.wm.spaces.discrete:
            err = F.cross_entropy(pred.flatten(0, 1), target.argmax(-1).flatten(), reduction="none")
            err = err.view_as(valid)
        else:
            err = (pred - target.float()).square().mean(-1)  # [B, T-1], per action dimension
        return (err * valid).sum() / valid.sum().clamp(min=1.0)
