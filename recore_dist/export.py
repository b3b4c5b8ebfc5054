"""``recore-dist export``: the acting policy as a file that loads with torch alone
(``--format torch``, the default) or with ONNX Runtime alone (``--format onnx``,
:mod:`recore_dist.export_onnx`).

What is written (``--out policy.pt2``):

- ``policy.pt2``: a ``torch.export`` program of one acting step,
  ``(image, proprio, is_first, deter, stoch, prev_action) -> (action, deter, stoch)``, with a
  dynamic batch dimension. Load it with ``torch.export.load(path).module()``; nothing of
  recore-dist is imported. It is the deterministic policy: the posterior's mode filters the
  observation (DreamerV2's ``eval_state_mean``) and the actor's mode is the action, i.e.
  ``Policy(..., state_mean=True).act(obs, is_first, explore=False)``.
- ``policy.json`` beside it: observation keys, shapes and dtypes, the recurrent state's shapes,
  the action's shape and bounds, the model config, the run's updates and env steps, and the
  recore-dist and torch versions.

Why ``torch.export`` and not TorchScript: ``torch.jit.trace``/``save`` are deprecated in torch
2.13 (they warn "switch to torch.export"); an exported program is a plain graph with a
dynamic batch dimension, loads with ``torch.export.load`` alone, and is what AOTInductor
compiles for C++ deployment.

``is_first`` resets the recurrent state inside the step (as in training), so a caller passes
zeros for ``deter``/``stoch``/``prev_action`` at the start and feeds back what the step returns.
Image-only models still take a ``proprio`` input of width 0, so the signature is one for all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from recore_dist import __version__
from recore_dist.behavior.policy import PolicyNet
from recore_dist.models.world_model import MultiEncoder, encoder_inputs


class ActingStep(nn.Module):
    """One deterministic acting step of a ``PolicyNet`` (the module that is exported)."""

    def __init__(self, net: PolicyNet, modalities: tuple[str, ...]):
        super().__init__()
        self.net, self.modalities = net, tuple(modalities)

    def forward(self, image: Tensor, proprio: Tensor, is_first: Tensor, deter: Tensor, stoch: Tensor,
                prev_action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        raw = {"image": image, "proprio": proprio}
        inputs = encoder_inputs({k: raw[k] for k in self.modalities}, self.modalities)
        embed = self.net.encoder(inputs) if isinstance(self.net.encoder, MultiEncoder) else self.net.encoder(
            inputs["image"])
        rssm = self.net.rssm
        state = rssm.obs_step({"deter": deter, "stoch": stoch}, prev_action, rssm.post_embed(embed), is_first,
                              mode=True)
        action = self.net.actor(rssm.feat(state)).mode().float()
        return action, state["deter"].float(), state["stoch"].float()


def example_inputs(spaces, model, modalities: tuple[str, ...], batch: int = 2) -> tuple[Tensor, ...]:
    size = model.image_size
    return (torch.zeros(batch, size, size, spaces.image_channels, dtype=torch.uint8),
            torch.zeros(batch, spaces.proprio_dim if "proprio" in modalities else 0, dtype=torch.float32),
            torch.ones(batch, dtype=torch.bool),
            torch.zeros(batch, model.deter, dtype=torch.float32),
            torch.zeros(batch, model.stoch_flat, dtype=torch.float32),
            torch.zeros(batch, spaces.action_dim, dtype=torch.float32))


def acting_step(run) -> ActingStep:
    """The deterministic acting step of a ``SavedRun``'s policy weights, in eval mode."""
    cfg, modalities = run.cfg, run.cfg.learner.objective.modalities
    net = PolicyNet(cfg.learner.model, cfg.learner.behavior, run.spaces, modalities=modalities)
    net.load_state_dict({k: torch.as_tensor(v) for k, v in run.weights.items()})
    return ActingStep(net.eval(), modalities).eval()


def dynamic_batch() -> tuple[dict[int, Any], ...]:
    """The batch dimension of all six inputs, one symbol (1 to 4096 environments)."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    return tuple({0: batch} for _ in range(6))


def export_policy(run, out: str | Path) -> tuple[Path, Path]:
    """Write ``out`` (the program) and ``out`` with suffix ``.json`` (metadata) for a ``SavedRun``."""

    cfg, spaces = run.cfg, run.spaces
    model = cfg.learner.model
    modalities = cfg.learner.objective.modalities
    step = acting_step(run)
    dynamic = dynamic_batch()
    with torch.no_grad():
        program = torch.export.export(step, example_inputs(spaces, model, modalities), dynamic_shapes=dynamic, strict=False)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, out)
    meta = metadata(run, modalities)
    meta_path = out.with_suffix(".json")
    meta_path.write_text(json.dumps(meta, indent=1))
    return out, meta_path


def metadata(run, modalities: tuple[str, ...]) -> dict[str, Any]:
    from recore_dist import config as config_lib

    cfg, spaces = run.cfg, run.spaces
    model = cfg.learner.model
    size = model.image_size
    return {
        "format": "torch.export", "load": "torch.export.load(path).module()",
        "inputs": {
            "image": {"shape": ["batch", size, size, spaces.image_channels], "dtype": "uint8",
                      "used": "image" in modalities},
            "proprio": {"shape": ["batch", spaces.proprio_dim if "proprio" in modalities else 0], "dtype": "float32",
                        "used": "proprio" in modalities,
                        "note": "the env's proprio vector when used, else a [batch, 0] tensor"},
            "is_first": {"shape": ["batch"], "dtype": "bool", "note": "True on an episode's first step: resets the state"},
            "deter": {"shape": ["batch", model.deter], "dtype": "float32"},
            "stoch": {"shape": ["batch", model.stoch_flat], "dtype": "float32"},
            "prev_action": {"shape": ["batch", spaces.action_dim], "dtype": "float32"},
        },
        "outputs": {"action": {"shape": ["batch", spaces.action_dim], "dtype": "float32",
                               "low": -1.0, "high": 1.0, "discrete": bool(spaces.discrete)},
                    "deter": {"shape": ["batch", model.deter]}, "stoch": {"shape": ["batch", model.stoch_flat]}},
        "observation_keys": list(modalities), "env": cfg.env.name, "env_options": cfg.env.options("train"),
        "deterministic": "posterior mode (state_mean) and actor mode",
        "model": config_lib.to_dict(model), "objective": cfg.learner.objective.name,
        "updates": run.updates, "env_steps": run.env_steps, "recore_dist_version": __version__,
        "torch_version": torch.__version__, "source_logdir": str(run.logdir),
    }
