"""``recore-dist bench objectives`` end to end on a tiny dataset (real env, real learners)."""

from __future__ import annotations

import json

import pytest

from recore_dist.bench import objectives as bench


@pytest.mark.slow
def test_bench_objectives_small_run_has_every_figure(tmp_path, capsys):
    result = bench.run_bench(methods=("recore", "hrssm"), updates=4, size="xxs", batch_size=4, length=16,
                             grad_every=2, episodes=4, threads=1, cache_dir=str(tmp_path), progress=False)
    rows = result["methods"]
    assert set(rows) == {"recore", "hrssm"}
    recore = rows["recore"]
    for key in ("seconds_per_update", "clip_fraction", "grad_share", "ssl_accuracy", "ssl_chance", "probe_ratio",
                "precision"):
        assert key in recore, key
    assert 0.0 < recore["ssl_chance"] < 1.0 and 0.0 <= recore["ssl_accuracy"] <= 1.0
    assert set(recore["grad_share"]) >= {"contrastive", "depth"}
    assert sum(recore["grad_share"].values()) == pytest.approx(1.0, abs=1e-6)
    assert set(recore["probe_ratio"]) == {"reward", "depth"} and all(v > 0 for v in recore["probe_ratio"].values())
    assert rows["hrssm"]["latent_recon_error_start"] > 0.0
    json.dumps(result)  # one JSON object
    table = bench.format_table(result)
    assert "recore" in table and "chance" in table


def test_bench_objectives_refuses_unknown_methods():
    with pytest.raises(ValueError, match="unknown methods"):
        bench.run_bench(methods=("dreamer",), updates=1)


def test_r2_of_known_predictions():
    import numpy as np

    from recore_dist.bench.nav_probe import goal_targets, r2

    rng = np.random.default_rng(0)
    target = rng.normal(size=(1000, 3)) * [2.0, 0.5, 0.5] + [3.0, 0.0, 0.0]
    assert r2(target, target) == 1.0
    assert r2(np.broadcast_to(target.mean(0), target.shape), target) == pytest.approx(0.0, abs=1e-12)
    noisy = target + rng.normal(size=target.shape) * target.std(0) * 0.5  # 1 - 0.25 explained per column
    assert r2(noisy, target) == pytest.approx(0.75, abs=0.05)
    proprio = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    assert goal_targets(proprio).shape == (8, 3) and goal_targets(proprio)[1].tolist() == [5.0, 6.0, 7.0]


def test_bench_objectives_refuses_other_envs():
    with pytest.raises(ValueError, match="runs on"):
        bench.run_bench(methods=("recore",), updates=1, env="dmc:walker-walk")


@pytest.mark.slow
def test_bench_objectives_on_navigation_reports_the_goal_probe(tmp_path):
    """Real navigation scenes, train vs held-out: every method reports ``goal_probe_r2`` (finite,
    at most 1) and decodes proprio (its gradient share is logged)."""
    import math

    result = bench.run_bench(methods=("recore", "core"), updates=3, size="xxs", batch_size=4, length=16,
                             grad_every=1, episodes=8, threads=1, cache_dir=str(tmp_path), progress=False,
                             env="nav:pointgoal")
    assert result["task"] == "nav:pointgoal"
    for name, row in result["methods"].items():
        assert math.isfinite(row["goal_probe_r2"]) and row["goal_probe_r2"] <= 1.0, name
        assert "proprio" in row["grad_share"], name
    assert "goal R2" in bench.format_table(result)
