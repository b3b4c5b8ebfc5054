"""Batched augmentations: shapes, per-sequence parameters, each op against a reference, validation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from recore_dist.config import ConfigError, from_dict
from recore_dist.models import (
    Augment,
    AugmentConfig,
    AugmentParams,
    apply_params,
    augment_pair,
    colour_jitter,
    cutout,
    gaussian_blur,
    random_grayscale,
    random_shift,
    sample_params,
)
from recore_dist.models import augment as augment_module
from recore_dist.models.augment import ALL_OFF, LUMA, NUM_DRAWS

STRONG = AugmentConfig(shift=3, hue=0.1, grayscale_p=0.5, blur_p=1.0, cutout_p=1.0)
"""Every op on, blur and cutout always."""


def images(b: int = 6, t: int = 4, h: int = 16, w: int = 16, *, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, t, 3, h, w, generator=torch.Generator().manual_seed(seed))  # [B, T, C, H, W]


def still(b: int = 6, t: int = 4, h: int = 16, w: int = 16, *, seed: int = 0) -> torch.Tensor:
    """Sequences whose frames are all identical (but differ between sequences)."""
    return images(b, 1, h, w, seed=seed).expand(b, t, 3, h, w).clone()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_near(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    """Elementwise |actual - expected| <= atol (torch.testing.assert_close costs ~1 s to import)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    error = (actual.double() - expected.double()).abs().max().item() if actual.numel() else 0.0
    assert error <= atol, f"max error {error} > {atol}"


def only(**fields: object) -> AugmentConfig:
    return AugmentConfig(**{**ALL_OFF, **fields})  # type: ignore[arg-type]


def replicate_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Reference padding: [B, T, C, H, W] -> [B, T, C, H + 2 pad, W + 2 pad], edges repeated."""
    b, t, c, h, w = x.shape
    return F.pad(x.reshape(b * t, c, h, w), (pad, pad, pad, pad), mode="replicate").view(
        b, t, c, h + 2 * pad, w + 2 * pad)


# --- whole pipeline ------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [AugmentConfig(), STRONG], ids=["default", "strong"])
def test_shape_dtype_range(config: AugmentConfig) -> None:
    x = images()
    out = Augment(config)(x, gen())
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not torch.equal(out, x)


def test_input_is_not_modified() -> None:
    x = images()
    before = x.clone()
    Augment(STRONG)(x, gen())
    assert torch.equal(x, before)


@pytest.mark.parametrize("config", [AugmentConfig(), STRONG], ids=["default", "strong"])
def test_same_parameters_at_every_time_step(config: AugmentConfig) -> None:
    out = Augment(config)(still(t=5), gen(3))
    for t in range(1, 5):
        assert_near(out[:, t], out[:, 0], atol=1e-6)


def test_sequences_get_different_parameters() -> None:
    x = images(1, 2).expand(8, 2, 3, 16, 16)  # eight copies of one sequence
    out = Augment(AugmentConfig())(x, gen(1))
    for i in range(8):
        for j in range(i + 1, 8):
            assert not torch.allclose(out[i], out[j]), (i, j)
    shifts = sample_params(AugmentConfig(), batch=64, height=16, width=16, generator=gen(1)).shift
    assert shifts is not None and len({tuple(s) for s in shifts.tolist()}) > 10


def test_reproducible_with_the_same_seed() -> None:
    x = images()
    assert torch.equal(Augment(STRONG)(x, gen(7)), Augment(STRONG)(x, gen(7)))
    assert not torch.equal(Augment(STRONG)(x, gen(7)), Augment(STRONG)(x, gen(8)))
    torch.manual_seed(5)
    first = Augment()(x)
    torch.manual_seed(5)
    assert torch.equal(first, Augment()(x))  # default generator follows torch.manual_seed


def test_switching_an_op_off_keeps_the_other_draws() -> None:
    full = sample_params(AugmentConfig(), batch=8, height=16, width=16, generator=gen(2))
    shift_only = sample_params(only(shift=4), batch=8, height=16, width=16, generator=gen(2))
    assert full.shift is not None and shift_only.shift is not None
    assert torch.equal(full.shift, shift_only.shift)
    assert shift_only.colour is None and shift_only.blur_sigma is None and shift_only.cutout_box is None


def test_augment_pair_gives_two_independent_views() -> None:
    x = images()
    query, key = augment_pair(x, STRONG, gen(4))
    assert query.shape == key.shape == x.shape
    assert not torch.equal(query, key)
    again = augment_pair(x, STRONG, gen(4))
    assert torch.equal(query, again[0]) and torch.equal(key, again[1])


def test_bfloat16_input() -> None:
    x = images().bfloat16()
    out = Augment(STRONG)(x, gen(6))
    assert out.dtype == torch.bfloat16 and out.shape == x.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    reference = Augment(STRONG)(x.float(), gen(6)).bfloat16()
    assert_near(out, reference, atol=1e-2)


def test_float64_stays_float64() -> None:
    x = images().double()
    assert Augment(STRONG)(x, gen()).dtype == torch.float64


def test_non_square_images_and_empty_batch() -> None:
    x = images(3, 2, 12, 20)
    assert Augment(STRONG)(x, gen()).shape == x.shape
    empty = torch.rand(0, 2, 3, 8, 8)
    assert Augment(STRONG)(empty, gen()).shape == empty.shape


def test_non_contiguous_input() -> None:
    x = images(4, 3, 16, 16)
    strided = x.transpose(3, 4)  # [B, T, C, W, H] view
    out = Augment(STRONG)(strided, gen(1))
    assert torch.equal(out, Augment(STRONG)(strided.contiguous(), gen(1)))


# --- single ops ----------------------------------------------------------------------------------


def test_random_shift_pad_zero_is_identity() -> None:
    x = images()
    assert torch.equal(random_shift(x, 0, gen()), x)


@pytest.mark.parametrize("pad", [1, 4])
def test_random_shift_is_an_integer_translation(pad: int) -> None:
    x = images(8, 3)
    out = random_shift(x, pad, gen(pad))
    padded = replicate_pad(x, pad)
    seen = set()
    for b in range(x.shape[0]):
        matches = [(dy, dx) for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)
                   if torch.equal(out[b], padded[b, ..., pad + dy:pad + dy + 16, pad + dx:pad + dx + 16])]
        assert len(matches) == 1, (b, matches)
        seen.add(matches[0])
    assert len(seen) > 1


def test_random_shift_keeps_dtype() -> None:
    x = images().bfloat16()
    out = random_shift(x, 2, gen())
    assert out.dtype == torch.bfloat16
    assert set(out.unique().tolist()) <= set(x.unique().tolist())


def test_colour_jitter_with_zero_strengths_is_identity() -> None:
    x = images()
    assert torch.equal(colour_jitter(x, 0.0, 0.0, 0.0, 0.0, generator=gen()), x)
    params = sample_params(only(), batch=6, height=16, width=16)
    identity = AugmentParams(size=params.size, shift=None, colour=torch.tensor([[1.0, 0.0, 0.0]]).expand(6, 3),
                             hue=torch.zeros(6), blur_sigma=None, cutout_box=None, cutout_fill=None)
    assert_near(apply_params(x, identity), x, atol=1e-6)


def test_colour_jitter_matches_sequential_formulas() -> None:
    """Fused weights == torchvision's brightness, contrast, saturation formulas applied in turn."""
    x = images(8, 3)
    config = only(brightness=0.5, contrast=0.6, saturation=0.7, grayscale_p=0.5)
    out = Augment(config)(x, gen(9))
    u = torch.rand(8, NUM_DRAWS, generator=gen(9))
    weights = torch.tensor(LUMA).view(1, 1, 3, 1, 1)

    def factor(column: int, strength: float) -> torch.Tensor:  # [B, 1, 1, 1, 1]
        low = max(0.0, 1.0 - strength)
        return (low + u[:, column] * (1.0 + strength - low)).view(-1, 1, 1, 1, 1)

    def luma(y: torch.Tensor) -> torch.Tensor:
        return (y * weights).sum(dim=2, keepdim=True)

    y = x * factor(augment_module.BRIGHTNESS, 0.5)
    c = factor(augment_module.CONTRAST, 0.6)
    y = c * y + (1 - c) * luma(y).mean(dim=(-2, -1), keepdim=True)
    s = factor(augment_module.SATURATION, 0.7)
    y = s * y + (1 - s) * luma(y)
    gray = (u[:, augment_module.GRAYSCALE] < 0.5).view(-1, 1, 1, 1, 1)
    y = torch.where(gray, luma(y).expand_as(y), y).clamp(0, 1)
    assert_near(out, y, atol=1e-5)


def test_hue_rotation_turns_red_to_green_and_keeps_gray() -> None:
    red = torch.zeros(2, 1, 3, 4, 4)
    red[:, :, 0] = 1.0
    red[1] = 0.5  # second sequence: mid gray
    params = AugmentParams(size=(2, 4, 4), shift=None, colour=None, hue=torch.full((2,), 2 * math.pi / 3),
                           blur_sigma=None, cutout_box=None, cutout_fill=None)
    out = apply_params(red, params)
    assert_near(out[0, :, :, 0, 0], torch.tensor([[0.0, 1.0, 0.0]]), atol=1e-6)
    assert_near(out[1], red[1], atol=1e-6)


def test_grayscale_p1_gives_equal_channels() -> None:
    x = images()
    out = random_grayscale(x, 1.0, gen())
    assert torch.equal(out[:, :, 0], out[:, :, 1]) and torch.equal(out[:, :, 1], out[:, :, 2])
    luma = (x * torch.tensor(LUMA).view(1, 1, 3, 1, 1)).sum(dim=2)
    assert_near(out[:, :, 0], luma, atol=1e-6)
    assert torch.equal(random_grayscale(x, 0.0, gen()), x)


def test_grayscale_p_half_converts_some_sequences() -> None:
    out = random_grayscale(images(32), 0.5, gen())
    gray = (out[:, :, 0] == out[:, :, 1]).flatten(1).all(dim=1)
    assert 0 < int(gray.sum()) < 32


@pytest.mark.parametrize("random_colour", [True, False])
def test_cutout_p1_fills_one_rectangle(random_colour: bool) -> None:
    x = images(8, 3, 20, 20)
    out = cutout(x, 1.0, 0.1, 0.3, random_colour=random_colour, generator=gen(2))
    changed = (out != x).flatten(1, 2).any(dim=1)  # [B, H, W]
    for b in range(x.shape[0]):
        rows = changed[b].any(dim=1).nonzero().flatten()
        cols = changed[b].any(dim=0).nonzero().flatten()
        top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        assert int(changed[b].sum()) == (bottom - top) * (right - left)  # a filled rectangle
        assert 2 <= bottom - top <= 6 and 2 <= right - left <= 6  # 0.1 .. 0.3 of 20 px
        box = out[b, :, :, top:bottom, left:right]  # [T, C, h, w]
        fill = box[0, :, 0, 0]
        assert torch.equal(box, fill.view(1, 3, 1, 1).expand_as(box))  # one colour, every frame
        if not random_colour:
            assert torch.equal(fill, torch.zeros(3))
    assert torch.equal(cutout(x, 0.0, generator=gen()), x)


def test_blur_preserves_constant_images_and_reduces_noise() -> None:
    constant = torch.full((4, 2, 3, 16, 16), 0.37)
    assert_near(gaussian_blur(constant, 0.5, 2.0, generator=gen()), constant, atol=1e-6)
    noise = images(4, 2)
    blurred = gaussian_blur(noise, 1.0, 2.0, generator=gen())
    assert (blurred.flatten(1).var(dim=1) < 0.5 * noise.flatten(1).var(dim=1)).all()
    assert_near(blurred.mean(dim=(-2, -1)), noise.mean(dim=(-2, -1)), atol=0.02)
    assert torch.equal(gaussian_blur(noise, p=0.0, generator=gen()), noise)


def test_blur_matches_reflect_padded_convolution() -> None:
    x = images(3, 2, 12, 20)
    sigma = torch.tensor([0.7, 0.0, 1.6])
    params = AugmentParams(size=(3, 12, 20), shift=None, colour=None, hue=None, blur_sigma=sigma,
                           cutout_box=None, cutout_fill=None)
    out = apply_params(x, params)
    assert torch.equal(out[1], x[1])  # sigma 0 = not blurred
    for b in (0, 2):
        radius = math.ceil(3 * float(sigma[b]))
        taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1.0) / sigma[b]) ** 2)
        taps = taps / taps.sum()
        frames = F.pad(x[b], (radius,) * 4, mode="reflect")  # [T, C, H + 2r, W + 2r]
        frames = F.conv2d(frames.flatten(0, 1)[:, None], taps.view(1, 1, 1, -1))
        frames = F.conv2d(frames, taps.view(1, 1, -1, 1)).view_as(x[b])
        assert_near(out[b], frames, atol=1e-5)


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("shift", -1), ("shift", 2.5), ("shift", True), ("brightness", -0.1), ("contrast", float("nan")),
    ("saturation", -1.0), ("hue", 0.6), ("grayscale_p", 1.5), ("blur_p", -0.1), ("cutout_p", 2.0),
    ("blur_sigma_min", 0.0), ("blur_sigma_max", 0.05), ("cutout_size_min", 0.0), ("cutout_size_max", 0.05),
    ("cutout_size_max", 1.5), ("cutout_random_colour", 1),
])
def test_config_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        AugmentConfig(**{field: value})  # type: ignore[arg-type]


def test_config_loads_through_the_project_loader() -> None:
    config = from_dict(AugmentConfig, {"shift": 2, "blur_sigma_max": 1.5, "cutout_random_colour": False})
    assert config.shift == 2 and config.blur_sigma_max == 1.5 and not config.cutout_random_colour
    with pytest.raises(ConfigError, match="shift"):
        from_dict(AugmentConfig, {"shift": -3})


def test_single_op_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="pad"):
        random_shift(images(), -1)
    with pytest.raises(ValueError, match="grayscale_p"):
        random_grayscale(images(), 1.5)
    with pytest.raises(ValueError, match="cutout_p"):
        cutout(images(), -0.5)


def test_bad_images_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"\[B, T, C, H, W\]"):
        Augment()(torch.rand(2, 3, 16, 16))
    with pytest.raises(TypeError, match="floating-point"):
        Augment()(torch.zeros(2, 2, 3, 8, 8, dtype=torch.int32))
    with pytest.raises(ValueError, match="C=3"):
        Augment()(torch.rand(2, 2, 1, 8, 8))
    assert random_shift(torch.rand(2, 2, 1, 8, 8), 2, gen()).shape == (2, 2, 1, 8, 8)  # shift alone: any C
    params = sample_params(AugmentConfig(), batch=2, height=8, width=8)
    with pytest.raises(ValueError, match="drawn for"):
        apply_params(torch.rand(3, 2, 3, 8, 8), params)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    x = images()
    out = Augment(STRONG)(x.cuda(), gen(3))
    assert out.is_cuda
    assert_near(out.cpu(), Augment(STRONG)(x, gen(3)), atol=1e-4)


@pytest.mark.parametrize("config", [AugmentConfig(), STRONG, AugmentConfig(**ALL_OFF)], ids=["default", "strong", "off"])
def test_uint8_images_match_float_images(config: AugmentConfig) -> None:
    """uint8 input (shifted as bytes) gives float32 output equal to augmenting ``x / 255``."""
    raw = torch.randint(0, 256, (5, 3, 3, 16, 16), dtype=torch.uint8, generator=gen())
    out = Augment(config)(raw, gen())
    ref = Augment(config)(raw.float() / 255.0, gen())
    assert out.dtype == torch.float32 and out.shape == raw.shape
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
