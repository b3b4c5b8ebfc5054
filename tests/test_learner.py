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


@pytest.mark.slow
@pytest.mark.parametrize("actor_grad", ["reinforce", "dynamics"])
def test_compiled_steps_match_eager(actor_grad):
    """``compile=true`` compiles observe's posterior step and imagination's step; in mode (no sampling)
    they compute what the eager functions compute, updates run, and checkpoints keep their keys."""
    eager = Learner(tiny_learner_config(**{"behavior.actor_grad": actor_grad}), Spaces(action_dim=1))
    compiled = Learner(tiny_learner_config(**{"compile": True, "behavior.actor_grad": actor_grad}), Spaces(action_dim=1))
    compiled.load_state_dict(eager.state_dict())
    assert set(compiled.state_dict()["objective"]) == set(eager.state_dict()["objective"])
    torch.manual_seed(1)
    n, cfg = 6, eager.cfg.model
    state = {"deter": torch.randn(n, cfg.deter), "stoch": torch.randn(n, cfg.stoch * cfg.classes)}
    action, embed_h = torch.randn(n, 1), torch.randn(n, cfg.hidden)
    is_first = torch.tensor([True, False] * 3)
    for learner in (eager, compiled):  # straight-through gradients flow in both
        out = learner.wm.rssm.obs_step(state, action, embed_h, is_first)
        out["stoch"].sum().backward()
    got = compiled.wm.rssm.obs_step(state, action, embed_h, is_first, mode=True)
    want = eager.wm.rssm.obs_step(state, action, embed_h, is_first, mode=True)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5)
    # imagination: the compiled step's deterministic path matches eager given the same action, and
    # its categorical samples follow the prior's (unimixed) probabilities
    rows = {k: v[:1].expand(4000, *v.shape[1:]).contiguous() for k, v in want.items()}
    with torch.no_grad():
        img, feat, raw = compiled.ac.imagine_step(compiled.wm, rows, compiled.wm.feat(rows), False)
        deter = eager.wm.rssm._deter_step(rows, raw.clamp(-1.0, 1.0))  # the bounded actor clips its sample
        probs = eager.wm.rssm._probs(eager.wm.rssm.prior_stats(deter))
    torch.testing.assert_close(img["deter"], deter, rtol=1e-4, atol=1e-5)
    assert torch.equal(feat[:, :cfg.deter], img["deter"])
    onehot = img["stoch"].unflatten(-1, (cfg.stoch, cfg.classes))
    assert torch.equal(onehot.sum(-1), torch.ones(4000, cfg.stoch))
    torch.testing.assert_close(onehot.mean(0), probs.mean(0), atol=0.03, rtol=0)
    batch = synthetic_batch()
    for _ in range(2):
        metrics = compiled.update(batch)
    assert all(math.isfinite(v) for v in metrics.values()) and compiled.updates == 2


def test_compiled_learner_logs_term_gradients_in_bfloat16():
    """The per-term gradient norms retain the graph before the update's backward; the cartpole
    benchmark's compiled xs learner in bfloat16 must take that update. torch's donated buffers made
    it raise at the first update (issue-24 runs)."""
    from recore_dist import config as config_lib
    from recore_dist.runtime.config import TrainConfig

    cfg = config_lib.load(TrainConfig, "configs/bench_learn.yaml",
                          ["learner.precision=bfloat16"]).learner
    assert cfg.compile and cfg.model.size == "xs" and cfg.grad_diagnostics_every > 0
    learner = Learner(cfg, Spaces(action_dim=1))
    metrics = learner.update(synthetic_batch(b=16, t=32, size=64))  # the preset's shape (B2 x T4 did not raise)
    assert learner.updates == 1 and metrics["learner/skipped"] == 0
    assert {"grad/contrastive", "grad/depth", "grad/reward"} <= set(metrics)
    assert all(math.isfinite(metrics[k]) and metrics[k] > 0 for k in ("grad/contrastive", "grad/depth"))
