"""CoRe objective: two-sided InfoNCE against a hand computation, prior-state prediction, inverse dynamics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from recore_dist.learner import Learner
from recore_dist.models.world_model import Spaces
from recore_dist.objectives import DynamicsConfig
from recore_dist.objectives.contrastive import info_nce_two_sided
from recore_dist.objectives.core import CoRe, CoReConfig, inverse_dynamics_pairs
from tests.learner_utils import synthetic_batch, tiny_learner_config

CORE_KEYS = {"loss/kl", "loss/reward", "loss/cont", "loss/contrastive", "loss/inverse_dynamics", "wm/kl",
             "wm/prior_entropy", "wm/post_entropy", "wm/contrastive_acc", "wm/inverse_temperature",
             "wm/contrastive_chance", "wm/reward_mse"}


def _hand_two_sided(x, y, lam, negatives, valid, normalize):
    """Eq. 1 with explicit loops: both directions, averaged over the anchors."""
    b, t, _ = x.shape
    if normalize:
        x, y = x / x.norm(dim=-1, keepdim=True), y / y.norm(dim=-1, keepdim=True)
    pairs = [(i, s) for i in range(b) for s in range(t)]
    total, count = 0.0, 0
    for i, s in pairs:
        if valid is not None and not valid[i][s]:
            continue
        cands = [(j, r) for j, r in pairs if negatives == "batch" or j == i]
        pos = lam * float(x[i, s] @ y[i, s])
        x_to_y = -pos + math.log(sum(math.exp(lam * float(x[i, s] @ y[j, r])) for j, r in cands))
        y_to_x = -pos + math.log(sum(math.exp(lam * float(x[j, r] @ y[i, s])) for j, r in cands))
        total += 0.5 * (x_to_y + y_to_x)
        count += 1
    return total / count


@pytest.mark.parametrize("negatives", ["batch", "sequence"])
@pytest.mark.parametrize("normalize", [True, False])
def test_two_sided_info_nce_matches_hand_computation(negatives, normalize):
    torch.manual_seed(0)
    x, y = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    lam = 3.0 if normalize else 0.7
    valid = torch.ones(3, 4, dtype=torch.bool)
    valid[1, 0] = valid[2, 3] = False
    for mask in (None, valid):
        loss, _ = info_nce_two_sided(x, y, lam, negatives=negatives, valid=mask, normalize=normalize)
        want = _hand_two_sided(x, y, lam, negatives, None if mask is None else mask.tolist(), normalize)
        assert float(loss) == pytest.approx(want, rel=1e-5)


def test_two_sided_info_nce_is_not_one_sided():
    """An asymmetric case: the y -> x direction differs from x -> y, and both are counted."""
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    y = torch.tensor([[[1.0, 0.0], [1.0, 0.2]]])
    loss, _ = info_nce_two_sided(x, y, 2.0, normalize=False)
    s = 2.0 * (x[0] @ y[0].T)  # [2, 2]: s[n, m] = lam <x_n, y_m>
    x_to_y = (-s.diag() + s.logsumexp(1)).mean()
    y_to_x = (-s.diag() + s.logsumexp(0)).mean()
    assert float(x_to_y) != pytest.approx(float(y_to_x), rel=1e-3)
    assert float(loss) == pytest.approx(float(0.5 * (x_to_y + y_to_x)), rel=1e-6)


def test_sequence_negatives_ignore_other_sequences():
    torch.manual_seed(1)
    x = torch.randn(2, 5, 4)
    y = torch.randn(2, 5, 4)
    only_first = torch.zeros(2, 5, dtype=torch.bool)
    only_first[0] = True  # anchors from sequence 0 only
    y_other = y.clone()
    y_other[1] = torch.randn(5, 4)  # change every prediction of sequence 1
    seq = [float(info_nce_two_sided(x, v, 5.0, negatives="sequence", valid=only_first)[0]) for v in (y, y_other)]
    batch = [float(info_nce_two_sided(x, v, 5.0, negatives="batch", valid=only_first)[0]) for v in (y, y_other)]
    assert seq[0] == pytest.approx(seq[1], abs=1e-7)  # sequence 1 never competes
    assert abs(batch[0] - batch[1]) > 1e-3  # in batch mode it does
    x.requires_grad_(True)
    info_nce_two_sided(x, y, 5.0, negatives="sequence", valid=only_first)[0].backward()
    assert float(x.grad[1].abs().max()) == 0.0 and float(x.grad[0].abs().max()) > 0.0


def test_two_sided_info_nce_perfect_pairs_and_bad_inputs():
    eye = torch.eye(6).view(2, 3, 6)
    loss, acc = info_nce_two_sided(eye, eye, 50.0)
    assert float(acc) == 1.0 and float(loss) < 1e-6
    with pytest.raises(ValueError, match="matching"):
        info_nce_two_sided(torch.randn(2, 3, 4), torch.randn(2, 4, 4), 1.0)
    with pytest.raises(ValueError, match="negatives"):
        info_nce_two_sided(eye, eye, 1.0, negatives="episode")


def _objective(cfg: CoReConfig | None = None, spaces: Spaces | None = None,
               dynamics: DynamicsConfig | None = None) -> CoRe:
    torch.manual_seed(0)
    return CoRe(tiny_learner_config("core").model, spaces or Spaces(action_dim=1), dynamics or DynamicsConfig(),
                cfg or CoReConfig())


def _tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    out = {k: torch.as_tensor(v) for k, v in batch.items()}
    for key in ("is_first", "is_last", "is_terminal"):
        out[key] = out[key].bool()
    return out


def _grad_norm(module: nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


def test_core_forward_terms_and_contrastive_gradients():
    obj = _objective()
    loss, metrics, post = obj(_tensors(synthetic_batch()))
    assert set(metrics) == CORE_KEYS
    assert math.isfinite(float(loss.detach())) and all(math.isfinite(float(v.detach())) for v in metrics.values())
    assert post["deter"].shape[:2] == (4, 8)
    metrics["loss/contrastive"].backward()
    for name, module in (("encoder", obj.wm.encoder), ("prior_net", obj.wm.rssm.prior_net),
                         ("gru", obj.wm.rssm.gru), ("g head", obj.prediction),
                         ("x projection", obj.embed_projection), ("temperature", obj.temperature)):
        assert _grad_norm(module) > 0, name
    assert _grad_norm(obj.inverse_dynamics) == 0  # a separate term


def test_prediction_reads_the_prior_not_the_posterior():
    """From the prior, the contrastive loss trains the prior network; from the posterior it cannot
    (the prior then only enters the KL)."""
    for predict_from, reaches_prior in (("prior", True), ("posterior", False)):
        obj = _objective(CoReConfig(predict_from=predict_from))
        _, metrics, _ = obj(_tensors(synthetic_batch()))
        metrics["loss/contrastive"].backward()
        assert (_grad_norm(obj.wm.rssm.prior_net) > 0) == reaches_prior, predict_from


def test_inverse_dynamics_pairs_follow_the_row_convention():
    embed = torch.tensor([[0.0, 1, 2, 3], [10, 11, 12, 13]])[..., None]  # [B=2, T=4, E=1]
    action = (embed + 0.5) / 20  # a_t chosen at o_t, so a_{t-1} = (e_{t-1} + 0.5) / 20, inside [-1, 1]
    is_first = torch.zeros(2, 4, dtype=torch.bool)
    is_first[:, 0] = True
    is_first[1, 2] = True  # new episode inside sequence 1
    inputs, target, valid = inverse_dynamics_pairs(embed, action, ~is_first)
    assert inputs.shape == (2, 3, 2) and target.shape == (2, 3, 1)
    assert inputs[1, 2].tolist() == [12.0, 13.0] and target[1, 2].tolist() == pytest.approx([12.5 / 20])
    assert valid.tolist() == [[1, 1, 1], [1, 0, 1]]
    # an oracle reading a_{t-1} off e_{t-1} has zero loss; one reading a_t off e_t does not
    obj = _objective()
    batch = {"action": action.clone(), "is_first": is_first}
    batch["action"][1, 1] = 0.99  # the action into the masked transition (11 -> 12) is ignored
    for weight, zero in (([1.0, 0.0], True), ([0.0, 1.0], False)):
        oracle = nn.Linear(2, 1)
        with torch.no_grad():
            oracle.weight.copy_(torch.tensor([weight]) / 20)
            oracle.bias.fill_(0.5 / 20)
        obj.inverse_dynamics = nn.Sequential(oracle, _Atanh())  # the loss applies tanh to the output
        loss = float(obj.inverse_dynamics_loss(embed, batch, ~is_first))
        assert (loss < 1e-10) == zero, (weight, loss)


class _Atanh(nn.Module):
    def forward(self, x):
        return torch.atanh(x)


def test_inverse_dynamics_reads_observations_not_the_action_carrying_state():
    """h_t is computed from a_{t-1}: an inverse-dynamics input built from it would hand the target
    over. The head reads encoder embeddings only, so changing the actions of a batch (same
    frames) leaves its predictions unchanged, while the posterior features do change."""
    torch.manual_seed(0)
    obj = _objective(spaces=Spaces(action_dim=2))
    obj.eval()
    batch = synthetic_batch(action_dim=2, seed=3)
    seen = []
    hook = obj.inverse_dynamics.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    other = dict(batch, action=np.ascontiguousarray(-batch["action"][:, ::-1]))
    with torch.no_grad():
        for b in (batch, other):
            torch.manual_seed(2)  # the same random shifts
            obj(_tensors(b))
    hook.remove()
    torch.testing.assert_close(seen[0], seen[1])
    post = [obj.wm.observe(obj.wm.embed(_tensors(b)), _tensors(b)["action"], _tensors(b)["is_first"])[0]["deter"]
            for b in (batch, other)]
    assert not torch.allclose(post[0], post[1])


def test_window_row_zero_is_no_anchor_and_carries_no_loss():
    """Row 0 of every window starts from the zero state: it is not an anchor (ml-core drops t = 0)
    and its KL / reward do not count. Changing row 0's reward leaves the loss unchanged; changing
    row 1's does not."""
    from recore_dist.objectives.core import anchor_rows

    is_first = torch.zeros(2, 5, dtype=torch.bool)
    is_first[1, 3] = True
    assert anchor_rows(is_first).tolist() == [[False, True, True, True, True], [False, True, True, False, True]]
    obj = _objective(dynamics=DynamicsConfig(reward_head="mse"))  # a zero-init two-hot head scores log K for any target
    batch = synthetic_batch(seed=5)
    batch["is_first"][:] = False  # windows cut from the middle of episodes
    losses = []
    for row in (None, 0, 1):
        b = {k: v.copy() for k, v in batch.items()}
        if row is not None:
            b["reward"][:, row] += 7.0
        torch.manual_seed(1)
        losses.append(float(obj(_tensors(b))[1]["loss/reward"]))
    assert losses[1] == pytest.approx(losses[0], rel=1e-6) and abs(losses[2] - losses[0]) > 1e-3


def test_inverse_dynamics_discrete_cross_entropy_and_gradients():
    obj = _objective(spaces=Spaces(action_dim=3, discrete=True))
    batch = synthetic_batch(action_dim=3)
    batch["action"] = np.eye(3, dtype=np.float32)[np.random.default_rng(0).integers(0, 3, (4, 8))]
    loss, metrics, _ = obj(_tensors(batch))
    assert math.isfinite(float(loss))
    assert 0.5 < float(metrics["loss/inverse_dynamics"]) < 3.0  # ~log(3) at init
    metrics["loss/inverse_dynamics"].backward()
    assert _grad_norm(obj.inverse_dynamics) > 0 and _grad_norm(obj.wm.encoder) > 0


def test_augmentation_is_one_shift_per_sequence():
    obj = _objective()
    batch = synthetic_batch()
    batch["image"][:] = batch["image"][:, :1]  # every frame of a sequence the same
    torch.manual_seed(3)
    images = obj.images(torch.as_tensor(batch["image"]))  # [B, T, C, H, W]
    raw = obj.wm.images(torch.as_tensor(batch["image"]))
    assert torch.equal(images, images[:, :1].expand_as(images))  # same shift at every step
    assert not torch.equal(images, raw)
    assert torch.equal(_objective(CoReConfig(augment=False)).images(torch.as_tensor(batch["image"])), raw)


@pytest.mark.parametrize("overrides", [{"objective.core.negatives": "sequence"},
                                       {"objective.core.prior_sample": "mode", "model.classes": 0},
                                       {"objective.core.augment": False, "objective.core.skip_first": False}])
def test_core_learner_options_update(overrides):
    learner = Learner(tiny_learner_config("core", **overrides), Spaces(action_dim=1))
    metrics = learner.update(synthetic_batch())
    assert CORE_KEYS <= set(metrics) and all(math.isfinite(v) for v in metrics.values())



def test_core_defaults_follow_ml_core_and_survive_a_save_and_reload():
    """``core`` as apple/ml-core's DCS config: 64 Gaussian latents, KL 0.01 / balance 0.5 / free
    1.0, latent SAC with actor / critic Adam 1e-3 and the critic's gradients into the model,
    inverse temperature softplus(1) with its own rate 2e-3, world-model clip 10; the resolved
    config reloads to itself (a resumed run and every acting Policy build the same model)."""
    from recore_dist import config as config_lib
    from recore_dist.learner import LearnerConfig

    cfg = tiny_learner_config("core")
    assert cfg.model.classes == 0 and cfg.model.stoch == 64
    assert cfg.behavior.kind == "sac" and cfg.actor_opt.lr == 1e-3 and cfg.critic_opt.lr == 1e-3
    assert cfg.behavior.sac.critic_grad_to_model and cfg.behavior.sac.alpha_init == pytest.approx(0.1)
    assert config_lib.from_dict(LearnerConfig, config_lib.to_dict(cfg)) == cfg
    learner = Learner(cfg, Spaces(action_dim=1))
    dyn = learner.objective.dynamics
    assert (dyn.kl_scale, dyn.kl_balance, dyn.free_nats) == (0.01, 0.5, 1.0)
    assert learner.model_opt_cfg.clip == 10.0
    lam = learner.objective.temperature
    assert float(lam()) == pytest.approx(math.log1p(math.e))  # softplus(1)
    groups = learner.model_opt.param_groups
    temp_group = [g for g in groups if any(p is lam.log_value for p in g["params"])]
    assert len(temp_group) == 1 and temp_group[0]["lr"] == 2e-3 and len(temp_group[0]["params"]) == 1
    assert sum(len(g["params"]) for g in groups) == len(learner.wm_params)
    # the user's explicit choices win; other objectives keep DreamerV2's KL and imagination
    mine = tiny_learner_config("core", **{"objective.core.latents": "model", "behavior.kind": "imagine",
                                          "objective.dynamics.kl_scale": 0.5})
    assert mine.model.classes == 4 and mine.behavior.kind == "imagine" and mine.actor_opt.lr == 8e-5
    assert Learner(mine, Spaces(action_dim=1)).objective.dynamics.kl_scale == 0.5
    recore = Learner(tiny_learner_config("recore"), Spaces(action_dim=1))
    assert recore.cfg.behavior.kind == "imagine" and recore.model_opt_cfg.clip == 100.0
    assert (recore.objective.dynamics.kl_scale, recore.objective.dynamics.kl_balance) == (1.0, 0.8)
