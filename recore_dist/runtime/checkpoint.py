"""Run checkpoints: learner state, replay contents and counters, written atomically.

Layout: ``logdir/checkpoint/{learner.pt, replay/, state.json}``. A new checkpoint is written to
``checkpoint.tmp`` and swapped in by renames, so a crash mid-write leaves the previous one intact.

Resume policy: the learner (parameters, optimisers, EMA copies, RNG) and the replay store
(contents, sampler RNG, counters) restore exactly; counters (env steps, updates, episodes, the
replay-ratio credit) continue. Simulators start fresh episodes (env state and a partly filled
chunk are not saved: at most ``chunk_length - 1`` rows per env are lost).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from recore_dist.learner import Learner
from recore_dist.replay import ReplayStore

CHECKPOINT = "checkpoint"


def save_checkpoint(logdir: str | Path, learner: Learner, replay: ReplayStore | None, state: dict[str, Any]) -> Path:
    """Write a checkpoint; ``replay=None`` skips replay contents. Returns its directory."""
    logdir = Path(logdir)
    final, tmp, old = logdir / CHECKPOINT, logdir / f"{CHECKPOINT}.tmp", logdir / f"{CHECKPOINT}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    learner.save(tmp / "learner.pt")
    if replay is not None:
        replay.save(tmp / "replay")
    (tmp / "state.json").write_text(json.dumps(state, indent=2))
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(logdir: str | Path) -> Path | None:
    """The checkpoint directory in ``logdir`` (or the previous one if a swap was interrupted)."""
    logdir = Path(logdir)
    for name in (CHECKPOINT, f"{CHECKPOINT}.old"):
        path = logdir / name
        if (path / "state.json").is_file() and (path / "learner.pt").is_file():
            return path
    return None


def load_checkpoint(path: str | Path, learner: Learner) -> tuple[dict[str, Any], ReplayStore | None]:
    """Restore ``learner`` in place; returns ``(counters, replay store or None)``."""
    path = Path(path)
    learner.load(path / "learner.pt")
    state = json.loads((path / "state.json").read_text())
    replay = ReplayStore.load(path / "replay") if (path / "replay").exists() else None
    return state, replay
