"""HRSSM: cube masking, EMA raw branch over the shared history, latent reconstruction, bisimulation."""

from __future__ import annotations

import math

import pytest
import torch

from recore_dist.learner import Learner
from recore_dist.models.config import ModelConfig
from recore_dist.models.masking import apply_mask, cube_mask, cube_side
from recore_dist.models.rssm import RSSM
from recore_dist.models.world_model import Spaces
from recore_dist.objectives import HRSSMConfig, ObjectiveConfig, make_objective
from recore_dist.objectives.ema import ema_copy, ema_update
from recore_dist.objectives.hrssm import (HRSSM, bisimulation_target, categorical_w2_sq, gaussian_w2_sq,
                                          latent_reconstruction_loss, next_state_w2)
from tests.learner_utils import TINY_MODEL, synthetic_batch, tiny_learner_config

LOSSES = ("loss/kl", "loss/reward", "loss/cont", "loss/latent_recon", "loss/bisim")


def _objective(*, classes: int = TINY_MODEL["classes"], **hrssm) -> HRSSM:
    cfg = ObjectiveConfig(name="hrssm", hrssm=HRSSMConfig(**hrssm))
    return make_objective(cfg, ModelConfig(**{**TINY_MODEL, "classes": classes}), Spaces(action_dim=1))


def _batch(**kwargs) -> dict[str, torch.Tensor]:
    batch = {k: torch.as_tensor(v) for k, v in synthetic_batch(**kwargs).items()}
    for key in ("is_first", "is_last", "is_terminal"):
        batch[key] = batch[key].bool()
    return batch


# ------------------------------------------------------------------------------------ masking
def test_cube_mask_meets_ratio_with_whole_cubes():
    gen = torch.Generator().manual_seed(0)
    b, t, h, w, side, frames = 3, 8, 32, 32, 4, 4
    mask = cube_mask(b, t, h, w, side=side, frames=frames, ratio=0.5, generator=gen)
    assert mask.shape == (b, t, h, w) and mask.dtype == torch.bool
    per_frame = mask.float().mean((-2, -1))  # [B, T]: every frame masks exactly half its cells
    assert torch.allclose(per_frame, torch.full_like(per_frame, 0.5))
    cubes = mask.view(b, t // frames, frames, h // side, side, w // side, side).float()
    lo, hi = cubes.amin(dim=(2, 4, 6)), cubes.amax(dim=(2, 4, 6))
    assert torch.equal(lo, hi)  # constant inside every side x side x frames cube
    # temporal extent: cubes end after `frames` steps (blocks are drawn independently)
    assert all(not torch.equal(mask[i, frames - 1], mask[i, frames]) for i in range(b))
    assert all(torch.equal(mask[i, 0], mask[i, s]) for i in range(b) for s in range(frames))
    assert not torch.equal(mask[0], mask[1])  # one mask per sequence


def test_cube_mask_ragged_sizes_and_ratio_tolerance():
    gen = torch.Generator().manual_seed(1)
    mask = cube_mask(16, 6, 30, 30, side=4, frames=4, ratio=0.3, generator=gen)  # cubes cut at the edges
    assert mask.shape == (16, 6, 30, 30)
    assert abs(float(mask.float().mean()) - 0.3) < 0.05
    assert not cube_mask(2, 4, 8, 8, side=2, frames=2, ratio=0.0).any()
    for bad in (dict(ratio=1.0), dict(ratio=-0.1), dict(side=0), dict(frames=0)):
        kwargs = dict(side=2, frames=2, ratio=0.5) | bad
        with pytest.raises(ValueError):
            cube_mask(2, 4, 8, 8, **kwargs)


def test_cube_side_scales_with_image_size():
    assert [cube_side(8, s) for s in (64, 32, 16, 128)] == [8, 4, 2, 16]
    assert cube_side(1, 16) == 1


@pytest.mark.parametrize("fill", ["zero", "gray", "mean"])
def test_masked_frames_differ_only_where_masked(fill):
    torch.manual_seed(0)
    images = torch.rand(2, 4, 3, 8, 8) * 0.4 + 0.55  # never equal to 0 or 0.5
    mask = cube_mask(2, 4, 8, 8, side=2, frames=2, ratio=0.5)
    out = apply_mask(images, mask, fill)
    changed = (out != images).any(dim=2)  # [B, T, H, W]
    assert torch.equal(changed, mask)
    keep = ~mask.unsqueeze(2).expand_as(images)
    assert torch.equal(out[keep], images[keep])
    expected = {"zero": torch.zeros_like(images), "gray": torch.full_like(images, 0.5),
                "mean": images.mean((-2, -1), keepdim=True).expand_as(images)}[fill]
    assert torch.allclose(out[~keep], expected[~keep])
    with pytest.raises(ValueError, match="does not fit"):
        apply_mask(images, mask[:, :2], fill)


# ------------------------------------------------------------------------------------ EMA
def test_ema_update_matches_hand_computation():
    online = torch.nn.Linear(3, 2)
    target = ema_copy(online)
    with torch.no_grad():
        target.weight.fill_(1.0)
        target.bias.fill_(-1.0)
        online.weight.fill_(3.0)
        online.bias.fill_(1.0)
    ema_update(target, online, 0.25)
    assert torch.allclose(target.weight, torch.full((2, 3), 0.75 * 1.0 + 0.25 * 3.0))
    assert torch.allclose(target.bias, torch.full((2,), 0.75 * -1.0 + 0.25 * 1.0))


def test_after_step_moves_raw_branch_towards_online():
    obj = _objective(encoder_ema_rate=0.1, rssm_ema_rate=0.2)
    pairs = [(obj.raw_encoder, obj.wm.encoder, 0.1), (obj.raw_rssm, obj.wm.rssm, 0.2),
             (obj.raw_project, obj.project, 0.2)]
    with torch.no_grad():
        for _, online, _ in pairs:
            for p in online.parameters():
                p.add_(torch.randn_like(p))
    before = [[p.detach().clone() for p in raw.parameters()] for raw, _, _ in pairs]
    gap = [sum(float((r - o).detach().abs().sum()) for r, o in zip(raw.parameters(), online.parameters()))
           for raw, online, _ in pairs]
    obj.after_step()
    for (raw, online, rate), old, g in zip(pairs, before, gap):
        for r, o, b in zip(raw.parameters(), online.parameters(), old):
            assert torch.allclose(r, (1 - rate) * b + rate * o, atol=1e-6)
        now = sum(float((r - o).detach().abs().sum()) for r, o in zip(raw.parameters(), online.parameters()))
        assert now == pytest.approx((1 - rate) * g, rel=1e-4)


# ------------------------------------------------------------------------------------ losses
def test_bisimulation_target_on_a_toy_pair():
    # categorical next states: h_i = (0, 0), h_j = (3, 4); one latent with p = (1, 0), q = (0.5, 0.5)
    deter_i, deter_j = torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]])
    p, q = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.5, 0.5]]])
    assert float(categorical_w2_sq(p, q)) == pytest.approx(1.0)  # 2 * TV = 2 * 0.5
    rssm = RSSM(ModelConfig(size="custom", deter=2, stoch=1, classes=2, hidden=4, unimix=0.0),
                embed_dim=3, action_dim=1)
    logits_p, logits_q = torch.tensor([[[0.0, -1e9]]]), torch.tensor([[[0.0, 0.0]]])
    w = next_state_w2(rssm, deter_i, logits_p, deter_j, logits_q)
    assert float(w) == pytest.approx(math.sqrt(25.0 + 1.0), rel=1e-5)
    target = bisimulation_target(torch.tensor([0.2]), torch.tensor([1.0]), w, 0.99)
    assert float(target) == pytest.approx(0.8 + 0.99 * math.sqrt(26.0), rel=1e-5)
    # Gaussian latents: mean 0 vs 1, std 1 vs 2 -> W2^2 = 1 + 1
    w2 = gaussian_w2_sq(torch.tensor([[0.0]]), torch.tensor([[1.0]]), torch.tensor([[1.0]]), torch.tensor([[2.0]]))
    assert float(w2) == pytest.approx(2.0)
    assert not bisimulation_target(torch.zeros(1), torch.ones(1), torch.ones(1, requires_grad=True), 0.5).requires_grad


def test_latent_reconstruction_zero_when_latents_coincide():
    torch.manual_seed(0)
    x = torch.randn(5, 7)
    assert float(latent_reconstruction_loss(x, x).abs().max()) < 1e-10
    assert float(latent_reconstruction_loss(x, 3 * x).abs().max()) < 1e-10  # scale-free
    e = torch.eye(2)
    assert latent_reconstruction_loss(e[:1], e[1:]).item() == pytest.approx(2.0)  # orthogonal: 2 - 2 cos
    obj = _objective()
    feat = torch.randn(4, obj.wm.cfg.feat)  # at init the momentum projection equals the online one
    with torch.no_grad():
        assert float(latent_reconstruction_loss(obj.project(feat), obj.raw_project(feat)).max()) < 1e-10


# ------------------------------------------------------------------------------------ objective
def test_raw_branch_shares_the_masked_history():
    obj = _objective()
    batch = _batch()
    images = obj.wm.images(batch["image"])
    deter = torch.randn(4, 8, obj.wm.cfg.deter)
    raw, raw_next = obj.raw_branch(images, deter, batch)
    assert torch.equal(raw["deter"], deter) and raw_next["deter"].shape == (4, 7, obj.wm.cfg.deter)
    other, _ = obj.raw_branch(images, deter + 1.0, batch)
    assert not torch.allclose(other["stats"], raw["stats"])  # the raw posterior reads h_t
    assert not any(v.requires_grad for v in (*raw.values(), *raw_next.values()))


@pytest.mark.parametrize("metric,classes", [("simsr", 4), ("wasserstein", 4), ("wasserstein", 0)])
def test_forward_losses_and_gradient_flow(metric, classes):
    torch.manual_seed(0)
    obj = _objective(bisim_metric=metric, classes=classes)
    loss, metrics, start = obj(_batch())
    assert math.isfinite(float(loss.detach()))
    metrics = {k: v.detach() for k, v in metrics.items()}
    for key in (*LOSSES, "wm/mask_ratio", "wm/latent_cos", "wm/bisim_distance", "wm/bisim_target"):
        assert key in metrics and math.isfinite(float(metrics[key])), key
    assert float(metrics["wm/mask_ratio"]) == pytest.approx(0.5)
    assert float(metrics["loss/bisim"]) > 0 and float(metrics["loss/latent_recon"]) > 0
    assert set(start) == {"deter", "stoch", "stats"} and start["deter"].shape[:2] == (4, 8)
    loss.backward()
    assert sum(float(p.grad.abs().sum()) for p in obj.wm.encoder.parameters() if p.grad is not None) > 0
    assert obj.project.weight.grad is not None
    for raw in (obj.raw_encoder, obj.raw_rssm, obj.raw_project):
        assert all(p.grad is None and not p.requires_grad for p in raw.parameters())


def test_bisimulation_skips_resets_and_uses_next_reward():
    obj = _objective(bisim_scale=1.0)
    batch = _batch()
    batch["is_first"][:, 1:] = True  # every row a reset: no transition inside the chunk
    with torch.no_grad():
        _, metrics, _ = obj(batch)
    assert float(metrics["loss/bisim"]) == 0.0
    batch = _batch()
    batch["reward"][:, 0] = 1e6  # the reward of arriving at row 0 is never a transition's reward
    with torch.no_grad():
        _, metrics, _ = obj(batch)
    assert float(metrics["wm/bisim_target"]) < 10


def test_config_refuses_bad_values():
    for bad in (dict(mask_ratio=1.0), dict(mask_frames=0), dict(bisim_discount=1.5), dict(encoder_ema_rate=0.0),
                dict(bisim_scale=-1.0)):
        with pytest.raises(ValueError):
            HRSSMConfig(**bad)


def test_learner_three_updates():
    learner = Learner(tiny_learner_config("hrssm"), Spaces(action_dim=1))
    raw0 = [p.detach().clone() for p in learner.objective.raw_encoder.parameters()]
    for _ in range(3):
        metrics = learner.update(synthetic_batch())
        assert all(math.isfinite(v) for v in metrics.values()), metrics
    for key in (*LOSSES, "loss/world_model", "loss/actor", "loss/critic"):
        assert key in metrics, key
    assert metrics["learner/skipped"] == 0.0
    moved = max(float((p - q).abs().max()) for p, q in zip(learner.objective.raw_encoder.parameters(), raw0))
    assert moved > 0
    assert learner.objective.batch_keys == ("image",)
