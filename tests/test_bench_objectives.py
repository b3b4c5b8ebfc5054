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
