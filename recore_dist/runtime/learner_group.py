"""``LearnerGroup``: the learner actors of a job, one or ``ray.learners`` data-parallel ranks.

With one learner this is a thin holder of one ``LearnerWorker`` actor (Ray restarts it in place
from the last checkpoint). With N > 1 the ranks form one torch.distributed group (gloo on CPU,
NCCL on GPUs; ``recore_dist.parallel``), set up through Ray: rank 0 reports its node's IP and a
free port (``rendezvous``), then every rank ``join``s there. Ray Train's ``TorchTrainer`` was not
used: it owns the training loop and its actors' lifecycle, while here long-lived learner actors
answer the driver's ``train(seconds)`` calls between weight publications and checkpoints, and a
failed rank must bring back exactly these actors from the run's checkpoint.
``ray.util.collective`` needs cupy or pygloo, which this stack does not install.

Faults: a rank that dies (SIGKILL, node loss) fails its peers' next collective at once (a closed
socket; ``parallel.SYNC_TIMEOUT_S`` bounds a hung one). The driver then calls ``restart``: every
rank is killed and a new group starts from the last checkpoint (all ranks load the same file).
``LearnerSupervisor`` is the driver's side of it: it notices restarts, counts and logs them, and
keeps the newest published weights usable across them.
"""

from __future__ import annotations

from typing import Any


class LearnerGroup:
    """Args:
        cfg: the training config (``cfg.ray.learners`` ranks).
        spaces: model spaces.
        replay: the ``ReplayClient`` each rank samples from.
        checkpoint: the run's ``learner.pt``, loaded when it exists (at start and at a restart).
    """

    def __init__(self, cfg, spaces, replay, checkpoint: str):
        self.cfg, self.spaces, self.replay, self.checkpoint = cfg, spaces, replay, checkpoint
        self.size = cfg.ray.learners
        self.restarts = 0
        self.backend: str | None = None
        self.actors: list[Any] = []
        self.followers: list[Any] = []
        self._start()

    def _start(self) -> None:
        import ray

        from recore_dist.runtime.learner_worker import remote_learner

        self.actors = [remote_learner(self.cfg, self.spaces, self.replay, self.checkpoint, rank=r, world=self.size)
                       for r in range(self.size)]
        self.followers = []
        if self.size > 1:
            host, port = ray.get(self.actors[0].rendezvous.remote())
            backends = ray.get([a.join.remote(host, port) for a in self.actors])
            self.backend = backends[0]

    @property
    def leader(self):
        """Rank 0: its ``train`` results carry the weights and metrics; it writes checkpoints."""
        return self.actors[0]

    def train(self, seconds: float):
        """Start ``train(seconds)`` on every rank; returns rank 0's ref (the others finish at the
        same update; their refs are kept in ``followers`` so their errors surface)."""
        refs = [a.train.remote(seconds) for a in self.actors]
        self.followers = refs[1:]
        return refs[0]

    def save(self, path: str):
        return self.leader.save.remote(path)

    def load(self, path: str) -> int:
        """Load ``path`` on every rank; returns the update count."""
        import ray

        return ray.get([a.load.remote(path) for a in self.actors])[0]

    def image_summaries(self, videos: bool):
        return self.leader.image_summaries.remote(videos=videos)

    def pids(self) -> list[int]:
        import ray

        return ray.get([a.pid.remote() for a in self.actors])

    def restart(self) -> None:
        """Kill every rank and start the group again from the checkpoint."""
        self.kill()
        self.restarts += 1
        self._start()

    def kill(self) -> None:
        import ray

        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass


class LearnerSupervisor:
    """The driver's watch over a ``LearnerGroup``: the weights it last published, the process id
    rank 0 last answered from, and its restarts, counted in ``counters["learner_restarts"]`` and
    logged as ``runtime/learner_restarts``.

    - A single learner that Ray restarted in place (it loads the run's checkpoint) shows up as a
      new process id in its next ``train`` result (``observe``).
    - A failed rank of a data-parallel group: ``restart`` starts every rank again from the
      checkpoint and drops the old group's pending calls.
    - Published weights are owned by the learner process that put them: ``evaluate`` takes the
      restarted learner's weights when that process died.

    Args:
        group: the learner actors.
        counters: the run's counters (``learner_restarts`` is counted here; ``env_steps`` is the
            step restarts are logged at).
    """

    def __init__(self, group: LearnerGroup, counters: dict[str, Any]):
        self.group, self.counters = group, counters
        self.pids: dict[int, int] = {}  # rank -> process id of its last result (rank 0 only)
        self.weights: tuple[int, list] | None = None  # (version, [ref]) of the newest published weights

    def observe(self, out: dict[str, Any], logger) -> None:
        """Take a finished ``train`` call's process id and weights (a restart in place is noted)."""
        pid = out.get("pid")
        if pid is not None:
            if self.pids.get(0, pid) != pid:  # Ray restarted the learner in place
                self.note_restart("restarted by Ray from the last checkpoint", logger)
            self.pids[0] = pid
        if out["weights"][1]:
            self.weights = out["weights"]

    def restart(self, exc: BaseException, pending: dict, logger) -> None:
        """A rank of the data-parallel group failed: every rank starts again from the checkpoint
        (the old group's calls in ``pending``, ref -> (kind, id), are dropped)."""
        for ref, (kind, _) in list(pending.items()):
            if kind in ("learner", "images", "save"):
                pending.pop(ref)
        self.group.restart()
        self.pids.clear()
        self.note_restart(f"group of {self.group.size} restarted from the last checkpoint "
                          f"after {type(exc).__name__}: {_last_line(exc)}", logger)

    def note_restart(self, how: str, logger) -> None:
        self.counters["learner_restarts"] += 1
        print(f"recore-dist: learner {how} (restart {self.counters['learner_restarts']})")
        logger.scalars({"runtime/learner_restarts": float(self.counters["learner_restarts"])},
                       self.counters["env_steps"])

    def evaluate(self, evaluator, *, videos: bool = False) -> dict[str, Any]:
        """Evaluate ``weights`` on ``evaluator``. If their owner died since (a learner restart),
        take the restarted learner's weights and retry."""
        import ray

        try:
            return ray.get(evaluator.evaluate_ref.remote(*self.weights, videos=videos))
        except ray.exceptions.ObjectLostError:  # OwnerDiedError too, also when raised inside the evaluator
            self.weights = ray.get(self.group.leader.latest_weights.remote())
            return ray.get(evaluator.evaluate_ref.remote(*self.weights, videos=videos))


def _last_line(exc: BaseException) -> str:
    """The innermost message of a (Ray-wrapped) error, for a one-line log."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:200] if lines else type(exc).__name__
