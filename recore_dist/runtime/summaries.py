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


def _rollout(learner: Learner, batch: dict[str, Any], sequences: int, context: int):
    """Posterior over the first ``context`` steps, then the prior open-loop from the real actions.
    Returns ``(data, images [S, T, C, H, W], feat [S, T, F])``."""
    data = learner.to_tensors({k: v[:sequences] for k, v in batch.items()})
    wm = learner.wm
    length = data["image"].shape[1]
    context = min(context, length - 1)
    images = wm.images(data["image"])
    post, _ = wm.observe(wm.embed(data), data["action"], data["is_first"])
    state = {k: v[:, context - 1] for k, v in post.items()}
    feats = [wm.feat({k: v[:, :context] for k, v in post.items()})]
    for t in range(context, length):
        state = wm.rssm.img_step(state, data["action"][:, t - 1], mode=True)
        feats.append(wm.feat(state)[:, None])
    return data, images, torch.cat(feats, 1)


def _truth_and_preview(decoder, name: str, data: dict[str, Any], feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Displayable ``(truth, prediction)`` ``[S, T, C, H, W]`` in [0, 1] for one decoder."""
    truth = decoder.target(data[name])
    pred = decoder(feat)
    if name == "segmentation":
        truth = truth[:, :, None].float() / max(1, pred.shape[-3] - 1)
    return truth.float(), decoder.preview(pred).float()


@torch.no_grad()
def open_loop_grids(learner: Learner, batch: dict[str, Any], *, sequences: int = 3, context: int = 5,
                    columns: int = 10) -> dict[str, np.ndarray]:
    """``{tag: uint8 [H, W, 3] grid}`` for the image and every decoded target."""
    wm = learner.wm
    with learner.autocast():
        data, images, feat = _rollout(learner, batch, sequences, context)
        length = images.shape[1]
        steps = np.linspace(0, length - 1, columns).round().astype(int)
        grids = {"real": _grid([images[:, steps].float()])}
        mask = gate_mask(wm)
        if mask is not None:  # CoRe's pixel gating: each frame above the mask the encoder applied
            masks = mask.view(*images.shape[:2], *mask.shape[1:])
            grids["gate_mask"] = _grid([images[:, steps].float(), masks[:, steps].float()])
        for name, decoder in wm.decoders.items():
            truth, pred = _truth_and_preview(decoder, name, data, feat[:, steps])
            grids[name] = _grid([truth[:, steps], pred])
    return grids


@torch.no_grad()
def open_loop_videos(learner: Learner, batch: dict[str, Any], *, context: int = 5) -> dict[str, np.ndarray]:
    """``{target: uint8 [T, H, 3W, 3]}``: truth | model | error per step of one replay sequence,
    for every decoded target (dreamerv3's open-loop video). The model column is the posterior for
    the first ``context`` steps and imagination after; error is ``|truth - model|``."""
    wm = learner.wm
    videos: dict[str, np.ndarray] = {}
    with learner.autocast():
        data, _, feat = _rollout(learner, batch, 1, context)
        for name, decoder in wm.decoders.items():
            truth, pred = _truth_and_preview(decoder, name, data, feat)
            truth, pred = truth[0], pred[0]  # [T, C, S, S]
            if truth.shape[-1] != pred.shape[-1]:
                truth = F.interpolate(truth, size=pred.shape[-2:], mode="nearest")
            error = (truth - pred).abs()
            frame = torch.cat([truth, pred, error], -1).clamp(0, 1)  # [T, C, S, 3S]
            if frame.shape[1] == 1:
                frame = frame.expand(-1, 3, -1, -1)
            videos[name] = (frame.permute(0, 2, 3, 1).cpu().numpy() * 255).astype(np.uint8)
    return videos


def evaluation_video(recorded: dict[str, dict[str, Any]], max_frames: int) -> np.ndarray | None:
    """One episode per split side by side, each captioned with its split and return, at most
    ``max_frames`` frames (every k-th frame of longer episodes); ``None`` if nothing was recorded."""
    from recore_dist.video import captioned, side_by_side

    if not recorded:
        return None
    clips = []
    for split, episode in recorded.items():
        frames = episode["frames"]
        every = max(1, -(-len(frames) // max_frames))
        text = f"{split} {episode['return']:.1f}" + (" ok" if episode.get("success") else "")
        clips.append(captioned(frames[::every], text))
    return side_by_side(clips)


def log_evaluation(logger, results: dict[str, Any], step: int, *, max_frames: int = 200) -> dict[str, float]:
    """Write an evaluation's scalars and (if recorded) its video; returns the scalars alone."""
    recorded = results.pop("videos", None)
    logger.scalars(results, step)
    if recorded:
        video = evaluation_video(recorded, max_frames)
        if video is not None:
            logger.video("eval/episodes", video, step)
    return results


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
