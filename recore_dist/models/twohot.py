"""Symlog / symexp and the symexp two-hot distribution of DreamerV3's reward and value heads.

DreamerV3 (Hafner et al. 2023, sec. 2 "Symlog two-hot"; danijar/dreamerv3's current
``symexp_twohot`` output) predicts a scalar ``y`` as a softmax over ``K`` bins placed at
``symexp(linspace(-20, 20, K))``: dense near 0, sparse far from it, so a reward of 0.05 and one of
10 are both a few bins wide. Training is cross-entropy against the *two-hot* encoding of the
target: weight on the two bins around ``y``, linear in the distance, so the expected bin equals
``y``. The read-out is that expectation in reward units, ``sum_k p_k b_k``; with zero-initialised
logits (uniform ``p``) it is exactly 0 because the sum pairs each bin with its mirror
(``b_k (p_k - p_{K-1-k})``), as danijar/dreamerv3 also arranges its sum: the outer bins reach
``+-4.9e8`` and a plain float32 sum of 255 products would leave an error of order 10.

Against a squared-error head, a rare large reward (navigation's +10 in 1% of steps beside
``+-0.05``) is learned at the same speed as the small ones: its cross-entropy does not shrink with
its frequency times its squared size (``tests/test_twohot.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor


def symlog(x: Tensor) -> Tensor:
    """``sign(x) * log(1 + |x|)`` (DreamerV3 eq. 1)."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: Tensor) -> Tensor:
    """The inverse of ``symlog``."""
    return torch.sign(x) * torch.expm1(x.abs())


def symexp_bins(count: int, limit: float = 20.0) -> Tensor:
    """``count`` bins at ``symexp(linspace(-limit, limit, count))``, mirror-symmetric about 0
    (exactly: the negative half is the positive half negated)."""
    if count < 2:
        raise ValueError(f"two-hot needs >= 2 bins, got {count}")
    full = symexp(torch.linspace(-limit, limit, count, dtype=torch.float64))
    return ((full - full.flip(0)) / 2).float()  # b_k = -b_{K-1-k} exactly


def twohot(x: Tensor, bins: Tensor) -> Tensor:
    """``x [...]`` -> ``[..., K]``: weight on the two ``bins`` around ``x`` (clamped to the range),
    linear in the distance, so the weights sum to 1 and their expected bin equals ``x``."""
    x = x.float().clamp(float(bins[0]), float(bins[-1]))
    upper = torch.searchsorted(bins, x.contiguous(), right=True).clamp_(1, bins.numel() - 1)
    lower_bin, upper_bin = bins[upper - 1], bins[upper]
    w_upper = (x - lower_bin) / (upper_bin - lower_bin)
    out = torch.zeros(*x.shape, bins.numel(), dtype=x.dtype, device=x.device)
    out.scatter_(-1, (upper - 1)[..., None], (1 - w_upper)[..., None])
    return out.scatter_add_(-1, upper[..., None], w_upper[..., None])


def twohot_mean(logits: Tensor, bins: Tensor) -> Tensor:
    """Expected value ``sum_k softmax(logits)_k * bins_k`` for mirror-symmetric ``bins``, summed
    as ``sum_{k < K/2} bins_k (p_k - p_{K-1-k})`` so that uniform probabilities read exactly 0."""
    probs = logits.float().softmax(-1)
    half = bins.numel() // 2
    return ((probs[..., :half] - probs.flip(-1)[..., :half]) * bins[:half]).sum(-1)


def twohot_loss(logits: Tensor, target: Tensor, bins: Tensor) -> Tensor:
    """Cross-entropy ``[...]`` of ``logits [..., K]`` against the two-hot encoding of ``target``
    (no gradient into the target)."""
    return -(twohot(target.detach(), bins) * logits.float().log_softmax(-1)).sum(-1)
