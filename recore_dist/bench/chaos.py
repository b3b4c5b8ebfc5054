"""``recore-dist bench chaos --minutes M``: a real run under faults and hostile input, reconciled.

One training job on the Ray runtime (embedded local Ray, or ``--address``) from a preset
(default ``configs/quickstart.yaml``). Once the replay holds its prefill, ``FaultInjector``
SIGKILLs a random env runner, replay shard or the learner every 20-40 s (seeded) and
``HostileClient`` sends malformed inserts to the shards at a steady rate
(``recore_dist/runtime/chaos.py``). At the end the runners' outstanding inserts are flushed and
it checks:

- **nothing acknowledged is lost**, per shard and producer: every chunk a runner (or the hostile
  client's valid stream) was told was stored is counted by the shard (``runner_counts``: stored
  plus evicted, carried across restarts by checkpoints and the log), and each shard's
  ``inserted == stored + evicted``. A runner killed mid-call had acknowledgements it never
  reported: those show as the shard holding more than the driver heard (``unreported``), never less;
- **malformed accepted = 0**, every malformed insert answered with a refusal, per kind;
- **every fault recovered**: runner restarts, shard restores and learner restarts at least the
  faults injected of each kind, and the run trained to the end;
- the **longest learner stall** (no new update), and the **replay ratio**: each shard's
  rate-limiter lag inside its tolerance band at the sampled instants after the prefill;
- with ``--baseline`` (default), two fault-free runs of the same length (seeds 0 and 1): the
  chaos run's recent training return is not below the fault-free ones by more than the gap
  between those two.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from recore_dist import config as config_lib

FAULT_KINDS = ("runner", "shard", "learner")


def _template(cfg):
    """A valid chunk with the job's real fields (one env's first frames, repeated)."""
    import numpy as np

    from recore_dist.data import SequenceChunk
    from recore_dist.runtime.env_factory import make_envs

    envs = make_envs(cfg, "train", 1, cfg.seed)
    try:
        obs, _ = envs.reset()
    finally:
        envs.close()
    n = cfg.replay.chunk_length
    skip = {"reward", "is_first", "is_last", "is_terminal"}
    fields = {k: np.repeat(np.asarray(v)[:1], n, 0) for k, v in obs.items() if k not in skip}
    first = np.zeros(n, bool)
    first[0] = True
    action_dim = int(np.prod(envs.single_action_space.shape))
    return SequenceChunk(obs=fields, action=np.zeros((n, action_dim), np.float32), reward=np.zeros(n, np.float32),
                         is_first=first, is_last=np.zeros(n, bool), is_terminal=np.zeros(n, bool), policy_version=0,
                         env_name=cfg.env.name, intervention_id="none", split="train", runner_id=0, seq=0, env_index=0)


def _one_run(cfg, *, minutes: float, chaos: bool, seed: int, every: tuple[float, float], hostile_hz: float,
             progress: bool) -> dict[str, Any]:
    import ray

    from recore_dist.runtime.chaos import FaultInjector, HostileClient, Monitor
    from recore_dist.runtime.orchestrator import Orchestrator

    cfg = dataclasses.replace(cfg, seed=seed, env_steps=10**12)
    orch = Orchestrator(cfg, progress=progress)
    threads: list = []
    started = time.perf_counter()
    try:
        orch.start()
        orch.advance(until_env_steps=cfg.replay.prefill + 2 * cfg.replay.chunk_length * cfg.ray.envs_per_runner,
                     deadline=started + minutes * 60)
        monitor = Monitor(orch)
        injector = FaultInjector(orch, seed=seed, every=every) if chaos else None
        hostile = HostileClient(orch.shards, _template(cfg), rate_hz=hostile_hz, seed=seed) if chaos else None
        threads = [t for t in (monitor, injector, hostile) if t is not None]
        chaos_start = time.perf_counter()
        for t in threads:
            t.start()
        orch.advance(seconds=max(0.0, started + minutes * 60 - time.perf_counter()), env_steps=0)
        for t in threads:
            t.stop()
        give_up = time.perf_counter() + 330  # a rate-limited hostile insert retries up to 10 x insert_timeout
        while any(t.is_alive() for t in threads) and time.perf_counter() < give_up:
            orch.advance(seconds=1.0)  # the learner keeps sampling, so rate-limited inserts go through
        chaos_seconds = time.perf_counter() - chaos_start
        summary = orch.finish()  # drains the runners, settling their last acknowledgements (flush)
        flushed: dict[int, float] = {}
        stats = orch.replay.stats()
        per_runner = ray.get([s.runner_counts.remote() for s in orch.shards])
        tolerance = orch.shard_cfg.limiter().tolerance
        result = {"seed": seed, "chaos": chaos, "minutes": minutes, "chaos_seconds": chaos_seconds,
                  "summary": summary, "longest_learner_stall_s": monitor.longest_stall_s}
        result["reconciliation"] = _reconcile(orch, stats, per_runner, flushed, hostile)
        result["ratio"] = _ratio_band(monitor.samples, tolerance, cfg.replay.ratio)
        if chaos:
            result["faults"] = injector.faults
            result["fault_counts"] = injector.counts()
            result["fault_errors"] = injector.errors
            result["recovered"] = {
                "runner_restarts": summary["restarts"],
                "shard_restores": int(sum(s["replay/restores"] for s in stats)),
                "learner_restarts": summary["learner_restarts"]}
            result["hostile"] = {"sent": dict(hostile.sent), "refused": dict(hostile.refused),
                                 "accepted": dict(hostile.accepted), "unanswered": dict(hostile.unanswered),
                                 "valid_acked": int(sum(hostile.valid_acked.values())),
                                 "valid_refused": hostile.valid_refused, "first_error": hostile.first_error}
        return result
    finally:
        for t in threads:
            t.stop()
        orch.stop()
        orch.close()


def _reconcile(orch, stats, per_runner, flushed, hostile) -> dict[str, Any]:
    shards = len(orch.shards)
    acked: dict[int, dict[int, float]] = {i: {} for i in range(shards)}
    for runner_id, info in orch.runner_info.items():
        total = info.get("chunks_acked", 0.0) + flushed.get(runner_id, 0.0)
        acked[orch.replay.shard_for(runner_id)][runner_id] = total
    if hostile is not None:
        from recore_dist.runtime.chaos import HOSTILE_RUNNER_ID

        for index, n in hostile.valid_acked.items():
            acked[index][HOSTILE_RUNNER_ID + index] = float(n)
    rows, lost, unreported = [], 0, 0
    for index in range(shards):
        held = {int(k): int(v) for k, v in per_runner[index].items()}
        shard_lost = sum(max(0, int(n) - held.get(r, 0)) for r, n in acked[index].items())
        shard_unreported = sum(max(0, held.get(r, 0) - int(n)) for r, n in acked[index].items())
        s = stats[index]
        stored, evicted, inserted = int(s["replay/chunks"]), int(s["replay/evicted"]), int(s["replay/inserted"])
        rows.append({"shard": index, "acked": int(sum(acked[index].values())), "held_by_producer": sum(held.values()),
                     "stored": stored, "evicted": evicted, "inserted": inserted, "lost": shard_lost,
                     "unreported": shard_unreported, "consistent": inserted == stored + evicted,
                     "restores": int(s["replay/restores"]), "log_replayed_chunks": int(s["replay/log_replayed_chunks"]),
                     "log_torn_records": int(s["replay/log_torn_records"]),
                     "duplicate_retries": int(s["replay/duplicate_retries"]),
                     "rejected": int(s["replay/rejected_payloads"] + s["replay/rejected_chunks"])})
        lost += shard_lost
        unreported += shard_unreported
    return {"shards": rows, "lost": lost, "unreported": unreported,
            "consistent": all(r["consistent"] for r in rows)}


def _ratio_band(samples: list[dict[str, Any]], tolerance: float, ratio: float) -> dict[str, Any]:
    lags = [lag for s in samples for lag in s["lag"]]
    inside = [abs(lag) <= tolerance for lag in lags]
    end = samples[-1] if samples else None
    realised = (sum(end["sampled"]) / sum(end["inserted"])) if end and sum(end["inserted"]) else None
    return {"target": ratio, "tolerance_steps": tolerance, "samples": len(lags),
            "inside_band": sum(inside) / len(inside) if inside else None,
            "max_abs_lag": max((abs(x) for x in lags), default=None), "realised_at_end": realised}


def run_bench(*, config_path: str = "configs/quickstart.yaml", overrides: list[str] | None = None,
              minutes: float = 10.0, seed: int = 0, address: str | None = None,
              every: tuple[float, float] = (20.0, 40.0), hostile_hz: float = 2.0, baseline: bool = True,
              logdir: str = "runs/bench_chaos", progress: bool = False) -> dict[str, Any]:
    from recore_dist.envs.gl import ensure_mujoco_gl
    from recore_dist.runtime.config import TrainConfig

    ensure_mujoco_gl()
    base = config_lib.load(TrainConfig, config_path, list(overrides or []))
    if address:
        base = dataclasses.replace(base, ray=dataclasses.replace(base.ray, address=address))
    root = Path(logdir) / time.strftime("%Y%m%d-%H%M%S")
    runs = [("chaos", True, seed)] + ([("clean-seed0", False, 0), ("clean-seed1", False, 1)] if baseline else [])
    results = {}
    for name, chaos, run_seed in runs:
        cfg = dataclasses.replace(base, logdir=str(root / name))
        results[name] = _one_run(cfg, minutes=minutes, chaos=chaos, seed=run_seed, every=every,
                                 hostile_hz=hostile_hz, progress=progress)
    out = {"config": config_path, "overrides": list(overrides or []), "minutes": minutes, "seed": seed,
           "every_s": list(every), "hostile_hz": hostile_hz, "logdir": str(root), "cpus": os.cpu_count(),
           "runs": results}
    out["checks"] = _checks(results)
    (root / "bench_chaos.json").write_text(json.dumps(out, indent=2, default=str))
    return out


def _checks(results: dict[str, Any]) -> dict[str, Any]:
    chaos = results["chaos"]
    rec, hostile, faults = chaos["reconciliation"], chaos["hostile"], chaos["fault_counts"]
    recovered = chaos["recovered"]
    checks = {
        "zero_acknowledged_lost": rec["lost"] == 0 and rec["consistent"],
        "zero_malformed_accepted": sum(hostile["accepted"].values()) == 0,
        "every_malformed_refused": all(hostile["refused"].get(k, 0) + hostile["unanswered"].get(k, 0) == n
                                       for k, n in hostile["sent"].items()) and not hostile["unanswered"],
        "every_fault_recovered": (recovered["runner_restarts"] >= faults.get("runner", 0)
                                  and recovered["shard_restores"] >= faults.get("shard", 0)
                                  and recovered["learner_restarts"] >= faults.get("learner", 0)
                                  and chaos["summary"]["updates"] > 0),
        "faults_injected": sum(faults.values()),
    }
    if "clean-seed0" in results:
        clean = [results[k]["summary"]["train_return_recent"] for k in ("clean-seed0", "clean-seed1")]
        noise = abs(clean[0] - clean[1])
        got = chaos["summary"]["train_return_recent"]
        checks.update({"clean_returns": clean, "chaos_return": got, "noise": noise,
                       "return_within_noise": got is not None and got >= min(clean) - noise})
    checks["passed"] = all(v for k, v in checks.items()
                           if k in ("zero_acknowledged_lost", "zero_malformed_accepted", "every_malformed_refused",
                                    "every_fault_recovered", "return_within_noise"))
    return checks


def format_table(r: dict[str, Any]) -> str:
    chaos = r["runs"]["chaos"]
    rec, hostile, checks = chaos["reconciliation"], chaos["hostile"], r["checks"]
    lines = [f"bench chaos: {r['config']} {' '.join(r['overrides'])}, {r['minutes']:g} min per run, faults every "
             f"{r['every_s'][0]:g}-{r['every_s'][1]:g} s (seed {r['seed']}), hostile {r['hostile_hz']:g} inserts/s, "
             f"{r['cpus']} cores; logs {r['logdir']}",
             f"faults injected: {chaos['fault_counts']}; recovered: {chaos['recovered']}; "
             f"longest learner stall {chaos['longest_learner_stall_s']:.1f} s",
             f"{'shard':>5} {'acked':>7} {'held':>7} {'stored':>7} {'evicted':>7} {'lost':>5} {'unrep.':>6} "
             f"{'restores':>8} {'log-replayed':>12} {'torn':>4} {'dup-retry':>9} {'rejected':>8}"]
    for s in rec["shards"]:
        lines.append(f"{s['shard']:>5} {s['acked']:>7} {s['held_by_producer']:>7} {s['stored']:>7} {s['evicted']:>7} "
                     f"{s['lost']:>5} {s['unreported']:>6} {s['restores']:>8} {s['log_replayed_chunks']:>12} "
                     f"{s['log_torn_records']:>4} {s['duplicate_retries']:>9} {s['rejected']:>8}")
    lines.append(f"malformed sent {sum(hostile['sent'].values())} ({hostile['sent']}), refused "
                 f"{sum(hostile['refused'].values())}, accepted {sum(hostile['accepted'].values())}, unanswered "
                 f"{sum(hostile['unanswered'].values())}; valid hostile-stream chunks acked {hostile['valid_acked']}")
    ratio = chaos["ratio"]
    if ratio["inside_band"] is not None:
        lines.append(f"replay ratio {ratio['target']:g}: lag inside +-{ratio['tolerance_steps']:.0f} steps at "
                     f"{100 * ratio['inside_band']:.0f}% of {ratio['samples']} samples (max |lag| "
                     f"{ratio['max_abs_lag']:.0f}); sampled/inserted at the end {ratio['realised_at_end']:.2f}")
    for name, run in r["runs"].items():
        s = run["summary"]
        ret = s["train_return_recent"]
        lines.append(f"{name:>12}: {s['env_steps']} env steps, {s['updates']} updates, recent train return "
                     f"{'-' if ret is None else f'{ret:.1f}'}")
    lines.append("checks: " + ", ".join(f"{k}={v}" for k, v in checks.items()))
    return "\n".join(lines)
