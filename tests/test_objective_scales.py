"""Objectives that train (issue 13): loss scales, candidate sets, the bounded actor, float32 value
outputs, the continue head from the task, the goal on navigation, per-term gradient diagnostics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recore_dist import config as config_lib
from recore_dist.behavior import BehaviorConfig, Policy
from recore_dist.behavior.actor_critic import Actor, Critic, symlog
from recore_dist.behavior.distributions import BoundedNormal, TanhNormal
from recore_dist.learner import Learner
from recore_dist.models.config import ModelConfig
from recore_dist.models.heads import TargetDecoder
from recore_dist.models.world_model import Spaces
from recore_dist.objectives import OBJECTIVES
from recore_dist.objectives.contrastive import candidate_count, info_nce, near_in_time
from recore_dist.runtime.config import TrainConfig
from tests.learner_utils import TINY_MODEL, synthetic_batch, tiny_learner_config

PROPRIO = 5


# -- candidate sets --------------------------------------------------------------------------------
def test_near_in_time_masks_only_close_frames_of_the_same_sequence():
    mask = near_in_time(2, 4, 2)  # rows: (b0,t0..t3), (b1,t0..t3); |dt| == 1 excluded
    assert mask.shape == (8, 8)
    assert not mask.diagonal().any()
    assert mask[1].tolist() == [True, False, True, False, False, False, False, False]
    assert not mask[:4, 4:].any()  # other sequences are always candidates
    assert candidate_count(mask, 8) == pytest.approx(8 - 6 / 4)  # 1, 2, 2, 1 neighbours per sequence
    assert near_in_time(2, 4, 1) is None and candidate_count(None, 8) == 8.0


def test_info_nce_with_exclusions_matches_a_direct_computation():
    torch.manual_seed(0)
    q, k = torch.randn(8, 5), torch.randn(8, 5)
    mask = near_in_time(2, 4, 3)
    loss, acc = info_nce(q, k, 4.0, exclude=mask)
    qn, kn = torch.nn.functional.normalize(q, dim=-1), torch.nn.functional.normalize(k, dim=-1)
    want, hits = [], 0
    for i in range(8):
        keep = [j for j in range(8) if not mask[i, j]]
        logits = 4.0 * qn[i] @ kn[keep].T
        pos = keep.index(i)
        want.append(-logits[pos] + torch.logsumexp(logits, 0))
        hits += int(logits.argmax() == pos)
    assert float(loss) == pytest.approx(float(torch.stack(want).mean()), rel=1e-5)
    assert float(acc) == pytest.approx(hits / 8)


def test_contrastive_objectives_log_accuracy_beside_chance():
    for name, acc_key, chance_key in (("recore", "wm/contrastive_acc", "wm/contrastive_chance"),
                                      ("core", "wm/contrastive_acc", "wm/contrastive_chance"),
                                      ("coral", "wm/contrastive_acc_image", "wm/contrastive_chance_image")):
        learner = Learner(tiny_learner_config(name), Spaces(action_dim=1, proprio_dim=PROPRIO))
        batch = synthetic_batch()
        batch["proprio"] = np.zeros((4, 8, PROPRIO), np.float32)
        out = learner.update(batch)
        window = getattr(learner.cfg.objective, name).negative_window
        mask = near_in_time(4, 8, window)
        assert 0.0 <= out[acc_key] <= 1.0
        assert out[chance_key] == pytest.approx(1.0 / candidate_count(mask, 32), rel=1e-5), name


def test_hrssm_logs_its_normalised_latent_reconstruction_error():
    out = Learner(tiny_learner_config("hrssm"), Spaces(action_dim=1)).update(synthetic_batch())
    assert 0.0 <= out["wm/latent_recon_error"] <= 4.0
    assert out["wm/latent_recon_error"] == pytest.approx(2.0 - 2.0 * out["wm/latent_cos"], abs=1e-4)


# -- loss scales ------------------------------------------------------------------------------------
def test_decoder_losses_are_normalised_per_element():
    model = ModelConfig(**TINY_MODEL)
    decoder = TargetDecoder("depth", model, size=16, depth=4, max_depth=10.0)
    rng = np.random.default_rng(0)
    value = torch.as_tensor(rng.uniform(0.5, 9.5, (2, 3, 16, 16, 1)).astype(np.float32))
    target = decoder.target(value)  # [2, 3, 1, 16, 16]
    pixel_mean = target.mean((0, 1), keepdim=True).expand_as(target)  # each pixel's mean over the frames
    assert float(decoder.loss(pixel_mean, value).mean()) == pytest.approx(1.0, rel=1e-4)
    assert float(decoder.loss(target, value).mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(decoder.target_var) == pytest.approx(float(target.flatten(0, 1).var(0, unbiased=False).mean()),
                                                      rel=1e-5)  # a checkpointed buffer
    assert "target_var" in decoder.state_dict()


def test_default_weights_are_of_order_one():
    cfg = tiny_learner_config("recore")
    weights = (cfg.objective.recore.aux_scale, cfg.objective.recore.contrastive_scale, cfg.objective.recon.image_scale,
               cfg.objective.core.contrastive_scale, cfg.objective.hrssm.latent_recon_scale)
    assert all(0.1 <= w <= 10.0 for w in weights), weights
    out = Learner(cfg, Spaces(action_dim=1)).update(synthetic_batch())
    # An untrained decoder starts at tens of variances on this synthetic batch; the summed loss at
    # weight 100 started near 1e5 here.
    for key in ("loss/depth", "loss/contrastive", "loss/reward", "loss/kl"):
        assert 0.0 <= out[key] < 500.0, (key, out[key])
    assert out["opt/model_clipped"] in (0.0, 1.0)


# -- per-term gradient diagnostics ---------------------------------------------------------------------
def test_term_gradients_every_k_updates():
    learner = Learner(tiny_learner_config("recore", grad_diagnostics_every=2), Spaces(action_dim=1))
    first, second, third = (learner.update(synthetic_batch(seed=s)) for s in range(3))
    for term in ("contrastive", "kl", "reward", "depth"):
        assert f"grad/{term}" in first and f"grad/{term}" in third, term
    for term in ("contrastive", "reward", "depth"):  # KL may sit under its free nats; the reward head starts at 0
        assert third[f"grad/{term}"] > 0.0, term
    assert not any(k.startswith("grad/") for k in second)
    off = Learner(tiny_learner_config("recore", grad_diagnostics_every=0), Spaces(action_dim=1))
    assert not any(k.startswith("grad/") for k in off.update(synthetic_batch()))


def test_term_gradients_leave_the_update_unchanged():
    """The diagnostic backward passes keep the graph and do not touch parameter gradients."""
    learners = []
    for every in (1, 0):  # one after the other: each Learner seeds the global RNG the augmentations use
        learner = Learner(tiny_learner_config("recore", grad_diagnostics_every=every), Spaces(action_dim=1))
        for seed in range(2):
            learner.update(synthetic_batch(seed=seed))
        learners.append(learner)
    a, b = learners
    for (name, pa), pb in zip(a.objective.named_parameters(), b.objective.parameters()):
        torch.testing.assert_close(pa, pb, msg=name)


# -- the bounded actor ----------------------------------------------------------------------------------
def _saturated_actor(dist: str) -> Actor:
    model = ModelConfig(**TINY_MODEL)
    actor = Actor(model, BehaviorConfig(actor_dist=dist), action_dim=2, discrete=False)
    with torch.no_grad():
        actor.net[-1].weight.zero_()
        actor.net[-1].bias.copy_(torch.tensor([50.0, -50.0, -50.0, -50.0]))  # mean saturated, std at min
    return actor


def test_bounded_actor_entropy_is_bounded_below_by_construction():
    floor = 2 * (0.5 + 0.5 * math.log(2 * math.pi) + math.log(0.1))  # 2 dims at min_std 0.1
    feat = torch.randn(64, ModelConfig(**TINY_MODEL).feat)
    bounded = _saturated_actor("bounded_normal")(feat)
    assert isinstance(bounded, BoundedNormal)
    assert float(bounded.entropy().min()) >= floor - 1e-4
    action, raw = bounded.sample()
    assert float(action.abs().max()) <= 1.0 and torch.equal(action, raw.clamp(-1, 1))
    assert torch.allclose(bounded.mode(), torch.tensor([1.0, -1.0]).expand(64, 2))
    squashed = _saturated_actor("tanh_normal")(feat)  # the old parameterisation collapses
    assert isinstance(squashed, TanhNormal)
    assert float(squashed.entropy().mean()) < floor - 50.0


def test_actor_defaults_follow_dreamerv3():
    cfg = BehaviorConfig()
    assert cfg.continuous_dist == "bounded_normal" and cfg.target_entropy is None
    assert cfg.entropy_scale == pytest.approx(3e-4)
    assert BehaviorConfig(kind="sac").continuous_dist == "tanh_normal"


def test_learner_learns_the_entropy_scale_when_asked_and_checkpoints_it(tmp_path):
    cfg = tiny_learner_config("recore", **{"behavior.target_entropy": 1.4, "behavior.entropy_lr": 0.01})
    learner = Learner(cfg, Spaces(action_dim=1))
    start = float(learner.ac.log_entropy_scale.detach())
    for seed in range(3):
        learner.update(synthetic_batch(seed=seed))
    moved = float(learner.ac.log_entropy_scale.detach()) - start
    assert 0.0 < moved <= 3 * 0.01 * 1.05  # entropy (1.31 at init) below a target of 1.4 nats: up, ~lr per update
    learner.save(tmp_path / "l.pt")
    other = Learner(cfg, Spaces(action_dim=1))
    other.load(tmp_path / "l.pt")
    assert other.entropy_opt.state_dict()["state"][0]["step"] == 3


# -- float32 values under bf16 --------------------------------------------------------------------------
def test_critic_separates_values_one_unit_apart_near_300_under_bf16():
    torch.manual_seed(0)
    model = ModelConfig(**TINY_MODEL)
    critic = Critic(model, BehaviorConfig(critic="symlog_mse"))
    feat = torch.randn(2000, model.feat)
    with torch.no_grad():
        hidden = critic.net[:-1](feat)
        direction = torch.randn(hidden.shape[-1])
        spread = hidden @ direction
        direction /= spread.std()
        scale = (symlog(torch.tensor(310.0)) - symlog(torch.tensor(290.0))) / 4  # ~+-20 units around 300
        critic.net[-1].weight.copy_(scale * direction[None])
        critic.net[-1].bias.fill_(float(symlog(torch.tensor(300.0))))
        exact = critic.value(critic(feat))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = critic.value(critic(feat))
    assert 250 < float(exact.min()) and float(exact.max()) < 350
    assert float((fast - exact).abs().max()) < 0.5  # every value within half a return unit
    spaced = torch.sort(exact).indices[::20]  # ~100 states, ~0.4 units apart on average
    assert torch.all(torch.diff(fast[spaced]) > -0.5)  # their order survives bf16
    assert len(torch.unique(fast)) > 1500  # (a bf16 output layer gave ~70 distinct values)


def test_reward_and_continue_heads_output_float32_under_bf16():
    learner = Learner(tiny_learner_config("recore"), Spaces(action_dim=1))
    feat = torch.randn(7, learner.cfg.model.feat)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for head in (learner.wm.reward, learner.wm.cont, learner.ac.critic):
            assert head(feat).dtype == torch.float32
            assert head.net[-1].weight.dtype == torch.float32


# -- continue from the task -----------------------------------------------------------------------------
def test_continue_head_follows_the_task():
    batch = synthetic_batch()
    never = Learner(tiny_learner_config("recore"), Spaces(action_dim=1, terminates=False))
    out = never.update(batch)
    assert "loss/cont" not in out
    feat = torch.randn(3, never.cfg.model.feat)
    assert torch.equal(never.wm.continue_prob(feat), torch.ones(3))
    learned = Learner(tiny_learner_config("recore"), Spaces(action_dim=1, terminates=True))
    assert "loss/cont" in learned.update(batch)
    forced = Learner(tiny_learner_config("recore", **{"objective.dynamics.continue_head": "learn"}),
                     Spaces(action_dim=1, terminates=False))
    assert "loss/cont" in forced.update(batch)


def test_env_specs_say_whether_they_terminate():
    from recore_dist.envs.dmc import DMCEnv
    from recore_dist.envs.igibson import IGibsonPointNavEnv
    from recore_dist.envs.navigation import PointGoalNavEnv

    assert DMCEnv.terminates is False
    assert PointGoalNavEnv.terminates is True and IGibsonPointNavEnv.terminates is True


# -- navigation: the goal reaches the policy --------------------------------------------------------------
def test_nav_preset_encodes_the_goal():
    for preset in ("configs/nav_pointgoal.yaml", "configs/igibson_pointnav.yaml"):
        cfg = config_lib.load(TrainConfig, preset)
        assert cfg.learner.objective.modalities == ("image", "proprio"), preset
    assert cfg.env.name == "igibson:pointnav"
    dmc = config_lib.load(TrainConfig, "configs/bench_learn.yaml")
    assert dmc.learner.objective.modalities == ("image",)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_on_nav_acts_on_the_goal(name):
    cfg = tiny_learner_config(name, **{"objective.inputs": ["image", "proprio"]})
    spaces = Spaces(action_dim=2, proprio_dim=PROPRIO, terminates=True)
    learner = Learner(cfg, spaces)
    batch = synthetic_batch(action_dim=2)
    batch["proprio"] = np.random.default_rng(0).normal(size=(4, 8, PROPRIO)).astype(np.float32)
    batch["is_terminal"][:, -1] = True
    out = learner.update(batch)
    assert np.isfinite(out["loss/world_model"])
    policy = Policy(cfg.model, cfg.behavior, spaces, num_envs=2, modalities=cfg.objective.modalities)
    policy.load(learner.policy_weights(), 1)
    image = np.repeat(synthetic_batch()["image"][:1, 0], 2, axis=0)  # the same frame twice
    goals = np.array([[1.0, 0.0, 1.0, 0.0, 0.0], [6.0, 1.0, 0.0, 0.0, 0.0]], np.float32)  # far left vs near ahead
    action = policy.act({"image": image, "proprio": goals}, np.ones(2, bool), explore=False)
    assert not np.allclose(action[0], action[1], atol=1e-6), name
