"""Pixel-level gating (CoRe, Poudel et al. 2022, sec. 3.5 and Fig. 5).

A four-layer CNN reads the observation and outputs a full-resolution sigmoid mask, which is
multiplied into the image before the encoder; it trains with the rest of the model. CoRe found
it leaves returns unchanged and used it as a diagnostic: the mask shows what the model attends
to (the task's objects) and what it drops (distracting backgrounds). The learner logs the masks
as TensorBoard images (``open_loop/gate_mask``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PixelGate(nn.Module):
    """``[N, C, H, W]`` images in [0, 1] -> ``(gated images, mask [N, 1, H, W])``.

    Four 3x3 convolutions (stride 1, same padding, ``width`` channels, ReLU between), the last
    to one channel and a sigmoid. The last layer's bias starts at +3 so the mask starts near 1
    (sigmoid(3) = 0.95): the encoder first sees the image almost unchanged.
    """

    def __init__(self, channels: int, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, 1, 3, padding=1))
        nn.init.constant_(self.net[-1].bias, 3.0)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        mask = torch.sigmoid(self.net(image))
        return image * mask, mask
