"""Run checkpoints: learner state, replay contents and counters, written atomically.

Layout: ``logdir/checkpoint/{learner.pt, replay/, state.json}``. A new checkpoint is written to
``checkpoint.tmp`` and swapped in by renames, so a crash mid-write leaves the previous one intact.
The Ray runtime (``CheckpointWriter``) writes ``logdir/checkpoint/{learner.pt, state.json,
config.yaml}`` from the learner actor and the driver, while each replay shard checkpoints its own
contents under ``logdir/replay/``.

Resume policy: the learner (parameters, optimisers, EMA copies, RNG) and the replay store
(contents, sampler RNG, counters) restore exactly; counters (env steps, updates, episodes, the
replay-ratio credit) continue. Simulators start fresh episodes (env state and a partly filled
chunk are not saved: at most ``chunk_length - 1`` rows per env are lost).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from recore_dist import __version__
from recore_dist import config as config_lib
from recore_dist.learner import Learner
from recore_dist.replay import ReplayStore

CHECKPOINT = "checkpoint"


def save_checkpoint(logdir: str | Path, learner: Learner, replay: ReplayStore | None, state: dict[str, Any]) -> Path:
    """Write a checkpoint; ``replay=None`` skips replay contents. Returns its directory."""
    logdir = Path(logdir)
    tmp = logdir / f"{CHECKPOINT}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    learner.save(tmp / "learner.pt")
    if replay is not None:
        replay.save(tmp / "replay")
    (tmp / "state.json").write_text(json.dumps(state, indent=2))
    return _swap_in(logdir)


def _swap_in(logdir: Path) -> Path:
    """Rename ``checkpoint.tmp`` to ``checkpoint``; the previous one is ``checkpoint.old`` meanwhile."""
    final, tmp, old = logdir / CHECKPOINT, logdir / f"{CHECKPOINT}.tmp", logdir / f"{CHECKPOINT}.old"
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


class CheckpointWriter:
    """The Ray runtime's checkpoint, written while the driver loop goes on: ``start`` empties
    ``checkpoint.tmp``, asks the shards for a checkpoint of their replay (each writes it on its
    own thread) and the learner for its state; ``finish`` waits for the learner's save, writes
    ``state.json`` (the counters) and ``config.yaml``, and swaps the new checkpoint in.

    Args:
        logdir: the run's directory.
        cfg: the job's config (saved with each checkpoint).
    """

    def __init__(self, logdir: str | Path, cfg):
        self.logdir, self.cfg = Path(logdir), cfg
        self.counters: dict[str, Any] = {}  # the counters of the checkpoint being written

    def start(self, learners, shards: list, counters: dict[str, Any], *, with_shards: bool = True):
        """Start the learner's save (``learners``: a ``LearnerGroup``) and, with ``with_shards``,
        the shards' checkpoints; ``counters`` go into ``state.json``. Returns the save's ref."""
        tmp = self.logdir / f"{CHECKPOINT}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if with_shards:
            for shard in shards:
                shard.checkpoint.remote()
        self.counters = counters
        return learners.save(str(tmp / "learner.pt"))

    def finish(self, ref, started: float) -> Path:
        """Complete the checkpoint whose save is ``ref``; ``started``: the run's start on the
        ``perf_counter`` clock (for the ``seconds`` counter). A failed save keeps the previous one."""
        import ray

        final, tmp = self.logdir / CHECKPOINT, self.logdir / f"{CHECKPOINT}.tmp"
        try:
            updates = ray.get(ref)
        except ray.exceptions.RayError as exc:
            print(f"recore-dist: learner save failed ({type(exc).__name__}); keeping the previous checkpoint")
            return final
        counters = {**self.counters, "updates": updates, "seconds": time.perf_counter() - started}
        (tmp / "state.json").write_text(json.dumps({"counters": counters, "version": __version__}, indent=2))
        config_lib.save(self.cfg, tmp / "config.yaml")
        return _swap_in(self.logdir)

    def write(self, learners, shards: list, counters: dict[str, Any], started: float) -> Path:
        """A whole checkpoint, learner and every shard, waiting for all of it (used at the end)."""
        import ray

        shard_refs = [s.checkpoint.remote() for s in shards]
        path = self.finish(self.start(learners, shards, counters, with_shards=False), started)
        ray.get(shard_refs)
        return path
