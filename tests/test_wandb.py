"""``logging.wandb: true`` in W&B's offline mode (no network): scalars, videos, config, resume."""

from __future__ import annotations

import pytest

from recore_dist.runtime.local import LocalRunner
from tests.test_local_runner import tiny_train_config

wandb = pytest.importorskip("wandb", reason="the wandb extra is not installed (pip install 'recore-dist[wandb]')")


def _run(logdir, env_steps: int):
    cfg = tiny_train_config(logdir, env_steps=env_steps)
    cfg.logging.wandb, cfg.logging.wandb_mode = True, "offline"
    runner = LocalRunner(cfg, progress=False)
    try:
        return runner.run()
    finally:
        runner.close()


@pytest.mark.slow
def test_offline_wandb_run_mirrors_the_logs_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    logdir = tmp_path / "run"
    _run(logdir, 192)
    run_id = (logdir / "wandb_id").read_text().strip()
    runs = sorted((logdir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and runs[0].name.endswith(run_id)
    data = (runs[0] / f"run-{run_id}.wandb").read_bytes()
    for key in (b"eval_policy_train/return", b"loss/contrastive", b"perf/updates", b"eval/episodes",
                b"open_loop_video/depth", b"cartpole-swingup"):  # scalars, videos, the config
        assert key in data, key
    assert list((logdir / "wandb_media").glob("eval_episodes_*.gif"))
    # the job resumes: the same W&B run id, continued
    second = _run(logdir, 256)
    assert second["resumed"] and (logdir / "wandb_id").read_text().strip() == run_id
    runs = sorted((logdir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(r.name.endswith(run_id) for r in runs)


def test_missing_wandb_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    from recore_dist.logging import Logger
    from recore_dist.runtime.config import LoggingConfig

    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("No module named 'wandb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(RuntimeError, match=r"recore-dist\[wandb\]"):
        Logger(tmp_path, wandb=LoggingConfig(wandb=True, wandb_mode="offline"))
