"""``recore-dist bench learn``: does an agent learn from pixels on this CPU within a time budget?

Trains a preset with the local runner for ``--minutes`` of wall-clock (the budget, not
``env_steps``, ends the run; periodic evaluation and checkpoints count against it), then
evaluates on one seeded, scene-balanced plan per split (:mod:`recore_dist.runtime.fixed_eval`:
every policy meets the same episodes):

- the learned policy (actor mode) on the train split and the held-out split,
- a uniform random policy on both splits,
- on navigation, the blind goal-vector baseline on both splits (it reads only the goal vector).

``--methods recore,recon`` trains each objective (``learner.objective.name``) under the same
budget in its own process: one after the other with every core each (the default), or with
``--parallel`` all at once, each pinned to an equal share of the cores (matched compute, fewer
cores per method). Every result prints the autocast dtype, cores, updates and env steps.

Targets (issue 14), judged for ``recore``:
- **navigation** (episodes report success): learned train SR >= 1.5x the blind baseline's
  train SR, and held-out SR >= 0.8x train SR. Returns are printed but not judged: a ratio to a
  negative random return means nothing.
- **control** (dm_control): learned train return >= 3x random, held-out >= 0.8x train.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TARGET_METHOD = "recore"
NAV_EPISODES, CONTROL_EPISODES = 40, 10  # per split (issue 14)


def is_navigation(env_name: str) -> bool:
    return env_name.startswith(("nav:", "igibson:"))


def train_and_evaluate(*, config_path: str, overrides: list[str], minutes: float, episodes: int | None = None,
                       method: str | None = None, stamp: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train one preset (optionally with objective ``method``) for ``minutes``; evaluate on the plans."""
    import torch

    from recore_dist import config as config_lib
    from recore_dist.runtime.config import TrainConfig
    from recore_dist.runtime.fixed_eval import evaluate_policies
    from recore_dist.runtime.local import LocalRunner

    overrides = list(overrides) + ([f"learner.objective.name={method}"] if method else [])
    cfg = config_lib.load(TrainConfig, config_path, overrides)
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    cfg.logdir = str(Path(cfg.logdir) / (f"{stamp}-{method}" if method else stamp))
    episodes = episodes or (NAV_EPISODES if is_navigation(cfg.env.name) else CONTROL_EPISODES)
    runner = LocalRunner(cfg, progress=progress)
    try:
        start = time.perf_counter()
        summary = runner.run(max_seconds=60.0 * minutes)
        trained = time.perf_counter() - start
        precision = str(runner.learner.dtype).replace("torch.", "")
        start = time.perf_counter()
        evaluation = evaluate_policies(cfg, runner.spaces, runner.learner.policy_weights(), episodes=episodes)
        eval_seconds = time.perf_counter() - start
    finally:
        runner.close()
    result = {"method": cfg.learner.objective.name, "task": cfg.env.name, "interventions": cfg.env.interventions,
              "minutes": minutes, "train_seconds": trained, "eval_seconds": eval_seconds,
              "env_steps": summary["env_steps"], "updates": summary["updates"], "replay_ratio": cfg.replay.ratio,
              "precision": precision, "threads": torch.get_num_threads(), "cores": len(os.sched_getaffinity(0)),
              "model_size": cfg.learner.model.size, "params": summary["params"],
              "batch": [cfg.learner.batch_size, cfg.learner.batch_length], "episodes": episodes,
              "eval": evaluation, "logdir": cfg.logdir}
    Path(cfg.logdir, "bench_learn.json").write_text(json.dumps(result, indent=1))
    return result


def ratios(row: dict[str, Any]) -> dict[str, float | None]:
    """The judged ratios of one method's evaluation."""
    ev = row["eval"]
    learned = ev["learned"]

    def div(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or b == 0 else a / b

    if is_navigation(row["task"]):
        return {"train_sr_over_blind": div(learned["train"]["sr"], ev.get("blind", {}).get("train", {}).get("sr")),
                "heldout_sr_over_train": div(learned["heldout"]["sr"], learned["train"]["sr"])}
    return {"train_over_random": div(learned["train"]["return"], ev["random"]["train"]["return"]),
            "heldout_over_train": div(learned["heldout"]["return"], learned["train"]["return"])}


def targets(row: dict[str, Any]) -> dict[str, bool]:
    """Issue 14's targets for one method's row (``None`` ratios count as not met)."""
    r = ratios(row)
    if is_navigation(row["task"]):
        return {"train_sr_1.5x_blind": (r["train_sr_over_blind"] or 0) >= 1.5,
                "heldout_sr_0.8x_train": (r["heldout_sr_over_train"] or 0) >= 0.8}
    return {"train_3x_random": (r["train_over_random"] or 0) >= 3.0,
            "heldout_0.8x_train": (r["heldout_over_train"] or 0) >= 0.8}


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
    with open(log, "w") as stderr:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)


def _collect(proc: subprocess.Popen, method: str, log: Path | None) -> dict[str, Any]:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        tail = log.read_text()[-3000:] if log and log.exists() else ""
        raise RuntimeError(f"bench learn: {method} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(out.strip().splitlines()[-1])


def run_bench(*, config_path: str, overrides: list[str], minutes: float, episodes: int | None = None,
              methods: list[str] | None = None, parallel: bool = False, progress: bool = True) -> dict[str, Any]:
    """One preset, or each of ``methods`` in its own process under the same budget."""
    if minutes <= 0:
        raise ValueError(f"minutes={minutes} must be > 0")
    if not methods:
        row = train_and_evaluate(config_path=config_path, overrides=overrides, minutes=minutes, episodes=episodes,
                                 progress=progress)
        return {"methods": {row["method"]: row}, "parallel": False}
    from recore_dist.objectives import OBJECTIVES

    unknown = sorted(set(methods) - set(OBJECTIVES))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {list(OBJECTIVES)}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    cores = sorted(os.sched_getaffinity(0))
    share = len(cores) // len(methods)
    if parallel and share < 1:
        raise ValueError(f"--parallel needs at least one core per method: {len(methods)} methods, {len(cores)} cores")
    rows: dict[str, dict[str, Any]] = {}
    logs = Path("runs") / "bench_learn_logs"
    logs.mkdir(parents=True, exist_ok=True)
    specs = []
    for j, method in enumerate(methods):
        mine = cores[j * share:(j + 1) * share] if parallel else None
        sets = list(overrides) + ([f"torch_threads={len(mine)}"] if mine else [])
        spec = {"config_path": config_path, "overrides": sets, "minutes": minutes, "episodes": episodes,
                "method": method, "stamp": stamp, "progress": progress and not parallel}
        specs.append((method, spec, mine, logs / f"{stamp}-{method}.log" if parallel else None))
    if parallel:
        if progress:
            print(f"[bench learn] {', '.join(methods)} at once, {share} core(s) each; logs in {logs}/{stamp}-*.log",
                  file=sys.stderr, flush=True)
        procs = [(method, _start(spec, mine, log), log) for method, spec, mine, log in specs]
        for method, proc, log in procs:
            rows[method] = _collect(proc, method, log)
    else:
        for method, spec, mine, log in specs:
            if progress:
                print(f"[bench learn] {method}: {minutes:g} min ...", file=sys.stderr, flush=True)
            rows[method] = _collect(_start(spec, mine, log), method, log)
    return {"methods": rows, "parallel": parallel}


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(result: dict[str, Any]) -> str:
    lines = []
    for method, row in result["methods"].items():
        nav = is_navigation(row["task"])
        scenes = {split: int(s.get("scenes", 0)) for split, s in row["eval"]["learned"].items()}
        where = (f"{scenes.get('train', 0)} train / {scenes.get('heldout', 0)} held-out scenes" if nav
                 else row["interventions"])
        lines.append(f"{method} on {row['task']} ({where}), {row['minutes']:g} min: "
                     f"{row['env_steps']} env steps, {row['updates']} updates, model {row['model_size']} "
                     f"({row['params']['total']:,} params), B{row['batch'][0]} x T{row['batch'][1]}, replay ratio "
                     f"{row['replay_ratio']:g}, {row['precision']} autocast, {row['threads']} threads on "
                     f"{row['cores']} cores; {row['episodes']} episodes per split")
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
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--child":
        print(json.dumps(train_and_evaluate(**json.loads(argv[1]))))
        return 0
    print("usage: python -m recore_dist.bench.learn --child JSON (use `recore-dist bench learn`)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
