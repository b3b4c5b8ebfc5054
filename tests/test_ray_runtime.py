"""The Ray runtime on a real local Ray: shards, runners, learner, orchestrator; faults and scaling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from recore_dist import config as config_lib
from recore_dist.data import ChunkFormatError, encode_chunks
from recore_dist.runtime.config import TrainConfig
from tests.learner_utils import TINY_MODEL
from tests.test_replay import stream
from tests.waiting import sigkill, wait_for_new_pid, wait_until

pytestmark = pytest.mark.slow


def ray_config(logdir: Path, **ray_overrides) -> TrainConfig:
    rt = {"runners": 2, "envs_per_runner": 2, "shards": 2, "collect_steps": 8, "train_seconds": 1.0,
          "checkpoint_every_s": 5, "shard_checkpoint_every_s": 2, "eval_every_s": 20, "runner_cpus": 1,
          "learner_cpus": 1, "insert_timeout": 5.0}
    rt.update(ray_overrides)
    return config_lib.from_dict(TrainConfig, {
        "logdir": str(logdir), "env_steps": 100_000, "runner": "ray",
        "env": {"name": "dmc:cartpole-swingup", "size": 32, "interventions": "colour,background"},
        "replay": {"capacity": 20_000, "chunk_length": 16, "prefill": 64, "ratio": 8},
        "learner": {"model": dict(TINY_MODEL), "batch_size": 4, "batch_length": 8, "behavior": {"horizon": 4},
                    "device": "cpu", "threads": 1},
        "eval": {"every": 0, "episodes": 1, "num_envs": 1}, "ray": rt})


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    from recore_dist.envs.gl import ensure_mujoco_gl

    ensure_mujoco_gl()
    ray.init(num_cpus=12, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"MUJOCO_GL": os.environ["MUJOCO_GL"], "OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


def _tags(logdir: Path) -> dict[str, list]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}


def _run_in_thread(orchestrator, seconds: float) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def target() -> None:
        try:
            out["summary"] = orchestrator.run(max_seconds=seconds)
        except BaseException as exc:  # pragma: no cover - surfaced by the test
            out["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, out


# ------------------------------------------------------------------------------------------ components
@pytest.mark.parametrize("log", [False, True])
def test_shard_actor_rejects_malformed_chunks_and_survives_sigkill(ray_cluster, tmp_path, log):
    """A shard on Ray: malformed payloads raise ChunkFormatError and change nothing; after SIGKILL it
    restarts from its last checkpoint: without the log it loses exactly what was inserted after
    that checkpoint, with the log (the runtime's default) nothing."""
    ray = ray_cluster
    from recore_dist.data.batch import decode_batch
    from recore_dist.replay.shard import ShardConfig, remote_shard

    cfg = ShardConfig(capacity=1000, length=3, chunk_length=4, ratio=float("inf"), min_size=0,
                      checkpoint_dir=str(tmp_path), max_sample=8, max_insert_chunks=4, log=log)
    shard = remote_shard(cfg, 0)
    ray.get(shard.insert.remote(encode_chunks(stream(0, 5, 4))))
    with pytest.raises(ChunkFormatError):
        ray.get(shard.insert.remote(b"\x92\xc4\x03abc\xc4\x01x"))
    stats = ray.get(shard.stats.remote())
    assert stats["replay/steps"] == 20 and stats["replay/rejected_payloads"] == 1
    ray.get(shard.checkpoint.remote())
    ray.get(shard.insert.remote(encode_chunks(stream(0, 3, 4, seq0=5, step0=20))))  # after the checkpoint
    assert ray.get(shard.size.remote()) == 32
    pid = ray.get(shard.pid.remote())
    sigkill(pid)
    wait_for_new_pid(lambda: ray.get(shard.pid.remote(), timeout=10), pid, 60, "the shard's restart",
                     errors=(ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError))
    stats = ray.get(shard.stats.remote())
    assert stats["replay/restores"] == 1
    assert stats["replay/steps"] == (32 if log else 20)  # without the log the 12 steps after it are lost
    assert stats["replay/rejected_payloads"] == 1  # counters come back with the data
    batch = decode_batch(ray.get(shard.sample.remote(4)))
    assert batch["image"].shape[:2] == (4, 3)
    ray.kill(shard, no_restart=True)


def test_env_runner_pushes_msgpack_chunks_and_loads_weights(ray_cluster, tmp_path):
    ray = ray_cluster
    from recore_dist.learner import Learner
    from recore_dist.replay.client import ReplayClient
    from recore_dist.replay.shard import ShardConfig, remote_shard
    from recore_dist.runtime.env_runner import remote_runner
    from recore_dist.runtime.orchestrator import _probe_spaces

    cfg = ray_config(tmp_path)
    shards = [remote_shard(ShardConfig(capacity=5000, length=8, chunk_length=16, ratio=float("inf"), min_size=0,
                                       max_sample=4, max_insert_chunks=2), i) for i in range(2)]
    client = ReplayClient(shards)
    runners = [remote_runner(cfg, i, client) for i in range(2)]
    learner = Learner(cfg.learner, _probe_spaces(cfg))
    weights = (7, [ray.put(learner.policy_weights())])
    outs = ray.get([r.collect.remote(40, weights=weights, random=False, learner_version=9) for r in runners])
    for runner_id, out in enumerate(outs):
        assert out["runner_id"] == runner_id and out["env_steps"] == 80
        assert out["policy_version"] == 7 and out["staleness"] == 2 and out["weight_updates"] == 1
        assert out["chunks"] == 4  # 2 simulators x 2 full 16-row chunks (40 steps)
    ray.get([r.flush.remote() for r in runners])
    sizes = client.sizes(fresh=True)
    assert list(sizes) == [64, 64]  # runner i -> shard i
    batch = client.sample(6)
    assert batch["image"].shape == (6, 8, 32, 32, 3) and batch["depth"].shape[:2] == (6, 8)
    for actor in (*runners, *shards):
        ray.kill(actor, no_restart=True)


# ------------------------------------------------------------------------------------------ orchestrator
def test_trains_end_to_end_logs_checkpoints_and_resumes(ray_cluster, tmp_path):
    from recore_dist.runtime.orchestrator import Orchestrator

    logdir = tmp_path / "run"
    cfg = ray_config(logdir)
    cfg.env_steps = 400
    orch = Orchestrator(cfg, progress=False)
    try:
        first = orch.run()
    finally:
        orch.close()
    assert first["env_steps"] >= 400 and first["updates"] > 0 and not first["resumed"]
    assert "eval_policy_heldout/return" in first and "eval/generalization_gap" in first
    assert (logdir / "checkpoint" / "learner.pt").is_file() and (logdir / "replay" / "shard-1" / "LATEST").is_file()
    tags = _tags(logdir)
    for tag in ("perf/env_steps_per_second", "perf/chunks_per_second", "perf/samples_per_second",
                "perf/updates_per_second", "replay/steps", "replay/ratio", "runtime/weight_staleness",
                "replay/rejected_chunks", "runtime/restarts", "loss/contrastive", "loss/depth", "ac/return"):
        assert tag in tags, tag
    ratio = tags["replay/ratio"][-1].value  # logged once more at the end of the run
    assert 0 < ratio <= 8 * 1.5  # the rate limiter holds replayed / inserted steps near 8
    state = json.loads((logdir / "checkpoint" / "state.json").read_text())["counters"]
    assert state["env_steps"] == first["env_steps"] and state["updates"] == first["updates"]
    cfg2 = ray_config(logdir)
    cfg2.env_steps = first["env_steps"] + 64
    orch = Orchestrator(cfg2, progress=False)
    try:
        assert orch.resumed
        second = orch.run()
    finally:
        orch.close()
    assert second["resumed"] and second["env_steps"] >= first["env_steps"] + 64
    assert second["updates"] >= first["updates"] and second["replay_steps"] >= first["replay_steps"]


def test_sigkill_env_runner_mid_run_restarts_and_training_continues(ray_cluster, tmp_path):
    ray = ray_cluster
    from recore_dist.runtime.orchestrator import Orchestrator

    orch = Orchestrator(ray_config(tmp_path / "run"), progress=False)
    try:
        thread, out = _run_in_thread(orch, 70)
        wait_until(lambda: orch.runner_pids and orch.counters["updates"] > 0, 60, "a runner and an update")
        victim = min(orch.runner_pids)
        pid = orch.runner_pids[victim]
        before = sum(ray.get([s.size.remote() for s in orch.shards]))
        updates = orch.counters["updates"]
        sigkill(pid)
        thread.join()
    finally:
        orch.close()
    assert "error" not in out, out.get("error")
    summary = out["summary"]
    assert summary["restarts"] >= 1 and orch.runner_pids[victim] != pid
    assert summary["updates"] > updates  # training went on
    assert summary["replay_steps"] >= before  # the replay kept everything it had


def test_scale_runners_while_running(ray_cluster, tmp_path):
    from recore_dist.runtime.orchestrator import Orchestrator, request_scale

    logdir = tmp_path / "run"
    orch = Orchestrator(ray_config(logdir, runners=1), progress=False)
    seen = []
    try:
        thread, out = _run_in_thread(orch, 60)
        deadline = time.time() + 40  # for the three waits together
        wait_until(lambda: len(orch.runner_pids) >= 1, deadline - time.time(), "the first runner")
        seen.append(len(orch.runners))
        request_scale(logdir, 3)
        wait_until(lambda: len(orch.runner_pids) >= 3, deadline - time.time(), "the scale-up to 3 runners")
        seen.append(len(orch.runners))
        request_scale(logdir, 2)
        wait_until(lambda: len(orch.runners) == 2, deadline - time.time(), "the scale-down to 2 runners")
        seen.append(len(orch.runners))
        thread.join()
    finally:
        orch.close()
    assert "error" not in out, out.get("error")
    assert seen == [1, 3, 2] and out["summary"]["runners"] == 2


def test_killed_driver_resumes_with_the_same_counters(ray_cluster, tmp_path):
    """SIGKILL the driver (``recore-dist train`` joined to this Ray cluster); a new run on the same
    logdir resumes from the last checkpoint: same counters, learner and replay."""
    ray = ray_cluster
    logdir = tmp_path / "run"
    cfg = ray_config(logdir, checkpoint_every_s=3, address=ray.get_runtime_context().gcs_address)
    cfg.env_steps = 100_000
    config_lib.save(cfg, tmp_path / "cfg.yaml")
    cmd = [sys.executable, "-m", "recore_dist.cli", "train", "--config", str(tmp_path / "cfg.yaml"), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=Path(__file__).parents[1], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    state_file = logdir / "checkpoint" / "state.json"
    wait_until(lambda: state_file.is_file() and json.loads(state_file.read_text())["counters"]["updates"] > 0,
               240, "a checkpoint with updates", poll=1, proc=proc)
    sigkill(proc)
    saved = json.loads(state_file.read_text())["counters"]
    from recore_dist.runtime.orchestrator import Orchestrator

    cfg2 = ray_config(logdir)
    cfg2.env_steps = saved["env_steps"] + 32
    orch = Orchestrator(cfg2, progress=False)
    try:
        assert orch.resumed and orch.counters["env_steps"] == saved["env_steps"]
        assert ray.get(orch.learner.updates.remote()) == saved["updates"]
        summary = orch.run()
    finally:
        orch.close()
    assert summary["resumed"] and summary["env_steps"] >= saved["env_steps"] + 32
    assert summary["updates"] >= saved["updates"]
    assert np.isfinite(summary["replay_steps"]) and summary["replay_steps"] > 0


def test_two_learners_train_survive_a_sigkilled_rank_and_resume_with_one(ray_cluster, tmp_path):
    """``ray.learners: 2`` (gloo): trains end to end; SIGKILL of rank 1 restarts the whole group
    from the last checkpoint and training goes on (logged); the logdir then resumes with 1 learner."""
    from recore_dist.runtime.orchestrator import Orchestrator

    logdir = tmp_path / "run"
    orch = Orchestrator(ray_config(logdir, learners=2, checkpoint_every_s=3), progress=False)
    try:
        assert orch.learners.size == 2 and orch.learners.backend == "gloo"
        thread, out = _run_in_thread(orch, 75)
        wait_until(lambda: orch.counters["updates"] > 0 and (logdir / "checkpoint" / "learner.pt").is_file(),
                   60, "an update and a checkpoint")
        pids = orch.learners.pids()
        assert len(set(pids)) == 2
        saved = json.loads((logdir / "checkpoint" / "state.json").read_text())["counters"]["updates"]
        sigkill(pids[1])
        thread.join()
    finally:
        orch.close()
    assert "error" not in out, out.get("error")
    summary = out["summary"]
    assert summary["learners"] == 2 and summary["learner_restarts"] >= 1 and orch.learners.restarts >= 1
    assert summary["updates"] > saved  # the new group trained on from the checkpoint
    tags = _tags(logdir)
    assert tags["runtime/learner_restarts"][-1].value >= 1
    assert "perf/replayed_steps_per_second" in tags
    cfg = ray_config(logdir)  # one learner now
    cfg.env_steps = summary["env_steps"] + 64
    orch = Orchestrator(cfg, progress=False)
    try:
        assert orch.resumed and orch.learners.size == 1
        resumed_at = ray_cluster.get(orch.learner.updates.remote())
        second = orch.run()
    finally:
        orch.close()
    state = json.loads((logdir / "checkpoint" / "state.json").read_text())["counters"]
    assert resumed_at == summary["updates"]  # the 2-learner run's last checkpoint, loaded by 1 learner
    assert second["updates"] >= resumed_at and state["updates"] == second["updates"]


def test_sigkill_learner_restarts_from_its_last_checkpoint_with_its_counters(ray_cluster, tmp_path):
    """One learner killed with SIGKILL: Ray restarts it, it loads the run's newest checkpoint
    (parameters and update counter), the restart is logged, and training goes on past it."""
    from recore_dist.runtime.orchestrator import Orchestrator

    logdir = tmp_path / "run"
    orch = Orchestrator(ray_config(logdir, checkpoint_every_s=3), progress=False)
    try:
        thread, out = _run_in_thread(orch, 60)
        wait_until(lambda: orch.learner_pids and (logdir / "checkpoint" / "state.json").is_file(),
                   60, "a learner result and a checkpoint")
        saved = json.loads((logdir / "checkpoint" / "state.json").read_text())["counters"]["updates"]
        pid = orch.learner_pids[0]
        sigkill(pid)
        thread.join()
    finally:
        orch.close()
    assert "error" not in out, out.get("error")
    summary = out["summary"]
    assert summary["learner_restarts"] >= 1 and orch.learner_pids[0] != pid
    assert summary["updates"] > saved  # restored from the checkpoint's counter, then trained on
    assert _tags(logdir)["runtime/learner_restarts"][-1].value >= 1


def test_curriculum_level_reaches_ray_runners_counts_their_episodes_and_resumes(ray_cluster, tmp_path):
    """`env.curriculum` on the Ray path: the driver's level (not the runners' start) is what the
    runners' simulators draw goals under, the runners' finished training episodes reach the
    driver's curriculum, TensorBoard logs the level, and the checkpoint carries it into a resumed
    run. Promotion itself is tested in tests/test_curriculum.py."""
    ray = ray_cluster
    from recore_dist.runtime.orchestrator import Orchestrator

    def cfg(steps):
        c = ray_config(tmp_path / "run")
        c.env = config_lib.from_dict(type(c.env), {"name": "nav:pointgoal", "size": 32, "action_repeat": 4,
                                                    "curriculum": {"enabled": True, "start_cells": 2}})
        c.learner = config_lib.from_dict(type(c.learner), {
            "model": dict(TINY_MODEL), "batch_size": 4, "batch_length": 8, "behavior": {"horizon": 4},
            "device": "cpu", "threads": 1, "objective": {"inputs": ["image", "proprio"]}})
        c.env_steps = steps
        return c

    def runner_levels(orch) -> list:
        return sorted(lvl for actor in orch.runners.values() for lvl in ray.get(actor.__ray_call__.remote(
            lambda runner: [env.max_goal_cells for env in runner.envs.envs])))

    # 125 decisions per episode at action repeat 4; 1,200 steps leave every one of the 4 simulators
    # a finished episode even when one runner collects twice as often as the other
    orch = Orchestrator(cfg(1200), progress=False)
    try:
        assert orch.curriculum.cells == 2  # the runners start there too, until the driver's first call
        orch.curriculum.level = 6  # as if promoted on the driver
        first = orch.run()
        assert runner_levels(orch) == [6, 6, 6, 6]  # the driver's level reached every runner
        assert len(orch.curriculum.outcomes) >= 4  # the runners' finished episodes reached the driver
        assert first["env_steps"] >= 1200
    finally:
        orch.close()
    assert [e.value for e in _tags(tmp_path / "run")["train/curriculum_cells"]][-1] == 6.0
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())["counters"]
    assert state["curriculum"]["level"] == 6
    resumed = Orchestrator(cfg(first["env_steps"] + 64), progress=False)
    try:
        assert resumed.resumed and resumed.curriculum.cells == 6
        resumed.run()
        assert runner_levels(resumed) == [6, 6, 6, 6]
    finally:
        resumed.close()
