"""Latent SAC: CoRe's behaviour learner (Srivastava et al. 2021 sec. 2.3; Haarnoja et al. 2018).

Actor and two Q critics read the posterior features of *replayed* transitions (no imagination):

    J_Q(theta_i)  = E[(Q_i(z_t, a_t) - sg(r_{t+1} + gamma c_{t+1} V_target(z_{t+1})))^2]    (CoRe eq. 3)
    V_target(z)   = E_{a ~ pi}[min_i Q_target_i(z, a) - alpha log pi(a | z)]                 (CoRe eq. 4)
    J_pi(phi)     = E_{a ~ pi}[alpha log pi(a | z_t) - min_i Q_i(z_t, a)]                    (CoRe eq. 5)
    J(alpha)      = -E[log alpha * sg(log pi(a | z_t) + H_target)],  H_target = -|A|         (SAC v2)

The target critics are EMA copies. With ``SACConfig.critic_grad_to_model`` the learner adds
``J_Q`` computed on non-detached features to the world-model loss (CoRe appendix C.2); the actor
and alpha losses never reach the world model. Continuous actions only (tanh-Gaussian actor).
"""

from __future__ import annotations

import dataclasses

import math

import torch
from torch import Tensor, nn

from recore_dist.behavior.actor_critic import Actor, BehaviorConfig, frozen
from recore_dist.models.config import ModelConfig
from recore_dist.models.nets import mlp
from recore_dist.objectives.ema import ema_copy, ema_update

Transitions = dict[str, Tensor]


def replay_transitions(feat: Tensor, batch: dict[str, Tensor]) -> Transitions:
    """Consecutive-step transitions of a replay batch, flattened to ``N = B * (T - 1)`` rows.

    Row ``t`` of a ``SequenceChunk`` holds ``o_t``, the reward that arrived *with* ``o_t`` and the
    action chosen *at* ``o_t``. So ``(feat_t, a_t)`` earns ``reward[:, t+1]``, lands in
    ``feat[:, t+1]``, ends the episode if ``is_terminal[:, t+1]``, and is no transition at all when
    ``is_first[:, t+1]`` (a new episode starts there).

    Args:
        feat: ``[B, T, F]`` posterior features (detach them unless the critic should train the model).
        batch: replay tensors ``action [B, T, A]``, ``reward``, ``is_first``, ``is_terminal`` ``[B, T]``.

    Returns:
        ``feat [N, F]``, ``action [N, A]``, ``reward [N]``, ``cont [N]`` (1 - terminal),
        ``next_feat [N, F]`` (detached) and ``valid [N]`` (float mask).
    """
    return {"feat": feat[:, :-1].flatten(0, 1),
            "action": batch["action"][:, :-1].flatten(0, 1).float(),
            "reward": batch["reward"][:, 1:].flatten().float(),
            "cont": (~batch["is_terminal"][:, 1:]).flatten().float(),
            "next_feat": feat[:, 1:].flatten(0, 1).detach(),
            "valid": (~batch["is_first"][:, 1:]).flatten().float()}


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


class TwinQ(nn.Module):
    """Two independent Q networks on ``[feat, action]``; ``forward`` stacks them ``[2, N]``."""

    def __init__(self, model: ModelConfig, action_dim: int):
        super().__init__()
        self.q1 = mlp(model.feat + action_dim, model.hidden, model.mlp_layers, 1, float32_out=True)
        self.q2 = mlp(model.feat + action_dim, model.hidden, model.mlp_layers, 1, float32_out=True)

    def forward(self, feat: Tensor, action: Tensor) -> Tensor:
        x = torch.cat([feat, action.to(feat.dtype)], -1)
        return torch.stack([self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)]).float()


class LatentSAC(nn.Module):
    """Actor, twin critics, their EMA targets and the learned temperature ``alpha``.

    ``actor`` is the same ``Actor`` as the imagination learner's, so ``Learner.policy_weights()``
    exports identical ``actor.*`` tensors and the acting ``Policy`` loads them unchanged.
    """

    def __init__(self, model: ModelConfig, cfg: BehaviorConfig, *, action_dim: int, discrete: bool):
        super().__init__()
        if discrete:
            raise ValueError("behavior.kind=sac supports continuous actions only (got a discrete action space); "
                             "use behavior.kind=imagine")
        self.cfg, self.sac = cfg, cfg.sac
        self.action_dim = action_dim
        # kind="sac" so ``actor_dist: auto`` resolves to SAC's tanh-squashed Gaussian, as in the Policy.
        self.actor = Actor(model, dataclasses.replace(cfg, kind="sac"), action_dim=action_dim, discrete=False)
        self.critic = TwinQ(model, action_dim)
        self.target_critic = ema_copy(self.critic)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.sac.alpha_init)))
        target = cfg.sac.target_entropy
        self.target_entropy = None if target is None else target * action_dim

    @property
    def learns_alpha(self) -> bool:
        return self.target_entropy is not None

    def alpha(self) -> Tensor:
        return self.log_alpha.detach().exp()

    @torch.no_grad()
    def target(self, reward: Tensor, cont: Tensor, next_feat: Tensor) -> Tensor:
        """``r + gamma * cont * (min_i Q_target_i(z', a') - alpha log pi(a' | z'))``, ``a' ~ pi(z')`` -> ``[N]``."""
        dist = self.actor(next_feat)
        action, raw = dist.sample()
        next_q = self.target_critic(next_feat, action).min(0).values  # [N]
        soft_value = next_q - self.alpha() * dist.log_prob(raw)
        return reward + self.cfg.discount * cont * soft_value

    def critic_loss(self, tr: Transitions) -> tuple[Tensor, dict[str, Tensor]]:
        """Sum over both critics of the mean squared Bellman error over valid transitions (eq. 3).

        Gradients reach ``tr["feat"]`` (and through it the world model) unless it was detached.
        """
        target = self.target(tr["reward"], tr["cont"], tr["next_feat"])  # [N]
        q = self.critic(tr["feat"], tr["action"])  # [2, N]
        loss = masked_mean((q - target).square().sum(0), tr["valid"])
        metrics = {"ac/q": masked_mean(q.detach().mean(0), tr["valid"]),
                   "ac/target_q": masked_mean(target, tr["valid"])}
        return loss, metrics

    def actor_loss(self, feat: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Actor loss (eq. 5) and temperature loss on features ``[N, F]`` (detached inside).

        Returns:
            ``(actor_loss, alpha_loss, metrics)``; the critics get no gradient from either.
        """
        feat = feat.detach()
        dist = self.actor(feat)
        action, raw = dist.sample()  # reparameterised: raw = mean + std * eps
        log_prob = dist.log_prob(raw)  # [N]
        with frozen(self.critic):
            q = self.critic(feat, action).min(0).values  # [N]
        alpha = self.alpha()
        actor_loss = (alpha * log_prob - q).mean()
        if self.learns_alpha:
            alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        else:
            alpha_loss = torch.zeros((), device=feat.device)
        metrics = {"ac/entropy": -log_prob.detach().mean(), "ac/alpha": alpha, "ac/actor_q": q.detach().mean()}
        return actor_loss, alpha_loss, metrics

    def after_step(self) -> None:
        ema_update(self.target_critic, self.critic, self.sac.tau)

