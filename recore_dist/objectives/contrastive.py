"""InfoNCE (van den Oord et al. 2018) with a learned inverse temperature (CoRe eq. 3)."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recore_dist import parallel


def near_in_time(batch: int, length: int, window: int, device: torch.device | str = "cpu") -> Tensor | None:
    """``[N, N]`` bool over the ``N = batch * length`` flattened rows of ``[B, T]``: True where row
    ``m`` is in the same sequence as row ``n`` and ``0 < |t_n - t_m| < window`` steps away.

    Such neighbours are left out of each other's candidate sets: consecutive frames of a
    sequence differ by less than the augmentations do (a 4 px shift, colour jitter), so asking a
    query to tell frame ``t`` from ``t + 1`` is noise, not a task (measured on ``main``: top-1
    0.003-0.010 of 512 candidates). ``window <= 1`` excludes nothing (returns ``None``).
    """
    if window <= 1:
        return None
    seq = torch.arange(batch, device=device).repeat_interleave(length)  # [N]
    time = torch.arange(length, device=device).repeat(batch)  # [N]
    gap = (time[:, None] - time[None, :]).abs()
    return (seq[:, None] == seq[None, :]) & (gap > 0) & (gap < window)


def candidate_count(exclude: Tensor | None, n: int) -> float:
    """Mean number of candidates per query (positive included) given an ``exclude`` mask."""
    return float(n) if exclude is None else float(n - exclude.float().sum(-1).mean())


def info_nce(query: Tensor, key: Tensor, inverse_temperature: Tensor | float, *,
             exclude: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """InfoNCE over ``N`` pairs: row ``i`` of ``key`` is the positive for row ``i`` of ``query``,
    every other row not masked by ``exclude`` a negative.

    ``loss = mean_i [ -lambda <q_i, k_i> + log sum_{j in C_i} exp(lambda <q_i, k_j>) ]`` with
    both sides L2-normalised, ``lambda`` the inverse temperature and ``C_i`` the candidate set
    of query ``i``: all ``N`` keys except those with ``exclude[i, j]`` (the diagonal is never
    excluded). Chance accuracy is ``1 / |C_i|`` (``candidate_count``). With data-parallel ranks
    (``recore_dist.parallel``) the keys of all ranks are candidates, as for one learner on the
    concatenated batch (gradients reach other ranks' keys through the gather).

    Args:
        query: ``[N, D]`` (gradients flow).
        key: ``[N, D]`` (detach it for a momentum-encoder key).
        inverse_temperature: scalar ``lambda``.
        exclude: optional ``[N, N]`` bool, True for keys that are not candidates of a query
            (e.g. ``near_in_time``).

    Returns:
        ``(loss, accuracy)``: the mean loss and the fraction of rows whose positive scores highest.
    """
    if query.shape != key.shape or query.dim() != 2:
        raise ValueError(f"info_nce needs matching [N, D] query and key, got {tuple(query.shape)} "
                         f"and {tuple(key.shape)}")
    if exclude is not None and exclude.shape != (query.shape[0], key.shape[0]):
        raise ValueError(f"exclude mask {tuple(exclude.shape)} must be {(query.shape[0], key.shape[0])}")
    q = F.normalize(query.float(), dim=-1)
    k = F.normalize(key.float(), dim=-1)
    labels = torch.arange(q.shape[0], device=q.device)
    world = parallel.world_size()
    if world > 1:  # data-parallel ranks: every rank's keys are candidates (one learner's 2B batch)
        n, offset = k.shape[0], parallel.rank() * k.shape[0]
        k = parallel.gather_cat(k)  # [W*N, D]
        labels = labels + offset
        if exclude is not None:
            full = torch.zeros(n, world * n, dtype=torch.bool, device=exclude.device)
            full[:, offset:offset + n] = exclude
            exclude = full
    logits = inverse_temperature * (q @ k.T)  # [N, N] (or [N, W*N])
    if exclude is not None:
        logits = logits.masked_fill(exclude, float("-inf"))
    loss = F.cross_entropy(logits, labels)
    accuracy = (logits.argmax(-1) == labels).float().mean()
    return loss, accuracy.detach()


class InverseTemperature(nn.Module):
    """A learned inverse temperature ``lambda``.

    ``kind="exp"``: ``lambda = exp(w)``, ``init`` is ``lambda``'s initial value, clamped to
    ``[minimum, maximum]`` (CURL-style, ReCoRe and CoRAL here). ``kind="softplus"``: ``lambda =
    softplus(w)``, ``init`` is the initial raw ``w`` and there is no clamp (apple/ml-core's CoRe:
    ``w`` starts at 1.0).
    """

    def __init__(self, init: float = 10.0, *, minimum: float = 1.0, maximum: float = 100.0,
                 kind: Literal["exp", "softplus"] = "exp"):
        super().__init__()
        if kind not in ("exp", "softplus"):
            raise ValueError(f"inverse temperature kind={kind!r} must be exp or softplus")
        if kind == "exp" and not minimum <= init <= maximum:
            raise ValueError(f"inverse temperature init {init} outside [{minimum}, {maximum}]")
        self.kind = kind
        self.log_value = nn.Parameter(torch.tensor(math.log(init) if kind == "exp" else float(init)))
        self.minimum, self.maximum = minimum, maximum

    def forward(self) -> Tensor:
        if self.kind == "softplus":
            return F.softplus(self.log_value)
        return self.log_value.exp().clamp(self.minimum, self.maximum)


def info_nce_two_sided(x: Tensor, y: Tensor, inverse_temperature: Tensor | float, *,
                       negatives: Literal["batch", "sequence"] = "batch", valid: Tensor | None = None,
                       normalize: bool = True, exclude: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """CoRe's two-sided InfoNCE (Srivastava et al. 2021, eq. 1) over ``[B, T]`` pairs.

    Pair ``(x_{i,t}, y_{i,t})`` is positive. With ``s(n, m) = lambda <x_n, y_m>`` over the ``N = B*T``
    flattened pairs, the ``x -> y`` term is ``-s(n, n) + log sum_m exp s(n, m)`` (an observation
    picks its prediction among the predictions) and the ``y -> x`` term is
    ``-s(n, n) + log sum_m exp s(m, n)`` (a prediction picks its observation); the loss is the mean
    of both over the anchors. ``negatives="batch"`` lets every other pair of the batch compete (eq. 1);
    ``"sequence"`` only the ``T`` pairs of the anchor's own sequence (CoRe fig. 3, bottom).

    Args:
        x: ``[B, T, D]`` observation encodings.
        y: ``[B, T, D]`` predicted encodings.
        inverse_temperature: scalar ``lambda``.
        negatives: which pairs compete with the positive.
        valid: ``[B, T]`` bool; only these rows are anchors (every row still serves as a negative).
        normalize: L2-normalise ``x`` and ``y`` first (cosine similarity); eq. 1 uses raw dot products.
        exclude: optional ``[N, N]`` bool (symmetric), pairs that do not compete (``near_in_time``).

    Returns:
        ``(loss, accuracy)``: the mean loss and the fraction of ``x -> y`` anchors whose positive scores highest.
    """
    if x.shape != y.shape or x.dim() != 3:
        raise ValueError(f"info_nce_two_sided needs matching [B, T, D] x and y, got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    if negatives not in ("batch", "sequence"):
        raise ValueError(f"negatives={negatives!r} must be 'batch' or 'sequence'")
    batch, length = x.shape[:2]
    xf, yf = x.flatten(0, 1).float(), y.flatten(0, 1).float()  # [N, D]
    if normalize:
        xf, yf = F.normalize(xf, dim=-1), F.normalize(yf, dim=-1)
    logits = inverse_temperature * (xf @ yf.T)  # [N, N]: row n = x_n against every y_m
    if negatives == "sequence":
        seq = torch.arange(batch, device=x.device).repeat_interleave(length)  # [N]
        logits = logits.masked_fill(seq[:, None] != seq[None, :], float("-inf"))
    if exclude is not None:
        logits = logits.masked_fill(exclude, float("-inf"))
    labels = torch.arange(logits.shape[0], device=x.device)
    x_to_y = F.cross_entropy(logits, labels, reduction="none")  # [N]
    y_to_x = F.cross_entropy(logits.T, labels, reduction="none")  # [N]
    weight = torch.ones_like(x_to_y) if valid is None else valid.flatten().to(x_to_y.dtype)
    count = weight.sum().clamp(min=1.0)
    loss = 0.5 * ((x_to_y + y_to_x) * weight).sum() / count
    accuracy = ((logits.argmax(-1) == labels).to(weight.dtype) * weight).sum() / count
    return loss, accuracy.detach()
