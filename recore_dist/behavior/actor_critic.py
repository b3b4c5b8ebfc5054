"""Actor-critic learned in the world model's imagination (DreamerV2 sec. 3; DreamerV3 sec. 3).

From every posterior state of the batch (``B*T`` starts) the actor imagines ``horizon`` steps
with the RSSM prior, *without gradients* through the model: the actor is trained with REINFORCE
on normalised advantages (DreamerV3), so imagination is a cheap batched forward pass. Values are
``lambda``-returns bootstrapped from a slow (EMA) critic; the critic regresses them in symlog
space; returns are normalised by an EMA of their 5-95 percentile range, floored at 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Literal

import torch
from torch import Tensor, nn

from recore_dist import parallel
from recore_dist.behavior.distributions import BoundedNormal, OneHotCategorical, TanhNormal
from recore_dist.models.config import ModelConfig
from recore_dist.models.nets import mlp, zero_init_
from recore_dist.models.rssm import State
from recore_dist.models.twohot import symexp, symexp_bins, symlog, twohot_loss, twohot_mean
from recore_dist.models.world_model import WorldModel
from recore_dist.objectives.ema import ema_copy, ema_update


@dataclasses.dataclass
class SACConfig:
    """Latent SAC (``BehaviorConfig.kind: sac``; CoRe sec. 2.3, Haarnoja et al. 2018).

    Learning rates come from ``learner.actor_opt`` / ``learner.critic_opt``; CoRe's Table 5 lists
    3e-4 (model) and 1e-3 (actor, critic), so a CoRe run sets both to 1e-3. The discount is
    ``BehaviorConfig.discount``. CoRe bounds the actor's log-std to [-10, 2]; the shared ``Actor``
    keeps ``std`` in ``[min_std, max_std]`` instead (the acting ``Policy`` reads the same config).
    """

    tau: float = 0.005
    """EMA rate of the target critics per update (CoRe Table 5: 0.005; SAC: 0.005)."""
    alpha_init: float = 0.1
    """Initial entropy temperature alpha (apple/ml-core's DCS config: initial log alpha -2.3)."""
    alpha_lr: float = 1e-3
    """Adam learning rate of ``log(alpha)`` (Table 5 names none; CoRe's actor / critic rate)."""
    target_entropy: float | None = -1.0
    """Target policy entropy per action dimension, so ``-|A|`` in total (CoRe Table 5, ml-core,
    SAC); ``None`` keeps alpha fixed at ``alpha_init``. SAC's tanh-squashed actor can reach any
    entropy below ``log 2`` per dimension (uniform on [-1, 1])."""
    critic_grad_to_model: bool = True
    """The critic loss also trains the world model (its features are not detached): CoRe sec. 2.3
    and appendix C.2 (better on 3 of 6 DMC tasks, comparable on 2)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"sac.tau={self.tau} must be in (0, 1]")
        if self.alpha_init <= 0 or self.alpha_lr <= 0:
            raise ValueError(f"sac.alpha_init={self.alpha_init} and sac.alpha_lr={self.alpha_lr} must be > 0")


@dataclasses.dataclass
class BehaviorConfig:
    """Imagination and actor-critic settings."""

    kind: Literal["auto", "imagine", "sac"] = "auto"
    """``imagine``: actor-critic on imagined rollouts (DreamerV2/V3, the fields below); ``sac``:
    latent SAC on replayed posterior features (CoRe sec. 2.3; settings in ``sac``). Both export
    the same ``actor.*`` weights to the acting ``Policy``. ``auto`` (default): ``sac`` for the
    ``core`` objective (as its authors ran it, with ml-core's actor / critic rates 1e-3), else
    ``imagine``; ``LearnerConfig`` resolves it."""
    sac: SACConfig = dataclasses.field(default_factory=SACConfig)
    """Settings used when ``kind`` is ``sac``."""
    horizon: int = 15
    """Imagined steps from each start state (DreamerV2/V3: 15)."""
    discount: float = 0.997
    """Discount per env step (DreamerV3: 1 - 1/333). Navigation's +10 for success lies 120-240
    steps away on the median start-goal pair: worth 3.0 at 0.99 and 7.0 at 0.997."""
    return_lambda: float = 0.95
    """Lambda of the lambda-returns (DreamerV2/V3: 0.95)."""
    entropy_scale: float = 3e-4
    """Actor entropy bonus on normalised advantages (DreamerV3: fixed 3e-4). With
    ``target_entropy`` set it is only the initial value of a learned scale."""
    target_entropy: float | None = None
    """``None`` (default, DreamerV3): the entropy scale stays fixed; the bounded actor's entropy
    cannot collapse (``actor_dist``). A number (per action dimension; it must lie inside the
    actor distribution's reachable range, ``entropy_range``: for the bounded Gaussian
    ``[0.5 + log(sqrt(2 pi) min_std), 0.5 + log(sqrt(2 pi) max_std)]``, i.e. [-0.88, 1.42] at
    the default stds, so SAC's -1 is out of reach): the scale's log
    is learned by its own Adam on ``log_scale * (entropy - target * A)`` (Haarnoja et al. 2018,
    sec. 5), a step of about ``entropy_lr`` per update whatever the gap, never an on/off switch.
    (The earlier rule moved the log-scale 0.1 per nat per update and switched e^10-fold within
    ~100 updates.)"""
    entropy_lr: float = 3e-4
    """Adam learning rate of the learned log entropy scale (SAC's temperature rate, Haarnoja et al.
    2018, Table 1: 3e-4; e^1 of change takes ~3,000 updates)."""
    actor_dist: Literal["auto", "bounded_normal", "tanh_normal"] = "auto"
    """Continuous actor distribution. ``bounded_normal`` (DreamerV3): Normal with a tanh-bounded
    mean and std in [min_std, max_std], sampled then clipped to [-1, 1]; its entropy is bounded
    below. ``tanh_normal``: tanh-squashed Gaussian with an unbounded pre-tanh mean (SAC's; its
    entropy falls without bound as actions saturate). ``auto``: bounded_normal for ``imagine``,
    tanh_normal for ``sac`` (the CoRe/SAC parameterisation its temperature target assumes)."""
    slow_critic_rate: float = 0.02
    """EMA rate of the slow critic that bootstraps returns (DreamerV3: 0.02)."""
    return_norm_decay: float = 0.99
    """EMA decay of the 5-95 percentile return range (DreamerV3: 0.99)."""
    min_std: float = 0.1
    """Minimum std of the continuous actor (DreamerV3: 0.1)."""
    max_std: float = 1.0
    """Maximum std of the continuous actor (DreamerV3: 1.0)."""
    unimix: float = 0.01
    """Uniform mixture of discrete actions (DreamerV3: 1%)."""
    actor_grad: Literal["auto", "dynamics", "reinforce"] = "reinforce"
    """Actor gradient: ``reinforce`` uses score-function gradients on normalised advantages
    (DreamerV3, for all action spaces; imagination then runs without autograd, ~25% cheaper per
    update); ``dynamics`` backpropagates returns through the imagined dynamics (DreamerV2's choice
    for continuous control); ``auto``: dynamics for continuous actions, reinforce for discrete.
    Default reinforce: on cartpole-swingup from pixels, dynamics gradients through a young world
    model collapsed the policy to a deterministic one within 1,500 updates (docs/BENCHMARKS.md)."""

    critic: Literal["symlog_mse", "twohot"] = "twohot"
    """Critic output and loss. ``twohot`` (default, DreamerV3): a softmax over ``critic_bins``
    bins at ``symexp(linspace(-20, 20, K))``, trained by cross-entropy on the two-hot encoding
    of the return and read out as the expected bin in return units (``models/twohot.py``, as
    danijar/dreamerv3's current ``symexp_twohot``). ``symlog_mse`` regresses ``symlog(return)``:
    cheap, but coarse at large returns (0.05 in symlog space is ~7 units at a return of 150)."""
    critic_bins: int = 255
    """Bins of the ``twohot`` critic (DreamerV3: 255)."""

    def __post_init__(self) -> None:
        if self.critic_bins < 2:
            raise ValueError(f"critic_bins={self.critic_bins} must be >= 2")
        if self.horizon < 1:
            raise ValueError(f"horizon={self.horizon} must be >= 1")
        for key in ("discount", "return_lambda", "slow_critic_rate", "return_norm_decay"):
            if not 0.0 < getattr(self, key) <= 1.0:
                raise ValueError(f"{key}={getattr(self, key)} must be in (0, 1]")
        if not 0 < self.min_std < self.max_std:
            raise ValueError(f"need 0 < min_std={self.min_std} < max_std={self.max_std}")
        if self.entropy_scale <= 0 or self.entropy_lr <= 0:
            raise ValueError(f"entropy_scale={self.entropy_scale} and entropy_lr={self.entropy_lr} must be > 0")
        if self.actor_dist not in ("auto", "bounded_normal", "tanh_normal"):
            raise ValueError(f"actor_dist={self.actor_dist!r} must be auto, bounded_normal or tanh_normal")
        if self.kind not in ("auto", "imagine", "sac"):
            raise ValueError(f"kind={self.kind!r} must be auto, imagine or sac")
        if self.target_entropy is not None and self.kind != "sac":
            low, high = self.entropy_range()
            if not low < self.target_entropy < high:
                raise ValueError(f"behavior.target_entropy={self.target_entropy} per action dimension cannot be "
                                 f"reached by the {self.continuous_dist} actor: its entropy per dimension lies in "
                                 f"({low:.3f}, {high:.3f}) at min_std={self.min_std}, max_std={self.max_std}; "
                                 f"pick a value inside, or None for DreamerV3's fixed scale")

    def entropy_range(self) -> tuple[float, float]:
        """Entropy per action dimension the continuous actor can reach: the bounded Gaussian's
        ``0.5 + log(sqrt(2 pi) std)`` over ``[min_std, max_std]``; the tanh-squashed Gaussian's
        ``(-inf, log 2)`` (uniform on [-1, 1] is its supremum)."""
        if self.continuous_dist == "tanh_normal":
            return -math.inf, math.log(2.0)
        gauss = 0.5 + 0.5 * math.log(2 * math.pi)
        return gauss + math.log(self.min_std), gauss + math.log(self.max_std)

    @property
    def continuous_dist(self) -> str:
        """The resolved continuous actor distribution (``auto`` follows ``kind``)."""
        if self.actor_dist != "auto":
            return self.actor_dist
        return "tanh_normal" if self.kind == "sac" else "bounded_normal"


def lambda_returns(reward: Tensor, cont: Tensor, value: Tensor, *, discount: float, lam: float) -> Tensor:
    """TD(lambda) returns over an imagined trajectory (DreamerV2 eq. 4).

    Args:
        reward: ``[H, N]``, ``reward[t]`` arrives on entering state ``t + 1``.
        cont: ``[H, N]``, ``cont[t]`` continue probability of state ``t + 1``.
        value: ``[H + 1, N]`` values of states ``0..H``.

    Returns:
        ``[H, N]`` with ``R_t = r_t + discount * c_t * ((1 - lam) * v_{t+1} + lam * R_{t+1})``
        and ``R_H = v_H``.
    """
    horizon = reward.shape[0]
    if cont.shape != reward.shape or value.shape[0] != horizon + 1:
        raise ValueError(f"lambda_returns shapes: reward {tuple(reward.shape)}, cont {tuple(cont.shape)}, "
                         f"value {tuple(value.shape)} (needs H+1 values)")
    out = []
    last = value[-1]
    for t in reversed(range(horizon)):
        last = reward[t] + discount * cont[t] * ((1 - lam) * value[t + 1] + lam * last)
        out.append(last)
    return torch.stack(out[::-1])


class Actor(nn.Module):
    """Latent feature -> action distribution: ``BehaviorConfig.continuous_dist`` for continuous
    actions (bounded Gaussian by default), one-hot categorical for discrete ones."""

    def __init__(self, model: ModelConfig, cfg: BehaviorConfig, *, action_dim: int, discrete: bool):
        super().__init__()
        self.discrete, self.cfg = discrete, cfg
        self.bounded = cfg.continuous_dist == "bounded_normal"
        self.net = mlp(model.feat, model.hidden, model.mlp_layers, action_dim if discrete else 2 * action_dim)

    def forward(self, feat: Tensor) -> BoundedNormal | TanhNormal | OneHotCategorical:
        out = self.net(feat).float()
        if self.discrete:
            return OneHotCategorical(out, self.cfg.unimix)
        mean, std = out.chunk(2, -1)
        std = (self.cfg.max_std - self.cfg.min_std) * torch.sigmoid(std + 2.0) + self.cfg.min_std
        if self.bounded:
            return BoundedNormal(torch.tanh(mean), std)
        return TanhNormal(mean, std)


class Critic(nn.Module):
    """Latent feature -> value: bin logits (``twohot``, DreamerV3) or one output in symlog space
    (``symlog_mse``). ``forward`` gives the raw output, ``value`` reads it out in return
    units, ``loss`` compares it with returns."""

    def __init__(self, model: ModelConfig, cfg: BehaviorConfig | None = None):
        super().__init__()
        cfg = cfg or BehaviorConfig()
        self.twohot = cfg.critic == "twohot"
        self.net = mlp(model.feat, model.hidden, model.mlp_layers, cfg.critic_bins if self.twohot else 1,
                       float32_out=True)  # values must resolve ~1 return unit at 300 under bf16
        zero_init_(self.net[-1])
        if self.twohot:
            self.register_buffer("bins", symexp_bins(cfg.critic_bins), persistent=False)

    def forward(self, feat: Tensor) -> Tensor:
        """Symlog value ``[...]`` or bin logits ``[..., K]``."""
        out = self.net(feat).float()
        return out if self.twohot else out.squeeze(-1)

    def value(self, out: Tensor) -> Tensor:
        """The raw output read out as a value in return units ``[...]``."""
        if self.twohot:
            return twohot_mean(out, self.bins)
        return symexp(out)

    def loss(self, out: Tensor, target: Tensor) -> Tensor:
        """Per-element loss ``[...]`` against ``target`` returns (no gradient into the target)."""
        if self.twohot:
            return twohot_loss(out, target, self.bins)
        return (out - symlog(target.detach())).square()


class ReturnNorm(nn.Module):
    """EMA of the 5th-95th percentile range of returns; divides advantages by ``max(1, range)``."""

    def __init__(self, decay: float):
        super().__init__()
        self.decay = decay
        self.register_buffer("range", torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, returns: Tensor) -> Tensor:
        flat = parallel.gather_cat(returns.flatten().float())  # all data-parallel ranks' returns
        if flat.numel() > 100_000:  # quantile needs no more than a large random subset
            flat = flat[torch.randint(flat.numel(), (100_000,), device=flat.device)]
        lo, hi = torch.quantile(flat, torch.tensor([0.05, 0.95], device=flat.device))
        new = hi - lo
        self.range.copy_(torch.where(self.initialised, self.decay * self.range + (1 - self.decay) * new, new))
        self.initialised.fill_(True)
        return self.range.clamp(min=1.0)


class ActorCritic(nn.Module):
    """Actor, critic, slow critic and return normaliser, with their imagination losses."""

    def __init__(self, model: ModelConfig, cfg: BehaviorConfig, *, action_dim: int, discrete: bool):
        super().__init__()
        self.cfg = cfg
        self.actor = Actor(model, cfg, action_dim=action_dim, discrete=discrete)
        self.critic = Critic(model, cfg)
        self.slow_critic = ema_copy(self.critic)
        self.return_norm = ReturnNorm(cfg.return_norm_decay)
        log_scale = torch.tensor(math.log(cfg.entropy_scale))
        if self.learns_entropy_scale(cfg, discrete):
            self.log_entropy_scale = nn.Parameter(log_scale)  # stepped by the learner's entropy optimiser
        else:
            self.register_buffer("log_entropy_scale", log_scale)
        self.action_dim = action_dim

    def imagine(self, wm: WorldModel, start: State, *, grad: bool = False) -> tuple[Tensor, Tensor]:
        """Roll the prior ``horizon`` steps from ``start`` (``[N, ...]``) with actor samples.

        Args:
            grad: keep the graph so returns can be backpropagated into the actor through the
                dynamics (reparameterised actions); world-model parameters get no gradient.

        Returns:
            ``(feats [H + 1, N, F], raw actions [H, N, ...])``.
        """
        with torch.set_grad_enabled(grad):
            state = start
            feats, raws = [wm.feat(state)], []
            for _ in range(self.cfg.horizon):
                state, feat, raw = self.imagine_step(wm, state, feats[-1], grad)
                feats.append(feat)
                raws.append(raw)
            return torch.stack(feats), torch.stack(raws)

    def imagine_step(self, wm: WorldModel, state: State, feat: Tensor, grad: bool) -> tuple[State, Tensor, Tensor]:
        """One imagined step: an actor sample from ``feat``, then a prior step of the RSSM.

        One function so ``Learner(compile=True)`` can compile the whole step (actor, sampler,
        GRU, prior) into a few fused kernels.
        """
        action, raw = self.actor(feat.detach() if grad else feat).sample()
        state = wm.rssm.img_step(state, action.to(feat.dtype))
        return state, wm.feat(state), raw

    def uses_dynamics(self) -> bool:
        mode = self.cfg.actor_grad
        return mode == "dynamics" or (mode == "auto" and not self.actor.discrete)

    def loss(self, wm: WorldModel, start: State, start_cont: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Actor and critic losses from imagined rollouts of every start state.

        Args:
            wm: the world model (its parameters get no gradient from these losses).
            start: posterior states ``[N, ...]`` (detached).
            start_cont: ``[N]`` 1 - is_terminal of the start rows (a terminal start imagines nothing).

        Returns:
            ``(actor_loss, critic_loss, metrics)``.
        """
        cfg = self.cfg
        dynamics = self.uses_dynamics()
        with frozen(wm):
            feats, raws = self.imagine(wm, start, grad=dynamics)  # [H+1, N, F], [H, N, A]
            with torch.set_grad_enabled(dynamics):
                reward = wm.reward(feats[1:])  # [H, N]
                cont = wm.continue_prob(feats[1:])  # [H, N]
                slow_value = self.slow_critic.value(self.slow_critic(feats))  # [H+1, N]
                returns = lambda_returns(reward, cont, slow_value, discount=cfg.discount, lam=cfg.return_lambda)
        with torch.no_grad():
            weight = torch.cumprod(torch.cat([start_cont[None].float(), cfg.discount * cont[:-1]]), 0)  # [H, N]
            scale = self.return_norm.update(returns)
        critic_out = self.critic(feats[:-1].detach())  # [H, N] symlog value or [H, N, K] logits
        value = self.critic.value(critic_out.detach())  # [H, N]
        adv = (returns - value) / scale
        dist = self.actor(feats[:-1].detach())
        entropy = dist.entropy()
        if dynamics:  # pathwise: d(return)/d(action) through the imagined dynamics
            objective = adv
        else:  # score function on normalised advantages
            objective = dist.log_prob(raws) * adv.detach()
        eta = self.log_entropy_scale.detach().exp()
        actor_loss = -(weight * (objective + eta * entropy)).mean()
        critic_loss = (weight * self.critic.loss(critic_out, returns)).mean()
        metrics = {"ac/return": returns.detach().mean(), "ac/value": value.mean(),
                   "ac/imag_reward": reward.detach().mean(), "ac/entropy": entropy.detach().mean(),
                   "ac/return_scale": scale, "ac/advantage_std": adv.detach().std(), "ac/entropy_scale": eta}
        if isinstance(self.log_entropy_scale, nn.Parameter):
            metrics["loss/entropy_scale"] = self.entropy_scale_loss(entropy)
        return actor_loss, critic_loss, metrics

    @staticmethod
    def learns_entropy_scale(cfg: BehaviorConfig, discrete: bool) -> bool:
        """A learned entropy scale: ``target_entropy`` set and continuous actions (unimix already
        bounds a discrete actor's entropy)."""
        return cfg.target_entropy is not None and not discrete

    def entropy_scale_loss(self, entropy: Tensor) -> Tensor:
        """SAC's temperature loss on the log-scale: ``log_scale * (H - target * A)`` (detached
        entropy), so the scale grows while the entropy is below its target and shrinks above it."""
        gap = entropy.detach().float().mean() - self.cfg.target_entropy * self.action_dim
        return self.log_entropy_scale * gap

    def after_step(self) -> None:
        ema_update(self.slow_critic, self.critic, self.cfg.slow_critic_rate)


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Temporarily stop ``module``'s parameters from requiring gradients (no wasted weight grads)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
