"""``recore-dist report DIR [DIR ...] --out OUT``: every plot of :mod:`recore_dist.report.curves`
for a set of runs, and an ``index.html`` that shows them with the runs' config differences.

Writes under ``OUT``: ``eval_vs_frames.png``, ``eval_vs_minutes.png`` (evaluation return, and SR /
SPL on navigation, on both splits), ``generalization_gap.png``, ``throughput.png`` (env steps/s,
updates/s), and ``index.html``: a table of the runs (label, logdir, last evaluation per split,
env steps, updates), a table of the config keys whose values differ between them, and the
images. Lines are labelled by what differs in the saved configs (``--labels`` overrides).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from recore_dist.report.curves import Run, config_differences, label_by_differences, plot_report_extras, plot_runs


def _last(run: Run, tag: str) -> float | None:
    points = run.scalars.get(tag)
    return points[-1][2] if points else None


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return html.escape(str(value))


def write_report(runs: list[Run], out: str | Path, *, title: str = "recore-dist report",
                 relabel: bool = True) -> dict[str, Any]:
    """Plots and ``index.html`` for ``runs``; returns ``{"html": path, "images": [paths]}``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if relabel and len(runs) > 1:
        label_by_differences(runs)
    images = plot_runs(runs, out, title=title) + plot_report_extras(runs, out, title=title)
    diffs = config_differences(runs) if len(runs) > 1 else {}
    nav = any(any(t.endswith("/success") for t in r.scalars) for r in runs)
    metric = [("return", "return")] + ([("success", "SR"), ("spl", "SPL")] if nav else [])
    head = ["run", "logdir", "env steps", "updates"] + [f"{name} {split}" for _, name in metric
                                                        for split in ("train", "held-out")]
    rows = []
    for run in runs:
        env_steps = max((p[0] for pts in run.scalars.values() for p in pts), default=None)
        cells = [run.label, str(run.logdir), env_steps, _last(run, "perf/updates")]
        cells += [_last(run, f"eval_policy_{split}/{key}") for key, _ in metric for split in ("train", "heldout")]
        rows.append("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in cells) + "</tr>")
    table = ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(rows)
             + "</table>")
    if diffs:
        labels = [r.label for r in runs]
        diff_rows = "".join("<tr><td><code>" + html.escape(k) + "</code></td>"
                            + "".join(f"<td>{_fmt(value)}</td>" for value in values) + "</tr>"
                            for k, values in diffs.items())
        diff_table = ("<h2>Config differences</h2><table><tr><th>key</th>"
                      + "".join(f"<th>{html.escape(label)}</th>" for label in labels) + "</tr>" + diff_rows + "</table>")
    else:
        diff_table = "<p>One run, or runs with the same config (apart from <code>logdir</code>).</p>"
    figures = "".join(f'<figure><img src="{html.escape(p.name)}" alt="{html.escape(p.stem)}">'
                      f"<figcaption>{html.escape(p.stem.replace('_', ' '))}</figcaption></figure>" for p in images)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;margin-bottom:1.5em}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}} img{{max-width:100%}}
figure{{margin:1em 0}}</style></head>
<body><h1>{html.escape(title)}</h1>
<h2>Runs (last evaluation)</h2>{table}
{diff_table}
<h2>Curves</h2>{figures}
</body></html>
"""
    path = out / "index.html"
    path.write_text(page)
    return {"html": path, "images": images}
