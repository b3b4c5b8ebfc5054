"""Learning curves as PNG files, from runs' TensorBoard event files (``recore-dist plot``).

One figure per x-axis (env steps, wall-clock minutes), one panel per (metric, split), one line
per run: the periodic evaluation ``eval_policy_{train,heldout}/{return,success,spl}`` the runners
log. Where a run has a ``bench_learn.json`` (written by ``recore-dist bench learn``), its final
scene-balanced evaluation is drawn as a marker at the run's end, and the baselines of that
evaluation (random, and the blind goal-vector controller on navigation) as dashed lines.

Wall-clock is measured from the run's first logged event (every scalar's wall time is stored in
the event file), so periodic evaluation and checkpoint time are inside it, as in the budget.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "heldout")
METRICS = {"return": "return", "success": "success rate", "spl": "SPL"}
SUMMARY_KEY = {"return": "return", "success": "sr", "spl": "spl"}  # fixed_eval summary names


@dataclass
class Run:
    """One run's curves: ``scalars[tag] = [(step, minutes, value), ...]``."""

    logdir: Path
    label: str
    scalars: dict[str, list[tuple[int, float, float]]]
    final: dict[str, Any] = field(default_factory=dict)
    """``bench_learn.json`` contents when present."""


def read_scalars(tb_dir: Path) -> dict[str, list[tuple[int, float, float]]]:
    """Every scalar tag of the event files under ``tb_dir`` as ``(step, minutes since first event, value)``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not tb_dir.is_dir():
        raise FileNotFoundError(f"{tb_dir}: no TensorBoard directory (expected LOGDIR/tb from a training run)")
    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    if not tags:
        raise ValueError(f"{tb_dir}: the event files hold no scalars")
    events = {tag: acc.Scalars(tag) for tag in tags}
    start = min(e.wall_time for evs in events.values() for e in evs)
    return {tag: [(int(e.step), (e.wall_time - start) / 60.0, float(e.value)) for e in evs]
            for tag, evs in events.items()}


def label_of(logdir: Path) -> str:
    """The objective from the run's saved config (``learner.objective.name``), else the folder name."""
    bench = logdir / "bench_learn.json"
    if bench.is_file():
        return json.loads(bench.read_text())["method"]
    config = logdir / "config.yaml"
    if config.is_file():
        import yaml

        data = yaml.safe_load(config.read_text()) or {}
        name = ((data.get("learner") or {}).get("objective") or {}).get("name")
        if name:
            return str(name)
    return logdir.name


def load_run(logdir: str | Path, label: str | None = None) -> Run:
    logdir = Path(logdir)
    bench = logdir / "bench_learn.json"
    final = json.loads(bench.read_text()) if bench.is_file() else {}
    return Run(logdir, label or label_of(logdir), read_scalars(logdir / "tb"), final)


def _metrics(runs: list[Run]) -> list[str]:
    present = {tag.split("/", 1)[1] for run in runs for tag in run.scalars if tag.startswith("eval_policy_")}
    return [m for m in METRICS if m in present]


def plot_runs(runs: list[Run], out: str | Path, *, title: str | None = None) -> list[Path]:
    """Write ``eval_vs_steps.png`` and ``eval_vs_minutes.png`` under ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not runs:
        raise ValueError("no runs to plot")
    metrics = _metrics(runs)
    if not metrics:
        raise ValueError(f"no evaluation curves (eval_policy_*) in {[str(r.logdir) for r in runs]}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    paths = []
    for axis, xlabel, name in ((0, "env steps", "eval_vs_steps.png"), (1, "wall-clock minutes", "eval_vs_minutes.png")):
        fig, axes = plt.subplots(len(metrics), len(SPLITS), figsize=(5.0 * len(SPLITS), 3.2 * len(metrics)),
                                 squeeze=False, sharex=True)
        for row, metric in enumerate(metrics):
            for col, split in enumerate(SPLITS):
                ax = axes[row][col]
                for k, run in enumerate(runs):
                    colour = colours[k % len(colours)]
                    points = run.scalars.get(f"eval_policy_{split}/{metric}", [])
                    if points:
                        ax.plot([p[axis] for p in points], [p[2] for p in points], "-o", ms=3, color=colour,
                                label=run.label)
                    _final_marks(ax, run, split, metric, axis, colour)
                ax.set_title(f"{METRICS[metric]}, {split} split")
                ax.grid(alpha=0.3)
                if row == len(metrics) - 1:
                    ax.set_xlabel(xlabel)
        handles, labels = {}, []
        for ax in axes.flat:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in handles:
                    handles[lab] = h
                    labels.append(lab)
        fig.legend([handles[lab] for lab in labels], labels, loc="lower center", ncol=min(len(labels), 6),
                   frameon=False)
        if title:
            fig.suptitle(title)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        path = out / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _final_marks(ax, run: Run, split: str, metric: str, axis: int, colour: str) -> None:
    """The final balanced evaluation of a ``bench learn`` run (a star) and its baselines (dashed)."""
    evaluation = run.final.get("eval") or {}
    key = SUMMARY_KEY[metric]
    learned = (evaluation.get("learned") or {}).get(split, {})
    if key in learned:
        x = run.final["env_steps"] if axis == 0 else run.final["train_seconds"] / 60.0
        ax.plot([x], [learned[key]], "*", ms=11, color=colour, label=f"{run.label}, final ({int(learned['episodes'])} ep.)")
    for policy, style in (("random", ":"), ("blind", "--")):
        value = (evaluation.get(policy) or {}).get(split, {}).get(key)
        if value is not None:
            ax.axhline(value, ls=style, color="grey", lw=1, label=f"{policy} policy")
