"""The DreamerV2-style pixel-reconstruction baseline on the same RSSM (Hafner et al. 2021).

The encoder sees the raw image (and, on navigation, the goal vector); the posterior feature
decodes the image back at full resolution (squared error per pixel normalised by the pixels'
variance, ``TargetDecoder.loss``: order 1, like every other term).
"""

from __future__ import annotations

import dataclasses

from torch import Tensor

from recore_dist.models.config import ModelConfig
from recore_dist.models.rssm import State
from recore_dist.models.world_model import Spaces, WorldModel
from recore_dist.objectives.base import Batch, DynamicsConfig, Metrics, Objective, total


@dataclasses.dataclass
class ReconConfig:
    """Pixel-reconstruction baseline weights."""

    image_scale: float = 1.0
    """Weight of the normalised pixel reconstruction (DreamerV2 weighs its summed loss 1.0; on
    the per-element scale 1 keeps it beside KL and reward, see ``bench objectives``)."""

    def __post_init__(self) -> None:
        if self.image_scale < 0:
            raise ValueError(f"image_scale={self.image_scale} must be >= 0")


class Recon(Objective):
    """Pixel reconstruction + KL + reward + continue."""

    name = "recon"
    batch_keys = ("image",)

    def __init__(self, model: ModelConfig, spaces: Spaces, dynamics: DynamicsConfig, cfg: ReconConfig, *,
                 modalities: tuple[str, ...] = ("image",)):
        super().__init__(WorldModel(model, spaces, decoders=("image",), modalities=modalities,
                                    **dynamics.heads()), dynamics)
        self.cfg = cfg
        self.batch_keys = self.wm.modalities

    def forward(self, batch: Batch) -> tuple[Tensor, Metrics, State]:
        self.check_batch(batch)
        embed, _ = self.wm.encode_views(self.wm.images(batch["image"]), batch)
        self.encoder_out = embed
        post, prior_stats = self.wm.observe(embed, batch["action"], batch["is_first"])
        feat = self.wm.feat(post)
        metrics = self.dynamics_terms(post, prior_stats, feat, batch)
        metrics.update(self.decoder_terms(feat, batch, {"image": self.cfg.image_scale}))
        return total(metrics), metrics, post
