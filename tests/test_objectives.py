"""Objectives: InfoNCE against a direct computation, EMA updates, ReCoRe / recon terms."""

from __future__ import annotations

import math

import pytest
import torch

from recore_dist.learner import Learner
from recore_dist.models.world_model import Spaces
from recore_dist.objectives import info_nce
from recore_dist.objectives.contrastive import InverseTemperature
from recore_dist.objectives.ema import ema_copy, ema_update
from tests.learner_utils import synthetic_batch, tiny_learner_config


def test_info_nce_matches_direct_computation():
    torch.manual_seed(0)
    q, k = torch.randn(6, 5), torch.randn(6, 5)
    lam = 7.0
    loss, acc = info_nce(q, k, lam)
    qn = [v / v.norm() for v in q]
    kn = [v / v.norm() for v in k]
    direct = 0.0
    correct = 0
    for i in range(6):
        scores = [lam * float(qn[i] @ kn[j]) for j in range(6)]
        direct += -scores[i] + math.log(sum(math.exp(s) for s in scores))
        correct += int(max(range(6), key=lambda j: scores[j]) == i)
    assert float(loss) == pytest.approx(direct / 6, rel=1e-5)
    assert float(acc) == pytest.approx(correct / 6)


def test_info_nce_perfect_keys_and_bad_shapes():
    eye = torch.eye(4)
    loss, acc = info_nce(eye, eye, 50.0)
    assert float(acc) == 1.0 and float(loss) < 1e-6
    with pytest.raises(ValueError, match="matching"):
        info_nce(torch.randn(4, 3), torch.randn(5, 3), 1.0)


def test_inverse_temperature_learned_and_clamped():
    temp = InverseTemperature(10.0)
    assert float(temp().detach()) == pytest.approx(10.0)
    q = torch.randn(8, 4)
    info_nce(q, q + 0.01 * torch.randn_like(q), temp())[0].backward()
    assert temp.log_value.grad is not None
    with torch.no_grad():
        temp.log_value.fill_(10.0)
    assert float(temp().detach()) == 100.0
    with pytest.raises(ValueError):
        InverseTemperature(1000.0)


def test_ema_update_math():
    online = torch.nn.Linear(2, 2)
    target = ema_copy(online)
    assert not any(p.requires_grad for p in target.parameters())
    before = target.weight.detach().clone()
    with torch.no_grad():
        online.weight.add_(1.0)
    ema_update(target, online, 0.25)
    assert torch.allclose(target.weight, before + 0.25)


@pytest.mark.parametrize("aux", ["depth", "segmentation", "clean_image"])
def test_recore_terms_logged_separately(aux):
    learner = Learner(tiny_learner_config("recore", **{"objective.recore.aux_target": aux}),
                      Spaces(action_dim=1, num_classes=4))
    metrics = learner.update(synthetic_batch())
    for key in ("loss/kl", "loss/reward", "loss/cont", "loss/contrastive", f"loss/{aux}", "wm/contrastive_acc",
                "wm/inverse_temperature", "loss/actor", "loss/critic", "ac/return"):
        assert key in metrics and math.isfinite(metrics[key]), key
    assert learner.objective.batch_keys == ("image", aux)


def test_recore_key_encoder_options():
    for key_encoder in ("ema", "online"):
        learner = Learner(tiny_learner_config("recore", **{"objective.recore.key_encoder": key_encoder,
                                                           "objective.recore.query": "feat"}), Spaces(action_dim=1))
        assert hasattr(learner.objective, "key_encoder") == (key_encoder == "ema")
        assert math.isfinite(learner.update(synthetic_batch())["loss/contrastive"])


def test_recore_ema_encoder_follows_online():
    learner = Learner(tiny_learner_config("recore"), Spaces(action_dim=1))
    obj = learner.objective
    key0 = [p.detach().clone() for p in obj.key_encoder.parameters()]
    learner.update(synthetic_batch())
    moved = [float((p - q).abs().max()) for p, q in zip(obj.key_encoder.parameters(), key0)]
    assert max(moved) > 0  # momentum copy moved towards the online encoder
    online = list(obj.wm.encoder.parameters())
    assert any(float((p - q).abs().max()) > 0 for p, q in zip(obj.key_encoder.parameters(), online))


def test_recon_objective_decodes_pixels():
    learner = Learner(tiny_learner_config("recon"), Spaces(action_dim=1))
    metrics = learner.update(synthetic_batch())
    assert "loss/image" in metrics and "loss/contrastive" not in metrics


@pytest.mark.parametrize("objective", ["recore", "recon"])
def test_updates_on_fixed_batch_lower_world_model_loss(objective):
    torch.manual_seed(0)
    cfg = tiny_learner_config(objective, **{"model_opt.lr": 1e-3})
    learner = Learner(cfg, Spaces(action_dim=1, num_classes=4))
    batch = synthetic_batch()
    losses = [learner.update(batch)["loss/world_model"] for _ in range(30)]
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses


def test_objective_refuses_wrong_batch():
    learner = Learner(tiny_learner_config("recore"), Spaces(action_dim=1))
    batch = synthetic_batch()
    del batch["depth"]
    with pytest.raises(ValueError, match="depth"):
        learner.update(batch)
    batch = synthetic_batch(size=64)
    with pytest.raises(ValueError, match="image must be"):
        learner.update(batch)
    batch = synthetic_batch(action_dim=3)
    with pytest.raises(ValueError, match="action width"):
        learner.update(batch)
