"""``recore-dist bench learn``: does an agent learn from pixels on this CPU within a budget?

Trains a preset with the local runner for a budget, then evaluates on one seeded,
scene-balanced plan per split (:mod:`recore_dist.runtime.fixed_eval`: every policy meets the
same episodes):

- the learned policy (actor mode) on the train split and the held-out split,
- a uniform random policy on both splits,
- on navigation, the blind goal-vector baseline on both splits (it reads only the goal vector).

Budgets: ``--minutes`` of wall-clock (periodic evaluation and checkpoints count against it) and
/ or ``--frames``, env frames with the action repeat included (``env_steps * action repeat``):
a frame budget ends every seed and method at the same data, whatever the CPU, so curves compare
at matched frames (and with DreamerV3's, which are per frame); wall-clock is reported beside it.
With both, whichever comes first ends the run.

``--methods recore,recon`` trains each objective (``learner.objective.name``) and ``--seeds N``
each of N training seeds (``seed`` = the preset's seed + 0..N-1; the evaluation plan does not
depend on it), every (method, seed) in its own process: one after the other with every core
each (the default), or with ``--parallel`` as many at once as there are cores, each pinned to
its share. Every run prints its autocast dtype, cores, updates, env steps and frames, and
writes ``LOGDIR/<stamp>-<method>[-s<seed>]/bench_learn.json``. ``--stamp`` reuses an earlier
invocation's folders: finished runs are read back, interrupted ones resume from their
checkpoints (a frame budget continues to the same frame count; a minute budget gets the minutes
it had left).

With several seeds each method's final evaluations are aggregated per split
(:mod:`recore_dist.bench.stats`: mean, IQM and 95% percentile-bootstrap intervals over seeds),
with the held-out / train ratio of every seed.

Targets, judged for ``recore``:
- **navigation** (episodes report success; issue 14): learned train SR >= 1.5x the blind
  baseline's train SR, and held-out SR >= 0.8x train SR. Returns are printed but not judged.
- **control** (dm_control; issue 14): learned train return >= 3x random, held-out >= 0.8x
  train. With a frame budget and several seeds (issue 24): the mean train return >= DreamerV3's
  clean-task return at the same frames (:mod:`recore_dist.report.reference`), and every seed's
  held-out return >= 0.8x its train return.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

TARGET_METHOD = "recore"
NAV_EPISODES, CONTROL_EPISODES = 40, 10  # per split (issue 14)
RESULT_FILE = "bench_learn.json"


def is_navigation(env_name: str) -> bool:
    return env_name.startswith(("nav:", "igibson:"))


def run_name(stamp: str, method: str | None, seed: int | None) -> str:
    """The run's folder under the preset's logdir."""
    name = f"{stamp}-{method}" if method else stamp
    return name if seed is None else f"{name}-s{seed}"


def train_and_evaluate(*, config_path: str, overrides: list[str], minutes: float | None = None,
                       frames: int | None = None, episodes: int | None = None, method: str | None = None,
                       seed: int | None = None, stamp: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train one preset (optionally objective ``method``, training seed ``seed``) until ``minutes``
    of wall-clock or ``frames`` env frames, whichever comes first; evaluate on the plans.

    A run folder that already holds a finished result is read back; one with a checkpoint resumes."""
    import torch

    from recore_dist import config as config_lib
    from recore_dist.runtime.config import TrainConfig
    from recore_dist.runtime.fixed_eval import evaluate_policies
    from recore_dist.runtime.local import LocalRunner

    if not minutes and not frames:
        raise ValueError("bench learn needs a budget: minutes > 0 and / or frames > 0")
    overrides = list(overrides) + ([f"learner.objective.name={method}"] if method else [])
    cfg = config_lib.load(TrainConfig, config_path, overrides)
    if seed is not None:
        cfg.seed = seed
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    cfg.logdir = str(Path(cfg.logdir) / run_name(stamp, method, seed))
    done = Path(cfg.logdir, RESULT_FILE)
    if done.is_file():  # finished in an earlier invocation with this --stamp
        return json.loads(done.read_text())
    per_step = cfg.env.frames_per_step()
    if frames:
        cfg.env_steps = math.ceil(frames / per_step)
    episodes = episodes or (NAV_EPISODES if is_navigation(cfg.env.name) else CONTROL_EPISODES)
    runner = LocalRunner(cfg, progress=progress)
    try:
        seconds = None
        if minutes:
            seconds = max(1e-6, 60.0 * minutes - runner.counters["seconds"])  # a resumed run gets what is left
        start = time.perf_counter()
        summary = runner.run(max_seconds=seconds)
        trained = time.perf_counter() - start
        precision = str(runner.learner.dtype).replace("torch.", "")
        start = time.perf_counter()
        evaluation = evaluate_policies(cfg, runner.spaces, runner.learner.policy_weights(), episodes=episodes)
        eval_seconds = time.perf_counter() - start
    finally:
        runner.close()
    result = {"method": cfg.learner.objective.name, "seed": cfg.seed, "task": cfg.env.name,
              "interventions": cfg.env.interventions, "minutes": minutes, "frame_budget": frames,
              "train_seconds": summary.get("seconds", trained), "eval_seconds": eval_seconds,
              "env_steps": summary["env_steps"], "action_repeat": per_step, "frames": summary["env_steps"] * per_step,
              "updates": summary["updates"], "replay_ratio": cfg.replay.ratio, "resumed": summary.get("resumed", False),
              "precision": precision, "threads": torch.get_num_threads(), "cores": len(os.sched_getaffinity(0)),
              "cpu": cpu_name(), "model_size": cfg.learner.model.size, "params": summary["params"],
              "batch": [cfg.learner.batch_size, cfg.learner.batch_length], "episodes": episodes,
              "eval": evaluation, "logdir": cfg.logdir}
    done.write_text(json.dumps(result, indent=1))
    return result


def cpu_name() -> str:
    """The CPU's model name and whether it has AVX512-BF16 (bf16 autocast doubles update speed)."""
    name, flags = "unknown CPU", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name == "unknown CPU":
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    return f"{name}{' (AVX512-BF16)' if 'avx512_bf16' in flags else ''}"


def headline(row: dict[str, Any]) -> str:
    """The judged value of one run's learned policy: SR on navigation, return on control."""
    return "sr" if is_navigation(row["task"]) else "return"


def ratios(row: dict[str, Any]) -> dict[str, float | None]:
    """The judged ratios of one method's evaluation."""
    from recore_dist.bench.stats import ratio

    ev = row["eval"]
    learned = ev["learned"]
    if is_navigation(row["task"]):
        return {"train_sr_over_blind": ratio(learned["train"]["sr"], ev.get("blind", {}).get("train", {}).get("sr")),
                "heldout_sr_over_train": ratio(learned["heldout"]["sr"], learned["train"]["sr"])}
    return {"train_over_random": ratio(learned["train"]["return"], ev["random"]["train"]["return"]),
            "heldout_over_train": ratio(learned["heldout"]["return"], learned["train"]["return"])}


def targets(row: dict[str, Any]) -> dict[str, bool]:
    """Issue 14's targets for one method's row (``None`` ratios count as not met)."""
    r = ratios(row)
    if is_navigation(row["task"]):
        return {"train_sr_1.5x_blind": (r["train_sr_over_blind"] or 0) >= 1.5,
                "heldout_sr_0.8x_train": (r["heldout_sr_over_train"] or 0) >= 0.8}
    return {"train_3x_random": (r["train_over_random"] or 0) >= 3.0,
            "heldout_0.8x_train": (r["heldout_over_train"] or 0) >= 0.8}


def aggregate_seeds(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One method's runs over seeds: per split the learned policy's headline value (return, or SR
    on navigation) as mean / IQM / 95% bootstrap CI, the held-out / train ratio of every seed,
    frames and minutes, and DreamerV3's clean-task return at the same frames on DMC tasks."""
    from recore_dist.bench.stats import aggregate, ratio
    from recore_dist.report.reference import reference_at, reference_curve

    if not rows:
        raise ValueError("no runs to aggregate")
    key = headline(rows[0])
    out: dict[str, Any] = {"metric": key, "seeds": [r["seed"] for r in rows], "splits": {},
                           "frames": [r.get("frames", r["env_steps"]) for r in rows],
                           "minutes": [r["train_seconds"] / 60.0 for r in rows],
                           "updates": [r["updates"] for r in rows]}
    for split in ("train", "heldout"):
        out["splits"][split] = aggregate([r["eval"]["learned"][split][key] for r in rows])
    out["heldout_over_train"] = [ratio(r["eval"]["learned"]["heldout"][key], r["eval"]["learned"]["train"][key])
                                 for r in rows]
    frames = min(out["frames"])
    curve = reference_curve(rows[0]["task"])
    if curve is not None and key == "return" and frames <= max(curve):
        out["dreamerv3_at_frames"] = {"frames": frames, "return": reference_at(rows[0]["task"], frames)}
        out["targets"] = {"mean_train_at_least_dreamerv3": out["splits"]["train"]["mean"]
                          >= out["dreamerv3_at_frames"]["return"],
                          "every_seed_heldout_0.8x_train": all((v or 0) >= 0.8 for v in out["heldout_over_train"])}
    return out


def _start(spec: dict[str, Any], cores: list[int] | None, log: Path | None) -> subprocess.Popen:
    """Start one method's process (pinned to ``cores`` when given; stderr to ``log`` or inherited)."""
    env = dict(os.environ)
    if cores:
        env.update(OMP_NUM_THREADS=str(len(cores)), MKL_NUM_THREADS=str(len(cores)))
    env.setdefault("MUJOCO_GL", "egl")
    cmd = [sys.executable, "-m", __name__, "--child", json.dumps(spec)]
    if cores:
        cmd = ["taskset", "-c", ",".join(map(str, cores)), *cmd]
    if log is None:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    with open(log, "a") as stderr:  # the child keeps its own descriptor; a resumed run appends to its log
        print(f"[bench learn] {time.strftime('%Y-%m-%d %H:%M:%S')} start on cores {cores}", file=stderr, flush=True)
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)


def _collect(proc: subprocess.Popen, method: str, log: Path | None) -> dict[str, Any]:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        tail = log.read_text()[-3000:] if log and log.exists() else ""
        raise RuntimeError(f"bench learn: {method} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(out.strip().splitlines()[-1])


def plan_jobs(methods: list[str | None], base_seed: int, seeds: int) -> list[tuple[str | None, int | None]]:
    """The (method, seed) runs in the order they start: seed-major (every method's first seed, then
    every method's second, ...), so a campaign cut short (a session's end; runs resume with
    ``--stamp``) holds matched (method, seed) pairs so far. One seed: the preset's own (None)."""
    return [(m, base_seed + i if seeds > 1 else None) for i in range(seeds) for m in methods]


def run_bench(*, config_path: str, overrides: list[str], minutes: float | None = None, frames: int | None = None,
              episodes: int | None = None, methods: list[str] | None = None, seeds: int = 1,
              parallel: bool = False, progress: bool = True, stamp: str | None = None) -> dict[str, Any]:
    """Each of ``methods`` (or the preset's own objective) x each of ``seeds`` training seeds in
    its own process under the same budget; ``runs[method]`` lists the seeds' rows, ``methods``
    holds the first seed's row of each method and ``aggregate`` the seeds' aggregate."""
    if minutes is not None and minutes <= 0:
        raise ValueError(f"minutes={minutes} must be > 0")
    if frames is not None and frames <= 0:
        raise ValueError(f"frames={frames} must be > 0")
    if not minutes and not frames:
        raise ValueError("bench learn needs a budget: --minutes and / or --frames")
    if seeds < 1:
        raise ValueError(f"seeds={seeds} must be >= 1")
    from recore_dist import config as config_lib
    from recore_dist.objectives import OBJECTIVES
    from recore_dist.runtime.config import TrainConfig

    unknown = sorted(set(methods or []) - set(OBJECTIVES))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {list(OBJECTIVES)}")
    base_seed = config_lib.load(TrainConfig, config_path, list(overrides)).seed
    names = list(methods) if methods else [None]
    jobs = plan_jobs(names, base_seed, seeds)
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    cores = sorted(os.sched_getaffinity(0))
    slots = min(len(jobs), len(cores)) if parallel else 1
    share = len(cores) // slots
    if parallel and len(jobs) > 1 and share < 1:
        raise ValueError(f"--parallel needs at least one core per run: {len(jobs)} runs, {len(cores)} cores")
    logs = Path("runs") / "bench_learn_logs"
    logs.mkdir(parents=True, exist_ok=True)
    specs = []
    for method, seed in jobs:
        spec = {"config_path": config_path, "overrides": list(overrides), "minutes": minutes, "frames": frames,
                "episodes": episodes, "method": method, "seed": seed, "stamp": stamp,
                "progress": progress and not parallel}
        name = run_name(stamp, method or "run", seed)
        specs.append((name, spec, logs / f"{name}.log" if parallel else None))
    if progress and parallel:
        print(f"[bench learn] {len(jobs)} runs, {slots} at once, {share} core(s) each; logs in {logs}/{stamp}-*.log",
              file=sys.stderr, flush=True)
    results: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    pending = list(specs)
    free = [cores[j * share:(j + 1) * share] for j in range(slots)]
    # a thread per running process reads its stdout; the next run starts on whichever core frees first.
    # After a failure no new run starts, the running ones finish (nothing they trained is lost), then
    # the failures are raised together.
    with ThreadPoolExecutor(max_workers=slots) as pool:
        running: dict[Future, tuple[str, list[int]]] = {}
        while (pending and not failures) or running:
            while pending and free and not failures:
                name, spec, log = pending.pop(0)
                mine = free.pop(0)
                if parallel:
                    spec = {**spec, "overrides": spec["overrides"] + [f"torch_threads={len(mine)}"]}
                elif progress:
                    budget = " and ".join(b for b in (f"{minutes:g} min" if minutes else "",
                                                      f"{frames:,} frames" if frames else "") if b)
                    print(f"[bench learn] {name}: {budget} ...", file=sys.stderr, flush=True)
                proc = _start(spec, mine if parallel else None, log)
                running[pool.submit(_collect, proc, name, log)] = (name, mine)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name, mine = running.pop(future)
                free.append(mine)
                try:
                    results[name] = future.result()
                except (RuntimeError, ValueError) as err:  # a failed run, or output that is not its JSON
                    failures.append(f"{name}: {err}")
    if failures:
        raise RuntimeError("\n".join(failures))
    runs: dict[str, list[dict[str, Any]]] = {}
    for name, _, _ in specs:
        row = results[name]
        runs.setdefault(row["method"], []).append(row)
    out = {"methods": {m: rows[0] for m, rows in runs.items()}, "runs": runs, "parallel": parallel,
           "seeds": seeds, "stamp": stamp, "budget": {"minutes": minutes, "frames": frames}}
    if seeds > 1:
        out["aggregate"] = {m: aggregate_seeds(rows) for m, rows in runs.items()}
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ci(ci: tuple[float, float] | list[float] | None, spec: str) -> str:
    return "-" if ci is None else f"[{format(ci[0], spec)}, {format(ci[1], spec)}]"


def format_table(result: dict[str, Any]) -> str:
    lines = []
    for method, rows in result.get("runs", {m: [r] for m, r in result["methods"].items()}).items():
        for row in rows:
            lines.extend(_format_row(method, row))
    for method, agg in (result.get("aggregate") or {}).items():
        spec = ".2f" if agg["metric"] == "sr" else ".1f"
        lines.append(f"{method}: {len(agg['seeds'])} seeds {agg['seeds']}, frames {min(agg['frames']):,}-"
                     f"{max(agg['frames']):,}, {min(agg['minutes']):.1f}-{max(agg['minutes']):.1f} min, "
                     f"updates {min(agg['updates'])}-{max(agg['updates'])}; learned {agg['metric']}:")
        lines.append(f"  {'split':<9}{'mean':>9}{'95% CI':>20}{'IQM':>9}{'95% CI':>20}  per seed")
        for split, a in agg["splits"].items():
            lines.append(f"  {split:<9}{a['mean']:>9{spec}}{_ci(a['mean_ci'], spec):>20}{a['iqm']:>9{spec}}"
                         f"{_ci(a['iqm_ci'], spec):>20}  {', '.join(format(v, spec) for v in a['values'])}")
        lines.append("  held-out / train per seed: " + ", ".join(_fmt(v, ".2f") for v in agg["heldout_over_train"]))
        if "dreamerv3_at_frames" in agg:
            ref = agg["dreamerv3_at_frames"]
            lines.append(f"  DreamerV3 (clean task) at {ref['frames']:,} frames: {ref['return']:.1f}")
            lines.append("  targets: " + ", ".join(f"{k} {'met' if ok else 'NOT met'}"
                                                   for k, ok in agg["targets"].items()))
    return "\n".join(lines)


def _format_row(method: str, row: dict[str, Any]) -> list[str]:
    lines = []
    nav = is_navigation(row["task"])
    scenes = {split: int(s.get("scenes", 0)) for split, s in row["eval"]["learned"].items()}
    where = (f"{scenes.get('train', 0)} train / {scenes.get('heldout', 0)} held-out scenes" if nav
             else row["interventions"])
    seed = f", seed {row['seed']}" if "seed" in row else ""
    frames = f", {row['frames']:,} frames (repeat {row['action_repeat']})" if "frames" in row else ""
    lines.append(f"{method}{seed} on {row['task']} ({where}), {row['train_seconds'] / 60:.1f} min: "
                 f"{row['env_steps']} env steps{frames}, {row['updates']} updates, model {row['model_size']} "
                 f"({row['params']['total']:,} params), B{row['batch'][0]} x T{row['batch'][1]}, replay ratio "
                 f"{row['replay_ratio']:g}, {row['precision']} autocast, {row['threads']} threads on "
                 f"{row['cores']} cores{', ' + row['cpu'] if 'cpu' in row else ''}; {row['episodes']} episodes per split")
    head = f"  {'policy':<10}{'split':<9}{'return':>14}{'length':>8}"
    lines.append(head + (f"{'SR':>14}{'SPL':>7}" if nav else ""))
    for policy, splits in row["eval"].items():
        for split, s in splits.items():
            line = (f"  {policy:<10}{split:<9}{s['return']:>8.1f} ± {s['return_se']:<4.1f}"
                    f"{s['length']:>8.0f}")
            if nav:
                line += f"{s['sr']:>8.2f} ± {s['sr_se']:.2f}{s['spl']:>7.2f}"
            lines.append(line)
    r, t = ratios(row), targets(row)
    judged = "" if method == TARGET_METHOD else " (targets are judged for recore)"
    lines.append("  " + "; ".join(f"{k} = {_fmt(v, '.2f')}" for k, v in r.items()) + judged)
    lines.append("  targets: " + ", ".join(f"{k} {'met' if ok else 'NOT met'}" for k, ok in t.items()))
    lines.append(f"  logs: {row['logdir']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--child":
        print(json.dumps(train_and_evaluate(**json.loads(argv[1]))))
        return 0
    print("usage: python -m recore_dist.bench.learn --child JSON (use `recore-dist bench learn`)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
