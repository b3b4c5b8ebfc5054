"""InfoNCE (van den Oord et al. 2018) with a learned inverse temperature (CoRe eq. 3)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def info_nce(query: Tensor, key: Tensor, inverse_temperature: Tensor | float) -> tuple[Tensor, Tensor]:
    """InfoNCE over ``N`` pairs: row ``i`` of ``key`` is the positive for row ``i`` of ``query``,
    every other row a negative (so negatives come from all other sequences and time steps).

    ``loss = mean_i [ -lambda <q_i, k_i> + log sum_j exp(lambda <q_i, k_j>) ]`` with both sides
    L2-normalised and ``lambda`` the inverse temperature.

    Args:
        query: ``[N, D]`` (gradients flow).
        key: ``[N, D]`` (detach it for a momentum-encoder key).
        inverse_temperature: scalar ``lambda``.

    Returns:
        ``(loss, accuracy)``: the mean loss and the fraction of rows whose positive scores highest.
    """
    if query.shape != key.shape or query.dim() != 2:
        raise ValueError(f"info_nce needs matching [N, D] query and key, got {tuple(query.shape)} "
                         f"and {tuple(key.shape)}")
    q = F.normalize(query.float(), dim=-1)
    k = F.normalize(key.float(), dim=-1)
    logits = inverse_temperature * (q @ k.T)  # [N, N]
    labels = torch.arange(q.shape[0], device=q.device)
    loss = F.cross_entropy(logits, labels)
    accuracy = (logits.argmax(-1) == labels).float().mean()
    return loss, accuracy.detach()


class InverseTemperature(nn.Module):
    """A learned ``lambda = exp(w)``, clamped to ``[min, max]`` (CoRe: learned inverse temperature)."""

    def __init__(self, init: float = 10.0, *, minimum: float = 1.0, maximum: float = 100.0):
        super().__init__()
        if not minimum <= init <= maximum:
            raise ValueError(f"inverse temperature init {init} outside [{minimum}, {maximum}]")
        self.log_value = nn.Parameter(torch.tensor(math.log(init)))
        self.minimum, self.maximum = minimum, maximum

    def forward(self) -> Tensor:
        return self.log_value.exp().clamp(self.minimum, self.maximum)
