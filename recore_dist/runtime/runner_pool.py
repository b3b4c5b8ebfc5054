"""``RunnerPool``: the env-runner actors of a job, placed by resources and scaled while it runs.

Runners are spread over the nodes (``SPREAD``) up to ``target`` (``ray.runners``, changed by
``recore-dist scale``). With ``ray.runners_per_node`` each alive node with CPUs gets that many
runners pinned to it instead (soft node affinity), so runners start on nodes that join (the
autoscaler adding simulator nodes) and go with nodes that leave.
"""

from __future__ import annotations

from typing import Any


class RunnerPool:
    """Args:
        cfg: the job (``cfg.ray`` holds the placement settings).
        replay: the ``ReplayClient`` the runners insert into.
        counters: the run's counters: runner ids come from ``next_runner_id``, so they stay
            unique across restarts and resumes.
    """

    def __init__(self, cfg, replay, counters: dict[str, Any]):
        self.cfg, self.replay, self.counters = cfg, replay, counters
        self.actors: dict[int, Any] = {}
        self.pids: dict[int, int] = {}  # process id of each runner's last result
        self.homes: dict[int, str | None] = {}  # the node a runner is pinned to (None: spread)
        self.target = cfg.ray.runners

    def add(self, node_id: str | None = None) -> int:
        """Start a runner: pinned to ``node_id`` (soft affinity: it may restart elsewhere if that
        node dies) or spread over the nodes with free CPUs."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from recore_dist.runtime.env_runner import remote_runner

        runner_id = self.counters["next_runner_id"]
        self.counters["next_runner_id"] += 1
        strategy = "SPREAD" if node_id is None else NodeAffinitySchedulingStrategy(node_id, soft=True)
        self.actors[runner_id] = remote_runner(self.cfg, runner_id, self.replay, scheduling_strategy=strategy)
        self.homes[runner_id] = node_id
        return runner_id

    def remove(self, runner_id: int, pending: dict | None = None) -> None:
        """Kill a runner; its calls in ``pending`` (ref -> (kind, id)) are dropped."""
        import ray

        actor = self.actors.pop(runner_id)
        self.pids.pop(runner_id, None)
        self.homes.pop(runner_id, None)
        for ref, (kind, ident) in list((pending or {}).items()):
            if kind == "runner" and ident == runner_id:
                pending.pop(ref)
        ray.kill(actor, no_restart=True)

    def place(self, pending: dict | None = None) -> None:
        """Bring the runners to the wanted count: ``ray.runners_per_node`` on every alive node
        with CPUs (runners homed on nodes that left are dropped), otherwise ``target`` spread."""
        per_node = self.cfg.ray.runners_per_node
        if per_node <= 0:
            while len(self.actors) < self.target:
                self.add()
            while len(self.actors) > self.target:
                self.remove(max(self.actors), pending)
            return
        nodes = _alive_cpu_nodes()
        for runner_id, home in list(self.homes.items()):
            if home not in nodes:
                self.remove(runner_id, pending)
        for node in nodes:
            homed = sorted(r for r, h in self.homes.items() if h == node)
            for _ in range(per_node - len(homed)):
                self.add(node)
            for runner_id in homed[per_node:]:
                self.remove(runner_id, pending)


def _alive_cpu_nodes() -> list[str]:
    import ray

    return [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
