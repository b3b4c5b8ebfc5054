"""Latent SAC: transitions under the row convention, target and losses by hand, EMA, temperature,
critic gradients into the world model, and a CoRe + SAC learner end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recore_dist.behavior import BehaviorConfig, LatentSAC, Policy, SACConfig, replay_transitions
from recore_dist.config import ConfigError, from_dict
from recore_dist.learner import Learner, LearnerConfig
from recore_dist.models.world_model import Spaces
from tests.learner_utils import synthetic_batch, tiny_learner_config

SAC_KEYS = {"loss/kl", "loss/reward", "loss/cont", "loss/contrastive", "loss/inverse_dynamics", "wm/kl",
            "wm/prior_entropy", "wm/post_entropy", "wm/contrastive_acc", "wm/inverse_temperature",
            "wm/contrastive_chance", "wm/reward_mse", "opt/model_clipped", "opt/model_grad_norm", "opt/critic_grad_norm", "opt/actor_grad_norm", "opt/alpha_grad_norm",
            "ac/q", "ac/target_q", "ac/entropy", "ac/alpha", "ac/actor_q", "loss/world_model", "loss/actor",
            "loss/critic", "loss/alpha", "learner/updates", "learner/skipped"}


def _sac(action_dim: int = 2, **sac) -> LatentSAC:
    torch.manual_seed(0)
    model = tiny_learner_config().model
    return LatentSAC(model, BehaviorConfig(discount=0.9, sac=SACConfig(**sac)), action_dim=action_dim,
                     discrete=False)


def test_replay_transitions_follow_the_row_convention():
    feat = torch.arange(8.0).view(2, 4, 1)  # feat[b, t] = 4b + t
    batch = {"action": 100 + torch.arange(8.0).view(2, 4, 1), "reward": 200 + torch.arange(8.0).view(2, 4),
             "is_first": torch.zeros(2, 4, dtype=torch.bool), "is_terminal": torch.zeros(2, 4, dtype=torch.bool)}
    batch["is_first"][:, 0] = True
    batch["is_first"][1, 2] = True  # new episode at (1, 2): (1, 1) -> (1, 2) is no transition
    batch["is_terminal"][0, 3] = True  # (0, 2) -> (0, 3) ends the episode
    tr = replay_transitions(feat, batch)
    assert tr["feat"][:, 0].tolist() == [0, 1, 2, 4, 5, 6]
    assert tr["next_feat"][:, 0].tolist() == [1, 2, 3, 5, 6, 7]
    assert tr["action"][:, 0].tolist() == [100, 101, 102, 104, 105, 106]  # chosen at feat_t
    assert tr["reward"].tolist() == [201, 202, 203, 205, 206, 207]  # arrives with o_{t+1}
    assert tr["cont"].tolist() == [1, 1, 0, 1, 1, 1]
    assert tr["valid"].tolist() == [1, 1, 1, 1, 0, 1]


def test_target_matches_hand_computation():
    sac = _sac(alpha_init=0.3)
    with torch.no_grad():  # online critics differ from the targets: the target must read the targets
        for p in sac.critic.parameters():
            p.add_(1.0)
    n, f = 5, tiny_learner_config().model.feat
    next_feat, reward, cont = torch.randn(n, f), torch.randn(n), torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    torch.manual_seed(7)
    got = sac.target(reward, cont, next_feat)
    with torch.no_grad():
        mean, std_raw = sac.actor.net(next_feat).chunk(2, -1)
        std = 0.9 * torch.sigmoid(std_raw + 2.0) + 0.1  # BehaviorConfig min_std 0.1, max_std 1.0
        torch.manual_seed(7)
        u = mean + std * torch.randn_like(std)
        a = torch.tanh(u)
        log_normal = -0.5 * ((u - mean) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)
        log_pi = (log_normal - torch.log(1 - a**2)).sum(-1)
        x = torch.cat([next_feat, a], -1)
        q_min = torch.minimum(sac.target_critic.q1(x)[:, 0], sac.target_critic.q2(x)[:, 0])
        want = reward + 0.9 * cont * (q_min - 0.3 * log_pi)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_critic_loss_is_both_critics_bellman_error_over_valid_rows():
    sac = _sac()
    n, f = 6, tiny_learner_config().model.feat
    tr = {"feat": torch.randn(n, f), "action": torch.rand(n, 2) * 2 - 1, "reward": torch.randn(n),
          "cont": torch.ones(n), "next_feat": torch.randn(n, f), "valid": torch.tensor([1.0, 1, 0, 1, 0, 1])}
    torch.manual_seed(3)
    loss, metrics = sac.critic_loss(tr)
    torch.manual_seed(3)
    target = sac.target(tr["reward"], tr["cont"], tr["next_feat"])
    x = torch.cat([tr["feat"], tr["action"]], -1)
    err = (sac.critic.q1(x)[:, 0] - target) ** 2 + (sac.critic.q2(x)[:, 0] - target) ** 2
    keep = tr["valid"].bool()
    assert float(loss.detach()) == pytest.approx(float(err[keep].mean().detach()), rel=1e-5)
    assert float(metrics["ac/target_q"]) == pytest.approx(float(target[keep].mean()), rel=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in sac.critic.parameters())
    assert all(p.grad is None for p in (*sac.actor.parameters(), *sac.target_critic.parameters()))


def test_target_critics_follow_by_ema():
    sac = _sac(tau=0.25)
    before = [p.detach().clone() for p in sac.target_critic.parameters()]
    with torch.no_grad():
        for p in sac.critic.parameters():
            p.add_(1.0)
    online = [p.detach().clone() for p in sac.critic.parameters()]
    sac.after_step()
    for old, new, src in zip(before, sac.target_critic.parameters(), online):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * src)


@pytest.mark.parametrize("target_entropy, grows", [(5.0, True), (-20.0, False)])
def test_alpha_moves_towards_the_target_entropy(target_entropy, grows):
    """Entropy below the target (5 nats per dim is above any tanh-Gaussian) raises alpha; above it lowers it."""
    sac = _sac(target_entropy=target_entropy)
    alpha0 = float(sac.alpha())
    opt = torch.optim.Adam([sac.log_alpha], lr=0.1)
    actor_loss, alpha_loss, metrics = sac.actor_loss(torch.randn(16, tiny_learner_config().model.feat))
    opt.zero_grad()
    alpha_loss.backward()
    opt.step()
    assert (float(sac.alpha()) > alpha0) == grows
    assert float(metrics["ac/alpha"]) == pytest.approx(alpha0)


def test_actor_loss_trains_only_the_actor():
    sac = _sac()
    feat = torch.randn(8, tiny_learner_config().model.feat, requires_grad=True)
    actor_loss, alpha_loss, _ = sac.actor_loss(feat)
    (actor_loss + alpha_loss).backward()
    assert all(p.grad is None for p in sac.critic.parameters())
    assert feat.grad is None  # features are detached: the actor never trains the world model
    assert sum(float(p.grad.abs().sum()) for p in sac.actor.parameters()) > 0
    fixed = _sac(target_entropy=None)
    assert not fixed.learns_alpha and float(fixed.actor_loss(feat)[1]) == 0.0


def test_sac_refuses_discrete_actions_and_bad_settings():
    with pytest.raises(ValueError, match="continuous"):
        LatentSAC(tiny_learner_config().model, BehaviorConfig(kind="sac"), action_dim=3, discrete=True)
    with pytest.raises(ConfigError, match="tau"):
        from_dict(LearnerConfig, {"behavior": {"kind": "sac", "sac": {"tau": 0.0}}})
    with pytest.raises(ConfigError, match="behavior.kind"):
        from_dict(LearnerConfig, {"behavior": {"kind": "dreamer"}})


@pytest.mark.parametrize("to_model", [True, False])
def test_critic_gradient_reaches_the_world_model_only_when_enabled(to_model):
    """With every world-model loss weighted 0, only the critic loss can move the world model."""
    zero = {f"objective.dynamics.{k}": 0.0 for k in ("kl_scale", "reward_scale", "cont_scale")}
    zero.update({"objective.core.contrastive_scale": 0.0, "objective.core.inverse_dynamics_scale": 0.0})
    cfg = tiny_learner_config("core", **zero, **{"behavior.kind": "sac",
                                                 "behavior.sac.critic_grad_to_model": to_model})
    learner = Learner(cfg, Spaces(action_dim=1))
    before = [p.detach().clone() for p in learner.wm_params]
    metrics = learner.update(synthetic_batch())
    moved = [not torch.equal(x, y.detach()) for x, y in zip(before, learner.wm_params)]
    assert (metrics["opt/model_grad_norm"] > 0) == to_model
    assert metrics["opt/critic_grad_norm"] > 0 and metrics["loss/critic"] > 0
    encoder = [m for m, (name, _) in zip(moved, learner.objective.named_parameters()) if name.startswith("wm.encoder")]
    assert any(encoder) == to_model and any(moved) == to_model


def _params(learner: Learner) -> list[torch.Tensor]:
    return [t.detach().clone() for t in (*learner.objective.state_dict().values(), *learner.ac.state_dict().values())]


def test_core_sac_learner_updates_and_restores_exactly(tmp_path):
    cfg = tiny_learner_config("core", **{"behavior.kind": "sac"})
    batches = [synthetic_batch(seed=i) for i in range(4)]
    a = Learner(cfg, Spaces(action_dim=1))
    assert isinstance(a.ac, LatentSAC)
    counts = a.param_counts()
    assert counts["critic"] == sum(p.numel() for p in a.ac.critic.parameters()) and counts["total"] == (
        counts["world_model"] + counts["actor"] + counts["critic"])
    for batch in batches[:2]:
        metrics = a.update(batch)
    assert set(metrics) == SAC_KEYS
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    a.save(tmp_path / "learner.pt")
    expected = [a.update(batch) for batch in batches[2:]]
    b = Learner(tiny_learner_config("core", seed=123, **{"behavior.kind": "sac"}), Spaces(action_dim=1))
    b.load(tmp_path / "learner.pt")
    assert b.updates == 2 and b.alpha_opt.state_dict()["state"]  # temperature optimiser restored too
    got = [b.update(batch) for batch in batches[2:]]
    assert got == expected  # bit-identical, including actor samples and augmentations
    for x, y in zip(_params(a), _params(b)):
        assert torch.equal(x, y)


def test_sac_policy_weights_load_into_the_acting_policy():
    cfg = tiny_learner_config("core", **{"behavior.kind": "sac"})
    learner = Learner(cfg, Spaces(action_dim=2))
    learner.update(synthetic_batch(action_dim=2))
    weights = learner.policy_weights()
    imagine = Learner(tiny_learner_config("core"), Spaces(action_dim=2)).policy_weights()
    assert {k: v.shape for k, v in weights.items()} == {k: v.shape for k, v in imagine.items()}
    policy = Policy(cfg.model, cfg.behavior, Spaces(action_dim=2), num_envs=3)
    policy.load(weights, version=1)
    image = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    for explore, first in ((True, True), (True, False), (False, False)):
        action = policy.act(image, np.full(3, first), explore=explore)
        assert action.shape == (3, 2) and action.dtype == np.float32
        assert np.all(np.abs(action) <= 1.0)


def test_sac_learner_compile_skips_imagination():
    learner = Learner(tiny_learner_config("core", **{"behavior.kind": "sac", "compile": True}), Spaces(action_dim=1))
    assert "imagine_step" not in vars(learner.ac)  # nothing to imagine; obs_step is compiled lazily


@pytest.mark.slow
def test_sac_learner_compiled_update_runs():
    learner = Learner(tiny_learner_config("core", **{"behavior.kind": "sac", "compile": True}), Spaces(action_dim=1))
    metrics = learner.update(synthetic_batch())
    assert all(math.isfinite(v) for v in metrics.values())
