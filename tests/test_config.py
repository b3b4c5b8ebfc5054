"""Config loading: presets, overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from recore_dist import config
from recore_dist.runtime.config import TrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("preset", sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml")))
def test_presets_load(preset):
    cfg = config.load(TrainConfig, CONFIGS / preset)
    assert cfg.env.name.partition(":")[0] in ("dmc", "nav", "igibson")


def test_overrides_and_round_trip(tmp_path):
    cfg = config.load(TrainConfig, CONFIGS / "quickstart.yaml", ["env.size=84", "learner.model.image_size=84",
                                                                   "num_envs=3", "env.dynamic=false"])
    assert (cfg.env.size, cfg.num_envs, cfg.env.dynamic) == (84, 3, False)
    config.save(cfg, tmp_path / "c.yaml")
    assert config.load(TrainConfig, tmp_path / "c.yaml") == cfg


@pytest.mark.parametrize(
    "override, message",
    [
        ("env.sise=84", "'env.sise'"),
        ("nope=1", "'nope'"),
        ("env.size=big", "env.size='big' must be an int"),
        ("env.depth=1", "env.depth=1 must be a bool"),
        ("env.difficulty=extreme", "env.difficulty='extreme' must be one of"),
        ("seed", "key=value"),
        ("learner.model.size=huge", "learner.model.size='huge' must be one of"),
        ("learner.behavior.discount=2", "discount=2.0 must be in"),
        ("env.size=84", "env.size=84 != learner.model.image_size=64"),
    ],
)
def test_errors_name_the_key(override, message):
    with pytest.raises(config.ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        config.load(TrainConfig, None, [override])


def test_missing_file():
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load(TrainConfig, "configs/none.yaml")


def test_scientific_floats_without_a_dot():
    """YAML 1.1 reads ``2e-4`` as a string; float fields accept it, other strings still fail."""
    cfg = config.load(TrainConfig, None, ["learner.actor_opt.lr=2e-4", "learner.critic_opt.lr=3E-5"])
    assert (cfg.learner.actor_opt.lr, cfg.learner.critic_opt.lr) == (2e-4, 3e-5)
    with pytest.raises(config.ConfigError, match="must be a number"):
        config.load(TrainConfig, None, ["learner.actor_opt.lr=fast"])
    with pytest.raises(config.ConfigError, match="must be an int"):
        config.load(TrainConfig, None, ["env.size=6e1"])


def test_action_repeat_reaches_the_env():
    from recore_dist.envs import make

    cfg = config.load(TrainConfig, CONFIGS / "quickstart.yaml")
    assert "action_repeat" not in cfg.env.options("train")  # the env's own default (CoRe Table 6: 8)
    cfg = config.load(TrainConfig, CONFIGS / "bench_learn.yaml", ["env.size=32", "learner.model.image_size=32"])
    assert cfg.env.action_repeat == 2  # DreamerV3's DMC setting, chosen in the preset
    env = make(cfg.env.name, **cfg.env.options("heldout"))
    try:
        assert env.unwrapped.action_repeat == 2
    finally:
        env.close()
    with pytest.raises(config.ConfigError, match="action_repeat"):
        config.load(TrainConfig, CONFIGS / "bench_learn.yaml", ["env.action_repeat=0"])
