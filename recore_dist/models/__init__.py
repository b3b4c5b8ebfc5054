"""Models of the world-model learner: image augmentations (more to come)."""

from __future__ import annotations

from recore_dist.models.augment import (
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

__all__ = [
    "Augment",
    "AugmentConfig",
    "AugmentParams",
    "apply_params",
    "augment_pair",
    "colour_jitter",
    "cutout",
    "gaussian_blur",
    "random_grayscale",
    "random_shift",
    "sample_params",
]
