"""Actor-critic: lambda-returns, action distributions, return normalisation, the acting policy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recore_dist.behavior import BehaviorConfig, Policy, lambda_returns, symexp, symlog
from recore_dist.behavior.actor_critic import ReturnNorm
from recore_dist.behavior.distributions import OneHotCategorical, TanhNormal
from recore_dist.learner import Learner
from recore_dist.models.config import ModelConfig
from recore_dist.models.world_model import Spaces
from tests.learner_utils import TINY_MODEL, synthetic_batch, tiny_learner_config


def test_lambda_returns_hand_checked():
    reward = torch.tensor([[1.0], [2.0]])
    cont = torch.tensor([[1.0], [0.5]])
    value = torch.tensor([[0.0], [3.0], [4.0]])
    g, lam = 0.9, 0.5
    r1 = 2.0 + g * 0.5 * 4.0  # R_1 = r_1 + g c_1 v_2 (R_2 = v_2)
    r0 = 1.0 + g * 1.0 * ((1 - lam) * 3.0 + lam * r1)
    out = lambda_returns(reward, cont, value, discount=g, lam=lam)
    assert torch.allclose(out, torch.tensor([[r0], [r1]]))


def test_lambda_returns_limits():
    torch.manual_seed(0)
    reward, cont, value = torch.rand(4, 3), torch.ones(4, 3), torch.rand(5, 3)
    td0 = lambda_returns(reward, cont, value, discount=0.9, lam=0.0)
    assert torch.allclose(td0, reward + 0.9 * value[1:])  # lambda = 0: one-step TD targets
    mc = lambda_returns(reward, cont, value, discount=1.0, lam=1.0)
    assert torch.allclose(mc[0], reward.sum(0) + value[-1])  # lambda = 1: Monte Carlo + bootstrap
    with pytest.raises(ValueError, match="H\\+1"):
        lambda_returns(reward, cont, value[:4], discount=0.9, lam=0.9)


def test_tanh_normal_log_prob_matches_torch():
    mean, std = torch.randn(5, 2), torch.rand(5, 2) + 0.2
    dist = TanhNormal(mean, std)
    action, raw = dist.sample()
    assert torch.allclose(action, torch.tanh(raw)) and float(action.abs().max()) < 1
    ref = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, std), [torch.distributions.TanhTransform()])
    assert torch.allclose(dist.log_prob(raw), ref.log_prob(action).sum(-1), atol=1e-4)
    est = torch.stack([TanhNormal(mean, std).entropy() for _ in range(4000)]).mean(0)
    mc = -torch.stack([ref.log_prob(ref.sample()).sum(-1) for _ in range(4000)]).mean(0)
    assert torch.allclose(est, mc, atol=0.1)


def test_categorical_unimix_and_one_hot():
    dist = OneHotCategorical(torch.tensor([[100.0, 0.0, 0.0]]), unimix=0.03)
    assert torch.allclose(dist.probs, torch.tensor([[0.98, 0.01, 0.01]]), atol=1e-4)
    action, index = dist.sample()
    assert action.shape == (1, 3) and float(action.sum()) == 1.0
    assert float(dist.log_prob(index)) == pytest.approx(math.log(float(dist.probs[0, int(index)])), rel=1e-5)


def test_symlog_roundtrip_and_return_norm():
    x = torch.tensor([-100.0, -1.0, 0.0, 0.5, 1000.0])
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-5)
    norm = ReturnNorm(decay=0.5)
    assert float(norm.update(torch.linspace(0, 0.1, 101))) == 1.0  # floored at 1
    scale = float(norm.update(torch.linspace(0, 100, 101)))
    assert scale == pytest.approx(0.5 * 0.1 * 0.9 + 0.5 * 90.0, rel=1e-3)


def test_behavior_config_validation():
    with pytest.raises(ValueError, match="horizon"):
        BehaviorConfig(horizon=0)
    with pytest.raises(ValueError, match="discount"):
        BehaviorConfig(discount=1.5)


@pytest.mark.parametrize("discrete", [False, True])
def test_actor_critic_update_both_action_kinds(discrete):
    learner = Learner(tiny_learner_config("recore"), Spaces(action_dim=3 if discrete else 1, discrete=discrete))
    batch = synthetic_batch(action_dim=3 if discrete else 1)
    if discrete:
        batch["action"] = np.eye(3, dtype=np.float32)[np.random.default_rng(0).integers(0, 3, (4, 8))]
    for _ in range(3):
        metrics = learner.update(batch)
    assert math.isfinite(metrics["loss/actor"]) and metrics["opt/actor_grad_norm"] > 0


def test_policy_from_learner_snapshot_matches_posterior():
    cfg = tiny_learner_config("recore")
    learner = Learner(cfg, Spaces(action_dim=1))
    policy = Policy(cfg.model, cfg.behavior, Spaces(action_dim=1), num_envs=4)
    policy.load(learner.policy_weights(), version=7)
    assert policy.version == 7
    batch = synthetic_batch()
    images, first = batch["image"][:, 0], batch["is_first"][:, 0]
    a1 = policy.act(images, first, explore=False)
    assert a1.shape == (4, 1) and a1.dtype == np.float32 and np.abs(a1).max() < 1
    # The policy's deterministic state equals the learner's posterior for the same inputs.
    with torch.no_grad():
        wm = learner.wm
        embed = wm.encode(wm.images(torch.as_tensor(batch["image"][:, :1])))
        post, _ = wm.observe(embed, torch.zeros(4, 1, 1), torch.ones(4, 1, dtype=torch.bool))
    assert torch.allclose(policy.state["deter"], post["deter"][:, 0], atol=1e-5)
    a2 = policy.act(batch["image"][:, 1], np.array([True, False, False, True]))
    assert a2.shape == (4, 1)
    bad = learner.policy_weights()
    bad.pop(next(iter(bad)))
    with pytest.raises(ValueError, match="missing"):
        policy.load(bad, 8)


def test_policy_refuses_wrong_shapes():
    cfg = tiny_learner_config("recore")
    weights = Learner(cfg, Spaces(action_dim=1)).policy_weights()
    other = ModelConfig(**{**TINY_MODEL, "deter": 48})
    policy = Policy(other, cfg.behavior, Spaces(action_dim=1), num_envs=1)
    with pytest.raises(ValueError, match="shape"):
        policy.load(weights, 1)


def test_entropy_scale_learned_sac_style():
    """With a target, the log entropy scale is a parameter stepped by its own Adam: up while the
    entropy is below target, down above it, about ``entropy_lr`` per update (no on/off switch)."""
    from recore_dist.behavior import ActorCritic

    model = ModelConfig(**TINY_MODEL)
    cfg = BehaviorConfig(target_entropy=0.0, entropy_scale=1e-3, entropy_lr=1e-2)
    ac = ActorCritic(model, cfg, action_dim=2, discrete=False)
    assert isinstance(ac.log_entropy_scale, torch.nn.Parameter)
    opt = torch.optim.Adam([ac.log_entropy_scale], lr=cfg.entropy_lr)
    start = float(ac.log_entropy_scale)

    def steps(entropy: float, n: int) -> list[float]:
        out = []
        for _ in range(n):
            opt.zero_grad()
            ac.entropy_scale_loss(torch.full((10,), entropy)).backward()
            opt.step()
            out.append(float(ac.log_entropy_scale))
        return out

    up = steps(-6.0, 20)  # below the target of 0 nats (2 dims)
    assert up[-1] > start and up[-1] - start <= 20 * cfg.entropy_lr * 1.01
    down = steps(6.0, 20)
    assert down[-1] < up[-1]
    fixed = ActorCritic(model, BehaviorConfig(entropy_scale=1e-3), action_dim=2, discrete=False)
    assert not isinstance(fixed.log_entropy_scale, torch.nn.Parameter)
    assert float(fixed.log_entropy_scale.exp()) == pytest.approx(1e-3)


def test_twohot_encoding_hand_checked():
    from recore_dist.behavior import twohot

    bins = torch.tensor([-1.0, 0.0, 1.0, 2.0])
    enc = twohot(torch.tensor([0.25, 2.0, -5.0, 1.0]), bins)
    expected = torch.tensor([[0.0, 0.75, 0.25, 0.0],  # between 0 and 1, nearer 0
                             [0.0, 0.0, 0.0, 1.0],  # the top bin
                             [1.0, 0.0, 0.0, 0.0],  # clamped to the bottom bin
                             [0.0, 0.0, 1.0, 0.0]])  # exactly on a bin
    torch.testing.assert_close(enc, expected)
    x = torch.linspace(-0.99, 1.99, 50)
    torch.testing.assert_close((twohot(x, bins) * bins).sum(-1), x)  # expected bin == x in range


@pytest.mark.parametrize("kind", ["symlog_mse", "twohot"])
def test_critic_fits_a_large_return(kind):
    """Both critics start at 0 and fit a return of 150; twohot reads it out precisely."""
    from recore_dist.behavior.actor_critic import Critic

    torch.manual_seed(0)
    critic = Critic(ModelConfig(**TINY_MODEL), BehaviorConfig(critic=kind))
    feat = torch.randn(64, ModelConfig(**TINY_MODEL).feat)
    assert float(critic.value(critic(feat)).abs().max()) < 1e-5  # zero-initialised output layer
    target = torch.full((64,), 150.0)
    opt = torch.optim.Adam(critic.parameters(), lr=3e-3)
    for _ in range(300):
        opt.zero_grad()
        critic.loss(critic(feat), target).mean().backward()
        opt.step()
    assert float(critic.value(critic(feat)).mean()) == pytest.approx(150.0, rel=0.02)
    assert set(critic.state_dict()) == {k for k in critic.state_dict() if k.startswith("net.")}  # bins not saved


def test_twohot_critic_trains_in_the_learner():
    cfg = tiny_learner_config(**{"behavior.critic": "twohot", "behavior.critic_bins": 41})
    learner = Learner(cfg, Spaces(action_dim=1))
    metrics = learner.update(synthetic_batch())
    assert all(math.isfinite(v) for v in metrics.values()) and metrics["opt/critic_grad_norm"] > 0
    assert learner.ac.critic.net[-1].out_features == 41


@pytest.mark.parametrize("target", [-1.0, 1.5])
def test_unreachable_target_entropy_is_refused_with_the_range(target):
    """The bounded Gaussian's entropy per dimension lies in [-0.884, 1.419] at stds 0.1..1: SAC's -1
    would only ever shrink the scale, so it is refused with the range named."""
    with pytest.raises(ValueError, match=r"cannot be reached.*\(-0\.884, 1\.419\)"):
        BehaviorConfig(target_entropy=target)
    low, high = BehaviorConfig().entropy_range()
    assert low == pytest.approx(-0.8836, abs=1e-3) and high == pytest.approx(1.4189, abs=1e-3)
    assert BehaviorConfig(target_entropy=-0.5).target_entropy == -0.5
    assert BehaviorConfig(kind="sac", target_entropy=-1.0).target_entropy == -1.0  # SAC's own target lives in sac.*
    assert BehaviorConfig(actor_dist="tanh_normal").entropy_range()[1] == pytest.approx(0.6931, abs=1e-4)
