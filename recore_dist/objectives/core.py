"""CoRe (Srivastava et al. 2021, arXiv 2112.01163): contrastive prediction from the RSSM prior.

Per batch ``[B, T]`` (CoRe sec. 2.2, ``J_M = L_c + beta L_KL + alpha_r (r - r_hat)^2 + alpha_a ||a - a_hat||^2``),
set up as apple/ml-core's public DCS config (``configs/dcs/core.yaml``; shared/FACTS.md) where our
architecture allows:
  1. Every sequence gets one random shift, the same for all its frames (CoRe A.3 takes random
     84 px crops of 100 px renders, the same crop position along a sequence; our frames arrive at
     model size, so the equivalent is a pad-and-crop shift). ``augment=False`` feeds raw frames.
  2. The encoder embeds each frame, ``x_t = LN(P(f(o_t)))`` with a projection ``P`` owned here
     and a LayerNorm without affine parameters (ml-core ends its encoder that way).
  3. The prediction ``y_t = LN(g(z_hat_t))`` decodes the *prior* state ``z_hat_t = [h_t, s_hat_t]``,
     ``s_hat_t ~ p(s | h_t)``, i.e. before ``o_t`` was seen (CoRe sec. 2.1; the posterior variant
     of appendix C.3 is an option).
  4. Two-sided InfoNCE (softmax over both directions) between ``x`` and ``y`` over the batch's
     ``B*T`` pairs except an anchor's own neighbours less than ``negative_window`` steps away
     (ml-core keeps all pairs; see ``CoReConfig.negative_window``), scores ``softplus(w) <x, y>`` (ml-core: raw dot products of layer-normed vectors, so
     ``<x, y> = D cos(x, y)``; ``w`` starts at 1.0 and has its own Adam rate, 2e-3).
  5. KL(posterior || prior) at weight 0.01, balance 0.5, free nats 1.0 (ml-core ``eta_fwd``,
     ``eta_q``, ``free_kl``; ``Objective.kl_defaults``), reward and continue terms.
  6. Inverse dynamics: an MLP predicts ``a_{t-1}`` from the encoder embeddings ``[e_{t-1}, e_t]``
     (ml-core reads the posterior states, but ``h_t`` is computed from ``a_{t-1}``, so the target
     would be read off the input); ``0.5 * ||a - tanh(MLP)||^2`` summed over action dimensions.
  7. Each window's row 0 starts from the zero state (a window need not begin an episode): it is
     no contrastive anchor and carries no KL, reward or inverse-dynamics loss (ml-core drops
     ``t = 0`` from every term); rows with ``is_first`` are no anchors either (their prior has
     seen nothing). Both still serve as negatives.

With ``behavior.kind: auto`` a ``core`` learner uses latent SAC with the critic's gradient into the
world model (CoRe sec. 2.3, ml-core ``include_model_params_in_critic``) and ml-core's SAC rates;
with ``latents: gaussian`` its RSSM has 64 Gaussian latents (``LearnerConfig``). Departures, each
for a reason: the GRU has the model size's units (xs: 256; ml-core 200), the encoder is the shared
DreamerV2 CNN, near-in-time neighbours do not compete (measured), and bench batches stay B16 x T32 (ml-core 32 x 32) to keep the objectives'
comparison at matched work.
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
    """CoRe's loss weights and contrastive set-up (defaults: apple/ml-core ``configs/dcs/core.yaml``).

    ``beta`` and ``alpha_r`` are ``objective.dynamics.kl_scale`` / ``reward_scale``; left unset,
    the KL settings are ml-core's (``CoRe.kl_defaults``: weight 0.01, balance 0.5, free 1.0).
    """

    contrastive_scale: float = 1.0
    """Weight of the contrastive term (CoRe sec. 2.2: ``L_c`` enters ``J_M`` with weight 1)."""
    inverse_dynamics_scale: float = 1.0
    """Weight ``alpha_a`` of the inverse-dynamics loss (CoRe sec. 2.2, ml-core ``eta_inv``: 1)."""
    negatives: Literal["batch", "sequence"] = "batch"
    """``batch``: all other ``B*T - 1`` pairs of the batch compete (CoRe eq. 1, ml-core); ``sequence``:
    only the other frames of the same sequence (CoRe fig. 3 bottom: often better, worse on reacher)."""
    predict_from: Literal["prior", "posterior"] = "prior"
    """Decode ``y_t`` from the prior state (CoRe sec. 2.1) or the posterior (the ablation of appendix C.3)."""
    prior_sample: Literal["sample", "mode"] = "sample"
    """Stochastic part of the prior state: a sample (CoRe A.1, ml-core) or its mode."""
    inverse_temperature: float = 1.0
    """Initial raw value ``w`` of the inverse temperature ``softplus(w)`` (ml-core: 1.0, i.e. 1.31)."""
    temperature_lr: float = 2e-3
    """Adam learning rate of ``w`` (ml-core ``lr_inverse_temp``), separate from the model's."""
    similarity: Literal["layernorm_dot", "cosine"] = "layernorm_dot"
    """``layernorm_dot`` (ml-core): scores are dot products of vectors layer-normed without affine
    parameters, ``D cos`` for width ``D``; ``cosine``: L2-normalised, as CURL (a much softer softmax
    at the same ``w``)."""
    latents: Literal["gaussian", "model"] = "gaussian"
    """``gaussian`` (ml-core): the learner's RSSM gets ``stoch`` Gaussian latents
    (``model.classes = 0``); ``model``: keep ``learner.model``'s latents."""
    stoch: int = 64
    """Gaussian latent variables with ``latents: gaussian`` (ml-core ``latent_dims``: 64)."""
    model_clip: float = 10.0
    """World-model gradient-norm clip of a ``core`` learner (ml-core: 10), in place of
    ``learner.model_opt.clip``."""
    skip_first: bool = True
    """Rows with ``is_first`` and each window's row 0 are no contrastive anchors, and row 0 carries
    no KL, reward or inverse-dynamics loss (ml-core drops ``t = 0``)."""
    augment: bool = True
    """Randomly shift every sequence, the same shift for all its frames (CoRe A.3: random crops at
    one position per sequence; crops are CoRe's only augmentation). ``False`` feeds raw frames."""
    negative_window: int = 8
    """Other pairs of an anchor's own sequence closer than this many steps do not compete
    (``near_in_time``; 1 keeps all, as ml-core). A departure, measured with ``bench objectives``
    (cartpole, xs, B16 x T32, docs/BENCHMARKS.md): with all pairs competing top-1 was 0.024 after
    500 updates, with the window of 8 (ReCoRe's) 0.085 after 300 and 0.49 after 1,000:
    neighbouring frames differ by less than the shift does, so ranking them is noise."""
    shift: int = 4
    """Pixels of the replicate-pad-and-crop shift (DrQ's 4 px pad; CoRe crops 84 of 100 px, i.e.
    offsets of up to 16 px, from renders larger than the model's input, which we do not have)."""

    def __post_init__(self) -> None:
        if self.negative_window < 1:
            raise ValueError(f"negative_window={self.negative_window} must be >= 1")
        if self.shift < 0:
            raise ValueError(f"shift={self.shift} must be >= 0")
        if self.stoch < 1 or self.temperature_lr <= 0 or self.model_clip <= 0:
            raise ValueError(f"core.stoch={self.stoch}, temperature_lr={self.temperature_lr} and "
                             f"model_clip={self.model_clip} must be > 0")
        for key in ("contrastive_scale", "inverse_dynamics_scale"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}={getattr(self, key)} must be >= 0")


def inverse_dynamics_pairs(embed: Tensor, action: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Inputs, targets and mask of the inverse-dynamics model under the replay row convention.

    Row ``t`` holds ``o_t`` and the action chosen *at* ``o_t``, so ``action[:, t-1]`` moved the
    agent from ``o_{t-1}`` to ``o_t``. The inputs are observation embeddings only: the RSSM's
    ``h_t`` is computed from ``a_{t-1}``, so a feature containing it would hand the target over.

    Args:
        embed: ``[B, T, E]`` encoder embeddings.
        action: ``[B, T, A]`` actions.
        valid: ``[B, T]`` bool, rows that may end a transition (no transition leads into a row
            with ``is_first``).

    Returns:
        ``(inputs [B, T-1, 2E], targets [B, T-1, A], valid [B, T-1] float)``.
    """
    inputs = torch.cat([embed[:, :-1], embed[:, 1:]], -1)
    return inputs, action[:, :-1], valid[:, 1:].float()


def anchor_rows(is_first: Tensor) -> Tensor:
    """``[B, T]`` bool: rows that are CoRe anchors and carry its losses: not ``is_first`` and not
    a window's row 0 (which starts from the zero state)."""
    rows = ~is_first
    rows[:, 0] = False
    return rows


class CoRe(Objective):
    """The CoRe world-model objective; see the module docstring."""

    name = "core"
    batch_keys = ("image",)
    kl_defaults = {"kl_scale": 0.01, "kl_balance": 0.5, "free_nats": 1.0}  # ml-core eta_fwd, eta_q, free_kl

    def __init__(self, model: ModelConfig, spaces: Spaces, dynamics: DynamicsConfig, cfg: CoReConfig, *,
                 modalities: tuple[str, ...] = ("image",)):
        super().__init__(WorldModel(model, spaces, modalities=modalities, **dynamics.heads()), dynamics)
        self.cfg = cfg
        self.batch_keys = self.wm.modalities
        self.model_clip = cfg.model_clip
        self.embed_projection = Projection(self.wm.image_embed_dim, model.hidden, model.projection)  # x_t
        self.prediction = Projection(model.feat, model.hidden, model.projection)  # g: y_t = g(z_hat_t)
        self.inverse_dynamics = mlp(2 * self.wm.encoder.embed_dim, model.hidden, model.mlp_layers, spaces.action_dim)
        self.temperature = InverseTemperature(cfg.inverse_temperature, kind="softplus")
        self.own_lr = {"temperature": cfg.temperature_lr}
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

    def _vectors(self, x: Tensor) -> Tensor:
        if self.cfg.similarity == "layernorm_dot":
            return F.layer_norm(x.float(), x.shape[-1:])
        return x

    def forward(self, batch: Batch) -> tuple[Tensor, Metrics, State]:
        self.check_batch(batch)
        cfg = self.cfg
        embed, image_embed = self.wm.encode_views(self.images(batch["image"]), batch)  # [B, T, E], [B, T, E_image]
        self.encoder_out = embed
        post, prior_stats = self.wm.observe(embed, batch["action"], batch["is_first"])
        feat = self.wm.feat(post)  # [B, T, F]
        rows = anchor_rows(batch["is_first"]) if cfg.skip_first else None
        metrics = self.dynamics_terms(post, prior_stats, feat, batch, rows=rows)
        x = self._vectors(self.embed_projection(image_embed))  # [B, T, P]
        y = self._vectors(self.prediction(self.wm.feat(self.predicted_state(post, prior_stats))))  # [B, T, P]
        lam = self.temperature()
        exclude = near_in_time(*x.shape[:2], cfg.negative_window, x.device)
        loss, acc = info_nce_two_sided(x, y, lam, negatives=cfg.negatives, valid=rows,
                                       normalize=cfg.similarity == "cosine", exclude=exclude)
        metrics["loss/contrastive"] = cfg.contrastive_scale * loss
        transitions = rows if rows is not None else ~batch["is_first"]
        metrics["loss/inverse_dynamics"] = cfg.inverse_dynamics_scale * self.inverse_dynamics_loss(
            embed, batch, transitions)
        metrics["wm/contrastive_acc"] = acc
        metrics["wm/contrastive_chance"] = torch.tensor(1.0 / self.candidates(x.shape[0], x.shape[1], exclude))
        metrics["wm/inverse_temperature"] = lam.detach()
        return total(metrics), metrics, post

    def candidates(self, batch: int, length: int, exclude: Tensor | None) -> float:
        """Mean candidates per anchor (positive included) under ``negatives`` and the window."""
        return candidate_count(exclude, length if self.cfg.negatives == "sequence" else batch * length)

    def inverse_dynamics_loss(self, embed: Tensor, batch: Batch, valid: Tensor) -> Tensor:
        """Mean over transitions of ``0.5 * ||a_{t-1} - tanh(MLP([e_{t-1}, e_t]))||^2`` (continuous,
        summed over action dimensions, ml-core) or the cross-entropy (discrete)."""
        inputs, target, valid = inverse_dynamics_pairs(embed, batch["action"], valid)
        pred = self.inverse_dynamics(inputs).float()  # [B, T-1, A]
        if self.wm.spaces.discrete:
            err = F.cross_entropy(pred.flatten(0, 1), target.argmax(-1).flatten(), reduction="none")
            err = err.view_as(valid)
        else:
            err = 0.5 * (torch.tanh(pred) - target.float()).square().sum(-1)  # [B, T-1]
        return (err * valid).sum() / valid.sum().clamp(min=1.0)
