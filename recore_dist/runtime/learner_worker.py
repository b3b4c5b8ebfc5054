"""``LearnerWorker``: the learner as a Ray actor that samples from the replay service while it computes.

A background thread keeps ``prefetch`` batches ready (``ReplayClient.sample``: one msgpack call
per shard, decoded here); ``train(seconds)`` runs updates on them for about ``seconds`` and
returns averaged metrics plus the newest policy weights as ``(version, [ObjectRef])``, published
with ``ray.put`` every ``publish_every`` updates (the version is the update count). The actor
asks for a GPU when the cluster has one (``remote_learner``) and sets its torch threads.

Data-parallel (``ray.learners: N``, started by ``learner_group.LearnerGroup``): rank ``r`` of
``N`` joins a torch.distributed group (``rendezvous`` on rank 0, then ``join`` on all) and every
``train`` call runs in lock-step: before each update the ranks agree (one all-reduce) whether
every rank holds a batch within the call's time, so all ranks make the same number of updates and
meet in the same gradient all-reduces; no rank waits on a peer that the replay's rate limiter
starves. Each rank samples its own batches; rank 0's metrics count every rank's sample errors.
Only rank 0 publishes weights, writes checkpoints and draws image summaries.
"""

from __future__ import annotations

import collections
import os
import queue
import threading
import time
from typing import Any

import numpy as np


class LearnerWorker:
    """Args:
        cfg: the training config.
        spaces: model spaces.
        replay: a ``ReplayClient``.
        checkpoint: a ``learner.pt`` to restore from, if any.
    """

    def __init__(self, cfg, spaces, replay, checkpoint: str | None = None, rank: int = 0, world: int = 1):
        import torch

        from recore_dist.learner import Learner

        torch.set_num_threads(cfg.learner.threads or cfg.torch_threads or max(1, int(cfg.ray.learner_cpus)))
        self.cfg, self.replay, self.rank, self.world = cfg, replay, rank, world
        self.learner = Learner(cfg.learner, spaces)
        self.restored_from = _existing_checkpoint(checkpoint)
        if self.restored_from:
            self.learner.load(self.restored_from)
        self.batches: queue.Queue = queue.Queue(maxsize=cfg.ray.prefetch)
        self._held: Any = None  # a batch drawn but not used: a peer had none (world > 1)
        self.waits = collections.Counter()
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._prefetch, daemon=True, name="prefetch")
        self._thread.start()
        self.weights: tuple[int, list] = (-1, [])
        self._publish()

    # ------------------------------------------------------------------------------ data
    def _prefetch(self) -> None:
        from recore_dist.replay.rate_limiter import RateLimited

        batch_size = self.cfg.learner.batch_size
        while not self._stop.is_set():
            start = time.perf_counter()
            try:
                batch = self.replay.sample(batch_size, timeout=self.cfg.ray.insert_timeout)
            except RateLimited:
                self.waits["rate_limited"] += 1
                continue
            except Exception as exc:  # a shard restarting: report and retry
                self.error = f"{type(exc).__name__}: {exc}"
                self.waits["errors"] += 1
                time.sleep(0.5)
                continue
            self.waits["sample_s"] += time.perf_counter() - start
            while not self._stop.is_set():
                try:
                    self.batches.put(batch, timeout=0.5)
                    break
                except queue.Full:
                    pass

    # ------------------------------------------------------------------------------ training
    def _publish(self) -> None:
        import ray

        if self.rank == 0:
            self.weights = (self.learner.updates, [ray.put(self.learner.policy_weights())])

    # ------------------------------------------------------------------------------ data parallel
    def rendezvous(self) -> tuple[str, int]:
        """Rank 0: the ``(node ip, free port)`` every rank joins at."""
        import ray

        from recore_dist import parallel

        host = ray.util.get_node_ip_address()
        return host, parallel.free_port()

    def join(self, host: str, port: int) -> str:
        """Join the group (blocks until all ``world`` ranks have joined); rank 0's parameters and
        buffers are copied to every rank, and ranks > 0 reseed their sampling noise. Returns the
        backend (gloo / nccl)."""
        from recore_dist import parallel

        backend = parallel.init(self.rank, self.world, host, port, device=self.learner.device)
        self.learner.broadcast_state()
        self._reseed()
        return backend

    def _reseed(self) -> None:
        """Different augmentation / imagination noise per rank (a checkpoint holds rank 0's RNG)."""
        import torch

        if self.rank > 0:
            torch.manual_seed(self.cfg.learner.seed + 7919 * self.rank + self.learner.updates)

    def _next_batch(self, seconds: float, start: float, done: int) -> tuple[Any, float]:
        """The batch of the next update, or ``None`` when this ``train`` call ends; with the wait
        spent starved. A rank waits for a batch while the call has time left (past it, only for
        the call's first update). With ``world > 1`` the ranks then agree (one all-reduce) and
        update only if every rank holds a batch; a rank whose batch goes unused keeps it for the
        next call, so a rate-limited or starved peer ends the call for all instead of leaving the
        others waiting in a gradient all-reduce."""
        from recore_dist import parallel

        waited = 0.0
        batch, self._held = self._held, None
        while batch is None:
            left = seconds - (time.perf_counter() - start)
            if left <= 0 and done:
                break
            t = time.perf_counter()
            try:
                batch = self.batches.get(timeout=max(left, 0.05))
            except queue.Empty:
                if left <= 0:
                    break
            finally:
                waited += time.perf_counter() - t
        if self.world > 1 and not parallel.all_true(batch is not None, self.learner.device):
            self._held = batch
            return None, waited
        return batch, waited

    def train(self, seconds: float) -> dict[str, Any]:
        """Update for about ``seconds`` (at least one update if a batch arrives in that time)."""
        start = time.perf_counter()
        sums: dict[str, float] = collections.defaultdict(float)
        counts: dict[str, int] = collections.defaultdict(int)
        done, starved = 0, 0.0
        while True:
            batch, waited = self._next_batch(seconds, start, done)
            starved += waited
            if batch is None:
                break
            metrics = self.learner.update(batch)
            done += 1
            for key, value in metrics.items():
                sums[key] += value
                counts[key] += 1  # some keys (grad/*) come every K updates only
            if self.learner.updates % self.cfg.ray.publish_every == 0:
                self._publish()
        elapsed = time.perf_counter() - start
        sample_errors, rate_limited = self._group_sampling()
        out = {key: value / counts[key] for key, value in sums.items()}
        samples = done * self.cfg.learner.batch_size * self.world  # every rank's batch
        out.update({"learner/updates": float(self.learner.updates), "perf/updates_per_second": done / elapsed,
                    "perf/learner_starved_fraction": starved / elapsed,
                    "perf/samples_per_second": samples / elapsed,
                    "perf/replayed_steps_per_second": samples * self.cfg.learner.batch_length / elapsed,
                    "learner/rate_limited_samples": rate_limited, "learner/sample_errors": sample_errors})
        return {"updates": done, "total_updates": self.learner.updates, "metrics": out, "weights": self.weights,
                "error": self.error, "pid": os.getpid(), "rank": self.rank}

    def _group_sampling(self) -> tuple[float, float]:
        """The whole group's ``(sample errors, rate-limited samples)``, summed over ranks (one
        all-gather at the end of a ``train`` call, which every rank reaches at the same update):
        a rank whose replay keeps failing stalls every rank's updates, and rank 0's metrics are
        the ones the driver logs."""
        import torch

        from recore_dist import parallel

        mine = torch.tensor([[self.waits["errors"], self.waits["rate_limited"]]], dtype=torch.float64)
        rows = parallel.gather_cat(mine.to(self.learner.device)).cpu() if self.world > 1 else mine
        return float(rows[:, 0].sum()), float(rows[:, 1].sum())

    # ------------------------------------------------------------------------------ state
    def updates(self) -> int:
        return self.learner.updates

    def latest_weights(self) -> tuple[int, list]:
        return self.weights

    def save(self, path: str) -> int:
        """Write the learner state; returns the update count it holds."""
        self.learner.save(path)
        return self.learner.updates

    def load(self, path: str) -> int:
        """Load a learner state written by ``save`` and publish its weights; returns its update
        count."""
        self.learner.load(path)
        self._reseed()
        self._publish()
        return self.learner.updates

    def param_counts(self) -> dict[str, int]:
        return self.learner.param_counts()

    def image_summaries(self, videos: bool = True) -> dict[str, dict[str, np.ndarray]]:
        """Open-loop prediction grids (``"grids"``) and videos (``"videos"``) on a fresh batch, for TensorBoard."""
        from recore_dist.runtime.summaries import open_loop_grids, open_loop_videos

        try:
            batch = self.batches.get(timeout=1.0)
        except queue.Empty:  # no data yet: nothing to show
            return {}
        out = {"grids": open_loop_grids(self.learner, batch)}
        if videos:
            out["videos"] = open_loop_videos(self.learner, batch)
        return out

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        self._stop.set()


def _existing_checkpoint(path: str | None) -> str | None:
    """``path`` if it exists, else the same file in ``checkpoint.old`` (a checkpoint swap the
    process died in the middle of), else ``None``."""
    if not path:
        return None
    if os.path.exists(path):
        return path
    parent = os.path.dirname(path)
    old = os.path.join(parent + ".old", os.path.basename(path))
    return old if os.path.exists(old) else None


def learner_gpus(cfg) -> float:
    """GPUs for the learner: the config's, or 1 when the cluster has a GPU."""
    import ray

    if cfg.ray.learner_gpus is not None:
        return float(cfg.ray.learner_gpus)
    return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def remote_learner(cfg, spaces, replay, checkpoint: str | None, *, rank: int = 0, world: int = 1, **options: Any):
    """A ``LearnerWorker`` actor. One learner restarts in place (Ray's ``max_restarts``, from
    ``checkpoint``); a rank of a data-parallel group does not (its peers' group would be gone):
    ``LearnerGroup`` restarts the whole group."""
    import ray

    restarts = cfg.ray.max_restarts if world == 1 else 0
    opts = {"max_restarts": restarts, "max_task_retries": -1 if world == 1 else 0,
            "num_cpus": cfg.ray.learner_cpus, "num_gpus": learner_gpus(cfg)}
    opts.update(options)
    return ray.remote(LearnerWorker).options(**opts).remote(cfg, spaces, replay, checkpoint, rank, world)
