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


def flat_config(logdir: Path) -> dict[str, Any]:
    """The run's saved ``config.yaml`` as dotted keys (``learner.model.size``); ``{}`` without one."""
    import yaml

    path = logdir / "config.yaml"
    if not path.is_file():
        return {}
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = value

    walk("", yaml.safe_load(path.read_text()) or {})
    return out


IGNORED_KEYS = ("logdir",)  # differ between any two runs by construction


def config_differences(runs: list[Run]) -> dict[str, list[Any]]:
    """``{key: [value of each run, in order]}`` for every config key whose value differs between the runs."""
    configs = [flat_config(r.logdir) for r in runs]
    keys = sorted({k for c in configs for k in c} - set(IGNORED_KEYS))
    return {k: [c.get(k, "-") for c in configs] for k in keys if len({repr(c.get(k, "-")) for c in configs}) > 1}


def label_by_differences(runs: list[Run], max_keys: int = 3) -> None:
    """Relabel runs by what differs in their configs (``size=xs, ratio=64``), keeping labels unique."""
    diffs = config_differences(runs)
    if not diffs:
        return
    labels = []
    for i in range(len(runs)):
        parts = [f"{k.rsplit('.', 1)[-1]}={values[i]}" for k, values in list(diffs.items())[:max_keys]]
        labels.append(", ".join(parts))
    if len(set(labels)) == len(labels):
        for run, label in zip(runs, labels):
            run.label = label


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


def _figure_of_tags(runs: list[Run], panels: list[tuple[str, str]], axis: int, xlabel: str, path: Path,
                    title: str | None) -> Path | None:
    """One panel per ``(tag, panel title)``, one line per run; ``None`` when no run has any tag."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(tag, name) for tag, name in panels if any(tag in r.scalars for r in runs)]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.4), squeeze=False)
    for ax, (tag, name) in zip(axes[0], panels):
        for run in runs:
            points = run.scalars.get(tag, [])
            if points:
                ax.plot([p[axis] for p in points], [p[2] for p in points], "-", lw=1.2, label=run.label)
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_report_extras(runs: list[Run], out: Path, *, title: str | None = None) -> list[Path]:
    """``generalization_gap.png`` (train minus held-out evaluation return vs env steps) and
    ``throughput.png`` (env steps/s and updates/s vs wall-clock minutes)."""
    paths = [_figure_of_tags(runs, [("eval/generalization_gap", "generalisation gap (train - held-out return)")],
                             0, "env steps", out / "generalization_gap.png", title),
             _figure_of_tags(runs, [("perf/env_steps_per_second", "env steps / s"),
                                    ("perf/updates_per_second", "updates / s")],
                             1, "wall-clock minutes", out / "throughput.png", title)]
    return [p for p in paths if p is not None]
