"""``ModelConfig``: sizes of the world model and the actor-critic networks.

Defaults follow DreamerV2/V3 at roughly RLlib DreamerV3 size ``XS`` (the learner benchmark prints
both parameter counts): categorical latents 32x32 (DreamerV2, Hafner et al. 2021), a GRU of 256
units and MLPs of 256 units; the CNN is DreamerV2's 4 x [k4, s2] stack. Sizes are named presets
(``SIZES``) that a config can pick with ``model.size`` and then override field by field.
"""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass
class ModelConfig:
    """World-model and actor-critic network sizes."""

    size: Literal["custom", "xxs", "xs", "s", "m"] = "xs"
    """Named size preset (``SIZES``); its values replace the defaults below unless set explicitly."""
    image_size: int = 64
    """Square image side in pixels (64 or 84)."""
    cnn_depth: int = 32
    """Channels of the first conv layer; doubled every layer (DreamerV2 uses 48, RLlib XS 24)."""
    cnn_layers: int = 4
    """Conv layers of kernel 4, stride 2, padding 1 (64 px -> 4x4 map)."""
    deter: int = 256
    """GRU units of the deterministic state (RLlib DreamerV3 XS: 256)."""
    stoch: int = 32
    """Stochastic latent variables (DreamerV2: 32)."""
    classes: int = 32
    """Classes per categorical latent (DreamerV2: 32); 0 selects Gaussian latents."""
    hidden: int = 256
    """Units of every MLP layer (RLlib DreamerV3 XS: 256)."""
    mlp_layers: int = 1
    """Hidden layers of the reward / continue / actor / critic MLPs (RLlib DreamerV3 XS: 1)."""
    unimix: float = 0.01
    """Uniform mixture in categorical latents and discrete actions (DreamerV3: 1%)."""
    min_std: float = 0.1
    """Minimum std of Gaussian latents (DreamerV1/PlaNet: 0.1)."""
    projection: int = 128
    """Width of the contrastive embedding (CURL / CoRe: 128 is typical)."""
    target_size: int = 32
    """Side of the decoded invariant targets (depth / segmentation / clean image): they need
    less resolution than the input, and a 32 px decoder costs a quarter of a 64 px one."""
    target_depth: int = 16
    """Channels of the last layer of the target decoder (doubled towards the 4x4 map)."""
    channels_last: bool = True
    """Run convolutions in channels-last memory format (faster with oneDNN on CPU)."""
    gating: bool = False
    """Multiply a learned pixel-level sigmoid mask into the image before the encoder (CoRe's
    diagnostic, ``models/gating.py``); the masks are logged as TensorBoard images."""

    def __post_init__(self) -> None:
        if self.size != "custom":
            defaults = ModelConfig.__dataclass_fields__
            for key, value in SIZES[self.size].items():
                if getattr(self, key) == defaults[key].default:
                    setattr(self, key, value)
        positive = ("image_size", "cnn_depth", "cnn_layers", "deter", "stoch", "hidden",
                    "mlp_layers", "projection", "target_size", "target_depth")
        for key in positive:
            if getattr(self, key) <= 0:
                raise ValueError(f"model.{key}={getattr(self, key)} must be > 0")
        if self.classes < 0 or self.classes == 1:
            raise ValueError(f"model.classes={self.classes} must be 0 (Gaussian) or >= 2")
        if not 0.0 <= self.unimix < 1.0:
            raise ValueError(f"model.unimix={self.unimix} must be in [0, 1)")
        if self.image_size // 2**self.cnn_layers < 2:
            raise ValueError(f"model.image_size={self.image_size} is too small for "
                             f"cnn_layers={self.cnn_layers} (needs >= {2 ** (self.cnn_layers + 1)})")
        if self.target_size % 4 or self.target_size > self.image_size:
            raise ValueError(f"model.target_size={self.target_size} must be a multiple of 4 and "
                             f"<= image_size={self.image_size}")

    @property
    def stoch_flat(self) -> int:
        """Width of the flattened stochastic state."""
        return self.stoch * self.classes if self.classes else self.stoch

    @property
    def feat(self) -> int:
        """Width of the latent feature ``[h, z]`` that heads and the actor-critic read."""
        return self.deter + self.stoch_flat


# Named sizes. "xs" is the default and matches RLlib DreamerV3 XS in parameter count within 2x.
SIZES: dict[str, dict[str, int]] = {
    "xxs": dict(cnn_depth=16, deter=128, stoch=16, classes=16, hidden=128, projection=64,
                target_depth=8),
    "xs": dict(cnn_depth=32, deter=256, stoch=32, classes=32, hidden=256),
    "s": dict(cnn_depth=32, deter=512, stoch=32, classes=32, hidden=512, mlp_layers=2),
    "m": dict(cnn_depth=48, deter=1024, stoch=32, classes=32, hidden=640, mlp_layers=3,
              target_depth=32),
}
