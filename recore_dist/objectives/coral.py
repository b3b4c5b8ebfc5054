"""CoRAL (Becker et al. 2023, arXiv 2302.05342): one RSSM over several sensors, a loss per sensor.

Contrastive Reconstructive Aggregated representation Learning. Per batch ``[B, T]``:
  1. One encoder per modality (the CNN for ``image``, an MLP on symlog inputs for ``proprio``);
     the embeddings are concatenated and filtered by the RSSM posterior (a joint representation
     of all sensors, CoRAL sec. 3).
  2. Each modality gets the self-supervised loss its information density suits (CoRAL sec. 3,
     "choosing the loss per modality"): by default contrastive for images (which may carry
     distractors that reconstruction would spend capacity on) and reconstruction for the
     low-dimensional, noise-free proprioception.
  3. Contrastive terms are InfoNCE (van den Oord et al. 2018) with a learned inverse temperature
     between a projection of a latent feature (query) and a projection of that modality's
     embedding at the same step (key); the other ``B*T - 1`` rows of the batch are negatives.
     ``variational``: the query is the *posterior* feature, which has seen ``obs_t`` (the
     contrastive variational bound of CVRL, Ma et al. 2021, CoRAL's "CV"). ``predictive``: the
     query is the *prior* feature at ``t``, computed before ``obs_t`` is seen, so the RSSM has to
     predict the observation's embedding (CPC-style, CoRAL's "CPC"; rows with ``is_first`` are
     not anchors there, since their prior carries no history).
  4. Reconstruction terms: the image decoder (normalised per-pixel squared error, as the pixel
     baseline) and an MLP proprio decoder (squared error per dimension in symlog space,
     DreamerV3's vector decoder, averaged rather than summed so its weight is order 1).
  5. KL (balanced, free nats), reward and continue terms as in DreamerV2 (``dynamics_terms``).

Metrics per modality ``m``: ``loss/contrastive_m`` with ``wm/contrastive_acc_m`` and
``wm/inverse_temperature_m``, or ``loss/recon_m``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import Tensor, nn

from recore_dist import parallel
from recore_dist.models.config import ModelConfig
from recore_dist.models.heads import Projection, VectorDecoder
from recore_dist.models.nets import mlp
from recore_dist.models.rssm import State
from recore_dist.models.world_model import Spaces, WorldModel, encoder_inputs, symlog
from recore_dist.objectives.base import Batch, DynamicsConfig, Metrics, Objective, total
from recore_dist.objectives.contrastive import InverseTemperature, candidate_count, info_nce, near_in_time

LossKind = Literal["contrastive", "reconstruction"]
LOSS_KINDS: tuple[str, ...] = ("contrastive", "reconstruction")


@dataclasses.dataclass
class CoRALConfig:
    """CoRAL's loss per modality, contrastive style and weights."""

    image_loss: LossKind = "contrastive"
    """Loss of the ``image`` modality (CoRAL: contrastive for images, robust to distractors)."""
    proprio_loss: LossKind = "reconstruction"
    """Loss of the ``proprio`` modality (CoRAL: reconstruction for proprioception)."""
    contrastive_style: Literal["variational", "predictive"] = "variational"
    """Query of the contrastive terms: the posterior feature at ``t`` (``variational``, CoRAL's CV)
    or the prior feature at ``t``, before ``obs_t`` (``predictive``, CoRAL's CPC; better where
    dynamics matter, e.g. occlusions)."""
    image_scale: float = 1.0
    """Weight of the image's loss (InfoNCE, or the normalised per-pixel squared error)."""
    proprio_scale: float | None = None
    """Weight of the proprio loss. ``None``: 10 for ``reconstruction`` (symlog squared error
    summed over the dimensions, as DreamerV3), 1 for ``contrastive`` (InfoNCE, as the image's).
    10, as ``dynamics.vector_scale`` of the other objectives and for the same
    measured reason: at 1 with a mean over dimensions, CoRAL's held-out goal probe on navigation
    was R^2 -0.03 after 500 updates (docs/BENCHMARKS.md, issue 22); CoRAL's paper weighs each
    modality's term at 1 beside a pixel loss summed over pixels, so our per-element means need the
    larger weight for the same balance."""
    inverse_temperature: float = 10.0
    """Initial learned inverse temperature of each contrastive term (clamped to [1, 100])."""
    negative_window: int = 8
    """Other frames of an anchor's own sequence closer than this many steps are not candidates
    (``near_in_time``), as in ReCoRe and CoRe."""

    def __post_init__(self) -> None:
        if self.proprio_scale is None:
            self.proprio_scale = 10.0 if self.proprio_loss == "reconstruction" else 1.0
        for key in ("image_loss", "proprio_loss"):
            if getattr(self, key) not in LOSS_KINDS:
                raise ValueError(f"coral.{key}={getattr(self, key)!r} must be one of {list(LOSS_KINDS)}")
        if self.contrastive_style not in ("variational", "predictive"):
            raise ValueError(f"coral.contrastive_style={self.contrastive_style!r} must be 'variational' or "
                             f"'predictive'")
        for key in ("image_scale", "proprio_scale"):
            if getattr(self, key) < 0:
                raise ValueError(f"coral.{key}={getattr(self, key)} must be >= 0")

    @property
    def modalities(self) -> tuple[str, ...]:
        """Observation fields CoRAL needs at least (``ObjectiveConfig.modalities`` adds them)."""
        return ("image", "proprio")

    @property
    def losses(self) -> dict[str, str]:
        """``{modality: "contrastive" | "reconstruction"}``."""
        return {"image": self.image_loss, "proprio": self.proprio_loss}

    @property
    def scales(self) -> dict[str, float]:
        return {"image": self.image_scale, "proprio": self.proprio_scale}


class CoRAL(Objective):
    """The CoRAL world-model objective; see the module docstring."""

    name = "coral"

    def __init__(self, model: ModelConfig, spaces: Spaces, dynamics: DynamicsConfig, cfg: CoRALConfig, *,
                 modalities: tuple[str, ...] = ("image", "proprio")):
        if spaces.proprio_dim < 1:
            raise ValueError(f"coral encodes proprio: Spaces.proprio_dim must be >= 1 (spaces_of fills it "
                             f"from the env's 'proprio' observation), got {spaces.proprio_dim}")
        decoders = ("image",) if cfg.image_loss == "reconstruction" else ()
        modalities = (*modalities, *(m for m in cfg.modalities if m not in modalities))
        super().__init__(WorldModel(model, spaces, decoders=decoders, modalities=modalities,
                                    **dynamics.heads(decode_vectors=False)), dynamics)  # its own proprio loss
        self.cfg = cfg
        self.batch_keys = self.wm.modalities
        contrastive = [m for m, kind in cfg.losses.items() if kind == "contrastive"]
        embed_dims = self.wm.encoder.embed_dims
        self.query_heads = nn.ModuleDict({m: Projection(model.feat, model.hidden, model.projection)
                                          for m in contrastive})
        self.key_heads = nn.ModuleDict({m: Projection(embed_dims[m], model.hidden, model.projection)
                                        for m in contrastive})
        self.temperatures = nn.ModuleDict({m: InverseTemperature(cfg.inverse_temperature) for m in contrastive})
        if cfg.proprio_loss == "reconstruction":
            self.proprio_decoder = VectorDecoder(model, spaces.proprio_dim)

    def check_batch(self, batch: Batch) -> None:
        super().check_batch(batch)
        proprio, image = batch["proprio"], batch["image"]
        want = (*image.shape[:2], self.wm.spaces.proprio_dim)
        if tuple(proprio.shape) != want:
            raise ValueError(f"batch proprio must be [B, T, P] = {list(want)}, got {tuple(proprio.shape)}")

    def query_feat(self, post: State, prior_stats: Tensor) -> Tensor:
        """``[B, T, F]`` features the contrastive queries come from: the posterior's (variational)
        or the prior's at the same step, ``[h_t, z_t ~ p(z_t | h_t)]`` (predictive)."""
        if self.cfg.contrastive_style == "variational":
            return self.wm.feat(post)
        return self.wm.feat({"deter": post["deter"], "stoch": self.wm.rssm.sample(prior_stats)})

    def predictions(self, post: State, prior_stats: Tensor) -> dict[str, Tensor]:
        """Projected queries ``{modality: [B, T, P]}`` for each contrastive modality."""
        if not len(self.query_heads):
            return {}
        feat = self.query_feat(post, prior_stats)
        return {m: head(feat) for m, head in self.query_heads.items()}

    def posterior(self, batch: Batch) -> tuple[dict[str, Tensor], State, Tensor]:
        """Encode every modality and filter: ``(embeddings {m: [B, T, E_m]}, posterior states,
        prior statistics)`` over the batch."""
        parts = self.wm.encode_parts(encoder_inputs(batch, self.wm.modalities))
        self.encoder_out = self.wm.fuse(parts)
        post, prior_stats = self.wm.observe(self.encoder_out, batch["action"], batch["is_first"])
        return parts, post, prior_stats

    def forward(self, batch: Batch) -> tuple[Tensor, Metrics, State]:
        self.check_batch(batch)
        parts, post, prior_stats = self.posterior(batch)
        feat = self.wm.feat(post)  # [B, T, F]
        metrics = self.dynamics_terms(post, prior_stats, feat, batch)
        anchors = None if self.cfg.contrastive_style == "variational" else ~batch["is_first"].flatten()
        exclude = near_in_time(*feat.shape[:2], self.cfg.negative_window, feat.device)
        if exclude is not None and anchors is not None:
            exclude = exclude[anchors][:, anchors]
        for m, query in self.predictions(post, prior_stats).items():
            metrics.update(self._contrastive(m, query, parts[m], anchors, exclude))
        if self.cfg.image_loss == "reconstruction":
            decoder = self.wm.decoders["image"]
            value = decoder.loss(decoder(feat), batch["image"]).mean()
            metrics["loss/recon_image"] = self.cfg.image_scale * value
            metrics["wm/recon_image_error"] = value.detach()
        if self.cfg.proprio_loss == "reconstruction":
            value = self.proprio_decoder.loss(self.proprio_decoder(feat), batch["proprio"]).mean()
            # mean over [B, T, P] times P: summed over the dimensions, as DreamerV3's vector losses
            metrics["loss/recon_proprio"] = self.cfg.proprio_scale * self.wm.spaces.proprio_dim * value
            metrics["wm/recon_proprio_error"] = value.detach()
        return total(metrics), metrics, post

    def _contrastive(self, m: str, query: Tensor, embed: Tensor, anchors: Tensor | None,
                     exclude: Tensor | None) -> Metrics:
        """InfoNCE between the queries ``[B, T, P]`` and the projected embeddings of modality ``m``."""
        q, k = query.flatten(0, 1), self.key_heads[m](embed.flatten(0, 1))  # [N, P]
        if anchors is not None:
            q, k = q[anchors], k[anchors]
        lam = self.temperatures[m]()
        loss, acc = info_nce(q, k, lam, exclude=exclude)
        return {f"loss/contrastive_{m}": self.cfg.scales[m] * loss, f"wm/contrastive_acc_{m}": acc,
                f"wm/contrastive_chance_{m}": torch.tensor(1.0 / candidate_count(exclude, k.shape[0] * parallel.world_size())),
                f"wm/inverse_temperature_{m}": lam.detach()}
