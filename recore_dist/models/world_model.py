"""``WorldModel``: encoder + RSSM + heads, shared by every objective (ReCoRe, Recon, CoRAL, ...).

The encoder reads the ``image`` (a CNN, the default, so image-only models keep their parameter
names) or several modalities at once: a ``MultiEncoder`` with one encoder per modality (the CNN
for ``image``, an MLP for ``proprio``) whose embeddings are concatenated before the RSSM
posterior (CoRAL, Becker et al. 2023, arXiv 2302.05342, sec. 3: a joint representation of all
sensors).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from recore_dist.models.config import ModelConfig
from recore_dist.models.heads import Projection, RewardHead, ScalarHead, TargetDecoder, VectorDecoder
from recore_dist.models.nets import ConvEncoder, mlp
from recore_dist.models.rssm import RSSM, State
from recore_dist.models.twohot import symlog

MODALITIES: tuple[str, ...] = ("image", "proprio")
"""Observation fields an encoder can read."""
IMAGE_ONLY: tuple[str, ...] = ("image",)


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
    proprio_dim: int = 0
    """Width of the ``proprio`` observation (0 when absent); read only by models that encode it."""
    terminates: bool = True
    """The env has terminal states (``is_terminal``): navigation success, iGibson failures. False
    for dm_control, whose episodes only end by time limit; the continue head follows it
    (``DynamicsConfig.continue_head``)."""


class ProprioEncoder(nn.Module):
    """Proprioception ``[N, P]`` -> ``[N, hidden]``: symlog inputs (DreamerV3's vector encoder),
    then ``mlp_layers`` x [Linear, LayerNorm, SiLU]."""

    def __init__(self, cfg: ModelConfig, proprio_dim: int):
        super().__init__()
        if proprio_dim < 1:
            raise ValueError(f"a proprio encoder needs Spaces.proprio_dim >= 1 (the env's proprio width), "
                             f"got {proprio_dim}")
        self.proprio_dim = proprio_dim
        self.net = mlp(proprio_dim, cfg.hidden, max(1, cfg.mlp_layers))
        self.embed_dim = cfg.hidden

    def forward(self, proprio: Tensor) -> Tensor:
        return self.net(symlog(proprio.float()))


class MultiEncoder(nn.Module):
    """One encoder per modality (attributes named after the fields: ``image``, ``proprio``);
    ``forward`` concatenates their embeddings in ``modalities`` order.

    Inputs are dicts of ``[N, ...]`` tensors: ``image`` float ``[N, C, H, W]`` in [0, 1],
    ``proprio`` float ``[N, P]``.
    """

    def __init__(self, cfg: ModelConfig, spaces: Spaces, modalities: tuple[str, ...], *, channels_last: bool):
        super().__init__()
        self.modalities = tuple(modalities)
        for name in self.modalities:
            if name == "image":
                self.image = _conv_encoder(cfg, spaces, channels_last)
            else:
                self.proprio = ProprioEncoder(cfg, spaces.proprio_dim)
        self.embed_dims = {name: getattr(self, name).embed_dim for name in self.modalities}
        self.embed_dim = sum(self.embed_dims.values())

    def parts(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per-modality embeddings ``{name: [N, E_name]}``."""
        missing = [name for name in self.modalities if name not in inputs]
        if missing:
            raise ValueError(f"encoder reads {list(self.modalities)}; missing {missing} in {sorted(inputs)}")
        return {name: getattr(self, name)(inputs[name]) for name in self.modalities}

    def fuse(self, parts: Mapping[str, Tensor]) -> Tensor:
        """Concatenate per-modality embeddings (``[..., E_name]`` each) in ``modalities`` order."""
        dtype = parts[self.modalities[0]].dtype
        return torch.cat([parts[name].to(dtype) for name in self.modalities], -1)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return self.fuse(self.parts(inputs))  # [N, E]


def _conv_encoder(cfg: ModelConfig, spaces: Spaces, channels_last: bool) -> ConvEncoder:
    return ConvEncoder(channels=spaces.image_channels, size=cfg.image_size, depth=cfg.cnn_depth,
                       layers=cfg.cnn_layers, channels_last=channels_last, gating=cfg.gating)


def check_modalities(modalities: tuple[str, ...]) -> tuple[str, ...]:
    modalities = tuple(modalities)
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown or "image" not in modalities or len(set(modalities)) != len(modalities):
        raise ValueError(f"modalities {modalities} must be distinct fields of {list(MODALITIES)} including 'image'")
    return modalities


def make_encoder(cfg: ModelConfig, spaces: Spaces, modalities: tuple[str, ...] = IMAGE_ONLY, *,
                 channels_last: bool) -> ConvEncoder | MultiEncoder:
    """The encoder for ``modalities``: the bare CNN for ``("image",)`` (so image-only models keep
    their parameter names ``encoder.convs.*``), else a ``MultiEncoder`` (``encoder.image.*``,
    ``encoder.proprio.*``). Learner and policy both build theirs here."""
    modalities = check_modalities(modalities)
    if modalities == IMAGE_ONLY:
        return _conv_encoder(cfg, spaces, channels_last)
    return MultiEncoder(cfg, spaces, modalities, channels_last=channels_last)


def encoder_inputs(fields: Mapping[str, Tensor], modalities: tuple[str, ...]) -> dict[str, Tensor]:
    """Raw observation fields (any leading dims) -> encoder inputs: ``image`` uint8 ``[..., H, W, C]``
    -> float ``[..., C, H, W]`` in [0, 1]; ``proprio`` -> float32."""
    out = {}
    for name in modalities:
        value = fields[name]
        if name == "image":
            out[name] = torch.div(value.movedim(-1, -3), 255.0)  # uint8 -> float32, input untouched
        else:
            out[name] = value.float()
    return out


class WorldModel(nn.Module):
    """The networks of a world model; objectives decide how they are trained.

    Args:
        cfg: network sizes.
        spaces: observation / action shapes.
        decoders: target maps to decode from the latent feature, e.g. ``("depth",)`` for
            ReCoRe or ``("image",)`` for the reconstruction baseline. ``image`` decodes at
            full resolution; the invariant targets at ``cfg.target_size``.
        projection: build the contrastive projection heads.
        reward: the reward head's output (``RewardHead``): ``twohot`` (DreamerV3) or ``mse``.
        reward_bins: bins of the two-hot reward head (DreamerV3: 255).
        decode_vectors: build ``vector_decoder`` for the ``proprio`` observation when the encoder
            reads it (DreamerV3 decodes every vector input), so the latent must keep it.
        modalities: observation fields the encoder reads; ``("image",)`` (default) builds the
            bare CNN, more build a ``MultiEncoder`` (``proprio`` needs ``spaces.proprio_dim``).
    """

    def __init__(self, cfg: ModelConfig, spaces: Spaces, *, decoders: tuple[str, ...] = (),
                 projection: bool = False, modalities: tuple[str, ...] = IMAGE_ONLY,
                 reward: str = "twohot", reward_bins: int = 255, decode_vectors: bool = False):
        super().__init__()
        self.cfg, self.spaces = cfg, spaces
        self.modalities = check_modalities(modalities)
        self.encoder = make_encoder(cfg, spaces, self.modalities, channels_last=cfg.channels_last)
        self.rssm = RSSM(cfg, embed_dim=self.encoder.embed_dim, action_dim=spaces.action_dim)
        self.reward = RewardHead(cfg, kind=reward, bins=reward_bins)  # type: ignore[arg-type]
        self.cont = ScalarHead(cfg)
        self.decoders = nn.ModuleDict({
            name: TargetDecoder(name, cfg,
                                size=cfg.image_size if name == "image" else cfg.target_size,
                                depth=cfg.cnn_depth if name == "image" else cfg.target_depth,
                                num_classes=spaces.num_classes, max_depth=spaces.max_depth)
            for name in decoders})
        self.vector_decoder = (VectorDecoder(cfg, spaces.proprio_dim)
                               if decode_vectors and "proprio" in self.modalities else None)
        if projection:
            self.project_feat = Projection(cfg.feat, cfg.hidden, cfg.projection)
            self.project_embed = Projection(self.image_embed_dim, cfg.hidden, cfg.projection)

    @property
    def multimodal(self) -> bool:
        return isinstance(self.encoder, MultiEncoder)

    @property
    def image_encoder(self) -> ConvEncoder:
        """The image CNN (the whole encoder of an image-only model)."""
        return self.encoder.image if self.multimodal else self.encoder

    @property
    def image_embed_dim(self) -> int:
        return self.image_encoder.embed_dim

    def encode_views(self, images: Tensor, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Encode image views with the batch's other modalities.

        Args:
            images: float ``[B, T, C, H, W]`` in [0, 1]: the (augmented, masked or raw) frames.
            batch: replay fields ``[B, T, ...]``; the non-image modalities (``proprio``) are read here.

        Returns:
            ``(embed [B, T, E], image_embed [B, T, E_image])``: the posterior's input (all
            modalities fused) and the image's own embedding (what image-contrastive terms use,
            so a goal vector cannot solve them). Equal for an image-only model.
        """
        if not self.multimodal:
            embed = self.encode(images)
            return embed, embed
        inputs = encoder_inputs(batch, tuple(m for m in self.modalities if m != "image"))
        parts = self.encode_parts({**inputs, "image": images})
        return self.fuse(parts), parts["image"]

    @staticmethod
    def images(image: Tensor) -> Tensor:
        """uint8 ``[B, T, H, W, C]`` -> float ``[B, T, C, H, W]`` in [0, 1]."""
        return image.permute(0, 1, 4, 2, 3).float().div_(255.0)

    def encode(self, images: Tensor) -> Tensor:
        """float ``[B, T, C, H, W]`` -> embeddings ``[B, T, E]`` (image-only models; a multimodal
        model embeds with ``embed``/``encode_parts``)."""
        if self.multimodal:
            raise ValueError(f"this world model encodes {list(self.modalities)}: use embed(batch) or encode_parts")
        return self.encoder(images.flatten(0, 1)).unflatten(0, images.shape[:2])

    def encode_parts(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Encoder inputs ``{name: [B, T, ...]}`` -> per-modality embeddings ``{name: [B, T, E_name]}``."""
        if not self.multimodal:
            return {"image": self.encode(inputs["image"])}
        lead = inputs[self.modalities[0]].shape[:2]
        parts = self.encoder.parts({name: inputs[name].flatten(0, 1) for name in self.modalities})
        return {name: value.unflatten(0, lead) for name, value in parts.items()}

    def fuse(self, parts: Mapping[str, Tensor]) -> Tensor:
        """Per-modality embeddings -> the posterior's input ``[B, T, E]`` (concatenation)."""
        return self.encoder.fuse(parts) if self.multimodal else parts["image"]

    def embed(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Replay fields ``[B, T, ...]`` (uint8 image, float proprio) -> fused embeddings ``[B, T, E]``."""
        return self.fuse(self.encode_parts(encoder_inputs(batch, self.modalities)))

    def observe(self, embed: Tensor, action: Tensor, is_first: Tensor,
                state: State | None = None) -> tuple[State, Tensor]:
        return self.rssm.observe(embed, action, is_first, state)

    def feat(self, state: State) -> Tensor:
        return self.rssm.feat(state)

    learned_continue: bool = True
    """Whether the continue head is trained and used (set by the objective from
    ``DynamicsConfig.continue_head`` and ``Spaces.terminates``)."""

    def continue_prob(self, feat: Tensor) -> Tensor:
        """Probability that the episode continues after a state ``[...]``: the continue head's,
        or 1 for tasks without terminal states."""
        if not self.learned_continue:
            return torch.ones(feat.shape[:-1], device=feat.device, dtype=torch.float32)
        return torch.sigmoid(self.cont(feat))
