"""Action distributions: bounded Gaussian and tanh-squashed Gaussian (continuous), categorical
with unimix (discrete).

All keep the raw sample (``u`` before clipping or tanh, or the class index) so REINFORCE can
score the action later (DreamerV3 uses REINFORCE gradients for all action spaces).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class BoundedNormal:
    """DreamerV3's continuous actor: ``u ~ N(mean, std)`` with ``mean`` already in [-1, 1] (a tanh
    of the network output) and ``std`` in ``[min_std, max_std]``; the action is ``clip(u, -1, 1)``.

    Unlike a tanh-squashed Gaussian its entropy is the Gaussian's, so it is bounded below by
    construction: ``>= A * (0.5 + log(sqrt(2 pi)) + log(min_std))`` (-0.88 nats per dimension at
    ``min_std`` 0.1), and saturating the mean at +-1 cannot drive it to minus infinity.
    """

    def __init__(self, mean: Tensor, std: Tensor):
        self.mean, self.std = mean.float(), std.float()

    def sample(self) -> tuple[Tensor, Tensor]:
        raw = self.mean + self.std * torch.randn_like(self.std)
        return raw.clamp(-1.0, 1.0), raw

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, raw: Tensor) -> Tensor:
        """``log N(u; mean, std)`` of the unclipped sample, summed over action dims."""
        z = (raw - self.mean) / self.std
        return (-0.5 * z.square() - self.std.log() - _LOG_SQRT_2PI).sum(-1)

    def entropy(self) -> Tensor:
        """Exact Gaussian entropy, summed over action dims."""
        return (0.5 + _LOG_SQRT_2PI + self.std.log()).sum(-1)


class TanhNormal:
    """``a = tanh(u)``, ``u ~ N(mean, std)``; ``raw`` samples are ``u``."""

    def __init__(self, mean: Tensor, std: Tensor):
        self.mean, self.std = mean.float(), std.float()

    def sample(self) -> tuple[Tensor, Tensor]:
        raw = self.mean + self.std * torch.randn_like(self.std)
        return torch.tanh(raw), raw

    def mode(self) -> Tensor:
        return torch.tanh(self.mean)

    def log_prob(self, raw: Tensor) -> Tensor:
        """``log pi(tanh(u))`` summed over action dims, with the tanh Jacobian."""
        z = (raw - self.mean) / self.std
        normal = -0.5 * z.square() - self.std.log() - _LOG_SQRT_2PI
        jacobian = 2.0 * (math.log(2.0) - raw - F.softplus(-2.0 * raw))  # log(1 - tanh(u)^2)
        return (normal - jacobian).sum(-1)

    def entropy(self) -> Tensor:
        """Reparameterised one-sample estimate: H[N] + E[log(1 - tanh(u)^2)]."""
        raw = self.mean + self.std * torch.randn_like(self.std)
        jacobian = 2.0 * (math.log(2.0) - raw - F.softplus(-2.0 * raw))
        gauss = 0.5 + _LOG_SQRT_2PI + self.std.log()
        return (gauss + jacobian).sum(-1)


class OneHotCategorical:
    """Categorical over ``K`` actions, mixed with ``unimix`` uniform; actions are one-hot."""

    def __init__(self, logits: Tensor, unimix: float = 0.01):
        probs = logits.float().softmax(-1)
        k = probs.shape[-1]
        self.probs = (1 - unimix) * probs + unimix / k
        self.logp = self.probs.log()

    def sample(self) -> tuple[Tensor, Tensor]:
        index = torch.multinomial(self.probs.reshape(-1, self.probs.shape[-1]), 1).view(self.probs.shape[:-1])
        return F.one_hot(index, self.probs.shape[-1]).float(), index

    def mode(self) -> Tensor:
        return F.one_hot(self.probs.argmax(-1), self.probs.shape[-1]).float()

    def log_prob(self, raw: Tensor) -> Tensor:
        return self.logp.gather(-1, raw.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> Tensor:
        return -(self.probs * self.logp).sum(-1)
