"""RSSM: a deterministic GRU path plus a stochastic state (categorical or Gaussian latents).

Follows DreamerV2 (Hafner et al. 2021) and CoRe appendix A.1: the recurrent state ``h_t`` is
carried through time *without sampling*; only ``z_t`` is sampled:

    h_t = GRU(h_{t-1}, MLP([z_{t-1}, a_{t-1}]))      (deterministic path)
    prior      p(z_t | h_t)                          (future predictor)
    posterior  q(z_t | h_t, e_t)                     (corrector, e_t = encoder embedding)

States are ``dict[str, Tensor]`` with keys ``deter [..., D]``, ``stoch [..., S*K]`` (flattened
one-hot sample, or the Gaussian sample) and ``stats [..., S, K]`` (categorical logits) or
``[..., 2*S]`` (Gaussian mean and pre-softplus std).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recore_dist.models.config import ModelConfig
from recore_dist.models.nets import mlp

State = dict[str, Tensor]


class NormGRUCell(nn.Module):
    """GRU cell with LayerNorm on the gate pre-activations (DreamerV2/V3); one fused Linear."""

    def __init__(self, inp: int, units: int):
        super().__init__()
        self.linear = nn.Linear(inp + units, 3 * units, bias=False)
        self.norm = nn.LayerNorm(3 * units)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        parts = self.norm(self.linear(torch.cat([x, h], -1)))
        reset, cand, update = parts.chunk(3, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1.0)  # bias towards keeping h (DreamerV2)
        return update * cand + (1.0 - update) * h


class RSSM(nn.Module):
    """Recurrent state-space model over encoder embeddings and actions."""

    def __init__(self, cfg: ModelConfig, *, embed_dim: int, action_dim: int):
        super().__init__()
        self.cfg = cfg
        self.action_dim = action_dim
        h = cfg.hidden
        stats = cfg.stoch * cfg.classes if cfg.classes else 2 * cfg.stoch
        self.img_in = mlp(cfg.stoch_flat + action_dim, h, 1)
        self.gru = NormGRUCell(h, cfg.deter)
        self.prior_net = nn.Sequential(mlp(cfg.deter, h, 1), nn.Linear(h, stats))
        # The posterior's first layer is split so the embedding part runs batched over [B, T]
        # before the sequential loop: W [h; e] = W_h h + W_e e.
        self.post_deter = nn.Linear(cfg.deter, h, bias=False)
        self.post_embed = nn.Linear(embed_dim, h)
        self.post_out = nn.Sequential(nn.LayerNorm(h), nn.SiLU(), nn.Linear(h, stats))

    # ----------------------------------------------------------------------------- latents
    def _dist_stats(self, raw: Tensor) -> Tensor:
        if self.cfg.classes:
            return raw.unflatten(-1, (self.cfg.stoch, self.cfg.classes)).float()  # [..., S, K]
        return raw.float()  # [..., 2S]

    def _probs(self, logits: Tensor) -> Tensor:
        probs = logits.softmax(-1)
        return (1 - self.cfg.unimix) * probs + self.cfg.unimix / self.cfg.classes

    def sample(self, stats: Tensor, *, mode: bool = False) -> Tensor:
        """A sample of ``z`` (straight-through gradients for categoricals), flattened."""
        if self.cfg.classes:
            probs = self._probs(stats)
            if mode:
                index = probs.argmax(-1)
            else:  # inverse-CDF sampling: one uniform per latent (32x fewer draws than Gumbel-max)
                with torch.no_grad():
                    u = torch.rand(probs.shape[:-1] + (1,), device=probs.device, dtype=torch.float32)
                    cdf = probs.detach().float().cumsum(-1)
                    index = (cdf < u).sum(-1).clamp_(max=self.cfg.classes - 1)
            hard = F.one_hot(index, self.cfg.classes).to(probs.dtype)
            if probs.requires_grad:
                hard = hard + probs - probs.detach()
            return hard.flatten(-2)
        mean, std = self._gauss(stats)
        return mean if mode else mean + std * torch.randn_like(std)

    def _gauss(self, stats: Tensor) -> tuple[Tensor, Tensor]:
        mean, std = stats.chunk(2, -1)
        return mean, F.softplus(std) + self.cfg.min_std

    def kl(self, lhs: Tensor, rhs: Tensor) -> Tensor:
        """``KL(lhs || rhs)`` summed over latent variables -> ``[...]``."""
        if self.cfg.classes:
            p, q = self._probs(lhs), self._probs(rhs)
            return (p * (p.log() - q.log())).sum((-2, -1))
        m1, s1 = self._gauss(lhs)
        m2, s2 = self._gauss(rhs)
        return (torch.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5).sum(-1)

    def entropy(self, stats: Tensor) -> Tensor:
        if self.cfg.classes:
            p = self._probs(stats)
            return -(p * p.log()).sum((-2, -1))
        _, std = self._gauss(stats)
        return (0.5 * torch.log(2 * torch.pi * torch.e * std**2)).sum(-1)

    # ----------------------------------------------------------------------------- steps
    def initial(self, batch: int, device: torch.device | str) -> State:
        """The zero state ``[batch, ...]`` used at ``is_first``."""
        cfg = self.cfg
        stats_shape = (batch, cfg.stoch, cfg.classes) if cfg.classes else (batch, 2 * cfg.stoch)
        return {"deter": torch.zeros(batch, cfg.deter, device=device),
                "stoch": torch.zeros(batch, cfg.stoch_flat, device=device),
                "stats": torch.zeros(stats_shape, device=device)}

    def _deter_step(self, state: State, action: Tensor) -> Tensor:
        x = self.img_in(torch.cat([state["stoch"], action], -1))
        return self.gru(x, state["deter"])

    def img_step(self, state: State, action: Tensor, *, mode: bool = False) -> State:
        """One prior step ``(h, z), a -> (h', z' ~ p(z' | h'))``."""
        deter = self._deter_step(state, action)
        stats = self._dist_stats(self.prior_net(deter))
        return {"deter": deter, "stoch": self.sample(stats, mode=mode), "stats": stats}

    def prior_stats(self, deter: Tensor) -> Tensor:
        """Prior statistics for any batch of deterministic states (run batched over [B, T])."""
        return self._dist_stats(self.prior_net(deter))

    def obs_step(self, state: State, action: Tensor, embed_h: Tensor, is_first: Tensor,
                 *, mode: bool = False) -> State:
        """One posterior step. ``embed_h`` is ``post_embed(embed)``; ``is_first`` resets the state."""
        keep = (~is_first).to(action.dtype).unsqueeze(-1)  # [N, 1]
        state = {"deter": state["deter"] * keep, "stoch": state["stoch"] * keep}  # what the step reads
        deter = self._deter_step(state, action * keep)
        stats = self._dist_stats(self.post_out(self.post_deter(deter) + embed_h))
        return {"deter": deter, "stoch": self.sample(stats, mode=mode), "stats": stats}

    def observe(self, embed: Tensor, action: Tensor, is_first: Tensor,
                state: State | None = None) -> tuple[State, Tensor]:
        """Posterior states over a sequence.

        Args:
            embed: ``[B, T, E]`` encoder embeddings.
            action: ``[B, T, A]`` the action chosen at each row (applied after it).
            is_first: ``[B, T]`` bool; the state resets there.
            state: the state before row 0 (``None``: zeros).

        Returns:
            ``(post, prior_stats)`` with ``post`` tensors ``[B, T, ...]`` and the prior
            statistics for the same rows, computed batched from the posterior's ``deter``.
        """
        batch, length = embed.shape[:2]
        state = state or self.initial(batch, embed.device)
        embed_h = self.post_embed(embed)  # [B, T, H]
        prev_action = torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], 1)  # [B, T, A]
        posts = []
        for t in range(length):
            state = self.obs_step(state, prev_action[:, t], embed_h[:, t], is_first[:, t])
            posts.append(state)
        post = {k: torch.stack([s[k] for s in posts], 1) for k in posts[0]}
        return post, self.prior_stats(post["deter"])

    @staticmethod
    def feat(state: State) -> Tensor:
        """The latent feature ``[h, z]`` read by every head, in the autocast dtype when autocast is
        on (cast once here rather than once per consuming head)."""
        deter = state["deter"]
        dtype = _autocast_dtype(deter.device.type) or deter.dtype
        return torch.cat([deter.to(dtype), state["stoch"].to(dtype)], -1)


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def kl_loss(rssm: RSSM, post: Tensor, prior: Tensor, *, balance: float, free: float,
            weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """KL balancing with free nats (DreamerV2 eq. 2; Hafner et al. 2021).

    ``balance * KL(sg(post) || prior) + (1 - balance) * KL(post || sg(prior))``, each term
    clipped below at ``free`` nats per row (DreamerV3's per-row free bits), averaged over rows
    (weighted by ``weight [B, T]`` when given: CoRe leaves each window's first row out).

    Returns:
        ``(loss, kl)`` where ``kl`` is the mean unclipped ``KL(post || prior)`` for logging.
    """
    dyn = rssm.kl(post.detach(), prior)
    rep = rssm.kl(post, prior.detach())
    loss = balance * dyn.clamp(min=free) + (1 - balance) * rep.clamp(min=free)
    if weight is None:
        return loss.mean(), dyn.detach().mean()
    count = weight.sum().clamp(min=1.0)
    return (loss * weight).sum() / count, (dyn.detach() * weight).sum() / count
