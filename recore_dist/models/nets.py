"""Building blocks: MLPs with LayerNorm, the CNN encoder and transposed-CNN decoders."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Float32Linear(nn.Linear):
    """A Linear that computes in float32 even under autocast: the output layer of heads whose
    values must resolve small differences (critic, reward, continue). Under bf16 autocast a plain
    Linear returns bf16, 8 bits of mantissa: a symlog value near 5.7 (a return of 300) moves in
    steps of 0.03, i.e. ~9 return units (measured: 2,000 states with values 40-485 took only 70
    distinct values). The input is upcast; parameter names and shapes are those of ``nn.Linear``."""

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float())


def mlp(inp: int, hidden: int, layers: int, out: int | None = None, *, float32_out: bool = False) -> nn.Sequential:
    """``layers`` x [Linear, LayerNorm, SiLU], then an optional output Linear (DreamerV3 style);
    ``float32_out`` makes that output layer a ``Float32Linear``."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(inp if i == 0 else hidden, hidden, bias=False), nn.LayerNorm(hidden), nn.SiLU()]
    if out is not None:
        mods.append((Float32Linear if float32_out else nn.Linear)(hidden if layers else inp, out))
    return nn.Sequential(*mods)


def zero_init_(layer: nn.Linear | nn.Conv2d | nn.ConvTranspose2d) -> None:
    """Zero the output layer so heads start at 0 (DreamerV3 habit for reward and critic)."""
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class ConvEncoder(nn.Module):
    """Images ``[N, C, H, W]`` (floats in [0, 1]) -> embeddings ``[N, E]``, LayerNorm on the output.

    DreamerV2's stack: ``layers`` convolutions of kernel 4, stride 2, padding 1, channels
    ``depth * 2**i``, ReLU (CoRe appendix A.2 uses ReLU in the encoder; it is also ~2x cheaper
    than SiLU on CPU); then flatten and LayerNorm. 64 px -> 4x4, 84 px -> 5x5.
    """

    def __init__(self, *, channels: int, size: int, depth: int, layers: int, channels_last: bool = True,
                 gating: bool = False):
        super().__init__()
        from recore_dist.models.gating import PixelGate

        self.gate = PixelGate(channels) if gating else None
        self.last_mask: Tensor | None = None  # the gate's latest mask [N, 1, H, W] (for summaries)
        mods: list[nn.Module] = []
        inp = channels
        for i in range(layers):
            out = depth * 2**i
            mods += [nn.Conv2d(inp, out, 4, 2, 1), nn.ReLU(inplace=True)]
            inp, size = out, size // 2
        self.convs = nn.Sequential(*mods)
        self.out_channels, self.out_size = inp, size
        self.embed_dim = inp * size * size
        self.norm = nn.LayerNorm(self.embed_dim)
        self.channels_last = channels_last

    def forward(self, image: Tensor) -> Tensor:
        x = image  # [N, C, H, W] in [0, 1]; the first conv's bias absorbs any centring
        if self.gate is not None:  # CoRe's pixel-level gating: a learned mask multiplied in
            x, mask = self.gate(x)
            self.last_mask = mask.detach()
        if self.channels_last:  # one copy to the conv layout and the autocast dtype (not two)
            device = x.device.type
            dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
            x = x.to(dtype=dtype, memory_format=torch.channels_last)
        x = self.convs(x)
        return self.norm(x.flatten(1))  # [N, E]


class ConvDecoder(nn.Module):
    """Latent features ``[N, F]`` -> maps ``[N, C, S, S]`` via transposed convolutions.

    A Linear to a 4x4 map of ``depth * 2**(layers-1)`` channels, then ``layers`` transposed
    convolutions (kernel 4, stride 2, padding 1) halving channels and doubling the side, so
    ``S = 4 * 2**layers``. Used for the pixel decoder (64 px) and the invariant targets (32 px).
    """

    def __init__(self, *, feat: int, channels: int, size: int, depth: int, channels_last: bool = True):
        super().__init__()
        layers = (size // 4).bit_length() - 1
        if 4 * 2**layers != size:
            raise ValueError(f"decoder size {size} must be 4 * 2**k")
        top = depth * 2 ** (layers - 1)
        self.top = top
        self.linear = nn.Linear(feat, top * 16)
        mods: list[nn.Module] = []
        inp = top
        for i in range(layers):
            last = i == layers - 1
            out = channels if last else inp // 2
            mods.append(nn.ConvTranspose2d(inp, out, 4, 2, 1))
            if not last:
                mods.append(nn.ReLU(inplace=True))
            inp = out
        self.deconvs = nn.Sequential(*mods)
        self.channels_last = channels_last

    def forward(self, feat: Tensor) -> Tensor:
        x = self.linear(feat).view(-1, self.top, 4, 4)  # [N, C, 4, 4]
        x = torch.nn.functional.relu(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.deconvs(x)  # [N, channels, S, S]
