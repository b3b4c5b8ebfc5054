"""Image summaries: real frames vs the world model's reconstructions and open-loop predictions.

For each decoder of the objective (depth / segmentation / clean image for ReCoRe, pixels for the
reconstruction baseline): the posterior filters the first ``context`` steps of a few replay
sequences, then the prior predicts the rest open-loop from the real actions (imagination).
Rows per sequence: truth, then the prediction (posterior for t < context, imagined after).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from recore_dist.learner import Learner


@torch.no_grad()
def open_loop_grids(learner: Learner, batch: dict[str, Any], *, sequences: int = 3, context: int = 5,
                    columns: int = 10) -> dict[str, np.ndarray]:
    """``{tag: uint8 [H, W, 3] grid}`` for the image and every decoded target."""
    data = learner.to_tensors({k: v[:sequences] for k, v in batch.items()})
    wm = learner.wm
    length = data["image"].shape[1]
    context = min(context, length - 1)
    with learner.autocast():
        images = wm.images(data["image"])
        post, _ = wm.observe(wm.embed(data), data["action"], data["is_first"])
        state = {k: v[:, context - 1] for k, v in post.items()}
        feats = [wm.feat({k: v[:, :context] for k, v in post.items()})]
        for t in range(context, length):
            state = wm.rssm.img_step(state, data["action"][:, t - 1], mode=True)
            feats.append(wm.feat(state)[:, None])
        feat = torch.cat(feats, 1)  # [S, T, F]
        steps = np.linspace(0, length - 1, columns).round().astype(int)
        grids = {"real": _grid([images[:, steps].float()])}
        mask = gate_mask(wm)
        if mask is not None:  # CoRe's pixel gating: each frame above the mask the encoder applied
            masks = mask.view(*images.shape[:2], *mask.shape[1:])
            grids["gate_mask"] = _grid([images[:, steps].float(), masks[:, steps].float()])
        for name, decoder in wm.decoders.items():
            truth = decoder.target(data[name])[:, steps]
            pred = decoder(feat[:, steps])
            if name == "segmentation":
                truth = truth[:, :, None].float() / max(1, pred.shape[-3] - 1)
            grids[name] = _grid([truth.float(), decoder.preview(pred).float()])
    return grids


def gate_mask(wm) -> torch.Tensor | None:
    """The image encoder's latest pixel-gating mask ``[N, 1, H, W]`` (``None`` without gating)."""
    encoder = getattr(wm.encoder, "image", wm.encoder)
    return getattr(encoder, "last_mask", None)


def _grid(rows: list[torch.Tensor]) -> np.ndarray:
    """Interleave ``[S, N, C, H, W]`` row groups into one uint8 ``[H*, W*, 3]`` image."""
    size = max(r.shape[-1] for r in rows)
    lines = []
    for s in range(rows[0].shape[0]):
        for r in rows:
            x = r[s]
            if x.shape[-1] != size:
                x = F.interpolate(x, size=size, mode="nearest")
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            lines.append(torch.cat(list(x), -1))  # [3, H, N*W]
    grid = torch.cat(lines, -2).clamp(0, 1)  # [3, H*, W*]
    return (grid.permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
