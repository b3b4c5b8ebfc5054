"""Momentum (EMA) copies of modules: MoCo / CURL key encoders, slow critics."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_copy(module: nn.Module) -> nn.Module:
    """A frozen deep copy of ``module`` to be tracked with ``ema_update``."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, rate: float) -> None:
    """``target <- (1 - rate) * target + rate * online`` over parameters (buffers copied)."""
    t_params, o_params = list(target.parameters()), list(online.parameters())
    torch._foreach_lerp_(t_params, o_params, rate)
    for tb, ob in zip(target.buffers(), online.buffers()):
        tb.copy_(ob)
