"""Batched image augmentations for contrastive world models, drawn once per sequence.

ReCoRe (Poudel et al., 2024) trains its world model contrastively on augmented views of the
observation sequences: random shift / crop, colour jitter, grayscale, Gaussian blur and cutout.
This module applies all of them to a whole batch ``[B, T, C, H, W]`` (values in ``[0, 1]``) at once:

- every random parameter is drawn once per *sequence* (per ``b``) and reused at every time step,
  so a sequence keeps the same crop, colours, blur and cutout box over time;
- all draws of one augmentation are one ``torch.rand(B, NUM_DRAWS)`` call on the given
  ``torch.Generator`` (the global CPU generator by default), so a seed reproduces the result; each
  op reads fixed columns, so switching one op off does not change what the others draw, and
  ``random_shift(x, 4, g)`` shifts exactly as ``Augment()(x, g)`` does for the same seed;
- nothing loops over ``B`` or ``T`` in Python. Colour, clamp, blur and cutout work in place on one
  working tensor, so a float32 batch allocates one full-size tensor (two when ``hue > 0``).

Pipeline (fixed order; torchvision's ``ColorJitter`` shuffles its four ops on every call instead):

1. shift: replicate-pad by ``shift`` pixels and crop ``H x W`` at a random offset (DrQ / RAD),
   done as one gather with clamped indices instead of materialising the padded images;
2. colour: brightness, contrast (around each frame's mean luma), saturation and random grayscale
   compose exactly into ``y = a*x + b*luma(x) + c*mean_luma(frame)`` on every channel, one pass;
   torchvision's formulas are used, but without its clamps between the ops;
3. hue (only when ``hue > 0``): "hue-lite", a rotation of RGB about the gray axis by
   ``2*pi*h`` turns. It is linear and keeps grays gray, but is not torchvision's HSV hue shift;
   then everything is clamped to ``[0, 1]`` (blur and cutout keep values inside);
4. Gaussian blur with probability ``blur_p``: reflect borders, separable banded matrices applied by
   batched matmul to the chosen sequences only (one boolean read of the parameters);
5. cutout with probability ``cutout_p``: one rectangle whose sides are uniform fractions of the
   image sides, filled with a random colour per sequence (RAD ``cutout_color``) or zeros.

Work happens in float32 (float64 stays float64); the result has the input's shape, dtype and
device. uint8 images (0..255, e.g. straight from replay) are accepted too: the shift gathers the
bytes and the result is float32 in [0, 1], the same values as augmenting ``x / 255``. Parameters
live on the generator's device and are moved to the images' device to apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as torchvision's rgb_to_grayscale

# Columns of the per-sequence uniform draw ``u[B, NUM_DRAWS]`` each op reads.
SHIFT_Y, SHIFT_X = 0, 1
BRIGHTNESS, CONTRAST, SATURATION, HUE, GRAYSCALE = 2, 3, 4, 5, 6
BLUR_APPLY, BLUR_SIGMA = 7, 8
CUT_APPLY, CUT_HEIGHT, CUT_WIDTH, CUT_TOP, CUT_LEFT = 9, 10, 11, 12, 13
CUT_COLOUR = slice(14, 17)
NUM_DRAWS = 17


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths and probabilities of the augmentations; every draw is per sequence."""

    shift: int = 4
    """Replicate-pad-and-random-crop pixels per side; DrQ (Kostrikov et al., 2021) pads 4 (RAD/CURL: 100->84)."""
    brightness: float = 0.4
    """Brightness factor ~ U[max(0, 1-s), 1+s]; 0.4 as MoCo v2's ColorJitter (SimCLR strength 0.5)."""
    contrast: float = 0.4
    """Contrast factor ~ U[max(0, 1-s), 1+s] about each frame's mean luma; 0.4 as MoCo v2 / SimCLR."""
    saturation: float = 0.4
    """Saturation factor ~ U[max(0, 1-s), 1+s] (blend with luma); 0.4 as MoCo v2 / SimCLR."""
    hue: float = 0.0
    """Hue-lite rotation ~ U[-h, h] turns about the gray axis, h <= 0.5; off (SimCLR uses 0.2 x strength)."""
    grayscale_p: float = 0.2
    """Probability that a sequence turns grayscale (BT.601 luma); 0.2 as SimCLR / MoCo v2."""
    blur_p: float = 0.2
    """Probability that a sequence is Gaussian-blurred; 0.2 here, SimCLR / MoCo v2 use 0.5 at 224 px."""
    blur_sigma_min: float = 0.1
    """Smallest blur std in pixels; SimCLR (Chen et al., 2020, appendix A) draws sigma in [0.1, 2.0]."""
    blur_sigma_max: float = 2.0
    """Largest blur std in pixels (kernel radius ceil(3 sigma)); SimCLR appendix A."""
    cutout_p: float = 0.5
    """Probability of one cutout rectangle per sequence; cutout is one of RAD's (Laskin et al., 2020) ops."""
    cutout_size_min: float = 0.1
    """Smallest cutout side as a fraction of the image side; RAD cuts 10-30 px of 84 (0.12-0.36)."""
    cutout_size_max: float = 0.3
    """Largest cutout side as a fraction of the image side; RAD cuts 10-30 px of 84 (0.12-0.36)."""
    cutout_random_colour: bool = True
    """Fill cutouts with a random colour per sequence (RAD's cutout_color) instead of zeros."""

    def __post_init__(self) -> None:
        _check_range("AugmentConfig.shift", self.shift, 0, None, integer=True)
        for name in ("brightness", "contrast", "saturation"):
            _check_range(f"AugmentConfig.{name}", getattr(self, name), 0.0, None)
        _check_range("AugmentConfig.hue", self.hue, 0.0, 0.5)
        for name in ("grayscale_p", "blur_p", "cutout_p"):
            _check_range(f"AugmentConfig.{name}", getattr(self, name), 0.0, 1.0)
        _check_range("AugmentConfig.blur_sigma_min", self.blur_sigma_min, 0.0, None, open_low=True)
        _check_range("AugmentConfig.blur_sigma_max", self.blur_sigma_max, self.blur_sigma_min, None)
        _check_range("AugmentConfig.cutout_size_min", self.cutout_size_min, 0.0, 1.0, open_low=True)
        _check_range("AugmentConfig.cutout_size_max", self.cutout_size_max, self.cutout_size_min, 1.0)
        if not isinstance(self.cutout_random_colour, bool):
            raise ValueError("AugmentConfig.cutout_random_colour must be a bool, "
                             f"got {self.cutout_random_colour!r}")


ALL_OFF: dict[str, object] = dict(shift=0, brightness=0.0, contrast=0.0, saturation=0.0, grayscale_p=0.0,
                                  blur_p=0.0, cutout_p=0.0)
"""``AugmentConfig`` fields that switch every op off; the single-op functions turn one back on."""


@dataclass(frozen=True)
class AugmentParams:
    """Per-sequence random parameters of one augmentation of a batch; ``None`` = op off."""

    size: tuple[int, int, int]
    """(B, H, W) the parameters were drawn for."""
    shift: Tensor | None
    """[B, 2] int64 (dy, dx) in [-pad, pad]: output pixel (i, j) reads input (i + dy, j + dx), clamped."""
    colour: Tensor | None
    """[B, 3] weights of the pixel, of its luma and of the frame's mean luma, added on every channel."""
    hue: Tensor | None
    """[B] rotation about the gray axis in radians."""
    blur_sigma: Tensor | None
    """[B] Gaussian std in pixels; 0 = not blurred."""
    cutout_box: Tensor | None
    """[B, 4] int64 (top, left, height, width); height 0 = no cutout."""
    cutout_fill: Tensor | None
    """[B, 3] fill colour in [0, 1]."""


def sample_params(config: AugmentConfig, *, batch: int, height: int, width: int,
                  generator: torch.Generator | None = None) -> AugmentParams:
    """Draw the parameters of one augmentation of ``batch`` sequences of ``height x width`` frames."""
    c = config
    u = _draw(batch, generator)  # [B, NUM_DRAWS]
    colour_on = c.brightness > 0 or c.contrast > 0 or c.saturation > 0 or c.grayscale_p > 0
    return AugmentParams(
        size=(batch, height, width),
        shift=_shift_offsets(u, c.shift) if c.shift > 0 else None,
        colour=_colour_weights(u, c) if colour_on else None,
        hue=(2.0 * u[:, HUE] - 1.0) * (c.hue * 2.0 * math.pi) if c.hue > 0 else None,
        blur_sigma=_blur_sigmas(u, c) if c.blur_p > 0 else None,
        cutout_box=_cutout_boxes(u, c, height, width) if c.cutout_p > 0 else None,
        cutout_fill=_cutout_fill(u, c) if c.cutout_p > 0 else None,
    )


def apply_params(x: Tensor, params: AugmentParams) -> Tensor:
    """Augment ``x`` [B, T, C, H, W] in [0, 1] with ``params``; a new tensor of x's dtype and device.

    uint8 images (0..255) are shifted as bytes and come back as float32 in [0, 1].
    """
    needs_rgb = params.colour is not None or params.hue is not None or params.cutout_fill is not None
    _check_images(x, rgb=needs_rgb)
    size = (x.shape[0], x.shape[3], x.shape[4])
    if size != params.size:
        raise ValueError(f"params were drawn for (B, H, W)={params.size}, images have {size} "
                         f"(shape {tuple(x.shape)})")
    if x.dtype == torch.uint8:  # shift the bytes (4x less memory traffic), then scale to [0, 1]
        moved = _translate(x, params.shift) if params.shift is not None else x
        work = moved.float().mul_(1.0 / 255.0)  # float32, owned (2x faster than mul's type promotion)
    elif params.shift is not None:
        work = _translate(x, params.shift).to(torch.promote_types(x.dtype, torch.float32))  # owned
    else:
        work = x.to(torch.promote_types(x.dtype, torch.float32), copy=True)
    if params.colour is not None:
        _mix_colour_(work, params.colour)
    if params.hue is not None:
        work = _rotate_hue(work, params.hue)
    if params.colour is not None or params.hue is not None:
        work.clamp_(0.0, 1.0)
    if params.blur_sigma is not None:
        _blur_(work, params.blur_sigma)
    if params.cutout_box is not None and params.cutout_fill is not None:
        _fill_boxes_(work, params.cutout_box, params.cutout_fill)
    return work if x.dtype == torch.uint8 else work.to(x.dtype)


class Augment:
    """``Augment(config)(x, generator)``: one random augmentation of a [B, T, 3, H, W] batch."""

    def __init__(self, config: AugmentConfig | None = None) -> None:
        self.config = config if config is not None else AugmentConfig()

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        _check_images(x, rgb=False)
        params = sample_params(self.config, batch=x.shape[0], height=x.shape[3], width=x.shape[4],
                               generator=generator)
        return apply_params(x, params)

    def __repr__(self) -> str:
        return f"Augment({self.config!r})"


def augment_pair(x: Tensor, config: AugmentConfig | None = None,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Two independent augmentations (query view, key view) of the same batch ``x``."""
    augment = Augment(config)
    return augment(x, generator), augment(x, generator)


# ---------------------------------------------------------------------------------------------
# Single ops: the same code path as ``Augment`` with every other op off.


def random_shift(x: Tensor, pad: int = 4, generator: torch.Generator | None = None) -> Tensor:
    """Replicate-pad by ``pad`` and crop back at a random offset per sequence (DrQ / RAD)."""
    _check_range("pad", pad, 0, None, integer=True)
    return _only(x, generator, shift=pad)


def colour_jitter(x: Tensor, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4,
                  hue: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
    """Random brightness, contrast, saturation (and hue-lite) per sequence; strengths 0 = identity."""
    return _only(x, generator, brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)


def random_grayscale(x: Tensor, p: float = 0.2, generator: torch.Generator | None = None) -> Tensor:
    """Turn each sequence to BT.601 luma on all three channels with probability ``p``."""
    return _only(x, generator, grayscale_p=p)


def gaussian_blur(x: Tensor, sigma_min: float = 0.1, sigma_max: float = 2.0, p: float = 1.0,
                  generator: torch.Generator | None = None) -> Tensor:
    """Blur each sequence with probability ``p``, std ~ U[sigma_min, sigma_max] pixels, reflect borders."""
    return _only(x, generator, blur_p=p, blur_sigma_min=sigma_min, blur_sigma_max=sigma_max)


def cutout(x: Tensor, p: float = 0.5, size_min: float = 0.1, size_max: float = 0.3,
           random_colour: bool = True, generator: torch.Generator | None = None) -> Tensor:
    """With probability ``p``, fill one rectangle per sequence, sides ``size_min..size_max`` of the image's."""
    return _only(x, generator, cutout_p=p, cutout_size_min=size_min, cutout_size_max=size_max,
                 cutout_random_colour=random_colour)


def _only(x: Tensor, generator: torch.Generator | None, **fields: object) -> Tensor:
    return Augment(AugmentConfig(**{**ALL_OFF, **fields}))(x, generator)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Drawing parameters (on the generator's device; CPU by default).


def _draw(batch: int, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(batch, NUM_DRAWS, generator=generator, device=device)  # [B, NUM_DRAWS]


def _shift_offsets(u: Tensor, pad: int) -> Tensor:  # -> [B, 2] int64 in [-pad, pad]
    steps = (u[:, [SHIFT_Y, SHIFT_X]] * (2 * pad + 1)).long().clamp_(max=2 * pad)
    return steps - pad


def _factor(u: Tensor, strength: float) -> Tensor:  # [B] ~ U[max(0, 1 - s), 1 + s]
    low = max(0.0, 1.0 - strength)
    return low + u * (1.0 + strength - low)


def _colour_weights(u: Tensor, config: AugmentConfig) -> Tensor:  # -> [B, 3]
    """Weights (pixel, luma, mean luma) of brightness b, contrast c, saturation s, then grayscale.

    brightness then contrast give ``c*b*x + (1-c)*b*m`` (m = frame mean luma of x); saturation
    blends with luma, ``s*y + (1-s)*luma(y)``, which leaves the gray offset alone (luma weights sum
    to 1); grayscale replaces the pixel by its luma, i.e. ``s = 0``.
    """
    b = _factor(u[:, BRIGHTNESS], config.brightness)
    c = _factor(u[:, CONTRAST], config.contrast)
    s = _factor(u[:, SATURATION], config.saturation)
    keep = torch.where(u[:, GRAYSCALE] < config.grayscale_p, torch.zeros_like(s), s)
    return torch.stack([keep * c * b, (1.0 - keep) * c * b, (1.0 - c) * b], dim=1)


def _blur_sigmas(u: Tensor, config: AugmentConfig) -> Tensor:  # -> [B], 0 = no blur
    sigma = config.blur_sigma_min + u[:, BLUR_SIGMA] * (config.blur_sigma_max - config.blur_sigma_min)
    return torch.where(u[:, BLUR_APPLY] < config.blur_p, sigma, torch.zeros_like(sigma))


def _cutout_boxes(u: Tensor, config: AugmentConfig, height: int, width: int) -> Tensor:  # -> [B, 4]
    span = config.cutout_size_max - config.cutout_size_min
    box_h = ((config.cutout_size_min + u[:, CUT_HEIGHT] * span) * height).round().long().clamp_(1, height)
    box_w = ((config.cutout_size_min + u[:, CUT_WIDTH] * span) * width).round().long().clamp_(1, width)
    top = torch.minimum((u[:, CUT_TOP] * (height - box_h + 1)).long(), height - box_h)
    left = torch.minimum((u[:, CUT_LEFT] * (width - box_w + 1)).long(), width - box_w)
    applied = (u[:, CUT_APPLY] < config.cutout_p).long()
    return torch.stack([top, left, box_h * applied, box_w * applied], dim=1)


def _cutout_fill(u: Tensor, config: AugmentConfig) -> Tensor:  # -> [B, 3] in [0, 1]
    colour = u[:, CUT_COLOUR]
    return colour if config.cutout_random_colour else torch.zeros_like(colour)


def _hue_matrix(angle: Tensor) -> Tensor:  # [B] -> [B, 3, 3]
    """Rotation of RGB about the gray axis (1, 1, 1); +1/3 turn maps red to green, like HSV hue."""
    cos, sin = angle.cos(), angle.sin()
    a = cos + (1.0 - cos) / 3.0
    b = (1.0 - cos) / 3.0 - sin / math.sqrt(3.0)
    d = (1.0 - cos) / 3.0 + sin / math.sqrt(3.0)
    return torch.stack([a, b, d, d, a, b, b, d, a], dim=1).view(-1, 3, 3)


def _gaussian_matrix(sigma: Tensor, size: int) -> Tensor:  # [n] -> [n, size, size]
    """Row i holds the normalised Gaussian taps around i, reflected at the borders (no edge repeat)."""
    radius = min(size - 1, math.ceil(3.0 * float(sigma.max())))
    offsets = torch.arange(-radius, radius + 1, device=sigma.device)  # [K]
    weights = torch.exp(-0.5 * (offsets.to(sigma.dtype) / sigma[:, None]) ** 2)  # [n, K]
    weights = weights / weights.sum(dim=1, keepdim=True)
    taps = (torch.arange(size, device=sigma.device)[:, None] + offsets).abs()  # [size, K]
    taps = torch.where(taps > size - 1, 2 * (size - 1) - taps, taps)
    n, k = weights.shape
    matrix = torch.zeros(n, size, size, dtype=sigma.dtype, device=sigma.device)
    return matrix.scatter_add_(2, taps.expand(n, size, k), weights[:, None, :].expand(n, size, k))


# ---------------------------------------------------------------------------------------------
# Applying parameters (vectorised over B and T).


def _translate(x: Tensor, offsets: Tensor) -> Tensor:
    """Integer translation with replicate borders, one gather; a new tensor of x's dtype."""
    b, t, c, h, w = x.shape
    offsets = offsets.to(x.device)  # [B, 2]
    rows = (torch.arange(h, device=x.device) + offsets[:, :1]).clamp_(0, h - 1)  # [B, H]
    cols = (torch.arange(w, device=x.device) + offsets[:, 1:]).clamp_(0, w - 1)  # [B, W]
    index = (rows[:, :, None] * w + cols[:, None, :]).view(b, 1, h * w).expand(b, t * c, h * w)
    return torch.gather(x.reshape(b, t * c, h * w), 2, index).view(b, t, c, h, w)


def _mix_colour_(x: Tensor, weights: Tensor) -> None:
    """In place: ``x = w0*x + w1*luma(x) + w2*mean_luma(frame)`` on every channel."""
    b, t = x.shape[:2]
    weights = weights.to(x.device, x.dtype).view(b, 3, 1, 1, 1)
    flat = x.view(b, t, 3, x.shape[3] * x.shape[4])  # [B, T, 3, H*W]
    luma = flat[:, :, 0:1] * LUMA[0]  # [B, T, 1, H*W]
    luma.add_(flat[:, :, 1:2], alpha=LUMA[1]).add_(flat[:, :, 2:3], alpha=LUMA[2])
    mean = luma.mean(dim=-1, keepdim=True)  # [B, T, 1, 1]
    luma.mul_(weights[:, 1]).add_(mean * weights[:, 2])
    torch.addcmul(luma, flat, weights[:, 0], out=flat)


def _rotate_hue(x: Tensor, angle: Tensor) -> Tensor:
    """Hue-lite: every pixel times its sequence's gray-axis rotation; a new tensor."""
    b, t, c, h, w = x.shape
    matrix = _hue_matrix(angle).to(x.device, x.dtype).repeat_interleave(t, dim=0)  # [B*T, 3, 3]
    return torch.bmm(matrix, x.view(b * t, c, h * w)).view(b, t, c, h, w)


def _blur_(x: Tensor, sigma: Tensor) -> None:
    """In place: separable Gaussian blur of the sequences with ``sigma > 0``."""
    chosen = torch.nonzero(sigma > 0).flatten()  # on the parameters' device
    if chosen.numel() == 0:
        return
    _, t, c, h, w = x.shape
    n = chosen.numel()
    rows_k = _gaussian_matrix(sigma[chosen], h).to(x.device, x.dtype)  # [n, H, H]
    cols_k = rows_k if w == h else _gaussian_matrix(sigma[chosen], w).to(x.device, x.dtype)  # [n, W, W]
    index = chosen.to(x.device)
    picked = x.index_select(0, index)  # [n, T, C, H, W]
    blurred = torch.bmm(picked.view(n, t * c * h, w), cols_k.transpose(1, 2))  # [n, T*C*H, W]: along W
    by_row = blurred.view(n, t * c, h, w).transpose(1, 2).reshape(n, h, t * c * w)  # [n, H, T*C*W]
    blurred = torch.bmm(rows_k, by_row).view(n, h, t, c, w)  # along H (one GEMM per sequence)
    x.index_copy_(0, index, blurred.permute(0, 2, 3, 1, 4))  # [n, T, C, H, W]


def _fill_boxes_(x: Tensor, boxes: Tensor, fill: Tensor) -> None:
    """In place: set each sequence's box (every frame, every channel) to its fill colour."""
    b, _, c, h, w = x.shape
    top, left, box_h, box_w = boxes.to(x.device).unbind(dim=1)  # [B] each
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows >= top[:, None]) & (rows < (top + box_h)[:, None])  # [B, H]
    in_cols = (cols >= left[:, None]) & (cols < (left + box_w)[:, None])  # [B, W]
    mask = (in_rows[:, :, None] & in_cols[:, None, :]).to(x.dtype).view(b, 1, 1, h, w)
    x.lerp_(fill.to(x.device, x.dtype).view(b, 1, c, 1, 1), mask)  # weight 1 gives the fill exactly


# ---------------------------------------------------------------------------------------------
# Validation.


def _check_images(x: Tensor, *, rgb: bool) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a torch.Tensor [B, T, C, H, W], got {type(x).__name__}")
    if x.dim() != 5:
        raise ValueError(f"expected images [B, T, C, H, W], got shape {tuple(x.shape)}")
    if not (x.is_floating_point() or x.dtype == torch.uint8):
        raise TypeError(f"expected floating-point images with values in [0, 1] or uint8 images, got dtype {x.dtype}")
    if rgb and x.shape[2] != 3:
        raise ValueError(f"colour ops and cutout need C=3 (RGB), got shape {tuple(x.shape)}")


def _check_range(name: str, value: object, low: float, high: float | None, *,
                 integer: bool = False, open_low: bool = False) -> None:
    kind = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{name} must be {'an int' if integer else 'a number'}, got {value!r}")
    number = float(value)
    above = number > low if open_low else number >= low
    if not (above and (high is None or number <= high)):  # also rejects NaN
        bounds = f"{'(' if open_low else '['}{low}, {'inf)' if high is None else f'{high}]'}"
        raise ValueError(f"{name} must be in {bounds}, got {value!r}")
