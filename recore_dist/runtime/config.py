"""``TrainConfig``: the training job (env, replay, learner, evaluation, logging), as YAML presets.

Presets live in ``configs/`` (``quickstart``, ``dmc_distracting``, ``nav_pointgoal``, sizes);
``--set a.b=value`` overrides any field; unknown keys and wrong types fail naming the key.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from recore_dist.learner import LearnerConfig
from recore_dist.runtime.curriculum import CurriculumConfig


@dataclasses.dataclass
class EnvConfig:
    """Which simulator to run and what it renders."""

    name: str = "dmc:cartpole-swingup"
    """Env name, ``suite:task`` (``dmc:*``, ``nav:pointgoal``, ``igibson:pointnav``)."""
    size: int = 64
    """Image size in pixels (64 default, 84 option); must equal ``learner.model.image_size``."""
    depth: bool = True
    """Render the depth target (ReCoRe's default intervention-invariant regularizer)."""
    segmentation: bool = False
    """Render the segmentation target."""
    clean_image: bool = False
    """Render the intervention-free image (denoising target)."""
    interventions: str = "colour,background"
    """Comma-separated interventions for DMC envs (``colour``, ``camera``, ``background``, ``none``)."""
    difficulty: Literal["easy", "medium", "hard"] = "easy"
    """Intervention intensity, scale 0.1 / 0.2 / 0.3 (CoRe Table 7)."""
    dynamic: bool = False
    """Interventions change smoothly within episodes (else fixed per episode)."""
    action_repeat: int | None = None
    """Control steps per agent action (rewards summed). ``None``: the env's own default (DMC: CoRe
    Table 6 per task, e.g. 8 on cartpole; DreamerV3 uses 2 on every DMC task; navigation and
    iGibson: 1, the paper's 10 Hz agent; each 0.1 s control period keeps its own reward terms
    and the time limit counts periods)."""
    curriculum: CurriculumConfig = dataclasses.field(default_factory=CurriculumConfig)
    """Training-only start-goal distance curriculum (``nav:*``; off by default). Evaluation always
    runs the full task."""

    def __post_init__(self) -> None:
        if self.action_repeat is not None and self.action_repeat < 1:
            raise ValueError(f"env.action_repeat={self.action_repeat} must be >= 1 (or null for the env's default)")
        if self.curriculum.enabled and not self.name.startswith("nav:"):
            raise ValueError(f"env.curriculum limits navigation's start-goal distance; {self.name} has none")

    def frames_per_step(self) -> int:
        """Simulator control steps per env step (the resolved action repeat): env frames are
        ``env_steps * frames_per_step()``."""
        from recore_dist.envs.action_repeat import frames_per_step

        return frames_per_step(self.name, self.action_repeat)

    def options(self, split: str) -> dict:
        """Keyword options of ``recore_dist.envs.make`` for ``split`` (``train`` / ``heldout``)."""
        opts = {"size": self.size, "depth": self.depth, "segmentation": self.segmentation,
                "clean_image": self.clean_image, "split": split}
        if self.name.startswith("dmc:"):
            opts.update(interventions=self.interventions, difficulty=self.difficulty, dynamic=self.dynamic)
        if self.action_repeat is not None:
            opts["action_repeat"] = self.action_repeat
        return opts


@dataclasses.dataclass
class ReplayConfig:
    """Replay storage and the replay ratio."""

    capacity: int = 1_000_000
    """Steps kept (oldest chunks evicted first; DreamerV3: 1e6)."""
    chunk_length: int = 64
    """Rows per ``SequenceChunk`` written by the env loop."""
    ratio: float = 256.0
    """Replayed steps per env step (DreamerV3 DMC uses 512); sets updates per env step."""
    prefill: int = 2500
    """Env steps of prefill actions before learning starts (DreamerV3: 2500 frames' worth)."""
    prefill_policy: Literal["random", "blind"] = "random"
    """Who acts during the prefill: ``random`` (uniform actions, DreamerV3; the default and the
    only choice that counts for a from-scratch result) or ``blind``, the goal-vector controller
    of ``behavior.baselines`` (navigation and iGibson only: it reads the goal in ``proprio``), so
    replay starts with some successes. A run that uses ``blind`` must say so wherever it is
    reported."""

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.chunk_length < 2 or self.ratio <= 0 or self.prefill < 0:
            raise ValueError(f"replay settings out of range: {self}")
        if self.prefill_policy not in ("random", "blind"):
            raise ValueError(f"replay.prefill_policy={self.prefill_policy!r} must be random or blind")


@dataclasses.dataclass
class EvalConfig:
    """Periodic evaluation on the train split and the held-out interventions."""

    every: int = 2000
    """Evaluate every this many env steps (0: only at the end)."""
    episodes: int = 2
    """Episodes per split per evaluation."""
    num_envs: int = 2
    """Simulators per split used by evaluation."""
    videos: bool = True
    """At every evaluation, log to TensorBoard one episode per split side by side (returns in the
    caption) and the world model's open-loop prediction (truth | model | error), as videos."""
    video_frames: int = 200
    """Longest video in frames; longer episodes are shown every k-th frame (TensorBoard stores
    each video as a GIF: ~200 frames of 64 x 130 px is ~0.3-1 MB)."""

    def __post_init__(self) -> None:
        if self.every < 0 or self.episodes < 1 or self.num_envs < 1 or self.video_frames < 2:
            raise ValueError(f"eval settings out of range: {self}")


@dataclasses.dataclass
class RayConfig:
    """The Ray runtime (``runner: ray``): actors, placement, transport, faults, checkpoints."""

    address: str | None = None
    """Cluster to join: ``None`` starts an embedded local Ray; ``auto`` or ``ray://host:10001``."""
    num_cpus: int | None = None
    """Logical CPUs of the embedded local Ray (``None``: Ray's count; raise it to oversubscribe)."""
    runners: int = 1
    """Env-runner actors at the start (``recore-dist scale`` changes it while the job runs)."""
    runners_per_node: int = 0
    """If > 0, keep this many runners per alive node with CPUs (runners follow nodes joining and
    leaving); ``runners`` is then ignored."""
    envs_per_runner: int = 4
    """Simulators per env runner (lock-step vector)."""
    shards: int = 1
    """Replay shards (actors); runners are routed by ``runner_id % shards``."""
    runner_cpus: float = 1.0
    """Logical CPUs reserved per env runner (and the evaluator)."""
    runner_threads: int = 1
    """Torch threads in each runner / evaluator process."""
    learner_cpus: float = 1.0
    """Logical CPUs reserved for each learner actor."""
    learners: int = 1
    """Data-parallel learner actors (RLlib's ``num_learners``). N > 1 form one torch.distributed
    group (NCCL on GPUs, gloo on CPU; ``runtime/learner_group.py``): each samples its own
    ``learner.batch_size`` sequences, gradients are averaged every step, so one update consumes
    N batches (the replay ratio counts all of them) and the effective batch is N x batch_size.
    Each takes ``learner_cpus`` and ``learner_gpus``. Gains need a device per learner: on 2 CPU
    cores 2 learners barely beat 1 (docs/BENCHMARKS.md, ``bench learners``)."""
    learner_gpus: float | None = None
    """GPUs for the learner (``None``: 1 if the cluster has a GPU, else 0)."""
    collect_steps: int = 16
    """Lock-step steps per ``EnvRunner.collect`` call (the orchestrator's scheduling quantum)."""
    max_in_flight: int = 4
    """Outstanding insert calls per runner before stepping waits for the oldest."""
    train_seconds: float = 2.0
    """Learner time per ``train`` call (the metrics / weights publication quantum)."""
    publish_every: int = 1
    """Publish policy weights to the object store every this many updates."""
    prefetch: int = 2
    """Batches the learner samples ahead while it computes."""
    insert_timeout: float = 30.0
    """Seconds a rate-limited insert / sample waits before it reports and retries."""
    tolerance: float | None = None
    """Rate-limiter slack in steps (``None``: twice the deadlock-free minimum)."""
    max_bytes: int | None = None
    """Replay bytes bound per shard (``None``: only ``replay.capacity``)."""
    checkpoint_every_s: float = 120.0
    """Checkpoint learner, replay shards and counters every this many seconds (0: at the end only)."""
    shard_checkpoint_every_s: float = 60.0
    """Each replay shard also checkpoints itself on this timer (bounds the log a restore replays;
    without ``replay_log``, what a shard crash loses)."""
    replay_log: bool = True
    """Write-ahead log per replay shard (``replay/log.py``): an insert is acknowledged only after
    it is appended, so a SIGKILLed shard restores every acknowledged chunk (checkpoint + log).
    Off: a crash loses the inserts since the last shard checkpoint (Reverb's behaviour)."""
    replay_log_fsync: Literal["every", "interval", "none"] = "interval"
    """When log appends reach the disk: ``every`` append, every ``replay_log_interval_s``, or
    when the OS writes back (``none``). A killed process loses nothing under any; they differ
    on a machine crash. Default ``interval``: its cost in ``bench replay --log`` (docs/BENCHMARKS.md)."""
    replay_log_interval_s: float = 1.0
    """Period of the ``interval`` fsync policy (at most this much of acknowledged inserts is lost to a power cut)."""
    eval_every_s: float = 60.0
    """Run the evaluator on the latest weights every this many seconds (0: at the end only)."""
    max_restarts: int = -1
    """Restarts of a crashed runner / learner / evaluator actor (-1: unlimited)."""
    control_every_s: float = 1.0
    """How often the driver reads ``logdir/control.json`` (``recore-dist scale``) and node changes."""
    wait_for_resources_s: float = 0.0
    """When the cluster has fewer CPUs / GPUs than the job reserves: 0 fails at once with what is
    missing and what to change (a fixed cluster cannot grow); > 0 asks the autoscaler for them and
    waits this many seconds, saying what it waits for (``recore_dist/runtime/capacity.py``)."""

    def __post_init__(self) -> None:
        for key in ("runners", "envs_per_runner", "shards", "collect_steps", "max_in_flight", "publish_every",
                    "prefetch", "runner_threads", "learners"):
            if getattr(self, key) < (0 if key == "runners" else 1):
                raise ValueError(f"ray.{key}={getattr(self, key)} out of range")
        for key in ("runner_cpus", "learner_cpus", "train_seconds", "insert_timeout", "checkpoint_every_s",
                    "shard_checkpoint_every_s", "eval_every_s", "control_every_s", "wait_for_resources_s",
                    "replay_log_interval_s"):
            if getattr(self, key) < 0:
                raise ValueError(f"ray.{key}={getattr(self, key)} must be >= 0")


@dataclasses.dataclass
class LoggingConfig:
    """Where scalars, images and videos go besides TensorBoard (always on, under ``logdir/tb``)."""

    wandb: bool = False
    """Mirror everything to Weights & Biases (``pip install 'recore-dist[wandb]'``): the same
    scalars, images and videos, and the resolved config; a resumed job resumes its W&B run (the
    run id is kept in ``logdir/wandb_id``)."""
    wandb_project: str = "recore-dist"
    """W&B project."""
    wandb_entity: str | None = None
    """W&B entity (team or user); ``None``: the logged-in default."""
    wandb_mode: Literal["online", "offline", "disabled"] | None = None
    """``offline`` writes under ``logdir/wandb`` without network (``wandb sync`` uploads later);
    ``None``: W&B's own setting (``WANDB_MODE``, else online)."""


@dataclasses.dataclass
class TrainConfig:
    """The training job."""

    logdir: str = "runs/quickstart"
    """TensorBoard events, checkpoints and the resolved config go here; an existing one is resumed."""
    seed: int = 0
    """Seed of envs, random prefill actions and the learner."""
    runner: Literal["ray", "local"] = "ray"
    """Runner: ``ray`` (env-runner, replay-shard, learner and evaluator actors) or ``local`` (env
    vector + replay + learner in one process)."""
    env_steps: int = 20_000
    """Env steps to train for (all simulators together; one step = ``action_repeat`` frames)."""
    num_envs: int = 4
    """Simulators stepped in lock-step by the local runner."""
    torch_threads: int = 0
    """Torch threads of the process (0: torch's default)."""
    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    """The environment."""
    replay: ReplayConfig = dataclasses.field(default_factory=ReplayConfig)
    """Replay storage and ratio."""
    learner: LearnerConfig = dataclasses.field(default_factory=LearnerConfig)
    """World model, objective, actor-critic and optimisers."""
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    """Evaluation on train and held-out splits."""
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)
    """The Ray runtime (used when ``runner`` is ``ray``)."""
    logging: LoggingConfig = dataclasses.field(default_factory=LoggingConfig)
    """TensorBoard is always written; W&B optionally."""
    policy_sync: int = 1
    """Copy learner weights to the acting policy every this many updates."""
    log_every: int = 20
    """Write scalars every this many updates."""
    image_every: int = 200
    """Write image summaries (real vs imagined frames, predicted targets) every this many updates."""
    checkpoint_every: int = 200
    """Checkpoint (learner, replay, counters) every this many updates; also at the end."""
    keep_replay: bool = True
    """Save replay contents with checkpoints so a resume continues on the same data."""

    def __post_init__(self) -> None:
        for key in ("env_steps", "num_envs", "policy_sync", "log_every", "image_every", "checkpoint_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)} must be >= 1")
        if self.env.size != self.learner.model.image_size:
            raise ValueError(f"env.size={self.env.size} != learner.model.image_size="
                             f"{self.learner.model.image_size}; set both")
        if self.replay.chunk_length < 2:
            raise ValueError(f"replay.chunk_length={self.replay.chunk_length} must be >= 2")
        if self.replay.prefill_policy == "blind" and not self.env.name.startswith(("nav:", "igibson:")):
            raise ValueError(f"replay.prefill_policy=blind drives by the goal vector of nav:* / igibson:* envs; "
                             f"{self.env.name} has none (use random)")
