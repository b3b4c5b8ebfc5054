"""Action distributions: tanh-squashed Gaussian (continuous) and categorical with unimix (discrete).

Both keep the raw sample (``u`` before tanh, or the class index) so REINFORCE can score the
action later without inverting tanh (DreamerV3 uses REINFORCE gradients for all action spaces).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


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
