"""``WorldModel``: encoder + RSSM + heads, shared by every objective (ReCoRe, Recon, ...)."""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from recore_dist.models.config import ModelConfig
from recore_dist.models.heads import Projection, ScalarHead, TargetDecoder
from recore_dist.models.nets import ConvEncoder
from recore_dist.models.rssm import RSSM, State


@dataclasses.dataclass(frozen=True)
class Spaces:
    """What the world model is built for: the env's observation and action shapes."""

    action_dim: int
    """Action width (continuous) or number of actions (discrete)."""
    discrete: bool = False
    """Discrete actions (one-hot in the RSSM) instead of continuous in [-1, 1]."""
    image_channels: int = 3
    """Channels of the ``image`` observation."""
    num_classes: int = 0
    """Semantic classes of the ``segmentation`` target (0 when absent)."""
    max_depth: float = 10.0
    """Depth clip in metres; depth targets are divided by it."""


class WorldModel(nn.Module):
    """The networks of a world model; objectives decide how they are trained.

    Args:
        cfg: network sizes.
        spaces: observation / action shapes.
        decoders: target maps to decode from the latent feature, e.g. ``("depth",)`` for
            ReCoRe or ``("image",)`` for the reconstruction baseline. ``image`` decodes at
            full resolution; the invariant targets at ``cfg.target_size``.
        projection: build the contrastive projection heads.
    """

    def __init__(self, cfg: ModelConfig, spaces: Spaces, *, decoders: tuple[str, ...] = (),
                 projection: bool = False):
        super().__init__()
        self.cfg, self.spaces = cfg, spaces
        self.encoder = ConvEncoder(channels=spaces.image_channels, size=cfg.image_size, depth=cfg.cnn_depth,
                                   layers=cfg.cnn_layers, channels_last=cfg.channels_last)
        self.rssm = RSSM(cfg, embed_dim=self.encoder.embed_dim, action_dim=spaces.action_dim)
        self.reward = ScalarHead(cfg)
        self.cont = ScalarHead(cfg)
        self.decoders = nn.ModuleDict({
            name: TargetDecoder(name, cfg,
                                size=cfg.image_size if name == "image" else cfg.target_size,
                                depth=cfg.cnn_depth if name == "image" else cfg.target_depth,
                                num_classes=spaces.num_classes, max_depth=spaces.max_depth)
            for name in decoders})
        if projection:
            self.project_feat = Projection(cfg.feat, cfg.hidden, cfg.projection)
            self.project_embed = Projection(self.encoder.embed_dim, cfg.hidden, cfg.projection)

    @staticmethod
    def images(image: Tensor) -> Tensor:
        """uint8 ``[B, T, H, W, C]`` -> float ``[B, T, C, H, W]`` in [0, 1]."""
        return image.permute(0, 1, 4, 2, 3).float().div_(255.0)

    def encode(self, images: Tensor) -> Tensor:
        """float ``[B, T, C, H, W]`` -> embeddings ``[B, T, E]``."""
        return self.encoder(images.flatten(0, 1)).unflatten(0, images.shape[:2])

    def observe(self, embed: Tensor, action: Tensor, is_first: Tensor,
                state: State | None = None) -> tuple[State, Tensor]:
        return self.rssm.observe(embed, action, is_first, state)

    def feat(self, state: State) -> Tensor:
        return self.rssm.feat(state)
