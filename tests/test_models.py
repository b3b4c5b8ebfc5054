"""World-model networks: shapes, RSSM reset semantics, KL balancing math, latent sampling."""

from __future__ import annotations

import pytest
import torch

from recore_dist.config import ConfigError, from_dict
from recore_dist.models.config import ModelConfig
from recore_dist.models.heads import TargetDecoder
from recore_dist.models.nets import ConvDecoder, ConvEncoder
from recore_dist.models.rssm import RSSM, kl_loss
from recore_dist.models.world_model import Spaces, WorldModel

TINY = dict(size="custom", cnn_depth=4, deter=16, stoch=4, classes=4, hidden=16, projection=8, target_depth=4)


def tiny(**kw) -> ModelConfig:
    return ModelConfig(**{**TINY, **kw})


@pytest.mark.parametrize("size,out", [(64, 4), (84, 5)])
def test_encoder_shapes_and_layernorm(size, out):
    enc = ConvEncoder(channels=3, size=size, depth=8, layers=4)
    emb = enc(torch.rand(5, 3, size, size))
    assert enc.out_size == out and emb.shape == (5, 64 * out * out)
    assert torch.allclose(emb.mean(-1), torch.zeros(5), atol=1e-4)  # LayerNorm on the output
    assert torch.allclose(emb.std(-1, unbiased=False), torch.ones(5), atol=0.05)


@pytest.mark.parametrize("size", [16, 32, 64])
def test_decoder_output_side(size):
    dec = ConvDecoder(feat=10, channels=2, size=size, depth=4)
    assert dec(torch.randn(3, 10)).shape == (3, 2, size, size)
    with pytest.raises(ValueError, match="4 \\* 2\\*\\*k"):
        ConvDecoder(feat=10, channels=1, size=24, depth=4)


def test_size_presets_and_validation():
    assert ModelConfig(size="xxs").deter == 128
    assert ModelConfig(size="xs").deter == 256
    assert ModelConfig(size="s", deter=384).deter == 384  # explicit values beat the preset
    with pytest.raises(ValueError, match="classes"):
        ModelConfig(classes=1)
    with pytest.raises(ConfigError, match="model.size"):
        from_dict(ModelConfig, {"size": "huge"}, path="model")
    with pytest.raises(ValueError, match="image_size"):
        ModelConfig(image_size=16, cnn_layers=4)


@pytest.mark.parametrize("classes", [4, 0])
def test_rssm_observe_shapes_and_prior(classes):
    cfg = tiny(classes=classes)
    rssm = RSSM(cfg, embed_dim=12, action_dim=2)
    embed, action = torch.randn(3, 7, 12), torch.rand(3, 7, 2) * 2 - 1
    first = torch.zeros(3, 7, dtype=torch.bool)
    first[:, 0] = True
    post, prior = rssm.observe(embed, action, first)
    assert post["deter"].shape == (3, 7, 16) and post["stoch"].shape == (3, 7, cfg.stoch_flat)
    assert prior.shape == post["stats"].shape
    assert rssm.feat(post).shape == (3, 7, cfg.feat)
    state = rssm.img_step({k: v[:, -1] for k, v in post.items()}, action[:, -1])
    assert state["deter"].shape == (3, 16)
    if classes:  # one-hot samples
        assert torch.allclose(post["stoch"].view(3, 7, 4, 4).sum(-1), torch.ones(3, 7, 4))


def test_rssm_is_first_resets_state():
    torch.manual_seed(0)
    rssm = RSSM(tiny(), embed_dim=12, action_dim=2)
    embed, action = torch.randn(2, 6, 12), torch.randn(2, 6, 2)
    first = torch.zeros(2, 6, dtype=torch.bool)
    first[:, 0] = first[:, 3] = True
    post, _ = rssm.observe(embed, action, first)
    # Starting a fresh sequence at row 3 gives the same deterministic state there.
    fresh, _ = rssm.observe(embed[:, 3:], action[:, 3:], first[:, 3:])
    assert torch.allclose(post["deter"][:, 3], fresh["deter"][:, 0], atol=1e-6)
    # ... and the action before a reset is ignored.
    action2 = action.clone()
    action2[:, 2] = 5.0
    post2, _ = rssm.observe(embed, action2, first)
    assert torch.allclose(post["deter"][:, 3], post2["deter"][:, 3])


def test_categorical_kl_and_balancing_hand_checked():
    cfg = tiny(stoch=1, classes=2, unimix=0.0)
    rssm = RSSM(cfg, embed_dim=4, action_dim=1)
    p = torch.tensor([[[0.0, 0.0]]], requires_grad=True)  # uniform
    q = torch.tensor([[[0.0, float(torch.log(torch.tensor(3.0)))]]], requires_grad=True)  # [1/4, 3/4]
    expected = 0.5 * torch.log(torch.tensor(0.5 / 0.25)) + 0.5 * torch.log(torch.tensor(0.5 / 0.75))
    assert torch.allclose(rssm.kl(p, q), expected.reshape(1))
    loss, kl = kl_loss(rssm, p, q, balance=0.8, free=0.0)
    assert torch.allclose(loss, expected) and torch.allclose(kl, expected)
    loss.backward()
    # The prior gets 0.8 of the gradient of KL w.r.t. its logits, the posterior 0.2.
    p2, q2 = p.detach().requires_grad_(), q.detach().requires_grad_()
    rssm.kl(p2, q2).sum().backward()
    assert torch.allclose(q.grad, 0.8 * q2.grad) and torch.allclose(p.grad, 0.2 * p2.grad)
    # Free nats: below the threshold there is no gradient.
    p.grad = q.grad = None
    loss, _ = kl_loss(rssm, p, q, balance=0.8, free=1.0)
    assert float(loss.detach()) == pytest.approx(1.0)
    loss.backward()
    assert float(p.grad.abs().sum()) == 0.0 and float(q.grad.abs().sum()) == 0.0


def test_gaussian_kl_matches_torch():
    cfg = tiny(classes=0, stoch=3)
    rssm = RSSM(cfg, embed_dim=4, action_dim=1)
    a, b = torch.randn(5, 6), torch.randn(5, 6)
    ma, sa = rssm._gauss(a)
    mb, sb = rssm._gauss(b)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(ma, sa),
                                            torch.distributions.Normal(mb, sb)).sum(-1)
    assert torch.allclose(rssm.kl(a, b), ref, atol=1e-5)


def test_straight_through_gradient():
    rssm = RSSM(tiny(), embed_dim=4, action_dim=1)
    logits = torch.randn(2, 4, 4, requires_grad=True)
    sample = rssm.sample(logits)
    (sample * torch.randn_like(sample)).sum().backward()
    assert logits.grad is not None and float(logits.grad.abs().sum()) > 0


def test_target_decoders_targets_and_losses():
    cfg = tiny(target_size=16, image_size=32, cnn_layers=3)
    feat = torch.randn(2, 3, cfg.feat)
    depth = TargetDecoder("depth", cfg, size=16, depth=4, max_depth=10.0)
    value = torch.full((2, 3, 32, 32, 1), 5.0)
    assert torch.allclose(depth.target(value), torch.full((2, 3, 1, 16, 16), 0.5))
    assert depth(feat).shape == (2, 3, 1, 16, 16) and depth.loss(depth(feat), value).shape == (2, 3)
    seg = TargetDecoder("segmentation", cfg, size=16, depth=4, num_classes=5)
    classes = torch.randint(0, 5, (2, 3, 32, 32), dtype=torch.int32)
    assert seg.target(classes).shape == (2, 3, 16, 16)
    assert seg.loss(seg(feat), classes).shape == (2, 3)
    with pytest.raises(ValueError, match="num_classes"):
        TargetDecoder("segmentation", cfg, size=16, depth=4, num_classes=0)
    with pytest.raises(ValueError, match="unknown decoder"):
        TargetDecoder("normals", cfg, size=16, depth=4)


def test_world_model_heads_and_images():
    wm = WorldModel(tiny(image_size=64), Spaces(action_dim=2), decoders=("depth", "image"), projection=True)
    img = torch.randint(0, 256, (2, 3, 64, 64, 3), dtype=torch.uint8)
    x = wm.images(img)
    assert x.shape == (2, 3, 3, 64, 64) and float(x.max()) <= 1.0
    assert wm.encode(x).shape == (2, 3, wm.encoder.embed_dim)
    assert wm.decoders["image"].net.deconvs[-1].out_channels == 3
    assert hasattr(wm, "project_feat") and hasattr(wm, "project_embed")
