"""Open a finished (or running) job's saved agent: config, spaces and policy weights.

``recore-dist evaluate`` and ``recore-dist export`` start here. A run's logdir holds
``config.yaml`` (the resolved config) and ``checkpoint/{learner.pt, state.json}``; the Ray runtime
also copies the config into the checkpoint. Everything that can be wrong with them is a
:class:`SavedRunError` with one line naming the file and the problem: a missing file, a
damaged ``learner.pt`` (torch cannot read it, or its tensors do not fit the config's model), a
config with keys this version does not know, or a checkpoint stamped by another version.
``learner.pt`` is read with ``weights_only=True``: tensors only, never arbitrary objects.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from recore_dist import __version__


class SavedRunError(ValueError):
    """A saved run cannot be opened; the message names the file and what is wrong."""


@dataclasses.dataclass
class SavedRun:
    logdir: Path
    checkpoint: Path
    cfg: Any  # TrainConfig
    spaces: Any  # Spaces
    weights: dict
    """``Learner.policy_weights()`` of the checkpoint (encoder, RSSM, actor)."""
    updates: int
    env_steps: int
    version: str | None


def resolve(logdir: str | Path | None = None, checkpoint: str | Path | None = None) -> tuple[Path, Path]:
    """``(logdir, checkpoint dir)`` from either; ``checkpoint`` may be the directory or its ``learner.pt``."""
    from recore_dist.runtime.checkpoint import find_checkpoint

    if (logdir is None) == (checkpoint is None):
        raise SavedRunError("give exactly one of --logdir and --checkpoint")
    if checkpoint is not None:
        path = Path(checkpoint)
        ckpt = path.parent if path.name == "learner.pt" else path
        if not (ckpt / "learner.pt").is_file():
            raise SavedRunError(f"{ckpt / 'learner.pt'}: no such file (expected a checkpoint directory or its learner.pt)")
        return ckpt.parent, ckpt
    root = Path(logdir)  # type: ignore[arg-type]
    if not root.is_dir():
        raise SavedRunError(f"{root}: no such run directory")
    ckpt = find_checkpoint(root)
    if ckpt is None:
        raise SavedRunError(f"{root / 'checkpoint'}: no checkpoint (learner.pt and state.json) in this run")
    return root, ckpt


def _config_path(logdir: Path, ckpt: Path) -> Path:
    for path in (ckpt / "config.yaml", logdir / "config.yaml"):
        if path.is_file():
            return path
    raise SavedRunError(f"{logdir / 'config.yaml'}: missing (the run's resolved config is needed to rebuild its model)")


def open_run(logdir: str | Path | None = None, checkpoint: str | Path | None = None, *,
             overrides: list[str] | None = None, env: str | None = None) -> SavedRun:
    """Load a run's config (with ``overrides`` and an optional other ``env``) and policy weights."""
    import torch

    from recore_dist import config as config_lib
    from recore_dist.learner import Learner
    from recore_dist.runtime.config import TrainConfig
    from recore_dist.runtime.env_factory import make_envs, spaces_of

    root, ckpt = resolve(logdir, checkpoint)
    state_path = ckpt / "state.json"
    state: dict[str, Any] = {}
    if state_path.is_file():
        try:
            state = json.loads(state_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SavedRunError(f"{state_path}: damaged ({exc.__class__.__name__}: {exc})") from None
    version = state.get("version")
    if version is not None and version != __version__:
        raise SavedRunError(f"{state_path}: written by recore-dist {version}, this is {__version__}; "
                            f"evaluate it with that version")
    config_path = _config_path(root, ckpt)
    sets = list(overrides or []) + ([f"env.name={env}"] if env else [])
    try:
        cfg = config_lib.load(TrainConfig, config_path, sets)
    except config_lib.ConfigError as exc:
        raise SavedRunError(f"{config_path}: does not load in recore-dist {__version__} "
                            f"(from another version?): {exc}") from None
    cfg.learner.device = "cpu"
    cfg.learner.compile = False
    envs = make_envs(cfg, "train", 1, cfg.seed)
    try:
        spaces = spaces_of(envs)
    finally:
        envs.close()
    learner = Learner(cfg.learner, spaces)
    path = ckpt / "learner.pt"
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (any unreadable file is the same one-line error)
        raise SavedRunError(f"{path}: damaged, torch cannot read it ({exc.__class__.__name__})") from None
    try:
        learner.load_state_dict(blob)
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else exc.__class__.__name__
        raise SavedRunError(f"{path}: does not fit the model of {config_path} ({first})") from None
    counters = state.get("counters", {})
    return SavedRun(root, ckpt, cfg, spaces, learner.policy_weights(), int(blob.get("updates", 0)),
                    int(counters.get("env_steps", 0)), version)
