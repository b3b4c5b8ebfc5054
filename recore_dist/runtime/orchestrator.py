"""``Orchestrator``: the driver of the Ray runtime (``runner: ray``).

Creates the replay shards, the learner, the evaluator and the env runners from the config, then
runs one event loop over their outstanding calls (``ray.wait``): every finished ``collect``
is logged and re-issued with the newest weights, every finished ``train`` publishes weights,
the evaluator runs on a timer. Around that loop it:

- places actors by resources: the learner takes ``ray.learner_gpus`` (a GPU when the cluster
  has one), runners are spread over nodes (``SPREAD``); with ``ray.runners_per_node`` each alive
  node with CPUs gets that many runners pinned to it (soft node affinity), so runners start on
  nodes that join (the autoscaler adding simulator nodes) and go with nodes that leave
  (``runner_pool.RunnerPool``);
- restarts: every actor has ``max_restarts``/``max_task_retries``; the driver counts restarts
  (a runner's process id changes) and replaces actors whose restarts ran out; a failed rank of
  a data-parallel learner group restarts the group (``learner_group.LearnerSupervisor``);
- scales: ``recore-dist scale --logdir DIR --runners N`` writes ``DIR/control.json``, which the
  loop reads every ``ray.control_every_s`` and adds or removes runners without a restart;
- checkpoints every ``ray.checkpoint_every_s``: ``checkpoint/learner.pt`` + ``state.json``
  (counters), while each shard checkpoints its replay under ``replay/`` on its own timer; a new
  ``recore-dist train`` on the same logdir resumes all of it (``checkpoint.CheckpointWriter``);
- logs to TensorBoard: env frames/s, chunks/s, samples/s, updates/s, replay size and replay
  ratio, weight staleness, rejected chunks, rate-limited calls, restarts, and every learner
  metric (``throughput.ThroughputWindow``); evaluation returns on both splits and their gap.
"""

from __future__ import annotations

import collections
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from recore_dist import config as config_lib
from recore_dist.logging import Logger
from recore_dist.runtime.checkpoint import CHECKPOINT, CheckpointWriter
from recore_dist.runtime.config import TrainConfig
from recore_dist.runtime.curriculum import Curriculum
from recore_dist.runtime.runner_pool import RunnerPool
from recore_dist.runtime.summaries import log_evaluation
from recore_dist.runtime.throughput import ThroughputWindow

CONTROL_FILE = "control.json"
JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray's job manager in a submitted job's driver


def request_scale(logdir: str | Path, runners: int) -> Path:
    """Ask the job running in ``logdir`` to run ``runners`` env runners (atomic file write)."""
    if runners < 0:
        raise ValueError(f"runners={runners} must be >= 0")
    path = Path(logdir) / CONTROL_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"runners": int(runners), "time": time.time()}))
    os.replace(tmp, path)
    return path


def init_ray(cfg: TrainConfig) -> bool:
    """Connect to ``cfg.ray.address`` or start an embedded local Ray. Returns whether it started one."""
    import ray

    if ray.is_initialized():
        return False
    env = {"env_vars": {"MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "OMP_NUM_THREADS": "1"}}
    if cfg.ray.address:
        if JOB_CONFIG_ENV in os.environ:
            # A `ray job submit` driver: keep the job's runtime env (its working_dir) unchanged for
            # every actor. A driver-side addition makes a second runtime env whose set-up
            # re-extracts the working_dir under the running driver, and its next import failed
            # ("No module named recore_dist.envs.dmc"). Workers set MUJOCO_GL themselves
            # (recore_dist.envs) and their torch threads from the config.
            ray.init(address=cfg.ray.address, log_to_driver=False)
        else:
            ray.init(address=cfg.ray.address, runtime_env=env, log_to_driver=False)
        return False
    ray.init(num_cpus=cfg.ray.num_cpus, runtime_env=env, include_dashboard=False, log_to_driver=False)
    return True


class Orchestrator:
    """Args:
        cfg: the job (``cfg.ray`` holds the runtime settings).
        progress: show a progress bar.
    """

    def __init__(self, cfg: TrainConfig, *, progress: bool = True):
        from recore_dist.replay.client import ReplayClient
        from recore_dist.replay.shard import ShardConfig, remote_shard
        from recore_dist.runtime.evaluator import remote_evaluator
        from recore_dist.runtime.learner_group import LearnerGroup, LearnerSupervisor

        self.cfg, self.progress = cfg, progress
        self.logdir = Path(cfg.logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.spaces = _probe_spaces(cfg)  # before Ray: imports and builds an env while nothing else runs
        self.started_ray = init_ray(cfg)
        self._check_capacity()
        rt, lc = cfg.ray, cfg.learner
        self.counters: dict[str, Any] = {"env_steps": 0, "episodes": 0, "seconds": 0.0, "updates": 0,
                                         "next_runner_id": 0, "restarts": 0, "learner_restarts": 0}
        state_file = self.logdir / CHECKPOINT / "state.json"
        self.resumed = state_file.is_file()
        if self.resumed:
            self.counters.update(json.loads(state_file.read_text())["counters"])
        self.curriculum = Curriculum(cfg.env.curriculum)  # moved by the runners' training episodes
        self.curriculum.load_state_dict(self.counters.get("curriculum"))
        shard_cfg = ShardConfig(
            capacity=max(cfg.replay.capacity // rt.shards, lc.batch_length), max_bytes=rt.max_bytes,
            length=lc.batch_length, keys=None, chunk_length=cfg.replay.chunk_length, ratio=cfg.replay.ratio,
            min_size=max(cfg.replay.prefill // rt.shards, lc.batch_length), tolerance=rt.tolerance,
            max_sample=lc.batch_size, max_insert_chunks=rt.envs_per_runner, timeout=rt.insert_timeout,
            checkpoint_dir=str(self.logdir / "replay"), checkpoint_every_s=rt.shard_checkpoint_every_s,
            seed=cfg.seed, log=rt.replay_log, log_fsync=rt.replay_log_fsync, log_interval_s=rt.replay_log_interval_s)
        self.shard_cfg = shard_cfg
        self.shards = [remote_shard(shard_cfg, i) for i in range(rt.shards)]
        self.replay = ReplayClient(self.shards, seed=cfg.seed)
        # Always the run's checkpoint path: a learner restarted after a crash loads the newest one
        # written by then (a fresh run has none until its first checkpoint).
        self.learners = LearnerGroup(cfg, self.spaces, self.replay, str(self.logdir / CHECKPOINT / "learner.pt"))
        self.supervisor = LearnerSupervisor(self.learners, self.counters)  # restarts; the newest weights
        self.checkpoints = CheckpointWriter(self.logdir, cfg)
        self.evaluator = remote_evaluator(cfg, self.spaces)
        self.pool = RunnerPool(cfg, self.replay, self.counters)  # the env runners, placed by start()
        self.runner_info: dict[int, collections.Counter] = {}
        self.runner_nodes: dict[int, str] = {}  # where each runner last reported from
        self.stats = collections.Counter()
        self.pending: dict[Any, tuple[str, int]] | None = None  # set by start(): ref -> (kind, id)
        self.recent: collections.deque | None = None
        self.stretch: dict[str, Any] = {"episode_returns": [], "learner_metrics": {}, "throughput": {}}

    def _check_capacity(self) -> None:
        """Fail (or wait for the autoscaler) before any actor exists if the job cannot fit."""
        import ray
        from ray.autoscaler.sdk import request_resources

        from recore_dist.runtime.capacity import check_fits
        from recore_dist.runtime.learner_worker import learner_gpus

        try:
            check_fits(self.cfg, learner_gpus(self.cfg), cluster_resources=ray.cluster_resources,
                       request=lambda bundles: request_resources(bundles=bundles))
        except BaseException:
            if self.started_ray:
                ray.shutdown()
            raise

    # --------------------------------------------------------------------- the job's actors
    @property
    def runners(self) -> dict[int, Any]:
        """The env-runner actors by runner id."""
        return self.pool.actors

    @property
    def runner_pids(self) -> dict[int, int]:
        """Each runner's process id as of its last result."""
        return self.pool.pids

    @property
    def learner(self):
        """Rank 0 of the learner group (the only learner when ``ray.learners`` is 1)."""
        return self.learners.leader

    @property
    def learner_pids(self) -> dict[int, int]:
        """Rank 0's process id as of its last result (``{}`` before one or after a group restart)."""
        return self.supervisor.pids

    @property
    def weights(self) -> tuple[int, list] | None:
        """The newest weights the learner published, ``(version, [ref])`` (``None`` before any)."""
        return self.supervisor.weights

    # ---------------------------------------------------------------------------- main loop
    def run(self, *, max_seconds: float | None = None) -> dict[str, Any]:
        """Train to ``cfg.env_steps`` (or for ``max_seconds``), evaluate, checkpoint; returns the
        summary (also written to ``logdir/summary.json``)."""
        self.start()
        try:
            deadline = time.perf_counter() + max_seconds if max_seconds else float("inf")
            self.advance(until_env_steps=self.cfg.env_steps, deadline=deadline)
            return self.finish()
        finally:
            self.stop()

    def start(self) -> None:
        """Open the logs, start the runners and the learner's first ``train`` call (once)."""
        if self.pending is not None:
            return
        from tqdm import tqdm

        cfg, counters = self.cfg, self.counters
        config_lib.save(cfg, self.logdir / "config.yaml")
        self.logger = Logger(self.logdir, wandb=cfg.logging, config=config_lib.to_dict(cfg))
        self.bar = tqdm(total=cfg.env_steps, initial=counters["env_steps"], unit="step", disable=not self.progress,
                        desc="train (ray)", dynamic_ncols=True)
        self._started = time.perf_counter() - counters["seconds"]
        self.pending = {}
        self.recent = collections.deque(maxlen=100)
        self.window = ThroughputWindow()
        self.last = {"checkpoint": time.perf_counter(), "eval": time.perf_counter(), "control": 0.0}
        self._rescale(self.pending)
        self.pending[self.learners.train(cfg.ray.train_seconds)] = ("learner", 0)

    def advance(self, *, seconds: float = 0.0, env_steps: int = 0, until_env_steps: int | None = None,
                deadline: float = float("inf")) -> dict[str, Any]:
        """Run the event loop until this call has lasted ``seconds`` and collected ``env_steps``
        (both), or the total reaches ``until_env_steps``, or ``deadline`` (``perf_counter``).

        Returns this stretch's figures: ``env_steps``, ``episode_returns``, ``updates``, the
        latest ``learner_metrics`` and the last ``throughput`` window.
        """
        import ray

        self.start()
        rt, counters, pending = self.cfg.ray, self.counters, self.pending
        began, first_steps, first_updates = time.perf_counter(), counters["env_steps"], counters["updates"]
        self.stretch = {"episode_returns": [], "learner_metrics": {}, "throughput": {}}
        while True:
            now = time.perf_counter()
            if until_env_steps is not None and counters["env_steps"] >= until_env_steps:
                break
            if now >= deadline:
                break
            if until_env_steps is None and now - began >= seconds and counters["env_steps"] - first_steps >= env_steps:
                break
            self._submit_idle_runners(pending)  # every idle runner collects with the newest weights
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=rt.control_every_s)
            for ref in ready:  # route each result; what died is replaced or restarted there
                self._handle(ref, train_again=True)
            self._on_clock(time.perf_counter())  # scale, log throughput, evaluate, checkpoint
            self.bar.set_postfix(upd=counters["updates"], runners=len(self.runners),
                                 ret=f"{np.mean(list(self.recent)[-20:]):.1f}" if self.recent else "-", refresh=False)
        return {**self.stretch, "env_steps": counters["env_steps"] - first_steps,
                "updates": counters["updates"] - first_updates, "seconds": time.perf_counter() - began}

    def _on_clock(self, now: float) -> None:
        """The timed work: every ``ray.control_every_s`` rescale the runners and log throughput
        (windows of 5 s or more); every ``ray.eval_every_s`` evaluate the newest weights; every
        ``ray.checkpoint_every_s`` start a checkpoint and the learner's image summaries."""
        rt, pending = self.cfg.ray, self.pending
        if now - self.last["control"] >= rt.control_every_s:
            self.last["control"] = now
            self._rescale(pending)
            elapsed = now - self.window.start
            if elapsed >= 5.0:
                self._log_throughput(elapsed)
        if rt.eval_every_s and now - self.last["eval"] >= rt.eval_every_s and self.weights \
                and not any(k == "eval" for k, _ in pending.values()):
            self.last["eval"] = now
            pending[self.evaluator.evaluate_ref.remote(*self.weights, videos=self.cfg.eval.videos)] = ("eval", 0)
        if rt.checkpoint_every_s and now - self.last["checkpoint"] >= rt.checkpoint_every_s \
                and not any(k in ("save", "images") for k, _ in pending.values()):
            self.last["checkpoint"] = now
            pending[self.checkpoints.start(self.learners, self.shards, self._checkpoint_counters())] = ("save", 0)
            pending[self.learners.image_summaries(self.cfg.eval.videos)] = ("images", 0)

    def finish(self) -> dict[str, Any]:
        """Drain the runners, evaluate the final weights, checkpoint; returns the summary."""
        counters = self.counters
        self._drain()
        self._log_throughput(max(time.perf_counter() - self.window.start, 1e-3))
        final_eval: dict[str, float] = {}
        if self.weights:
            results = self.supervisor.evaluate(self.evaluator, videos=self.cfg.eval.videos)
            final_eval = log_evaluation(self.logger, results, counters["env_steps"],
                                        max_frames=self.cfg.eval.video_frames)
        self.checkpoint()
        replay = self.replay.stats()
        recent = list(self.recent)[-20:]
        summary = {"runner": "ray", "env_steps": counters["env_steps"], "updates": counters["updates"],
                   "episodes": counters["episodes"], "seconds": time.perf_counter() - self._started,
                   "train_return_recent": float(np.mean(recent)) if recent else None,
                   "runners": len(self.runners), "restarts": counters["restarts"],
                   "learners": self.learners.size, "learner_restarts": counters["learner_restarts"],
                   "replay_steps": sum(s["replay/steps"] for s in replay),
                   "replay_rejected_chunks": sum(s["replay/rejected_chunks"] for s in replay),
                   "runner_info": {str(k): {**v, "node_id": self.runner_nodes.get(k)} for k, v in self.runner_info.items()},
                   **final_eval, "logdir": str(self.logdir), "resumed": self.resumed}
        (self.logdir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def stop(self) -> None:
        """Close the progress bar and the TensorBoard writer (the actors stay until ``close``)."""
        if self.pending is None:
            return
        self.bar.close()
        self.logger.close()

    # -------------------------------------------------------------------- between stretches
    def recent_returns(self, n: int) -> list[float]:
        """The last ``n`` training episode returns."""
        return list(self.recent)[-n:] if self.recent is not None else []

    def evaluate(self) -> dict[str, float]:
        """Evaluate the latest weights on both splits now (``{}`` before the first weights)."""
        if not self.weights:
            return {}
        return log_evaluation(self.logger, self.supervisor.evaluate(self.evaluator), self.counters["env_steps"])

    def checkpoint(self) -> Path:
        """Learner state + counters, atomically (``checkpoint.tmp`` renamed over ``checkpoint``),
        and a checkpoint of every replay shard; waits for all of it (used at the end)."""
        return self.checkpoints.write(self.learners, self.shards, self._checkpoint_counters(), self._started)

    def save_learner(self, path: str | Path) -> int:
        """Write the learner's full state to ``path``; returns the update count it holds."""
        import ray

        return ray.get(self.learners.save(str(path)))

    def load_learner(self, path: str | Path) -> int:
        """Load a learner state (after any call in progress); returns its update count."""
        updates = self.learners.load(str(path))
        self.counters["updates"] = updates
        return updates

    # --------------------------------------------------------------------------- loop parts
    def _handle(self, ref, *, train_again: bool) -> None:
        """Consume one finished call; a finished ``train`` is re-issued when ``train_again``."""
        kind, ident = self.pending.pop(ref)
        if kind == "runner":
            self._on_runner(ref, ident)
        elif kind == "learner":
            self._on_learner(ref)
            if train_again:
                self.pending[self.learners.train(self.cfg.ray.train_seconds)] = ("learner", 0)
        elif kind == "eval":
            self._on_eval(ref)
        elif kind == "save":
            self.checkpoints.finish(ref, self._started)
        elif kind == "images":
            self._on_images(ref)
        elif kind == "flush":
            self._on_flush(ref, ident)

    def _submit_idle_runners(self, pending: dict) -> None:
        busy = {ident for kind, ident in pending.values() if kind == "runner"}
        random = self.counters["env_steps"] < self.cfg.replay.prefill
        for runner_id, actor in self.runners.items():
            if runner_id not in busy:
                ref = actor.collect.remote(self.cfg.ray.collect_steps, weights=self.weights, random=random,
                                           learner_version=self.counters["updates"], goal_cells=self.curriculum.cells)
                pending[ref] = ("runner", runner_id)

    def _rescale(self, pending: dict) -> None:
        """Read the wanted runner count (``recore-dist scale`` writes ``control.json``) and place
        the runners for it (and for the nodes alive now)."""
        path = self.logdir / CONTROL_FILE
        if path.is_file():
            try:
                self.pool.target = int(json.loads(path.read_text())["runners"])
            except (ValueError, KeyError, TypeError) as exc:
                self.stats["control_errors"] += 1
                print(f"recore-dist: ignoring malformed {path}: {exc}")
        self.pool.place(pending)

    def _checkpoint_counters(self) -> dict[str, Any]:
        return {**self.counters, "curriculum": self.curriculum.state_dict()}

    def _drain(self) -> None:
        """Let the runners' last ``collect`` calls finish and log them. The learner keeps training
        meanwhile: a runner whose inserts wait on the rate limiter is waiting for the learner to
        sample, so stopping the learner first would leave it blocked."""
        import ray

        rt, pending = self.cfg.ray, self.pending
        deadline = time.perf_counter() + 3 * rt.insert_timeout + 10 * rt.train_seconds + 30
        flushed = False
        while time.perf_counter() < deadline:
            if not any(kind in ("runner", "flush") for kind, _ in pending.values()):
                if flushed:
                    break
                for runner_id, actor in self.runners.items():  # settle the last inserts' acknowledgements
                    pending[actor.flush.remote()] = ("flush", runner_id)
                flushed = True
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=rt.control_every_s)
            for ref in ready:
                busy = any(k in ("runner", "flush") for k, _ in pending.values())
                self._handle(ref, train_again=busy)
        for ref, (kind, ident) in pending.items():
            if kind in ("runner", "flush"):
                print(f"recore-dist: env runner {ident} still busy at shutdown; its last call is dropped")
            elif kind == "learner":
                done, _ = ray.wait([ref], timeout=10 * rt.train_seconds + 30)
                if done:
                    self._on_learner(ref)
                else:  # a rank stuck in a collective: the final evaluation uses the last weights
                    print("recore-dist: the learner's last train call did not return at shutdown; it is dropped")
        pending.clear()

    # ------------------------------------------------------------------------------ results
    def _on_runner(self, ref, runner_id: int) -> None:
        import ray

        try:
            out = ray.get(ref)
        except ray.exceptions.RayActorError as exc:  # restarts exhausted (or the node is gone)
            self.stats["runner_failures"] += 1
            print(f"recore-dist: env runner {runner_id} failed ({type(exc).__name__}); replacing it")
            if runner_id in self.runners:
                self.pool.remove(runner_id)
                self.pool.place(self.pending)  # a fresh one, on a node that is alive
            return
        if runner_id not in self.runners:
            return  # removed by a scale-down while its call ran
        pid = out["pid"]
        if self.runner_pids.get(runner_id, pid) != pid:
            self.counters["restarts"] += 1
        self.runner_pids[runner_id] = pid
        info = self.runner_info.setdefault(runner_id, collections.Counter())
        info["chunks_acked"] += out.get("chunks_acked", 0.0)
        info["collects"] += 1
        info["policy_version"] = out["policy_version"]
        info["first_version"] = info.get("first_version", out["policy_version"])
        self.runner_nodes[runner_id] = out["node_id"]
        logger = self.logger
        self.counters["env_steps"] += out["env_steps"]
        self.window.add_collect(out)
        step = self.counters["env_steps"]
        for ep in out["episodes"]:
            self.counters["episodes"] += 1
            self.recent.append(ep["return"])
            self.stretch["episode_returns"].append(ep["return"])
            logger.scalars({"train/return": ep["return"], "train/length": ep["length"]}, step)
        if out["episodes"] and self.cfg.env.curriculum.enabled:
            self.curriculum.observe(out["episodes"])  # runners take the new level with their next call
            logger.scalars(self.curriculum.scalars(), step)
        self.bar.update(out["env_steps"])

    def _on_flush(self, ref, runner_id: int) -> None:
        """A runner's final ``flush``: the acknowledgements its last ``collect`` left unsettled."""
        import ray

        try:
            out = ray.get(ref)
        except ray.exceptions.RayError:
            return
        info = self.runner_info.setdefault(runner_id, collections.Counter())
        info["chunks_acked"] += out.get("chunks_acked", 0.0)
        info["chunks_refused"] += out.get("chunks_refused", 0.0)

    def _on_learner(self, ref) -> None:
        import ray

        try:
            out = ray.get(ref)
        except ray.exceptions.RayError as exc:
            self.stats["learner_failures"] += 1
            if self.learners.size == 1 and isinstance(exc, ray.exceptions.RayActorError):
                print(f"recore-dist: learner call failed ({type(exc).__name__}); it restarts from its checkpoint")
                return
            self.supervisor.restart(exc, self.pending, self.logger)  # every rank, from the checkpoint
            return
        self.supervisor.observe(out, self.logger)  # its process id (a restart in place) and weights
        self.counters["updates"] = out["total_updates"]
        self.window.add_updates(out["updates"])
        if out["metrics"]:
            self.stretch["learner_metrics"] = out["metrics"]
            self.logger.scalars(out["metrics"], self.counters["env_steps"])

    def _on_eval(self, ref) -> None:
        import ray

        try:
            log_evaluation(self.logger, ray.get(ref), self.counters["env_steps"], max_frames=self.cfg.eval.video_frames)
        except ray.exceptions.RayError:  # the evaluator died, or the weights' owner (a restarted learner)
            self.stats["eval_failures"] += 1

    def _on_images(self, ref) -> None:
        """Real vs imagined frames and predicted targets (the learner's open-loop grids)."""
        import ray

        try:
            grids = ray.get(ref)
        except ray.exceptions.RayError as exc:
            print(f"recore-dist: no image summaries this time ({type(exc).__name__})")
            return
        for tag, grid in grids.get("grids", {}).items():
            self.logger.images(f"open_loop/{tag}", grid[None], self.counters["env_steps"])
        for tag, video in grids.get("videos", {}).items():
            self.logger.video(f"open_loop_video/{tag}", video, self.counters["env_steps"])

    def _log_throughput(self, elapsed: float) -> None:
        """Write the throughput window's figures (and start a new window)."""
        values = self.window.scalars(elapsed, self.replay.stats(), batch_size=self.cfg.learner.batch_size,
                                     learners=self.learners.size, runners=len(self.runners), counters=self.counters)
        self.logger.scalars(values, self.counters["env_steps"])
        self.logger.flush()
        self.stretch["throughput"] = values
        self.window.reset()

    def close(self) -> None:
        import ray

        self.learners.kill()
        for actor in [*self.runners.values(), self.evaluator, *self.shards]:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self.started_ray:
            ray.shutdown()


def _probe_spaces(cfg: TrainConfig):
    from recore_dist.runtime.env_factory import make_envs, spaces_of

    envs = make_envs(cfg, "train", 1, cfg.seed)
    try:
        return spaces_of(envs)
    finally:
        envs.close()


def train(cfg: TrainConfig, *, progress: bool = True, max_seconds: float | None = None) -> dict[str, Any]:
    """Run the Ray runtime to completion (resuming from ``cfg.logdir`` if it has a checkpoint)."""
    orchestrator = Orchestrator(cfg, progress=progress)
    try:
        return orchestrator.run(max_seconds=max_seconds)
    finally:
        orchestrator.close()
