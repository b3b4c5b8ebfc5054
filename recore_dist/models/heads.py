"""Heads on the latent feature ``[h, z]``: reward, continue, contrastive projection, decoders.

Decoder losses are per-element means on one scale, so that default loss weights are of order 1
next to InfoNCE, KL and reward: squared error divided by a running estimate of the target's
per-pixel variance across frames (the fraction of variance left unexplained: 1 for predicting
each pixel's mean, 0 for a perfect decoder) for depth and images, cross-entropy per pixel (nats) for segmentation. DreamerV2's
per-frame sums over pixels made a 32 px depth map weigh ~1,000 x a reward and needed a weight of
100 to matter. The invariant targets decode at ``ModelConfig.target_size`` (32 px by default).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recore_dist import parallel
from recore_dist.models.config import ModelConfig
from recore_dist.models.nets import ConvDecoder, mlp, zero_init_
from recore_dist.models.twohot import symexp_bins, symlog, twohot_loss, twohot_mean

TargetName = Literal["depth", "segmentation", "clean_image", "image"]
TARGETS: tuple[str, ...] = ("depth", "segmentation", "clean_image", "image")


class ScalarHead(nn.Module):
    """MLP -> one scalar per row; zero-initialised float32 output layer (reward, continue logit)."""

    def __init__(self, cfg: ModelConfig, *, zero: bool = True):
        super().__init__()
        self.net = mlp(cfg.feat, cfg.hidden, cfg.mlp_layers, 1, float32_out=True)
        if zero:
            zero_init_(self.net[-1])

    def forward(self, feat: Tensor) -> Tensor:
        return self.net(feat).squeeze(-1).float()


class RewardHead(nn.Module):
    """Latent feature -> reward: a symexp two-hot distribution (``twohot``, DreamerV3's default:
    ``models/twohot.py``) or one regressed scalar (``mse``, DreamerV2). ``forward`` reads the
    prediction out in reward units (what imagination sums); ``loss`` scores the head against
    observed rewards. The output layer starts at zero (DreamerV3), so the first read-out is 0."""

    def __init__(self, cfg: ModelConfig, *, kind: Literal["twohot", "mse"] = "twohot", bins: int = 255):
        super().__init__()
        if kind not in ("twohot", "mse"):
            raise ValueError(f"reward head kind={kind!r} must be twohot or mse")
        self.kind = kind
        self.net = mlp(cfg.feat, cfg.hidden, cfg.mlp_layers, bins if kind == "twohot" else 1, float32_out=True)
        zero_init_(self.net[-1])
        if kind == "twohot":
            self.register_buffer("bins", symexp_bins(bins), persistent=False)

    def read_out(self, out: Tensor) -> Tensor:
        """Raw output (logits ``[..., K]`` or ``[..., 1]``) -> prediction ``[...]``."""
        return twohot_mean(out, self.bins) if self.kind == "twohot" else out.squeeze(-1).float()

    def forward(self, feat: Tensor) -> Tensor:
        return self.read_out(self.net(feat).float())

    def loss(self, feat: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """``(per-row loss [...], detached prediction [...])``: cross-entropy against the two-hot
        target (nats), or the squared error."""
        out = self.net(feat).float()
        pred = self.read_out(out.detach())
        if self.kind == "twohot":
            return twohot_loss(out, target, self.bins), pred
        return (out.squeeze(-1) - target.float()).square(), pred


class VectorDecoder(nn.Module):
    """Latent feature ``[..., F]`` -> symlog of a vector observation ``[..., P]`` (an MLP; DreamerV3
    decodes every vector key of the observation with a symlog squared error)."""

    def __init__(self, cfg: ModelConfig, dim: int):
        super().__init__()
        if dim < 1:
            raise ValueError(f"a vector decoder needs a width >= 1, got {dim}")
        self.net = mlp(cfg.feat, cfg.hidden, max(1, cfg.mlp_layers), dim)

    def forward(self, feat: Tensor) -> Tensor:
        return self.net(feat).float()

    def loss(self, pred: Tensor, value: Tensor) -> Tensor:
        """Per-row ``[...]`` squared error in symlog space, averaged over the vector's dimensions
        (``VectorDecoder.loss(...) * dim`` is DreamerV3's sum over dimensions)."""
        return (pred - symlog(value.float())).square().mean(-1)


class Projection(nn.Module):
    """Projection head for contrastive embeddings (SimCLR/CURL style): Linear, LN, SiLU, Linear."""

    def __init__(self, inp: int, hidden: int, out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(inp, hidden, bias=False), nn.LayerNorm(hidden), nn.SiLU(),
                                 nn.Linear(hidden, out))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class TargetDecoder(nn.Module):
    """Decodes one target map from the latent feature and scores it (``loss``: per element).

    ``depth``: 1 channel, depth / ``max_depth`` (in [0, 1]); normalised squared error.
    ``segmentation``: ``num_classes`` logits, cross-entropy per pixel against the class map.
    ``clean_image`` / ``image``: 3 channels, pixels in [0, 1]; normalised squared error.
    The normaliser is an EMA (decay ``var_decay``) of each element's variance across the batch's
    frames, averaged over elements, floored at ``min_var``: 1 means "no better than each pixel's
    mean", so the static layout (sky, floor) that any decoder learns at once does not count as
    explained variance. It is a buffer, so it checkpoints.
    Targets larger than the decoder's side are area-averaged (depth, images) or strided
    (segmentation) down to it.
    """

    var_decay: float = 0.99
    """EMA decay of the target-variance normaliser (DreamerV3's return-normaliser decay)."""
    min_var: float = 1e-4
    """Floor of the normaliser (a std of 1% of the [0, 1] target range), so a nearly constant
    target cannot blow the loss up."""

    def __init__(self, name: str, cfg: ModelConfig, *, size: int, depth: int, num_classes: int = 0,
                 max_depth: float = 10.0):
        super().__init__()
        if name not in TARGETS:
            raise ValueError(f"unknown decoder target {name!r}; known: {list(TARGETS)}")
        if name == "segmentation" and num_classes < 2:
            raise ValueError(f"segmentation decoder needs num_classes >= 2, got {num_classes}")
        self.name, self.size, self.max_depth = name, size, max_depth
        channels = {"depth": 1, "segmentation": num_classes}.get(name, 3)
        self.net = ConvDecoder(feat=cfg.feat, channels=channels, size=size, depth=depth,
                               channels_last=cfg.channels_last)
        self.register_buffer("target_var", torch.zeros(()))  # 0 until the first training batch

    def forward(self, feat: Tensor) -> Tensor:
        """``[..., F]`` -> ``[..., C, S, S]`` (depth and images in target units, else logits)."""
        out = self.net(feat.flatten(0, -2))
        out = out.unflatten(0, feat.shape[:-1]).float()
        if self.name in ("clean_image", "image"):
            out = out + 0.5
        return out

    def target(self, value: Tensor) -> Tensor:
        """Batch field ``[..., H, W(, C)]`` -> target ``[N..., C, S, S]`` (float) or ``[..., S, S]`` (long)."""
        lead = value.shape[:2]
        if self.name == "segmentation":
            step = value.shape[-1] // self.size
            return value[..., step // 2::step, step // 2::step].long()  # [B, T, S, S]
        x = value.flatten(0, 1).permute(0, 3, 1, 2).float()  # [N, C, H, W]
        x = x / self.max_depth if self.name == "depth" else x / 255.0
        if x.shape[-1] % self.size == 0 and x.shape[-2] % self.size == 0:
            if x.shape[-1] != self.size:  # integer factor: plain average pooling (adaptive is ~5x slower)
                x = F.avg_pool2d(x, (x.shape[-2] // self.size, x.shape[-1] // self.size))
        else:
            x = F.adaptive_avg_pool2d(x, self.size)
        return x.unflatten(0, lead)

    def loss(self, pred: Tensor, value: Tensor) -> Tensor:
        """Per-row loss ``[B, T]``: mean over elements of squared error / target variance, or
        of cross-entropy (segmentation). Updates the variance normaliser in training mode."""
        target = self.target(value)
        if self.name == "segmentation":
            ce = F.cross_entropy(pred.flatten(0, 1), target.flatten(0, 1), reduction="none")
            return ce.mean((-2, -1)).unflatten(0, pred.shape[:2])
        return (pred - target).square().mean((-3, -2, -1)) / self.normaliser(target)

    @torch.no_grad()
    def normaliser(self, target: Tensor) -> Tensor:
        """The running target variance (updated from ``target`` when training), floored."""
        if self.training:  # per-element variance over the batch's frames, averaged over elements
            frames = target.float().flatten(0, 1)
            if parallel.world_size() > 1:  # the variance over all data-parallel ranks' frames
                moments = torch.stack([frames.mean(0), frames.square().mean(0)])
                parallel.mean_([moments])
                var = (moments[1] - moments[0].square()).clamp(min=0).mean()
            else:
                var = frames.var(0, unbiased=False).mean()
            first = self.target_var <= 0
            self.target_var.copy_(torch.where(first, var, self.var_decay * self.target_var
                                              + (1 - self.var_decay) * var))
        return self.target_var.clamp(min=self.min_var)

    def preview(self, pred: Tensor) -> Tensor:
        """Predictions as displayable images in [0, 1], ``[..., C in (1, 3), S, S]``."""
        if self.name == "segmentation":
            classes = pred.argmax(-3, keepdim=True).float()
            return classes / max(1, pred.shape[-3] - 1)
        return pred.clamp(0, 1)
