"""Data-parallel learning: the collectives the learner needs, on torch.distributed's default group.

Ray-free, like ``Learner``. N learner processes (``ray.learners: N``; ``runtime/learner_group``
starts them) each sample their own batch; after every backward pass ``mean_gradients`` replaces
each rank's gradients with their mean over the ranks, so every optimiser step, gradient clip and
skip decision is the same on every rank and the parameters stay identical. Statistics the
learner keeps from its data are combined the same way:

- the return normaliser's 5-95 percentiles are taken over all ranks' imagined returns
  (``gather_cat``), so they equal those of one learner on the concatenated batch;
- a decoder's target variance is the variance over all ranks' frames (``mean_`` of the first two
  moments; ranks hold equal batches);
- InfoNCE (``objectives.contrastive.info_nce``: ReCoRe, CoRAL) scores each rank's queries against
  the keys of all ranks (``gather_cat``), the candidates of one learner on the concatenated batch.

Everything here is the identity when no process group is initialised (one learner), so the
single-process code path is unchanged. What does not decompose: CoRe's two-sided InfoNCE
(``info_nce_two_sided``) contrasts within each rank's batch, so with N ranks it trains the mean of
N losses over B sequences each, not one over N*B.
"""

from __future__ import annotations

import datetime
import socket

import torch
import torch.distributed as dist
from torch import Tensor

SYNC_TIMEOUT_S = 600.0
"""Seconds a collective waits for a missing peer before failing (a dead peer's closed socket fails
it at once; this bounds a peer that hangs)."""


def world_size() -> int:
    """Ranks in the default group (1 when none is initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 when no group is initialised)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def free_port(host: str = "") -> int:
    """A TCP port free on this machine now (the rendezvous port of rank 0)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def init(rank_: int, world: int, host: str, port: int, *, device: torch.device,
         timeout_s: float = SYNC_TIMEOUT_S) -> str:
    """Join the group: rank 0 listens on ``host:port``; returns the backend (NCCL for CUDA
    learners, gloo on CPU)."""
    if world < 1 or not 0 <= rank_ < world:
        raise ValueError(f"rank {rank_} of world {world} out of range")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://{host}:{port}", rank=rank_, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout_s))
    return backend


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def mean_(tensors: list[Tensor]) -> None:
    """Replace each tensor by its mean over the ranks, in place (one collective for all)."""
    if world_size() == 1 or not tensors:
        return
    flat = torch.cat([t.detach().float().reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset:offset + n].view_as(t))
        offset += n


def mean_gradients(params: list[Tensor], flags: Tensor) -> Tensor:
    """Average the gradients of ``params`` over the ranks (a missing gradient counts as zeros and
    stays missing), together with ``flags`` (e.g. ``1.0`` where a rank's loss was not finite);
    returns the averaged ``flags``. One all-reduce of one flat buffer per call."""
    if world_size() == 1:
        return flags
    grads = [p.grad for p in params]
    parts = [g.reshape(-1) if g is not None else torch.zeros(p.numel(), device=p.device, dtype=p.dtype)
             for p, g in zip(params, grads)]
    flat = torch.cat([*parts, flags.reshape(-1).to(parts[0].dtype if parts else torch.float32)])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p, g in zip(params, grads):
        n = p.numel()
        if g is not None:
            g.copy_(flat[offset:offset + n].view_as(g))
        offset += n
    return flat[offset:].view_as(flags)


def gather_cat(t: Tensor) -> Tensor:
    """The rows of ``t`` from every rank, concatenated in rank order (equal shapes on all ranks).
    Differentiable when ``t`` requires grad: each rank's rows then receive the gradients that
    every rank's loss sends them (summed), which with ``mean_gradients`` is the gradient of the
    mean loss over ranks."""
    if world_size() == 1:
        return t
    if t.requires_grad:
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(t.contiguous()))
    parts = [torch.empty_like(t) for _ in range(world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def broadcast_(tensors: list[Tensor], src: int = 0) -> None:
    """Overwrite each tensor with rank ``src``'s values, in place."""
    if world_size() == 1:
        return
    for t in tensors:
        dist.broadcast(t.data if isinstance(t, torch.nn.Parameter) else t, src)


def all_true(value: bool, device: torch.device) -> bool:
    """Whether ``value`` holds on every rank (a MIN all-reduce; the lock-step decisions of the
    train loop)."""
    if world_size() == 1:
        return value
    flag = torch.tensor([1.0 if value else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())
