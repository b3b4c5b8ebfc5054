"""``Learner``: one update of world model + actor + critic on a replay batch. Ray-free.

Behaviour is learned in imagination (``behavior.kind: imagine``, DreamerV2/V3) or by latent SAC
on the replayed posterior features (``behavior.kind: sac``, CoRe sec. 2.3); ``self.ac`` holds
either, and both expose ``ac.actor`` for the acting policy.

The same object trains in the local runner (one process) and inside the Ray learner actor. Its
whole state (parameters, optimiser moments, EMA copies, counters, RNG) checkpoints and restores
exactly: the update after a restore is bit-identical to the one without it.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from recore_dist import parallel
from recore_dist.behavior import ActorCritic, BehaviorConfig, LatentSAC, policy_weights, replay_transitions
from recore_dist.models.config import ModelConfig
from recore_dist.models.world_model import Spaces
from recore_dist.objectives import ObjectiveConfig, make_objective


@dataclasses.dataclass
class OptimConfig:
    """One Adam optimiser (DreamerV2 Table D.1 learning rates for DMC)."""

    lr: float = 3e-4
    """Learning rate."""
    eps: float = 1e-5
    """Adam epsilon (DreamerV2: 1e-5)."""
    clip: float = 100.0
    """Global gradient-norm clip (DreamerV2: 100)."""
    weight_decay: float = 0.0
    """Decoupled weight decay (AdamW); DreamerV2 uses 1e-6, 0 here."""

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.eps <= 0 or self.clip <= 0 or self.weight_decay < 0:
            raise ValueError(f"optimiser settings must be positive: {self}")


DREAMER_AC_LR = 8e-5
"""Actor and critic learning rate (DreamerV2 Table D.1, DMC)."""


@dataclasses.dataclass
class LearnerConfig:
    """World model, objective, behaviour and optimisation settings of the learner."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    """Network sizes."""
    objective: ObjectiveConfig = dataclasses.field(default_factory=ObjectiveConfig)
    """World-model objective (``recore`` or ``recon``) and its weights."""
    behavior: BehaviorConfig = dataclasses.field(default_factory=BehaviorConfig)
    """Imagination and actor-critic settings."""
    model_opt: OptimConfig = dataclasses.field(default_factory=lambda: OptimConfig(lr=3e-4))
    """World-model optimiser (DreamerV2 DMC: 3e-4)."""
    actor_opt: OptimConfig = dataclasses.field(default_factory=lambda: OptimConfig(lr=DREAMER_AC_LR))
    """Actor optimiser (DreamerV2 DMC: 8e-5)."""
    critic_opt: OptimConfig = dataclasses.field(default_factory=lambda: OptimConfig(lr=DREAMER_AC_LR))
    """Critic optimiser (DreamerV2 DMC: 8e-5)."""
    batch_size: int = 16
    """Sequences per batch (DreamerV2/V3: 16)."""
    batch_length: int = 64
    """Steps per sequence (DreamerV3: 64; DreamerV2: 50)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto``: CUDA when available, else CPU."""
    precision: Literal["auto", "float32", "bfloat16"] = "auto"
    """Autocast dtype; ``auto`` is bfloat16 where the hardware supports it (CUDA, AVX512-BF16/AMX CPUs)."""
    threads: int = 0
    """Torch intra-op threads (0: leave torch's default)."""
    seed: int = 0
    """Seed of parameter init, augmentations and imagination."""
    grad_diagnostics_every: int = 100
    """Every this many updates, the norm of each loss term's gradient with respect to the shared
    encoder output is logged as ``grad/<term>`` (one extra backward pass per term, ~K x cheaper
    amortised; 0 turns it off). Shows which term shapes the representation."""
    compile: bool = False
    """``torch.compile`` the per-step modules of the sequential loops (GRU, prior, actor): ~10% per
    update on CPU for ~45 s of compile time, so worth it for runs of more than a few hundred updates."""

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.batch_length < 2:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1 and batch_length={self.batch_length} >= 2")
        if self.threads < 0:
            raise ValueError(f"threads={self.threads} must be >= 0")
        if self.grad_diagnostics_every < 0:
            raise ValueError(f"grad_diagnostics_every={self.grad_diagnostics_every} must be >= 0")
        self._resolve_objective_defaults()

    def _resolve_objective_defaults(self) -> None:
        """Settings that depend on the objective, resolved here so the learner and every acting
        ``Policy`` (which read ``model`` and ``behavior``) see the same ones; idempotent, so a saved
        and reloaded config resolves to itself.

        ``core`` (apple/ml-core's DCS config): with ``objective.core.latents: gaussian`` the RSSM
        gets ``objective.core.stoch`` Gaussian latents; ``behavior.kind: auto`` becomes latent SAC
        (critic gradients into the model) with ml-core's actor / critic rate 1e-3 where those are
        still at the DreamerV2 default 8e-5. Every other objective: ``auto`` is ``imagine``.
        """
        core = self.objective.name == "core"
        if core and self.objective.core.latents == "gaussian":
            self.model = dataclasses.replace(self.model, size="custom", classes=0, stoch=self.objective.core.stoch)
        if self.behavior.kind == "auto":
            kind = "sac" if core else "imagine"
            self.behavior = dataclasses.replace(self.behavior, kind=kind)
            if kind == "sac":
                for opt in (self.actor_opt, self.critic_opt):
                    if opt.lr == DREAMER_AC_LR:
                        opt.lr = 1e-3  # ml-core: actor and critic Adam at 1e-3


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("learner.device=cuda but torch.cuda.is_available() is False")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    if name == "float32":
        return torch.float32
    if name == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if torch.backends.mkldnn.is_available() and _cpu_has_bf16() else torch.float32


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _adam(params: list[nn.Parameter] | list[dict[str, Any]], cfg: OptimConfig, device: torch.device) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if cfg.weight_decay else torch.optim.Adam
    return cls(params, lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay, fused=True)


class Learner:
    """World model + actor-critic with their optimisers; ``update(batch)`` does one step of each.

    Args:
        cfg: learner config.
        spaces: observation / action shapes of the env.
    """

    def __init__(self, cfg: LearnerConfig, spaces: Spaces):
        self.cfg, self.spaces = cfg, spaces
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = resolve_device(cfg.device)
        self.dtype = resolve_precision(cfg.precision, self.device)
        torch.manual_seed(cfg.seed)
        self.objective = make_objective(cfg.objective, cfg.model, spaces).to(self.device)
        self.sac = cfg.behavior.kind == "sac"
        behavior = LatentSAC if self.sac else ActorCritic
        self.ac = behavior(cfg.model, cfg.behavior, action_dim=spaces.action_dim,
                           discrete=spaces.discrete).to(self.device)
        if cfg.compile:
            self._compile()
        self.wm_params = [p for p in self.objective.parameters() if p.requires_grad]
        # The objective may name its own clip (CoRe: ml-core's 10) and learning rates for some of
        # its modules (CoRe's inverse temperature: 2e-3); the rest follow ``model_opt``.
        self.model_opt_cfg = dataclasses.replace(cfg.model_opt, clip=getattr(self.objective, "model_clip", None)
                                                 or cfg.model_opt.clip)
        self.model_opt = _adam(self._model_groups(), self.model_opt_cfg, self.device)
        self.actor_opt = _adam(list(self.ac.actor.parameters()), cfg.actor_opt, self.device)
        self.critic_opt = _adam(list(self.ac.critic.parameters()), cfg.critic_opt, self.device)
        if self.sac:
            self.alpha_opt_cfg = OptimConfig(lr=cfg.behavior.sac.alpha_lr)
            self.alpha_opt = _adam([self.ac.log_alpha], self.alpha_opt_cfg, self.device)
        self.entropy_opt = None
        if not self.sac and isinstance(self.ac.log_entropy_scale, nn.Parameter):
            self.entropy_opt_cfg = OptimConfig(lr=cfg.behavior.entropy_lr)
            self.entropy_opt = _adam([self.ac.log_entropy_scale], self.entropy_opt_cfg, self.device)
        self.updates = 0
        self.skipped = 0

    def _model_groups(self) -> list[dict[str, Any]]:
        """Adam parameter groups of the world-model optimiser: one per module the objective gives
        its own learning rate (``Objective.own_lr``: attribute name -> rate), then the rest."""
        own = getattr(self.objective, "own_lr", {})
        groups, taken = [], set()
        for name, lr in own.items():
            params = [p for p in getattr(self.objective, name).parameters() if p.requires_grad]
            taken |= {id(p) for p in params}
            groups.append({"params": params, "lr": lr})
        rest = [p for p in self.wm_params if id(p) not in taken]
        return [{"params": rest}, *groups]

    def _compile(self) -> None:
        """Compile the two functions called once per time step: the posterior step of observe and
        the imagined step (actor sample + prior step). Each becomes a few fused kernels in place
        of ~40 small ops (GRU gates, softmax, unimix, inverse-CDF sampling, one-hot). They are
        compiled as instance attributes, so parameter names, checkpoints and policy snapshots are
        unchanged. Latent SAC does not imagine, so only the posterior step is compiled for it."""
        # The per-term gradient diagnostics (``term_gradients``) backpropagate each loss with
        # ``retain_graph=True`` before the update's own backward. AOT autograd's donated buffers free
        # saved tensors during the first backward and refuse a retained graph (torch 2.13 raises for
        # xs in bfloat16: found by the issue-24 runs), so they are off when the diagnostics are on
        # (process-wide: the flag is read when a graph compiles, at its first call).
        if self.cfg.grad_diagnostics_every:
            import torch._functorch.config as functorch_config

            functorch_config.donated_buffer = False
        rssm = self.objective.wm.rssm
        rssm.obs_step = torch.compile(rssm.obs_step, dynamic=False)
        if not self.sac:
            self.ac.imagine_step = torch.compile(self.ac.imagine_step, dynamic=False)

    @property
    def wm(self):
        return self.objective.wm

    def param_counts(self) -> dict[str, int]:
        """Trainable parameters: world model (+ objective heads), actor, critic (both Q nets for
        SAC; its one temperature parameter is left out), total."""
        counts = {"world_model": sum(p.numel() for p in self.wm_params),
                  "actor": sum(p.numel() for p in self.ac.actor.parameters()),
                  "critic": sum(p.numel() for p in self.ac.critic.parameters())}
        counts["total"] = sum(counts.values())
        return counts

    # ------------------------------------------------------------------------ batches
    def to_tensors(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """numpy / torch ``[B, T, ...]`` -> tensors on the device; refuses non-finite floats."""
        out = {}
        for key, value in batch.items():
            t = torch.as_tensor(value)
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                bad = int((~torch.isfinite(t)).sum())
                raise ValueError(f"batch field {key!r} has {bad} non-finite values; refusing the batch")
            out[key] = t.to(self.device, non_blocking=True)
        for key in ("is_first", "is_last", "is_terminal"):
            if key in out:
                out[key] = out[key].bool()
        return out

    def autocast(self):
        """The learner's autocast context (bf16 where supported, a no-op in float32)."""
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)

    # ------------------------------------------------------------------------ update
    def update(self, batch: dict[str, Any]) -> dict[str, float]:
        """One world-model step, then one actor and one critic step: on imagined rollouts
        (``imagine``) or on the batch's transitions (``sac``, also one temperature step).

        Returns:
            Every loss term (``loss/*``), world-model diagnostics (``wm/*``), actor-critic
            diagnostics (``ac/*``) and optimiser figures (``opt/*``) as floats. A step whose
            loss or gradients are non-finite is skipped (parameters untouched) and counted in
            ``learner/skipped``.
        """
        data = self.to_tensors(batch)
        self.objective.train()
        with self.autocast():
            wm_loss, metrics, post = self.objective(data)
        every = self.cfg.grad_diagnostics_every
        if every and self.updates % every == 0:
            metrics.update(self.term_gradients(metrics))
        if self.sac:
            behavior_losses = self._update_sac(data, wm_loss, post, metrics)
        else:
            behavior_losses = self._update_imagine(data, wm_loss, post, metrics)
        self.objective.encoder_out = None  # drop the graph it holds
        self.objective.after_step()
        self.ac.after_step()
        self.updates += 1
        metrics["loss/world_model"] = wm_loss.detach()
        metrics.update(behavior_losses)
        values = torch.stack([torch.as_tensor(v, dtype=torch.float32, device=self.device).detach().reshape(())
                              for v in metrics.values()]).cpu().tolist()
        out = dict(zip(metrics, values))
        out["learner/updates"] = float(self.updates)
        out["learner/skipped"] = float(self.skipped)
        return out

    def term_gradients(self, metrics: dict[str, Tensor]) -> dict[str, Tensor]:
        """``grad/<term>``: the norm of each ``loss/<term>``'s gradient with respect to the
        objective's encoder output (``Objective.encoder_out``, ``[B, T, E]``); the graph is kept
        for the update's own backward pass. Terms that do not reach the encoder are left out."""
        embed = self.objective.encoder_out
        if embed is None or not embed.requires_grad:
            return {}
        out = {}
        for key, term in metrics.items():
            if not key.startswith("loss/") or not term.requires_grad:
                continue
            (grad,) = torch.autograd.grad(term, embed, retain_graph=True, allow_unused=True)
            if grad is not None:
                out["grad/" + key[len("loss/"):]] = grad.float().norm().detach()
        return out

    def _update_imagine(self, data: dict[str, Tensor], wm_loss: Tensor, post: dict[str, Tensor],
                        metrics: dict[str, Tensor]) -> dict[str, Tensor]:
        """World-model step, then actor and critic steps on rollouts imagined from ``post``."""
        metrics["opt/model_grad_norm"] = self._step(self.model_opt, self.wm_params, wm_loss, self.model_opt_cfg)
        metrics["opt/model_clipped"] = (metrics["opt/model_grad_norm"] > self.model_opt_cfg.clip).float()
        start = {k: v.detach().flatten(0, 1) for k, v in post.items()}
        start_cont = (~data["is_terminal"]).flatten()
        with self.autocast():
            actor_loss, critic_loss, ac_metrics = self.ac.loss(self.wm, start, start_cont)
        metrics.update(ac_metrics)
        actor_params = list(self.ac.actor.parameters())
        critic_params = list(self.ac.critic.parameters())
        metrics["opt/actor_grad_norm"] = self._step(self.actor_opt, actor_params, actor_loss, self.cfg.actor_opt)
        metrics["opt/critic_grad_norm"] = self._step(self.critic_opt, critic_params, critic_loss,
                                                     self.cfg.critic_opt)
        entropy_loss = metrics.pop("loss/entropy_scale", None)
        if entropy_loss is not None and self.entropy_opt is not None:
            self._step(self.entropy_opt, [self.ac.log_entropy_scale], entropy_loss, self.entropy_opt_cfg)
            metrics["ac/entropy_scale_loss"] = entropy_loss.detach()
        return {"loss/actor": actor_loss.detach(), "loss/critic": critic_loss.detach()}

    def _update_sac(self, data: dict[str, Tensor], wm_loss: Tensor, post: dict[str, Tensor],
                    metrics: dict[str, Tensor]) -> dict[str, Tensor]:
        """Latent SAC on the batch's own transitions (CoRe A.3: ``J_M``, ``J_Q``, ``J_pi`` in turn).

        With ``critic_grad_to_model`` the critic loss on non-detached features joins the
        world-model loss in one backward pass that steps both optimisers (CoRe appendix C.2);
        otherwise the critic trains on detached features of the same forward pass.
        """
        sac, to_model = self.ac, self.cfg.behavior.sac.critic_grad_to_model
        critic_params = list(sac.critic.parameters())
        with self.autocast():
            feat = self.wm.feat(post)  # [B, T, F]
            critic_loss, ac_metrics = sac.critic_loss(replay_transitions(feat if to_model else feat.detach(), data))
        if to_model:
            norms = self._steps(wm_loss + critic_loss, [(self.model_opt, self.wm_params, self.model_opt_cfg),
                                                        (self.critic_opt, critic_params, self.cfg.critic_opt)])
            metrics["opt/model_grad_norm"], metrics["opt/critic_grad_norm"] = norms
        else:
            metrics["opt/model_grad_norm"] = self._step(self.model_opt, self.wm_params, wm_loss, self.model_opt_cfg)
            metrics["opt/critic_grad_norm"] = self._step(self.critic_opt, critic_params, critic_loss,
                                                         self.cfg.critic_opt)
        with self.autocast():
            actor_loss, alpha_loss, actor_metrics = sac.actor_loss(feat.detach().flatten(0, 1))
        metrics.update(ac_metrics)
        metrics.update(actor_metrics)
        actor_params = list(sac.actor.parameters())
        metrics["opt/actor_grad_norm"] = self._step(self.actor_opt, actor_params, actor_loss, self.cfg.actor_opt)
        metrics["opt/model_clipped"] = (metrics["opt/model_grad_norm"] > self.model_opt_cfg.clip).float()
        if sac.learns_alpha:
            metrics["opt/alpha_grad_norm"] = self._step(self.alpha_opt, [sac.log_alpha], alpha_loss,
                                                        self.alpha_opt_cfg)
        return {"loss/actor": actor_loss.detach(), "loss/critic": critic_loss.detach(),
                "loss/alpha": alpha_loss.detach()}

    def _step(self, opt: torch.optim.Optimizer, params: list[Tensor], loss: Tensor, cfg: OptimConfig) -> Tensor:
        return self._steps(loss, [(opt, params, cfg)])[0]

    def _steps(self, loss: Tensor, groups: list[tuple[torch.optim.Optimizer, list[Tensor], OptimConfig]],
               ) -> list[Tensor]:
        """One backward pass of ``loss``, then each optimiser steps its parameters (each group's
        gradient norm clipped on its own); all are skipped when anything is non-finite. With
        data-parallel ranks (``parallel``) the gradients are first averaged over the ranks, with
        each rank's loss-is-finite flag, so all ranks clip, step or skip alike."""
        for opt, _, _ in groups:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        loss_finite = math.isfinite(float(loss.detach()))
        if parallel.world_size() > 1:  # data-parallel: every rank steps on the mean gradient
            bad = torch.tensor([0.0 if loss_finite else 1.0], device=self.device)
            loss_finite = float(parallel.mean_gradients([p for _, ps, _ in groups for p in ps], bad)) == 0.0
        norms = [torch.nn.utils.clip_grad_norm_(params, cfg.clip, foreach=True) for _, params, cfg in groups]
        if not (loss_finite and all(math.isfinite(float(n)) for n in norms)):
            for opt, _, _ in groups:
                opt.zero_grad(set_to_none=True)
            self.skipped += 1
            return [n.detach() for n in norms]
        for opt, _, _ in groups:
            opt.step()
        return [n.detach() for n in norms]

    # ------------------------------------------------------------------------ weights
    def policy_weights(self) -> dict[str, np.ndarray]:
        """Snapshot for ``Policy.load``: encoder, RSSM and actor as numpy arrays."""
        return policy_weights(self.wm.encoder, self.wm.rssm, self.ac.actor)

    # ------------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"objective": self.objective.state_dict(), "ac": self.ac.state_dict(),
                "model_opt": self.model_opt.state_dict(), "actor_opt": self.actor_opt.state_dict(),
                "critic_opt": self.critic_opt.state_dict(), "updates": self.updates, "skipped": self.skipped,
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                **({"alpha_opt": self.alpha_opt.state_dict()} if self.sac else {}),
                **({"entropy_opt": self.entropy_opt.state_dict()} if self.entropy_opt is not None else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.objective.load_state_dict(state["objective"])
        self.ac.load_state_dict(state["ac"])
        self.model_opt.load_state_dict(state["model_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        if self.sac:
            self.alpha_opt.load_state_dict(state["alpha_opt"])
        if self.entropy_opt is not None:
            self.entropy_opt.load_state_dict(state["entropy_opt"])
        self.updates, self.skipped = int(state["updates"]), int(state["skipped"])
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def save(self, path: str | Path) -> None:
        """Write the learner state (atomic: a temp file renamed into place)."""
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(path)

    def broadcast_state(self, src: int = 0) -> None:
        """Copy rank ``src``'s parameters and buffers (EMA copies, normalisers) to every rank:
        data-parallel ranks start identical whatever their seeds."""
        modules = (self.objective, self.ac)
        parallel.broadcast_([t for m in modules for t in (*m.parameters(), *m.buffers())], src)

    def load(self, path: str | Path) -> None:
        """Restore from ``save``; loads tensors only (``weights_only=True``), never arbitrary objects."""
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))
