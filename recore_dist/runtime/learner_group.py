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
