"""Spatio-temporal cube masking of image sequences (MLR, Yu et al. 2022; HRSSM, Sun et al. 2024).

A sequence ``[T, H, W]`` is tiled into cubes of ``side x side`` pixels by ``frames`` time steps,
aligned to the top-left pixel and the first row of the chunk (cubes at the right, bottom or end
are cut short when the sizes do not divide). In every block of ``frames`` time steps exactly
``round(ratio * cells)`` of the ``cells`` spatial cells are masked, chosen uniformly without
replacement and independently per sequence and per block; a masked cell stays masked for the
whole block. So every frame has the same masked fraction (exactly ``ratio`` up to rounding when
the sizes divide), and a cube is masked or kept as a whole.

The HRSSM code (github.com/bit1029public/HRSSM, after MLR) draws one mask for the whole batch;
here each sequence gets its own, which costs nothing and decorrelates the batch.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

MaskFill = Literal["zero", "gray", "mean"]
"""What masked pixels become: ``zero`` (black), ``gray`` (0.5, the official HRSSM code zeroes
images centred to [-0.5, 0.5]) or ``mean`` (the frame's own mean colour, per channel)."""

REFERENCE_SIZE = 64
"""Image side at which cube sides are given; they scale linearly with the image."""


def cube_side(side_at_64: int, image_size: int) -> int:
    """Cube side in pixels for ``image_size`` given its side on 64 px frames (at least 1)."""
    if side_at_64 < 1 or image_size < 1:
        raise ValueError(f"cube side {side_at_64} and image size {image_size} must be >= 1")
    return max(1, round(side_at_64 * image_size / REFERENCE_SIZE))


def cube_mask(batch: int, length: int, height: int, width: int, *, side: int, frames: int, ratio: float,
              device: torch.device | str | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Random cube mask, bool ``[B, T, H, W]``, True where a pixel is masked.

    Args:
        batch, length, height, width: sizes of the image sequences to mask.
        side: cube side in pixels.
        frames: cube length in time steps.
        ratio: fraction of the cells of each block to mask, in ``[0, 1)``.
        device: where the mask lives (default: the generator's device, else CPU).
        generator: random source (the global one by default), for reproducible masks.
    """
    if side < 1 or frames < 1:
        raise ValueError(f"cube side={side} and frames={frames} must be >= 1")
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio={ratio} must be in [0, 1)")
    if min(batch, length, height, width) < 1:
        raise ValueError(f"mask sizes must be >= 1, got B={batch} T={length} H={height} W={width}")
    blocks, rows, cols = math.ceil(length / frames), math.ceil(height / side), math.ceil(width / side)
    cells = rows * cols
    count = round(ratio * cells)
    draw_device = generator.device if generator is not None else (device or "cpu")
    scores = torch.rand(batch, blocks, cells, generator=generator, device=draw_device)  # [B, K, R*C]
    chosen = scores.topk(count, dim=-1).indices
    grid = torch.zeros(batch, blocks, cells, dtype=torch.bool, device=draw_device)
    grid.scatter_(-1, chosen, True)
    grid = grid.view(batch, blocks, rows, cols)
    mask = (grid.repeat_interleave(frames, 1).repeat_interleave(side, 2).repeat_interleave(side, 3))
    mask = mask[:, :length, :height, :width]  # [B, T, H, W]
    return mask.to(device) if device is not None else mask


def apply_mask(images: Tensor, mask: Tensor, fill: MaskFill = "gray") -> Tensor:
    """Replace masked pixels of ``images`` float ``[B, T, C, H, W]`` in [0, 1]; a new tensor.

    ``mask`` is bool ``[B, T, H, W]`` (True = masked), applied to every channel.
    """
    if images.dim() != 5 or mask.shape != images.shape[:2] + images.shape[3:]:
        raise ValueError(f"mask {tuple(mask.shape)} does not fit images {tuple(images.shape)} "
                         f"(want images [B, T, C, H, W] and mask [B, T, H, W])")
    if not images.is_floating_point():
        raise TypeError(f"apply_mask needs float images in [0, 1], got {images.dtype}")
    if fill == "zero":
        value: Tensor | float = 0.0
    elif fill == "gray":
        value = 0.5
    elif fill == "mean":
        value = images.mean(dim=(-2, -1), keepdim=True)  # [B, T, C, 1, 1]
    else:
        raise ValueError(f"mask fill={fill!r} must be one of 'zero', 'gray', 'mean'")
    return torch.where(mask.unsqueeze(2), value, images)
