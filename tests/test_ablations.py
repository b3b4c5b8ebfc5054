"""ReCoRe ablation presets (the slides' table) and the ``extends:`` preset overlay."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from recore_dist import config as config_lib
from recore_dist.config import ConfigError
from recore_dist.models.world_model import Spaces
from recore_dist.objectives import make_objective
from recore_dist.runtime.config import TrainConfig
from tests.learner_utils import TINY_MODEL, synthetic_batch

ROOT = Path(__file__).resolve().parents[1]
ABLATIONS = {  # preset -> (loss terms present, terms absent, augment_views)
    "recore_no_cl": ({"loss/depth"}, {"loss/contrastive"}, False),
    "recore_no_cl_da": ({"loss/depth"}, {"loss/contrastive"}, True),
    "recore_no_aux": ({"loss/contrastive"}, {"loss/depth", "loss/image"}, True),
    "recore_no_aux_rgb": ({"loss/contrastive", "loss/image"}, {"loss/depth"}, True),
}


def tensors(batch: dict) -> dict[str, torch.Tensor]:
    out = {k: torch.as_tensor(v) for k, v in batch.items()}
    for key in ("is_first", "is_last", "is_terminal"):
        out[key] = out[key].bool()
    return out


@pytest.mark.parametrize("preset", sorted(ABLATIONS))
def test_ablation_presets_train_the_terms_they_name(preset):
    present, absent, augment = ABLATIONS[preset]
    cfg = config_lib.load(TrainConfig, ROOT / "configs" / "ablations" / f"{preset}.yaml",
                          [f"learner.model.{k}={v}" for k, v in TINY_MODEL.items()] + ["env.size=32"])
    base = config_lib.load(TrainConfig, ROOT / "configs" / "dmc_distracting.yaml")
    assert cfg.env == base.env.__class__(**{**base.env.__dict__, "size": 32})  # the task is the base preset's
    assert cfg.logdir == f"runs/ablations/{preset}" and cfg.learner.objective.recore.augment_views is augment
    objective = make_objective(cfg.learner.objective, cfg.learner.model, Spaces(action_dim=1))
    loss, metrics, _ = objective(tensors(synthetic_batch()))
    assert math.isfinite(float(loss.detach()))
    terms = {k for k in metrics if k.startswith("loss/")}
    assert present <= terms and not absent & terms, terms
    loss.backward()
    assert objective.wm.encoder.convs[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("preset", sorted(ABLATIONS))
def test_navigation_ablation_presets_change_only_the_objective_of_the_nav_bench_preset(preset):
    """configs/ablations/nav/*: the same ablations over configs/bench_nav.yaml (issue 23), for
    `bench learn` at the navigation preset's budget and settings."""
    cfg = config_lib.load(TrainConfig, ROOT / "configs" / "ablations" / "nav" / f"{preset}.yaml")
    base = config_lib.load(TrainConfig, ROOT / "configs" / "bench_nav.yaml")
    single = config_lib.load(TrainConfig, ROOT / "configs" / "ablations" / f"{preset}.yaml")
    assert cfg.logdir == f"runs/bench_nav_ablations/{preset}"
    assert cfg.env == base.env and cfg.replay == base.replay and cfg.eval == base.eval
    assert tuple(cfg.learner.objective.inputs) == ("image", "proprio")  # the goal vector stays encoded
    assert cfg.learner.objective.recore == single.learner.objective.recore  # the ablation's own change
    assert cfg.learner.model == base.learner.model and cfg.learner.batch_length == base.learner.batch_length


def test_unaugmented_views_are_the_raw_frames(monkeypatch):
    cfg = config_lib.load(TrainConfig, ROOT / "configs" / "ablations" / "recore_no_cl.yaml",
                          [f"learner.model.{k}={v}" for k, v in TINY_MODEL.items()] + ["env.size=32"])
    objective = make_objective(cfg.learner.objective, cfg.learner.model, Spaces(action_dim=1))
    seen = []
    monkeypatch.setattr(objective.wm, "encode", lambda x: seen.append(x) or torch.zeros(*x.shape[:2], 1).expand(
        *x.shape[:2], objective.wm.encoder.embed_dim).contiguous())
    batch = tensors(synthetic_batch())
    objective(batch)
    expected = batch["image"].permute(0, 1, 4, 2, 3).float() / 255.0
    assert torch.equal(seen[0], expected)


def test_extends_overlays_sections_and_refuses_cycles(tmp_path):
    (tmp_path / "base.yaml").write_text("seed: 3\nreplay:\n  ratio: 64\n  prefill: 100\n")
    (tmp_path / "top.yaml").write_text("extends: base.yaml\nreplay:\n  ratio: 8\n")
    cfg = config_lib.load(TrainConfig, tmp_path / "top.yaml")
    assert (cfg.seed, cfg.replay.ratio, cfg.replay.prefill) == (3, 8.0, 100)
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        config_lib.load(TrainConfig, tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: missing.yaml\n")
    with pytest.raises(ConfigError, match="does not exist"):
        config_lib.load(TrainConfig, tmp_path / "c.yaml")
