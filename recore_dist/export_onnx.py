"""``recore-dist export --format onnx``: the acting policy as one ONNX graph for ONNX Runtime or
TensorRT on a robot's computer, with no Python training stack.

What is written (``--out policy.onnx``):

- ``policy.onnx``: the same deterministic acting step as the ``torch.export`` program
  (:class:`recore_dist.export.ActingStep`: encoder, posterior mode, recurrent update, actor mode)
  with the recurrent state and the previous action as explicit inputs and outputs::

      (image uint8 [B,H,W,C], proprio float32 [B,P], is_first bool [B], deter float32 [B,D],
       stoch float32 [B,S], prev_action float32 [B,A]) -> (action, next_deter, next_stoch)

  ``is_first`` resets the state inside the graph, so a caller starts from zeros and feeds back
  ``next_deter`` / ``next_stoch`` / ``action``. The batch dimension is dynamic. Image-only
  models take a ``proprio`` of width 0, so the signature is one for all models.
- ``policy.json`` beside it: observation keys, input and output names, shapes and dtypes, the
  action's bounds, the opset, the versions, the run's updates and env steps.

Exporter: torch's own, the ``dynamo=True`` path (``torch.onnx.export``'s default since torch 2.9).
It captures the step with ``torch.export``, the capture the ``.pt2`` format already uses, so one
graph capture serves both formats; the TorchScript-based path (``dynamo=False``) is deprecated in
torch 2.13 (it warns so) and traces Python control flow instead of capturing it. Opset 18: the
first opset that exporter writes, so the widest range of runtimes reads the file (ONNX Runtime
>= 1.14, TensorRT >= 8.6).

After writing, the file is checked with ``onnx.checker`` and, with ``onnxruntime`` present, run
once on a batch of two (one resetting, one carrying a random state) against the torch step; a
difference above 1e-4 is an error, not a file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recore_dist.export import acting_step, dynamic_batch, example_inputs, metadata

OPSET = 18
INPUTS = ("image", "proprio", "is_first", "deter", "stoch", "prev_action")
OUTPUTS = ("action", "next_deter", "next_stoch")
TOLERANCE = 1e-4


class OnnxExportError(ValueError):
    """The ONNX export could not be written or does not act as the torch policy does."""


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as exc:
        raise OnnxExportError(f"--format onnx needs {module}: pip install 'recore-dist[onnx]' "
                              f"(onnx, onnxruntime, onnxscript)") from exc


def export_onnx(run, out: str | Path, *, opset: int = OPSET, verify: bool = True) -> tuple[Path, Path]:
    """Write ``out`` (the ONNX graph) and ``out`` with suffix ``.json`` (metadata) for a
    ``SavedRun``; returns both paths."""
    onnx = _require("onnx")
    _require("onnxscript")  # the dynamo exporter writes the graph with it
    cfg, spaces = run.cfg, run.spaces
    modalities = cfg.learner.objective.modalities
    step = acting_step(run)
    args = example_inputs(spaces, cfg.learner.model, modalities)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), _quiet_exporter():
        try:
            program = torch.onnx.export(step, args, dynamo=True, dynamic_shapes=dynamic_batch(), opset_version=opset,
                                        input_names=list(INPUTS), output_names=list(OUTPUTS), verbose=False)
        except Exception as exc:  # the exporter's own errors are many types; say which step failed
            raise OnnxExportError(f"torch.onnx.export failed: {str(exc).strip().splitlines()[0]}") from exc
    program.save(str(out), external_data=False)  # one self-contained file (the xs policy is ~30 MB)
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    names = ([i.name for i in model.graph.input], [o.name for o in model.graph.output])
    if names != (list(INPUTS), list(OUTPUTS)):
        raise OnnxExportError(f"exported graph has inputs/outputs {names}, expected {(INPUTS, OUTPUTS)}")
    difference = verify_against_torch(step, out, args) if verify and _has("onnxruntime") else None
    meta = {**metadata(run, modalities), "format": "onnx", "opset": opset,
            "load": "onnxruntime.InferenceSession(path)", "input_names": list(INPUTS), "output_names": list(OUTPUTS),
            "onnx_version": onnx.__version__, "verified_max_abs_difference": difference}
    meta["outputs"] = {"action": meta["outputs"]["action"], "next_deter": meta["outputs"]["deter"],
                       "next_stoch": meta["outputs"]["stoch"]}
    meta_path = out.with_suffix(".json")
    meta_path.write_text(json.dumps(meta, indent=1))
    return out, meta_path


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's notes that say nothing about this graph (torchvision ops it skips, a pytree
    deprecation, one batch symbol shared by six inputs) stay out of the command's output."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", message=".*axis name.*")
            yield
    finally:
        logger.setLevel(level)


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def session(path: str | Path, threads: int = 1):
    """An ONNX Runtime CPU session on ``path`` with ``threads`` intra-op threads (1 inter-op)."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def verify_against_torch(step, path: Path, args: tuple[torch.Tensor, ...]) -> float:
    """Max |difference| over all outputs between ONNX Runtime and the torch step on a batch of two
    (the first resets, the second carries a random state); above ``TOLERANCE`` raises."""
    rng = np.random.default_rng(0)
    image, proprio, _, deter, stoch, prev = (a.numpy() for a in args)
    feed = {"image": rng.integers(0, 256, image.shape, dtype=np.uint8),
            "proprio": rng.normal(size=proprio.shape).astype(np.float32),
            "is_first": np.array([True, False]),
            "deter": rng.normal(size=deter.shape).astype(np.float32),
            "stoch": _one_hot_state(rng, stoch.shape, step),
            "prev_action": rng.uniform(-1, 1, prev.shape).astype(np.float32)}
    got = session(path).run(list(OUTPUTS), feed)
    with torch.no_grad():
        want = step(*(torch.as_tensor(feed[name]) for name in INPUTS))
    worst = max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want, strict=True))
    if not worst <= TOLERANCE:
        raise OnnxExportError(f"ONNX Runtime differs from the torch policy by {worst:.3g} (> {TOLERANCE:g})")
    return worst


def _one_hot_state(rng: np.random.Generator, shape: tuple[int, ...], step) -> np.ndarray:
    """A valid latent: one-hot per categorical group, as the posterior's mode produces (Gaussian
    latents: a normal sample)."""
    classes = step.net.rssm.cfg.classes
    if not classes:
        return rng.normal(size=shape).astype(np.float32)
    groups = shape[-1] // classes
    state = np.zeros((shape[0], groups, classes), np.float32)
    picks = rng.integers(0, classes, (shape[0], groups))
    np.put_along_axis(state, picks[..., None], 1.0, axis=-1)
    return state.reshape(shape)


def describe(meta: dict[str, Any]) -> str:
    """One line for the CLI: what was written and how it was checked."""
    checked = (f"ONNX Runtime matches torch within {meta['verified_max_abs_difference']:.1e}"
               if meta.get("verified_max_abs_difference") is not None else "not run: onnxruntime missing")
    return f"ONNX opset {meta['opset']}, inputs {', '.join(meta['input_names'])}; {checked}"
