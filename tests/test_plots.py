"""``recore-dist plot``: PNG learning curves from real TensorBoard event files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from recore_dist.logging import Logger


def _run(logdir, method: str, scale: float, *, final: bool = True) -> None:
    logger = Logger(logdir)
    for i, step in enumerate(range(0, 50_000, 10_000)):
        logger.scalars({"eval_policy_train/return": scale * i, "eval_policy_heldout/return": 0.8 * scale * i,
                        "eval_policy_train/success": 0.1 * i, "eval_policy_heldout/success": 0.05 * i,
                        "train/return": float(i)}, step)
    logger.close()
    (logdir / "config.yaml").write_text(f"learner:\n  objective:\n    name: {method}\n")
    if final:
        ev = {split: {"return": scale * 5, "sr": 0.5, "spl": 0.4, "episodes": 40.0} for split in ("train", "heldout")}
        blind = {split: {"return": 1.0, "sr": 0.3, "spl": 0.25, "episodes": 40.0} for split in ("train", "heldout")}
        (logdir / "bench_learn.json").write_text(json.dumps(
            {"method": method, "env_steps": 50_000, "train_seconds": 3600.0,
             "eval": {"learned": ev, "random": blind, "blind": blind}}))


def test_plot_writes_curves_against_steps_and_minutes(tmp_path):
    import matplotlib.image

    from recore_dist.report.curves import label_of, load_run, plot_runs

    _run(tmp_path / "a", "recore", 2.0)
    _run(tmp_path / "b", "recon", 1.0, final=False)
    assert label_of(tmp_path / "b") == "recon"
    runs = [load_run(tmp_path / "a"), load_run(tmp_path / "b")]
    assert [p[0] for p in runs[0].scalars["eval_policy_train/return"]] == [0, 10_000, 20_000, 30_000, 40_000]
    assert all(p[1] >= 0.0 for p in runs[0].scalars["eval_policy_train/return"])  # minutes since the first event
    paths = plot_runs(runs, tmp_path / "plots", title="test")
    assert [p.name for p in paths] == ["eval_vs_frames.png", "eval_vs_minutes.png"]
    for path in paths:
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
        assert image[..., :3].std() > 0.05  # lines and text, not a blank canvas


def test_plot_cli_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "recore_dist.cli", "plot", str(tmp_path / "empty"), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no TensorBoard directory" in proc.stderr
    logger = Logger(tmp_path / "noeval")
    logger.scalars({"train/return": 1.0}, 0)
    logger.close()
    from recore_dist.report.curves import load_run, plot_runs

    with pytest.raises(ValueError, match="no evaluation curves"):
        plot_runs([load_run(tmp_path / "noeval")], tmp_path / "o")
    _run(tmp_path / "ok", "recore", 1.0)
    proc = subprocess.run([sys.executable, "-m", "recore_dist.cli", "plot", str(tmp_path / "ok"), "--out",
                           str(tmp_path / "o"), "--labels", "a,b"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "2 labels for 1 runs" in proc.stderr


def _real_run(logdir, ratio: int):
    from recore_dist.runtime.local import LocalRunner
    from tests.test_local_runner import tiny_train_config

    cfg = tiny_train_config(logdir)
    cfg.replay.ratio = ratio
    cfg.eval.every = 64  # a few evaluations along the way, not only the final one
    runner = LocalRunner(cfg, progress=False)
    try:
        runner.run()
    finally:
        runner.close()
    return logdir


def _check_png(path):
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 200, (path, image.shape)
    assert image[..., :3].std() > 0.05, path  # drawn on, not blank


@pytest.mark.slow
def test_report_of_two_real_runs_labels_them_by_their_config_difference(tmp_path):
    a, b = _real_run(tmp_path / "a", 32), _real_run(tmp_path / "b", 16)
    proc = subprocess.run([sys.executable, "-m", "recore_dist.cli", "report", str(a), str(b), "--out",
                           str(tmp_path / "report")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "report"
    names = {"eval_vs_frames.png", "eval_vs_minutes.png", "generalization_gap.png", "throughput.png"}
    assert names <= {p.name for p in out.iterdir()}
    for name in names:
        _check_png(out / name)
    page = (out / "index.html").read_text()
    for name in names:
        assert f'src="{name}"' in page
    assert "<code>replay.ratio</code>" in page and "ratio=32" in page and "ratio=16" in page
    assert "logdir</code>" not in page  # differs by construction: not a difference worth a row


def test_seeds_of_a_method_are_one_mean_line_with_an_interval_and_frames_count_the_action_repeat(tmp_path):
    """Three seeds of recore and one of recon on DMC: run frames are env steps x the repeat, the
    seeds group by label, and both figures are drawn (with DreamerV3's curve on the frames one)."""
    import matplotlib.image

    from recore_dist.report.curves import group_runs, load_run, plot_runs

    dirs = []
    for i, (method, scale) in enumerate((("recore", 2.0), ("recore", 2.5), ("recore", 1.5), ("recon", 1.0))):
        d = tmp_path / f"r{i}"
        _run(d, method, scale, final=False)
        (d / "config.yaml").write_text(f"seed: {i}\nenv:\n  name: dmc:cartpole-swingup\n  action_repeat: 2\n"
                                       f"learner:\n  objective:\n    name: {method}\n")
        dirs.append(d)
    runs = [load_run(d) for d in dirs]
    assert {r.frames_per_step for r in runs} == {2} and runs[0].env_name == "dmc:cartpole-swingup"
    assert [[r.logdir.name for r in g] for g in group_runs(runs)] == [["r0", "r1", "r2"], ["r3"]]
    paths = plot_runs(runs, tmp_path / "plots")
    assert [p.name for p in paths] == ["eval_vs_frames.png", "eval_vs_minutes.png"]
    for path in paths:
        image = matplotlib.image.imread(path)
        assert image[..., :3].std() > 0.05
    # the report's config-difference labels keep seeds together (seed is not a difference)
    from recore_dist.report.curves import label_by_differences

    label_by_differences(runs)
    assert [r.label for r in runs] == ["recore", "recore", "recore", "recon"]


def test_minutes_of_a_run_stopped_and_resumed_count_training_time_only(tmp_path):
    """A run cut at step 5 (a session's end) and resumed 90 minutes later from its step-3 checkpoint:
    its event files hold both sessions. The minutes axis cuts the silence out, and the steps redone
    after the resume replace the lost ones, so the axis is the run's training time."""
    from torch.utils.tensorboard import SummaryWriter

    from recore_dist.report.curves import active_minutes, read_scalars

    t0 = 1_800_000_000.0
    first = SummaryWriter(str(tmp_path / "tb"))
    for step in range(6):  # one event a minute
        first.add_scalar("eval_policy_train/return", float(step), step, walltime=t0 + 60.0 * step)
    first.close()
    second = SummaryWriter(str(tmp_path / "tb"), filename_suffix=".resumed")
    for step in range(4, 8):  # resumed from the checkpoint after step 3, 90 minutes later
        second.add_scalar("eval_policy_train/return", 10.0 + step, step, walltime=t0 + 60.0 * (90 + step))
    second.close()
    points = read_scalars(tmp_path / "tb")["eval_policy_train/return"]
    assert [p[0] for p in points] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert [p[2] for p in points] == [0.0, 1.0, 2.0, 3.0, 14.0, 15.0, 16.0, 17.0]  # the redone steps
    assert [round(p[1], 6) for p in points] == [0.0, 1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0]  # no 90-minute jump
    assert active_minutes([0.0, 60.0, 660.0, 720.0]) == {0.0: 0.0, 60.0: 1.0, 660.0: 11.0, 720.0: 12.0}  # 10 min kept
    assert active_minutes([0.0, 60.0, 661.0]) == {0.0: 0.0, 60.0: 1.0, 661.0: 1.0}  # just over 10: cut


def test_figure_legend_of_two_seed_groups_fits_the_figure():
    """Two methods with seeds make six long legend entries; four columns of them overflow a
    10-inch figure (issue 24's first plot cut both ends), the chosen columns fit it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recore_dist.report.curves import legend_columns

    labels = ["recore (mean of 3 seeds, 95% CI)", "recore, final (10 ep.)", "random policy",
              "recon (mean of 2 seeds, 95% CI)", "recon, final (10 ep.)", "DreamerV3, clean task (10 seeds)"]

    def fits(ncol: int) -> bool:
        fig, ax = plt.subplots(1, 2, figsize=(10.0, 3.2))
        handles = [ax[0].plot([0, 1], [0, 1], label=lab)[0] for lab in labels]
        legend = fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False)
        fig.canvas.draw()
        box, width = legend.get_window_extent(), fig.bbox.width
        plt.close(fig)
        return box.x0 >= 0 and box.x1 <= width

    assert not fits(4)
    ncol = legend_columns(labels, 10.0)
    assert 1 <= ncol < 4 and fits(ncol)
    assert legend_columns(["a", "b"], 10.0) == 2 and legend_columns([], 10.0) == 1
