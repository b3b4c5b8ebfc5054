"""Learning curves as PNG files, from runs' TensorBoard event files (``recore-dist plot``).

One figure per x-axis (env frames, wall-clock minutes), one panel per (metric, split): the
periodic evaluation ``eval_policy_{train,heldout}/{return,success,spl}`` the runners log. Env
frames are env steps times the run's action repeat (``EnvConfig.frames_per_step``), so runs at
different repeats, and reference curves, meet at the same amount of experience.

Runs with the same label (the same method, several training seeds) are drawn as one line, their
mean, with a shaded 95% percentile-bootstrap interval across seeds (:mod:`recore_dist.bench.stats`),
each run's curve interpolated onto the evaluation points they share; a single run is its own
line. Where a run has a ``bench_learn.json`` (written by ``recore-dist bench learn``), its final
scene-balanced evaluation is drawn as a marker at the run's end, and the baselines of that
evaluation (random, and the blind goal-vector controller on navigation) as grey lines. On DMC
tasks the frames figure also draws DreamerV3's reference return curve for the clean task
(:mod:`recore_dist.report.reference`) as a dashed black line.

Wall-clock is measured from the run's first logged event (every scalar's wall time is stored in
the event file), so periodic evaluation and checkpoint time are inside it, as in the budget. A
silence of more than ``MAX_SILENCE_MINUTES`` between consecutive events is a run stopped and
resumed from its checkpoint later (a session's end): it is cut out, and the steps redone after the
resume replace the lost ones (:func:`drop_orphans`), so the minutes axis is the run's training
time, as the resumed budget counts it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("train", "heldout")
MAX_SILENCE_MINUTES = 10.0
"""A longer gap between a run's consecutive events is a stop and resume, not training time: runs
log every few updates and a periodic evaluation takes 1-2 minutes on 2 cores."""
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
    env_name: str = ""
    """The run's ``env.name`` (from its saved config), empty when unknown."""
    frames_per_step: int = 1
    """Env frames per env step (the resolved action repeat)."""


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
    events = {tag: drop_orphans(acc.Scalars(tag)) for tag in tags}
    minutes = active_minutes([e.wall_time for evs in events.values() for e in evs])
    return {tag: [(int(e.step), minutes[e.wall_time], float(e.value)) for e in evs]
            for tag, evs in events.items()}


def drop_orphans(events: list) -> list:
    """One tag's events in wall-time order without the orphans of a restart: when a step comes
    after a larger one (a run resumed from an earlier checkpoint), the earlier events at that step
    and beyond are dropped, the redone ones kept. TensorBoard does this only on a SessionLog.START
    event, which torch's SummaryWriter does not write."""
    kept: list = []
    for event in sorted(events, key=lambda e: e.wall_time):
        while kept and kept[-1].step >= event.step:
            kept.pop()
        kept.append(event)
    return kept


def active_minutes(wall_times: list[float], max_silence: float = MAX_SILENCE_MINUTES) -> dict[float, float]:
    """Minutes since the first event, for each wall time, with every silence longer than
    ``max_silence`` minutes between consecutive events cut out (a stop and a later resume)."""
    out: dict[float, float] = {}
    elapsed, previous = 0.0, None
    for t in sorted(set(wall_times)):
        if previous is not None:
            gap = (t - previous) / 60.0
            elapsed += gap if gap <= max_silence else 0.0
        out[t] = elapsed
        previous = t
    return out


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
    from recore_dist.envs.action_repeat import frames_per_step

    logdir = Path(logdir)
    bench = logdir / "bench_learn.json"
    final = json.loads(bench.read_text()) if bench.is_file() else {}
    config = flat_config(logdir)
    env_name = str(final.get("task") or config.get("env.name") or "")
    repeat = final.get("action_repeat") or frames_per_step(env_name, config.get("env.action_repeat"))
    return Run(logdir, label or label_of(logdir), read_scalars(logdir / "tb"), final, env_name, int(repeat))


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
    """Relabel runs by what differs in their configs (``size=xs, ratio=64``), keeping labels unique;
    the training ``seed`` is not a difference: runs that differ only in it stay one group."""
    diffs = {k: v for k, v in config_differences(runs).items() if k != "seed"}  # seeds of a method: one group
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


def group_runs(runs: list[Run]) -> list[list[Run]]:
    """Runs grouped by label (seeds of one method), in order of first appearance."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.label, []).append(run)
    return list(groups.values())


def _x(run: Run, point: tuple[int, float, float], axis: int) -> float:
    return point[0] * run.frames_per_step if axis == 0 else point[1]


def mean_band(curves: list[list[tuple[float, float]]]) -> tuple[list[float], list[float], list[tuple[float, float]] | None]:
    """``(x, mean, 95% CI per x or None)`` of several ``[(x, y), ...]`` curves, each interpolated
    onto the x values of all curves that lie inside every curve's range (one curve: itself)."""
    import numpy as np

    from recore_dist.bench.stats import bootstrap_ci

    curves = [sorted(c) for c in curves if c]
    if not curves:
        return [], [], None
    if len(curves) == 1:
        return [p[0] for p in curves[0]], [p[1] for p in curves[0]], None
    lo, hi = max(c[0][0] for c in curves), min(c[-1][0] for c in curves)
    grid = sorted({p[0] for c in curves for p in c if lo <= p[0] <= hi})
    if not grid:
        return [], [], None
    ys = np.array([np.interp(grid, [p[0] for p in c], [p[1] for p in c]) for c in curves])  # [runs, grid]
    return grid, ys.mean(axis=0).tolist(), [bootstrap_ci(ys[:, j], resamples=1000) for j in range(len(grid))]


def legend_columns(labels: list[str], width_inches: float, *, chars_per_inch: float = 11.0) -> int:
    """Columns for a figure legend of ``labels`` that fit the figure's width (at most 4): about
    ``chars_per_inch`` characters of the default 10 pt font per inch, plus ~6 for each entry's handle."""
    longest = max((len(lab) for lab in labels), default=1) + 6
    return max(1, min(len(labels), 4, int(width_inches * chars_per_inch // longest)))


def plot_runs(runs: list[Run], out: str | Path, *, title: str | None = None) -> list[Path]:
    """Write ``eval_vs_frames.png`` and ``eval_vs_minutes.png`` under ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    from recore_dist.report.reference import SOURCE, reference_curve

    if not runs:
        raise ValueError("no runs to plot")
    metrics = _metrics(runs)
    if not metrics:
        raise ValueError(f"no evaluation curves (eval_policy_*) in {[str(r.logdir) for r in runs]}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    groups = group_runs(runs)
    tasks = {r.env_name for r in runs}
    reference = reference_curve(tasks.pop()) if len(tasks) == 1 else None
    paths = []
    for axis, xlabel, name in ((0, "env frames (action repeat included)", "eval_vs_frames.png"),
                               (1, "wall-clock minutes", "eval_vs_minutes.png")):
        fig, axes = plt.subplots(len(metrics), len(SPLITS), figsize=(5.0 * len(SPLITS), 3.2 * len(metrics)),
                                 squeeze=False, sharex=True)
        for row, metric in enumerate(metrics):
            for col, split in enumerate(SPLITS):
                ax = axes[row][col]
                right = 0.0
                for k, group in enumerate(groups):
                    colour = colours[k % len(colours)]
                    tag = f"eval_policy_{split}/{metric}"
                    curves = [[(_x(r, p, axis), p[2]) for p in r.scalars.get(tag, [])] for r in group]
                    xs, mean, band = mean_band(curves)
                    right = max([right, *xs])
                    if xs and band is None:
                        ax.plot(xs, mean, "-o", ms=3, color=colour, label=group[0].label)
                    elif xs:
                        ax.plot(xs, mean, "-", lw=1.6, color=colour,
                                label=f"{group[0].label} (mean of {len(group)} seeds, 95% CI)")
                        ax.fill_between(xs, [b[0] for b in band], [b[1] for b in band], color=colour, alpha=0.2,
                                        lw=0)
                    for run in group:
                        right = max(right, _final_marks(ax, run, split, metric, axis, colour))
                if axis == 0 and metric == "return" and reference is not None and right > 0:
                    xs = sorted(x for x in reference if x <= right * 1.05)
                    upper = min((x for x in reference if x > right * 1.05), default=None)
                    if upper is not None:
                        xs.append(upper)
                    ax.plot(xs, [reference[x] for x in xs], "--", color="black", lw=1.2,
                            label="DreamerV3, clean task (10 seeds)")
                    ax.set_xlim(0, right * 1.05)
                ax.set_title(f"{METRICS[metric]}, {split} split")
                ax.grid(alpha=0.3)
                if row == len(metrics) - 1:
                    ax.set_xlabel(xlabel)
                if axis == 0:  # 225000 -> 225k: six-digit frame counts collide on a 5-inch axis
                    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k" if x else "0"))
        handles, labels = {}, []
        for ax in axes.flat:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in handles:
                    handles[lab] = h
                    labels.append(lab)
        ncol = legend_columns(labels, fig.get_figwidth())
        fig.legend([handles[lab] for lab in labels], labels, loc="lower center", ncol=ncol, frameon=False)
        if title:
            fig.suptitle(title)
        footer = 0.06 * -(-len(labels) // ncol)
        if axis == 0 and reference is not None:
            fig.text(0.01, 0.005, SOURCE, fontsize=6, color="grey")
        fig.tight_layout(rect=(0, footer, 1, 1))
        path = out / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _final_marks(ax, run: Run, split: str, metric: str, axis: int, colour: str) -> float:
    """The final balanced evaluation of a ``bench learn`` run (a star) and its baselines (grey);
    returns the star's x (0 without one)."""
    evaluation = run.final.get("eval") or {}
    key = SUMMARY_KEY[metric]
    learned = (evaluation.get("learned") or {}).get(split, {})
    x = 0.0
    if key in learned:
        frames = run.final.get("frames", run.final["env_steps"] * run.frames_per_step)
        x = frames if axis == 0 else run.final["train_seconds"] / 60.0
        ax.plot([x], [learned[key]], "*", ms=11, color=colour, label=f"{run.label}, final ({int(learned['episodes'])} ep.)")
    for policy, style in (("random", ":"), ("blind", "-.")):
        value = (evaluation.get(policy) or {}).get(split, {}).get(key)
        if value is not None:
            ax.axhline(value, ls=style, color="grey", lw=1, label=f"{policy} policy")
    return x


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
