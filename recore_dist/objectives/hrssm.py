"""HRSSM (Sun, Zang, Li, Islam, ICML 2024, arXiv 2405.06263): a hybrid RSSM trained with masking,
latent reconstruction and a bisimulation objective, without any pixel decoder.

Per batch ``[B, T]``:
  1. Masked branch (trained by gradient). Random spatio-temporal cubes of the frames are masked
     (``models/masking.py``); the online encoder embeds the masked frames and the online RSSM
     filters them: ``h_t = GRU(h_{t-1}, z_{t-1}, a_{t-1})``, ``z_t ~ q(z | h_t, e^mask_t)``.
  2. Raw branch (updated by EMA only, no gradient). A momentum copy of the encoder embeds the
     *unmasked* frames, and a momentum copy of the RSSM's posterior head reads them together with
     the masked branch's deterministic state: ``z~_t ~ q_ema(z | sg(h_t), e^raw_t)``. This is the
     paper's shared history: both branches share the recurrent state of the mask branch (summary,
     mechanism 3). The raw branch never runs its own recurrence over time, so its latents differ
     from the masked ones only by what the unmasked frame adds at step t, and no gradient flows
     through it. Its one-step prediction (for the bisimulation target) is the momentum prior step
     from ``(h_t, z~_t, a_t)``. The official code (github.com/bit1029public/HRSSM,
     ``RSSM.obs_step_by_prior``) does exactly this.
  3. Latent reconstruction: a linear projection of the masked posterior feature ``[h_t, z_t]``
     predicts the momentum projection of the raw feature ``[h_t, z~_t]``; normalised MSE
     ``||n(p) - n(sg(p~))||^2 = 2 - 2 cos`` (the official ``mbr`` loss, MLR/SPR style).
  4. Bisimulation: states paired by a random permutation of the batch rows; the masked feature of
     state i is compared with the raw feature of state j, and the distance regresses onto the
     stop-gradient target ``|r_i - r_j| + discount * W(P_i, P_j)``, where ``r`` is the reward of
     the transition ``t -> t+1`` (``reward[:, t+1]`` in this repo's row convention) and ``P`` the
     predicted next state (the masked branch's prior at ``t+1``, the raw branch's momentum prior
     step). ``bisim_metric`` picks the distances (see ``HRSSMConfig``).
  5. KL (balanced, free nats), reward and continue terms on the masked branch, as in DreamerV2.

Imagination starts from the raw branch's posterior (``start_states``), as in the official code.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recore_dist.models.config import ModelConfig
from recore_dist.models.masking import MaskFill, apply_mask, cube_mask, cube_side
from recore_dist.models.rssm import RSSM, State
from recore_dist.models.world_model import Spaces, WorldModel, encoder_inputs
from recore_dist.objectives.base import Batch, DynamicsConfig, Metrics, Objective, total
from recore_dist.objectives.ema import ema_copy, ema_update


@dataclasses.dataclass
class HRSSMConfig:
    """HRSSM's masking, loss weights and momentum rates. Defaults follow the official code
    (github.com/bit1029public/HRSSM, ``configs.yaml`` and ``dreamer.py``) where the paper's
    summary gives no number."""

    mask_ratio: float = 0.5
    """Fraction of each frame's cube cells that are masked (summary: ratios 0.3 / 0.5 / 0.7 are
    compared; official ``mask_ratio: 0.5``)."""
    mask_side: int = 8
    """Cube side in pixels on 64 px frames, scaled with ``model.image_size`` (8 px = an 8 x 8 grid;
    the official code uses 10 px patches on 64 px frames, ``patch_size: 10``)."""
    mask_frames: int = 4
    """Cube length in time steps (official ``block_size: 4``)."""
    mask_fill: MaskFill = "gray"
    """Value of masked pixels: ``gray`` (0.5; the official code zeroes frames centred to
    [-0.5, 0.5]), ``zero`` (black) or ``mean`` (the frame's mean colour)."""
    latent_recon_scale: float = 1.0
    """Weight of the latent reconstruction loss (official ``mbr_scale: 1``)."""
    bisim_scale: float = 1.0
    """Weight of the bisimulation loss (official ``simsr_scale: 1``)."""
    bisim_discount: float = 0.99
    """Weight ``gamma`` of the next-state distance in the bisimulation target (official
    ``simsr_discount: 0.99``)."""
    bisim_metric: Literal["simsr", "wasserstein"] = "simsr"
    """``simsr`` (official code, SimSR of Zang et al. 2022): cosine distance ``1 - cos`` between
    features and between sampled predicted next-state features, Huber loss; bounded in [0, 2].
    ``wasserstein`` (DBC / MICo style): Euclidean distance between features, and the exact
    2-Wasserstein distance between the predicted next-state distributions in the same feature
    space ``[h, z]`` (deterministic ``h``; Gaussian ``z``: ``||dmu||^2 + ||dsigma||^2``;
    categorical one-hot ``z``: ``sum |p - q|``, i.e. 2 x total variation per latent), squared error.
    Unbounded: with ``discount`` near 1 the target can reach ``|dr| / (1 - discount)``."""
    encoder_ema_rate: float = 0.05
    """Momentum-encoder update rate per step (official ``encoder_tau: 0.05``)."""
    rssm_ema_rate: float = 0.05
    """Momentum RSSM and projection update rate per step (official ``dynamics_tau: 0.05``)."""
    start_states: Literal["raw", "masked"] = "raw"
    """Posterior states returned for imagination: the raw branch's (official code) or the masked
    branch's."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio={self.mask_ratio} must be in [0, 1)")
        for key in ("mask_side", "mask_frames"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)} must be >= 1")
        for key in ("latent_recon_scale", "bisim_scale"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}={getattr(self, key)} must be >= 0")
        if not 0.0 <= self.bisim_discount <= 1.0:
            raise ValueError(f"bisim_discount={self.bisim_discount} must be in [0, 1]")
        for key in ("encoder_ema_rate", "rssm_ema_rate"):
            if not 0.0 < getattr(self, key) <= 1.0:
                raise ValueError(f"{key}={getattr(self, key)} must be in (0, 1]")


# ------------------------------------------------------------------------------------ losses
def latent_reconstruction_loss(online: Tensor, target: Tensor) -> Tensor:
    """Normalised MSE per row ``[...]``: ``||n(online) - n(target)||^2 = 2 - 2 cos`` (0 when aligned).

    The target is detached here; pass the momentum branch's projection.
    """
    a = F.normalize(online.float(), dim=-1, eps=1e-3)  # eps as in the official ``norm_mse_loss``
    b = F.normalize(target.detach().float(), dim=-1, eps=1e-3)
    return (a - b).square().sum(-1)


def cosine_distance(a: Tensor, b: Tensor) -> Tensor:
    """``1 - cos(a, b)`` per row, in [0, 2]."""
    return 1.0 - F.cosine_similarity(a.float(), b.float(), dim=-1, eps=1e-6)


def euclidean_distance(a: Tensor, b: Tensor) -> Tensor:
    """``||a - b||_2`` per row (smoothed at 0 so its gradient stays finite)."""
    return ((a.float() - b.float()).square().sum(-1) + 1e-12).sqrt()


def gaussian_w2_sq(mean_i: Tensor, std_i: Tensor, mean_j: Tensor, std_j: Tensor) -> Tensor:
    """Squared 2-Wasserstein distance between diagonal Gaussians: ``||dmu||^2 + ||dsigma||^2``."""
    return (mean_i - mean_j).float().square().sum(-1) + (std_i - std_j).float().square().sum(-1)


def categorical_w2_sq(probs_i: Tensor, probs_j: Tensor) -> Tensor:
    """Squared 2-Wasserstein distance between products of categoricals ``[..., S, K]`` embedded as
    one-hot vectors (two classes sqrt(2) apart): ``sum_s 2 TV(p_s, q_s) = sum |p - q|``."""
    return (probs_i - probs_j).float().abs().sum((-2, -1))


def next_state_w2(rssm: RSSM, deter_i: Tensor, stats_i: Tensor, deter_j: Tensor, stats_j: Tensor) -> Tensor:
    """2-Wasserstein distance between two predicted states ``(h, p(z | h))`` in feature space
    ``[h, z]``: ``h`` is deterministic, so ``W2^2 = ||dh||^2 + W2^2(latents)``. -> ``[N]``."""
    if rssm.cfg.classes:
        latent = categorical_w2_sq(rssm._probs(stats_i), rssm._probs(stats_j))
    else:
        latent = gaussian_w2_sq(*rssm._gauss(stats_i), *rssm._gauss(stats_j))
    return ((deter_i - deter_j).float().square().sum(-1) + latent).sqrt()


def bisimulation_target(reward_i: Tensor, reward_j: Tensor, next_distance: Tensor, discount: float) -> Tensor:
    """``|r_i - r_j| + discount * W(P_i, P_j)``, detached (the regression target)."""
    return ((reward_i.float() - reward_j.float()).abs() + discount * next_distance.float()).detach()


def _now_rows(x: Tensor) -> Tensor:
    """``[B, T, ...]`` -> rows ``t = 0..T-2`` flattened ``[B*(T-1), ...]``."""
    return x[:, :-1].flatten(0, 1)


def _next_rows(x: Tensor) -> Tensor:
    """``[B, T, ...]`` -> rows ``t + 1 = 1..T-1`` flattened ``[B*(T-1), ...]``."""
    return x[:, 1:].flatten(0, 1)


# ------------------------------------------------------------------------------------ objective
class HRSSM(Objective):
    """The HRSSM world-model objective; see the module docstring."""

    name = "hrssm"
    batch_keys = ("image",)

    def __init__(self, model: ModelConfig, spaces: Spaces, dynamics: DynamicsConfig, cfg: HRSSMConfig, *,
                 modalities: tuple[str, ...] = ("image",)):
        super().__init__(WorldModel(model, spaces, modalities=modalities, **dynamics.heads()), dynamics)
        self.cfg = cfg
        self.batch_keys = self.wm.modalities
        self.cube_side = cube_side(cfg.mask_side, model.image_size)
        # One linear map of the feature, as the official ``get_mlp_feat`` (no bias).
        self.project = nn.Linear(model.feat, model.projection, bias=False)
        self.raw_encoder = ema_copy(self.wm.encoder)
        self.raw_rssm = ema_copy(self.wm.rssm)
        self.raw_project = ema_copy(self.project)

    def mask(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """float ``[B, T, C, H, W]`` -> (masked images, bool mask ``[B, T, H, W]``)."""
        b, t, _, h, w = images.shape
        cfg = self.cfg
        mask = cube_mask(b, t, h, w, side=self.cube_side, frames=cfg.mask_frames, ratio=cfg.mask_ratio,
                         device=images.device)
        return apply_mask(images, mask, cfg.mask_fill), mask

    def forward(self, batch: Batch) -> tuple[Tensor, Metrics, State]:
        self.check_batch(batch)
        cfg = self.cfg
        raw_images = self.wm.images(batch["image"])  # float [B, T, C, H, W] in [0, 1]
        masked_images, mask = self.mask(raw_images)
        embed, _ = self.wm.encode_views(masked_images, batch)  # [B, T, E]
        self.encoder_out = embed
        post, prior_stats = self.wm.observe(embed, batch["action"], batch["is_first"])
        feat = self.wm.feat(post)  # [B, T, F]
        metrics = self.dynamics_terms(post, prior_stats, feat, batch)
        raw, raw_next = self.raw_branch(raw_images, post["deter"], batch)
        raw_feat = self.wm.feat(raw)  # [B, T, F], no gradient
        with torch.no_grad():
            target = self.raw_project(raw_feat)  # [B, T, P]
        recon = latent_reconstruction_loss(self.project(feat), target)  # [B, T]
        metrics["loss/latent_recon"] = cfg.latent_recon_scale * recon.mean()
        metrics["wm/latent_cos"] = (1.0 - 0.5 * recon.detach()).mean()
        metrics["wm/latent_recon_error"] = recon.detach().mean()  # normalised MSE in [0, 4]
        metrics.update(self.bisimulation(feat, post["deter"], prior_stats, raw_feat, raw_next, batch))
        metrics["wm/mask_ratio"] = mask.float().mean()
        return total(metrics), metrics, raw if cfg.start_states == "raw" else post

    @torch.no_grad()
    def raw_branch(self, raw_images: Tensor, deter: Tensor, batch: Batch) -> tuple[State, State]:
        """Momentum posterior on unmasked frames over the masked branch's history, and its
        one-step prediction.

        Args:
            raw_images: float ``[B, T, C, H, W]``, unmasked.
            deter: ``[B, T, D]`` the masked branch's deterministic states ``h_t`` (shared history).
            batch: the replay batch (``action [B, T, A]``, the action taken after each row, and
                the non-image modalities a multimodal encoder reads).

        Returns:
            ``(raw, raw_next)``: ``raw`` ``[B, T, ...]`` with ``z~_t ~ q_ema(z | h_t, e^raw_t)``;
            ``raw_next`` ``[B, T-1, ...]`` the momentum prior step from ``(h_t, z~_t, a_t)``.
        """
        rssm, action = self.raw_rssm, batch["action"]
        deter = deter.detach()
        lead = raw_images.shape[:2]
        if self.wm.multimodal:
            extra = encoder_inputs(batch, tuple(m for m in self.wm.modalities if m != "image"))
            inputs = {"image": raw_images, **extra}
            embed = self.raw_encoder({k: v.flatten(0, 1) for k, v in inputs.items()}).unflatten(0, lead)
        else:
            embed = self.raw_encoder(raw_images.flatten(0, 1)).unflatten(0, lead)  # [B, T, E]
        stats = rssm._dist_stats(rssm.post_out(rssm.post_deter(deter) + rssm.post_embed(embed)))
        raw = {"deter": deter, "stoch": rssm.sample(stats), "stats": stats}
        raw_next = rssm.img_step({"deter": deter[:, :-1], "stoch": raw["stoch"][:, :-1]}, action[:, :-1])
        return raw, raw_next

    def bisimulation(self, feat: Tensor, deter: Tensor, prior_stats: Tensor, raw_feat: Tensor,
                     raw_next: State, batch: Batch) -> Metrics:
        """``loss/bisim`` over random pairs of states that have a next state in the chunk.

        State i is row ``t < T-1`` of a sequence whose next row is not a reset (``is_first``) and
        which is not terminal; its reward is ``reward[:, t+1]`` and its predicted next state the
        prior at ``t+1`` (masked branch) or ``raw_next[:, t]`` (raw branch).
        """
        cfg = self.cfg
        valid = ~batch["is_first"][:, 1:] & ~batch["is_terminal"][:, :-1]  # [B, T-1]
        rows = valid.flatten().nonzero().squeeze(-1)  # [N]
        if rows.numel() < 2:
            zero = feat.sum() * 0.0
            return {"loss/bisim": zero, "wm/bisim_distance": zero.detach(), "wm/bisim_target": zero.detach()}
        pair = rows[torch.randperm(rows.numel(), device=rows.device)]  # j = pi(i)
        reward = _next_rows(batch["reward"])
        with torch.no_grad():
            stats_i, deter_i = _next_rows(prior_stats).detach()[rows], _next_rows(deter).detach()[rows]
            raw_next_j = {k: v.flatten(0, 1)[pair] for k, v in raw_next.items()}
            if cfg.bisim_metric == "simsr":
                next_i = torch.cat([deter_i, self.wm.rssm.sample(stats_i)], -1)
                next_j = torch.cat([raw_next_j["deter"], raw_next_j["stoch"]], -1)
                next_distance = cosine_distance(next_i, next_j)
            else:
                next_distance = next_state_w2(self.wm.rssm, deter_i, stats_i, raw_next_j["deter"],
                                              raw_next_j["stats"])
            target = bisimulation_target(reward[rows], reward[pair], next_distance, cfg.bisim_discount)
        phi_i, phi_j = _now_rows(feat)[rows], _now_rows(raw_feat)[pair].detach()
        if cfg.bisim_metric == "simsr":
            distance = cosine_distance(phi_i, phi_j)
            loss = F.huber_loss(distance, target)
        else:
            distance = euclidean_distance(phi_i, phi_j)
            loss = (distance - target).square().mean()
        return {"loss/bisim": cfg.bisim_scale * loss, "wm/bisim_distance": distance.detach().mean(),
                "wm/bisim_target": target.mean()}

    def after_step(self) -> None:
        ema_update(self.raw_encoder, self.wm.encoder, self.cfg.encoder_ema_rate)
        ema_update(self.raw_rssm, self.wm.rssm, self.cfg.rssm_ema_rate)
        ema_update(self.raw_project, self.project, self.cfg.rssm_ema_rate)
