"""ReCoRe (Poudel et al. 2023, arXiv 2312.09056): contrastive world model + invariant regulariser.

Per batch ``[B, T]``:
  1. Two augmentations of every frame (same parameters along a sequence): a query view and a
     key view (a random shift by default; colour jitter, grayscale, blur and cutout, ReCoRe
     sec. 3, are options: see ``ReCoReConfig.augment``).
  2. The query view is encoded and filtered by the RSSM (posterior states).
  3. InfoNCE between queries from the online branch and keys from a momentum (EMA) encoder on
     the key view (or the online encoder without gradients); the inverse temperature is
     learned (CoRe eq. 3). Queries come from the posterior feature (so the latent state must
     identify the observation) and from the encoder embedding (CURL-style), averaged. The
     candidate set of a query is every frame of the batch except the other frames of its own
     sequence less than ``negative_window`` steps away (``near_in_time``): those differ by less
     than the augmentations do. Top-1 accuracy is logged beside its chance level.
  4. The intervention-invariant auxiliary loss decodes depth (default), segmentation or the
     clean (intervention-free) image from the posterior feature; it keeps the contrastive
     features from collapsing onto augmentation-invariant but task-irrelevant content. Its loss
     is a per-element mean normalised by the target's variance (``TargetDecoder.loss``), order 1.
  5. KL (balanced, free nats), reward and continue terms as in DreamerV2.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import Tensor

from recore_dist import parallel
from recore_dist.models.augment import ALL_OFF, AugmentConfig, augment_pair
from recore_dist.models.config import ModelConfig
from recore_dist.models.rssm import State
from recore_dist.models.world_model import Spaces, WorldModel
from recore_dist.objectives.base import Batch, DynamicsConfig, Metrics, Objective, total
from recore_dist.objectives.contrastive import InverseTemperature, candidate_count, info_nce, near_in_time
from recore_dist.objectives.ema import ema_copy, ema_update


@dataclasses.dataclass
class ReCoReConfig:
    """ReCoRe's loss weights and contrastive set-up."""

    contrastive_scale: float = 0.5
    """Weight of the InfoNCE term. Its gradient reaches the encoder output directly (the query
    is a projection of the embedding), the others through the posterior: at weights 1 / 1 it was
    95% of the encoder's gradient, depth 2% (``bench objectives``, 500 updates, xs); 0.5 with
    ``aux_scale`` 4 keeps every term under 90%."""
    aux_target: Literal["depth", "segmentation", "clean_image", "image", "none"] = "depth"
    """Intervention-invariant auxiliary target (ReCoRe: depth; segmentation and denoising as
    options). Ablations (ReCoRe slides' table): ``none`` drops the auxiliary task ("- D");
    ``image`` replaces it with RGB reconstruction of the observed frame ("- D + I"), which is not
    intervention-invariant."""
    aux_scale: float = 4.0
    """Weight of the auxiliary decoder loss. The loss is the per-element squared error divided
    by the target's running per-pixel variance (1 = predicting each pixel's mean; cross-entropy
    per pixel for segmentation), so it sits on the scale of the contrastive, KL and reward terms;
    4 (with ``contrastive_scale`` 0.5) was chosen with ``bench objectives`` so that the invariant
    target shapes the encoder beside InfoNCE (2% of its gradient at 1 / 1). (The
    earlier summed loss at weight 100 reached 200-300 against ~5 for InfoNCE, drove the gradient
    norm to 15-75x the clip and was, in effect, a depth-decoder Dreamer; docs/BENCHMARKS.md,
    ``bench objectives``, has the gradient shares at this default.)"""
    query: Literal["feat", "embed", "both"] = "embed"
    """Where queries come from: the encoder embedding of the query view (ReCoRe: InfoNCE between
    query and key embeddings of two augmentations; CURL), the posterior feature, or both averaged."""
    key_encoder: Literal["ema", "online"] = "ema"
    """Keys from a momentum encoder (MoCo/CURL) or the online encoder without gradients."""
    ema_rate: float = 0.05
    """Momentum-encoder update rate per step (CURL: tau = 0.05 for the encoder)."""
    inverse_temperature: float = 10.0
    """Initial learned inverse temperature (clamped to [1, 100])."""
    negative_window: int = 8
    """Other frames of a query's own sequence closer than this many steps are not candidates
    (``near_in_time``; 1 keeps every frame). 8 steps are 0.64 s of cartpole at action repeat 8;
    at B16 x T32 a query then has 496 candidates, ~16 of them from its own sequence (same
    background: telling them apart takes the state). Not tuned: a window of 1 put 31 near-copies
    of the positive among the candidates (top-1 0.003-0.010 on ``main``)."""
    augment: AugmentConfig = dataclasses.field(default_factory=lambda: AugmentConfig(**{**ALL_OFF, "shift": 4}))
    """Augmentations for the two views: a 4 px random shift (DrQ's pad) by default. ReCoRe lists
    spatial jitter, blur, colour jitter, grayscale and cutout (all available here); measured
    with ``bench objectives`` (docs/BENCHMARKS.md, xs, 300 updates, 496 candidates), top-1 stayed
    at 0.03-0.07 with MoCo-v2 colour jitter (0.4; 0.2 gave 0.07; without cutout 0.04) and reached
    0.22, still rising, with the shift alone: strong jitter drowned the within-sequence
    differences the candidate set asks for. The colour interventions already vary colours across
    episodes; the invariant depth target does the rest."""
    augment_views: bool = True
    """Augment the frames. ``False`` feeds the raw frames to the encoder (and key encoder): with
    ``contrastive_scale=0`` that is the slides' "- CL" ablation; with augmentation on it is
    "- CL + DA"."""

    def __post_init__(self) -> None:
        if self.negative_window < 1:
            raise ValueError(f"negative_window={self.negative_window} must be >= 1")
        if not 0.0 < self.ema_rate <= 1.0:
            raise ValueError(f"ema_rate={self.ema_rate} must be in (0, 1]")
        for key in ("contrastive_scale", "aux_scale"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}={getattr(self, key)} must be >= 0")


class ReCoRe(Objective):
    """The ReCoRe world-model objective; see the module docstring."""

    name = "recore"

    def __init__(self, model: ModelConfig, spaces: Spaces, dynamics: DynamicsConfig, cfg: ReCoReConfig, *,
                 modalities: tuple[str, ...] = ("image",)):
        decoders = () if cfg.aux_target == "none" else (cfg.aux_target,)
        wm = WorldModel(model, spaces, decoders=decoders, projection=True, modalities=modalities,
                        **dynamics.heads())
        super().__init__(wm, dynamics)
        self.cfg = cfg
        extra = tuple(m for m in wm.modalities if m != "image")
        self.batch_keys = ("image", *extra, *(d for d in decoders if d != "image"))
        self.temperature = InverseTemperature(cfg.inverse_temperature)
        if cfg.key_encoder == "ema":
            self.key_encoder = ema_copy(wm.image_encoder)
            self.key_projection = ema_copy(wm.project_embed)

    def _keys(self, view: Tensor) -> Tensor:
        """Image-only keys ``[N, P]`` of the key view (no gradient)."""
        with torch.no_grad():
            if self.cfg.key_encoder == "ema":
                embed = self.key_encoder(view.flatten(0, 1))
                return self.key_projection(embed)
            return self.wm.project_embed(self.wm.image_encoder(view.flatten(0, 1)))

    def forward(self, batch: Batch) -> tuple[Tensor, Metrics, State]:
        self.check_batch(batch)
        images = batch["image"].permute(0, 1, 4, 2, 3).contiguous()  # uint8 [B, T, C, H, W]
        with torch.autocast(images.device.type, enabled=False):  # augment in float32
            if self.cfg.augment_views:
                query_view, key_view = augment_pair(images, self.cfg.augment)  # float [0, 1]
            else:
                query_view = key_view = images.float().div(255.0)
        embed, image_embed = self.wm.encode_views(query_view, batch)  # [B, T, E], [B, T, E_image]
        self.encoder_out = embed
        post, prior_stats = self.wm.observe(embed, batch["action"], batch["is_first"])
        feat = self.wm.feat(post)  # [B, T, F]
        metrics = self.dynamics_terms(post, prior_stats, feat, batch)
        if self.cfg.contrastive_scale > 0:  # the "- CL" ablations skip the whole term
            key = self._keys(key_view)  # [N, P]
            lam = self.temperature()
            exclude = near_in_time(*feat.shape[:2], self.cfg.negative_window, feat.device)
            queries = {"feat": [self.wm.project_feat(feat.flatten(0, 1))],
                       "embed": [self.wm.project_embed(image_embed.flatten(0, 1))]}
            queries["both"] = queries["feat"] + queries["embed"]
            losses, accs = zip(*(info_nce(q, key, lam, exclude=exclude) for q in queries[self.cfg.query]))
            metrics["loss/contrastive"] = self.cfg.contrastive_scale * sum(losses) / len(losses)
            metrics["wm/contrastive_acc"] = sum(accs) / len(accs)
            metrics["wm/contrastive_chance"] = torch.tensor(1.0 / candidate_count(exclude, key.shape[0] * parallel.world_size()))
            metrics["wm/inverse_temperature"] = lam.detach()
        if self.cfg.aux_target != "none":
            metrics.update(self.decoder_terms(feat, batch, {self.cfg.aux_target: self.cfg.aux_scale}))
        return total(metrics), metrics, post

    def after_step(self) -> None:
        if self.cfg.key_encoder == "ema":
            ema_update(self.key_encoder, self.wm.image_encoder, self.cfg.ema_rate)
            ema_update(self.key_projection, self.wm.project_embed, self.cfg.ema_rate)
