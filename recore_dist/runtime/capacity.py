"""Does the job fit the cluster? Checked by the driver before it creates any actor.

Without this check a job that asks for more logical CPUs or GPUs than the cluster has gets Ray's
"infeasible resource requests" warning once and then waits forever (measured: `ray up` on one
2-CPU machine, then the quickstart, which reserves 4 CPUs, sat silent for 10 minutes).

What the job reserves (``job_needs``): ``ray.runners`` env runners at ``ray.runner_cpus`` each,
the evaluator at ``ray.runner_cpus``, ``ray.learners`` learners at ``ray.learner_cpus`` and
``ray.learner_gpus`` each (or 1 GPU each when the cluster has a GPU); replay shards reserve no CPU. With
``ray.runners_per_node`` the runners follow the nodes, so only one runner is counted.

- The cluster is big enough: go on.
- It is not, and ``ray.wait_for_resources_s`` is 0 (the default; a fixed cluster cannot grow):
  :class:`ClusterTooSmall` at once, listing what the job needs, what the cluster has, and the
  settings that shrink the job.
- It is not, and ``ray.wait_for_resources_s`` > 0 (an autoscaling cluster): ask the autoscaler
  for the bundles (``ray.autoscaler.sdk.request_resources``), print what it waits for every
  ``report_every_s``, and raise :class:`ClusterTooSmall` when the time is up.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable


class ClusterTooSmall(RuntimeError):
    """The cluster cannot hold the job's actors; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class Needs:
    cpus: float
    gpus: float
    parts: tuple[tuple[str, int, float, float], ...]
    """``(actor kind, count, CPUs each, GPUs each)``."""

    def bundles(self) -> list[dict[str, float]]:
        """One resource bundle per actor (what the autoscaler is asked for)."""
        out = []
        for _, count, cpus, gpus in self.parts:
            bundle = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
            out += [bundle] * count
        return [b for b in out if any(v > 0 for v in b.values())]


def job_needs(cfg, learner_gpus: float) -> Needs:
    rt = cfg.ray
    runners = 1 if rt.runners_per_node > 0 else rt.runners
    parts = (("env runner", runners, rt.runner_cpus, 0.0), ("evaluator", 1, rt.runner_cpus, 0.0),
             ("learner", rt.learners, rt.learner_cpus, learner_gpus), ("replay shard", rt.shards, 0.0, 0.0))
    return Needs(cpus=sum(n * c for _, n, c, _ in parts), gpus=sum(n * g for _, n, _, g in parts), parts=parts)


def shortfall(needs: Needs, total: dict[str, float]) -> dict[str, tuple[float, float]]:
    """``{resource: (needed, available)}`` for each resource the cluster has too little of."""
    out = {}
    for key, need in (("CPU", needs.cpus), ("GPU", needs.gpus)):
        have = float(total.get(key, 0.0))
        if need > have + 1e-9:
            out[key] = (need, have)
    return out


def _learners(needs: Needs) -> int:
    return next((n for kind, n, _, _ in needs.parts if kind == "learner"), 1)


def explain(needs: Needs, total: dict[str, float], missing: dict[str, tuple[float, float]], *,
            waited_s: float | None = None) -> str:
    parts = ", ".join(f"{n} {kind}{'s' if n != 1 else ''} x {c:g} CPU" + (f" + {g:g} GPU" if g else "")
                      for kind, n, c, g in needs.parts if n)
    lack = "; ".join(f"{key}: needs {need:g}, the cluster has {have:g}" for key, (need, have) in missing.items())
    fixes = ["--set ray.runners=N (fewer env runners; `recore-dist scale` adds them later)",
             "--set ray.runner_cpus=0.5 --set ray.learner_cpus=0.5 (fractional reservations share a core)"]
    if _learners(needs) > 1:
        fixes.insert(0, "--set ray.learners=N (fewer data-parallel learners)")
    if "GPU" in missing:
        fixes.insert(0, "--set ray.learner_gpus=0 (learn on CPU)")
    when = (f"after waiting {waited_s:.0f} s for the autoscaler" if waited_s is not None else
            "and no autoscaler is awaited (ray.wait_for_resources_s=0)")
    return (f"the cluster is too small for this job {when}. {lack}. The job reserves: {parts}. "
            f"Cluster total: {', '.join(f'{k} {v:g}' for k, v in sorted(total.items()) if k in ('CPU', 'GPU'))}. "
            f"To fit it: {'; or '.join(fixes)}; on an autoscaling cluster set ray.wait_for_resources_s.")


def check_fits(cfg, learner_gpus: float, *, cluster_resources: Callable[[], dict[str, float]],
               request: Callable[[list[dict[str, float]]], None] | None = None,
               report: Callable[[str], None] = print, report_every_s: float = 30.0, poll_s: float = 1.0) -> Needs:
    """Raise :class:`ClusterTooSmall` unless the cluster holds the job (waiting as configured)."""
    needs = job_needs(cfg, learner_gpus)
    missing = shortfall(needs, cluster_resources())
    wait = cfg.ray.wait_for_resources_s
    if not missing:
        return needs
    if wait <= 0:
        raise ClusterTooSmall(explain(needs, cluster_resources(), missing))
    if request is not None:
        request(needs.bundles())
    start = last_report = time.monotonic()
    report(f"recore-dist: waiting up to {wait:g} s for the autoscaler: "
           + "; ".join(f"{k} {have:g} of {need:g}" for k, (need, have) in missing.items()))
    while missing:
        now = time.monotonic()
        if now - start >= wait:
            raise ClusterTooSmall(explain(needs, cluster_resources(), missing, waited_s=now - start))
        if now - last_report >= report_every_s:
            last_report = now
            report(f"recore-dist: still waiting ({now - start:.0f} s): "
                   + "; ".join(f"{k} {have:g} of {need:g}" for k, (need, have) in missing.items()))
        time.sleep(poll_s)
        missing = shortfall(needs, cluster_resources())
    report(f"recore-dist: the cluster has grown to fit the job after {time.monotonic() - start:.0f} s")
    return needs
