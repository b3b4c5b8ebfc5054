"""Learner: exact checkpoint restore, bad batches, device / precision resolution, parameter counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recore_dist.config import ConfigError, from_dict
from recore_dist.learner import Learner, LearnerConfig, resolve_device, resolve_precision
from recore_dist.models.world_model import Spaces
from tests.learner_utils import synthetic_batch, tiny_learner_config


def _params(learner: Learner) -> list[torch.Tensor]:
    return [t.detach().clone() for t in (*learner.objective.state_dict().values(), *learner.ac.state_dict().values())]


@pytest.mark.parametrize("objective", ["recore", "recon"])
def test_checkpoint_restores_exactly(tmp_path, objective):
    cfg = tiny_learner_config(objective)
    batches = [synthetic_batch(seed=i) for i in range(4)]
    a = Learner(cfg, Spaces(action_dim=1))
    for batch in batches[:2]:
        a.update(batch)
    a.save(tmp_path / "learner.pt")
    expected = [a.update(batch) for batch in batches[2:]]
    b = Learner(tiny_learner_config(objective, seed=123), Spaces(action_dim=1))
    b.load(tmp_path / "learner.pt")
    assert b.updates == 2
    got = [b.update(batch) for batch in batches[2:]]
    assert got == expected  # bit-identical metrics, including sampled augmentations and imagination
    for x, y in zip(_params(a), _params(b)):
        assert torch.equal(x, y)


def test_refuses_non_finite_batch_and_changes_nothing():
    learner = Learner(tiny_learner_config(), Spaces(action_dim=1))
    before = _params(learner)
    batch = synthetic_batch()
    batch["reward"][1, 3] = np.nan
    with pytest.raises(ValueError, match="'reward' has 1 non-finite"):
        learner.update(batch)
    assert learner.updates == 0
    assert all(torch.equal(x, y) for x, y in zip(before, _params(learner)))


def test_non_finite_loss_skips_the_step():
    learner = Learner(tiny_learner_config(), Spaces(action_dim=1))
    before = [p.detach().clone() for p in learner.wm_params]
    batch = synthetic_batch()
    batch["depth"][:] = 1e30  # squared error overflows to inf
    metrics = learner.update(batch)
    assert metrics["learner/skipped"] >= 1
    assert all(torch.equal(x, y.detach()) for x, y in zip(before, learner.wm_params))


def test_metrics_are_finite_floats():
    metrics = Learner(tiny_learner_config(), Spaces(action_dim=1)).update(synthetic_batch())
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert metrics["learner/updates"] == 1.0


def test_device_and_precision_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            resolve_device("cuda")
    assert resolve_precision("float32", torch.device("cpu")) == torch.float32
    assert resolve_precision("auto", torch.device("cpu")) in (torch.float32, torch.bfloat16)


def test_bfloat16_update_runs():
    learner = Learner(tiny_learner_config(precision="bfloat16"), Spaces(action_dim=1))
    assert learner.dtype == torch.bfloat16
    assert math.isfinite(learner.update(synthetic_batch())["loss/world_model"])


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="learner.behavior.horizonn|horizonn"):
        from_dict(LearnerConfig, {"behavior": {"horizonn": 3}}, path="learner")
    with pytest.raises(ConfigError, match="batch_size"):
        from_dict(LearnerConfig, {"batch_size": "many"})
    with pytest.raises(ConfigError, match="objective.name"):
        from_dict(LearnerConfig, {"objective": {"name": "byol"}})


def test_default_model_size_counts():
    counts = Learner(from_dict(LearnerConfig, {"device": "cpu"}), Spaces(action_dim=1)).param_counts()
    assert 3e6 < counts["total"] < 2e7 and counts["total"] == counts["world_model"] + counts["actor"] + counts["critic"]


@pytest.mark.parametrize("actor_grad", ["dynamics", "reinforce"])
def test_gaussian_latents_and_both_actor_gradients(actor_grad):
    cfg = tiny_learner_config(**{"model.classes": 0, "behavior.actor_grad": actor_grad})
    learner = Learner(cfg, Spaces(action_dim=1))
    assert learner.ac.uses_dynamics() == (actor_grad == "dynamics")
    before = [p.detach().clone() for p in learner.wm_params]
    metrics = learner.update(synthetic_batch())
    assert all(math.isfinite(v) for v in metrics.values()) and metrics["opt/actor_grad_norm"] > 0
    # The actor's loss never trains the world model: its gradients stay world-model-only.
    assert any(not torch.equal(x, y.detach()) for x, y in zip(before, learner.wm_params))
    assert all(p.requires_grad for p in learner.wm_params)  # unfrozen after imagination
