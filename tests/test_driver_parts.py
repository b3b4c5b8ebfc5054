"""The Ray driver's parts, without a cluster: ``RunnerPool`` placement, ``LearnerSupervisor``
restarts and evaluation retry, ``CheckpointWriter`` layout, ``ThroughputWindow`` figures. Actors
are fakes and ``ray.get`` / ``ray.kill`` / ``ray.nodes`` are patched; the real runs are in
``tests/test_ray_runtime.py`` (slow)."""

from __future__ import annotations

import json

import pytest
import ray

from recore_dist import __version__
from recore_dist import config as config_lib
from recore_dist.runtime import env_runner
from recore_dist.runtime.checkpoint import CheckpointWriter
from recore_dist.runtime.config import TrainConfig
from recore_dist.runtime.learner_group import LearnerSupervisor
from recore_dist.runtime.runner_pool import RunnerPool
from recore_dist.runtime.throughput import ThroughputWindow


def _cfg(*sets: str) -> TrainConfig:
    return config_lib.load(TrainConfig, "configs/quickstart.yaml", list(sets))


class _Logger:
    def __init__(self):
        self.logged: list[tuple[dict, int]] = []

    def scalars(self, values, step):
        self.logged.append((dict(values), step))


class _Call:
    """A fake ``actor.method`` whose ``remote(...)`` returns its result (``ray.get`` is patched to
    pass it through, or to raise it when it is an exception)."""

    def __init__(self, result):
        self.result, self.calls = result, []

    def remote(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.result() if callable(self.result) else self.result


def _get_passthrough(ref):
    if isinstance(ref, BaseException):
        raise ref
    return ref


# ------------------------------------------------------------------------------------------ runner pool
def test_runner_pool_spreads_to_the_target_and_drops_removed_runners_calls(monkeypatch):
    killed = []
    monkeypatch.setattr(env_runner, "remote_runner", lambda cfg, i, replay, scheduling_strategy: f"actor{i}")
    monkeypatch.setattr(ray, "kill", lambda actor, no_restart: killed.append(actor))
    counters = {"next_runner_id": 5}
    pool = RunnerPool(_cfg("ray.runners=3"), replay=None, counters=counters)
    pool.place()
    assert pool.actors == {5: "actor5", 6: "actor6", 7: "actor7"} and counters["next_runner_id"] == 8
    pool.pids.update({5: 50, 6: 60, 7: 70})
    pending = {"c7": ("runner", 7), "c5": ("runner", 5), "t": ("learner", 0)}
    pool.target = 1
    pool.place(pending)
    assert list(pool.actors) == [5] and killed == ["actor7", "actor6"] and pool.pids == {5: 50}
    assert pending == {"c5": ("runner", 5), "t": ("learner", 0)}


def test_runner_pool_pins_runners_per_node_and_follows_nodes_that_leave(monkeypatch):
    a, b = "a" * 56, "b" * 56  # node ids are 28 bytes of hex
    homes, killed = {}, []

    def remote_runner(cfg, i, replay, scheduling_strategy):
        homes[i] = scheduling_strategy.node_id
        return f"actor{i}"

    nodes = [{"NodeID": a, "Alive": True, "Resources": {"CPU": 2.0}},
             {"NodeID": b, "Alive": True, "Resources": {"CPU": 2.0}},
             {"NodeID": "c" * 56, "Alive": True, "Resources": {"GPU": 1.0}}]
    monkeypatch.setattr(env_runner, "remote_runner", remote_runner)
    monkeypatch.setattr(ray, "kill", lambda actor, no_restart: killed.append(actor))
    monkeypatch.setattr(ray, "nodes", lambda: nodes)
    pool = RunnerPool(_cfg("ray.runners_per_node=2"), replay=None, counters={"next_runner_id": 0})
    pool.place()
    assert pool.homes == {0: a, 1: a, 2: b, 3: b} and homes == pool.homes
    nodes[1]["Alive"] = False
    pool.place()
    assert pool.homes == {0: a, 1: a} and sorted(killed) == ["actor2", "actor3"]


# ------------------------------------------------------------------------------------------ learner supervisor
class _Group:
    size = 2

    def __init__(self, latest):
        self.restarts = 0
        self.leader = type("Leader", (), {"latest_weights": _Call(latest)})()

    def restart(self):
        self.restarts += 1


def test_supervisor_notices_a_restart_in_place_and_keeps_the_newest_weights():
    counters, logger = {"learner_restarts": 4, "env_steps": 100}, _Logger()
    supervisor = LearnerSupervisor(_Group(None), counters)
    supervisor.observe({"pid": 11, "weights": (1, ["w1"])}, logger)
    supervisor.observe({"pid": 11, "weights": (1, [])}, logger)  # no new weights this call
    assert supervisor.weights == (1, ["w1"]) and counters["learner_restarts"] == 4 and not logger.logged
    supervisor.observe({"pid": 12, "weights": (2, ["w2"])}, logger)
    assert supervisor.pids == {0: 12} and supervisor.weights == (2, ["w2"])
    assert counters["learner_restarts"] == 5 and logger.logged == [({"runtime/learner_restarts": 5.0}, 100)]


def test_supervisor_restarts_the_group_and_drops_its_pending_calls(capsys):
    counters, logger, group = {"learner_restarts": 0, "env_steps": 7}, _Logger(), _Group(None)
    supervisor = LearnerSupervisor(group, counters)
    supervisor.pids[0] = 3
    pending = {"t": ("learner", 0), "i": ("images", 0), "s": ("save", 0), "r": ("runner", 2), "e": ("eval", 0)}
    supervisor.restart(RuntimeError("wrapped\n  RuntimeError: gloo peer closed  \n"), pending, logger)
    assert group.restarts == 1 and supervisor.pids == {} and counters["learner_restarts"] == 1
    assert pending == {"r": ("runner", 2), "e": ("eval", 0)}
    out = capsys.readouterr().out
    assert "learner group of 2 restarted from the last checkpoint after RuntimeError: RuntimeError: gloo peer" \
        " closed (restart 1)" in out
    assert logger.logged == [({"runtime/learner_restarts": 1.0}, 7)]


def test_supervisor_evaluation_takes_the_restarted_learners_weights_when_the_owner_died(monkeypatch):
    monkeypatch.setattr(ray, "get", _get_passthrough)
    supervisor = LearnerSupervisor(_Group((3, ["fresh"])), {"learner_restarts": 0, "env_steps": 0})
    supervisor.weights = (2, ["lost"])
    answers = iter([ray.exceptions.OwnerDiedError("ab" * 14, None, "test"), {"eval/return": 1.0}])
    evaluator = type("Evaluator", (), {"evaluate_ref": _Call(lambda: next(answers))})()
    assert supervisor.evaluate(evaluator, videos=True) == {"eval/return": 1.0}
    assert supervisor.weights == (3, ["fresh"])
    assert evaluator.evaluate_ref.calls == [((2, ["lost"]), {"videos": True}), ((3, ["fresh"]), {"videos": True})]


# ------------------------------------------------------------------------------------------ checkpoint writer
class _Learners:
    def __init__(self, updates):
        self.updates = updates

    def save(self, path):
        with open(path, "w") as f:
            f.write("weights")
        return self.updates  # the "ref" that the patched ray.get passes through


def test_checkpoint_writer_swaps_in_learner_state_and_config(tmp_path, monkeypatch):
    monkeypatch.setattr(ray, "get", _get_passthrough)
    cfg = _cfg()
    shard = type("Shard", (), {"checkpoint": _Call("shard-ref")})()
    writer = CheckpointWriter(tmp_path, cfg)
    path = writer.write(_Learners(9), [shard], {"env_steps": 64, "updates": 1, "curriculum": None}, started=0.0)
    assert path == tmp_path / "checkpoint" and len(shard.checkpoint.calls) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    state = json.loads((path / "state.json").read_text())
    assert state["version"] == __version__ and state["counters"]["env_steps"] == 64
    assert state["counters"]["updates"] == 9 and state["counters"]["seconds"] > 0  # the save's count wins
    assert (path / "learner.pt").read_text() == "weights" and (path / "config.yaml").is_file()
    ref = writer.start(_Learners(12), [shard], {"env_steps": 128}, with_shards=True)  # the driver loop's way
    assert len(shard.checkpoint.calls) == 2 and (tmp_path / "checkpoint.tmp" / "learner.pt").is_file()
    writer.finish(ref, started=0.0)
    assert json.loads((path / "state.json").read_text())["counters"]["updates"] == 12
    assert not (tmp_path / "checkpoint.tmp").exists() and not (tmp_path / "checkpoint.old").exists()


def test_checkpoint_writer_keeps_the_previous_checkpoint_when_the_save_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ray, "get", _get_passthrough)
    writer = CheckpointWriter(tmp_path, _cfg())
    writer.write(_Learners(3), [], {"env_steps": 1}, started=0.0)
    ref = writer.start(_Learners(ray.exceptions.RayActorError()), [], {"env_steps": 2})
    assert writer.finish(ref, started=0.0) == tmp_path / "checkpoint"
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["counters"]["updates"] == 3
    assert "learner save failed (RayActorError); keeping the previous checkpoint" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ throughput
def test_throughput_window_turns_counts_into_rates_and_starts_again():
    window = ThroughputWindow()
    window.add_collect({"env_steps": 100, "chunks": 4, "bytes": 2e6, "staleness": 2, "rate_limited": 1})
    window.add_collect({"env_steps": 60, "chunks": 2, "bytes": 1e6, "staleness": 4, "push_wait_s": 0.5})
    window.add_updates(10)
    shard = {"limiter/inserted_steps": 80, "limiter/sampled_steps": 640, "replay/steps": 80,
             "replay/rejected_chunks": 1, "replay/rejected_payloads": 2, "replay/restores": 0}
    values = window.scalars(2.0, [shard, shard], batch_size=16, learners=2, runners=3,
                            counters={"restarts": 1, "learner_restarts": 0})
    assert values["perf/env_steps_per_second"] == 80 and values["perf/chunks_per_second"] == 3
    assert values["perf/push_megabytes_per_second"] == 1.5 and values["perf/samples_per_second"] == 160
    assert values["runtime/weight_staleness"] == 3 and values["runtime/rate_limited_inserts"] == 1
    assert values["runtime/push_wait_seconds"] == 0.5 and values["runtime/runners"] == 3.0
    assert values["replay/steps"] == 160 and values["replay/rejected_chunks"] == 6 and values["replay/ratio"] == 8
    start = window.start
    window.reset()
    assert not window.counts and window.start >= start
    assert window.scalars(1.0, [], batch_size=16, learners=1, runners=0,
                          counters={"restarts": 0, "learner_restarts": 0})["replay/ratio"] == 0.0


@pytest.mark.parametrize("key", ["chunks", "bytes", "chunks_refused", "rate_limited", "push_wait_s"])
def test_throughput_window_counts_an_absent_figure_as_zero(key):
    window = ThroughputWindow()
    window.add_collect({"env_steps": 1, "staleness": 0})
    assert window.counts[key] == 0 and window.counts["staleness_n"] == 1
