"""``recore-dist`` command line: ``train``, ``scale``, ``bench``, ``evaluate``, ``export`` and ``plot``.

    recore-dist train --config configs/quickstart.yaml [--set key=value ...] [--runner ray|local] [--address auto]
    recore-dist scale --logdir runs/quickstart --runners 4
    recore-dist bench envs | learner | learners | learn | policy | actors | replay | scaling | chaos | compare | objectives [--json]
    recore-dist evaluate --logdir runs/quickstart [--split both] [--episodes 10] [--video agent.gif] [--json]
    recore-dist export --logdir runs/quickstart --out policy.pt2
    recore-dist export --logdir runs/quickstart --format onnx --out policy.onnx
    recore-dist plot runs/bench_nav/RUN_A runs/bench_nav/RUN_B --out docs/plots/nav
"""

from __future__ import annotations

import argparse
import json
import sys

from recore_dist.envs.gl import ensure_mujoco_gl


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recore-dist", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train from a config preset (resumes an existing logdir)")
    train.add_argument("--config", default=None, help="YAML preset, e.g. configs/quickstart.yaml")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key (repeatable), e.g. --set learner.model.size=s")
    train.add_argument("--runner", choices=["ray", "local"], default=None,
                       help="runner (overrides the config's `runner`): ray = actors on Ray (default), "
                            "local = one process")
    train.add_argument("--address", default=None,
                       help="Ray cluster to join (`auto`, `ray://host:10001`); default: an embedded local Ray")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    scale = sub.add_parser("scale", help="change the number of env runners of a running job")
    scale.add_argument("--logdir", required=True, help="the job's logdir")
    scale.add_argument("--runners", type=int, required=True, help="env runners wanted")

    evaluate = sub.add_parser("evaluate", help="run a trained policy (actor mode) on both splits; SR/SPL on navigation")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--logdir", help="the run's logdir (its latest checkpoint)")
    source.add_argument("--checkpoint", help="a checkpoint directory or its learner.pt")
    evaluate.add_argument("--split", choices=("train", "heldout", "both"), default="both")
    evaluate.add_argument("--episodes", type=int, default=10, help="episodes per split, balanced over scenes")
    evaluate.add_argument("--video", default=None, help="write one episode per split side by side (.gif or .mp4)")
    evaluate.add_argument("--env", default=None, help="another env than the run's (same observation shapes)")
    evaluate.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                          help="override the run's config, e.g. --set env.difficulty=hard")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")

    export = sub.add_parser("export", help="write the acting policy as a torch.export program or an ONNX graph, "
                                           "with a metadata JSON beside it")
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--logdir", help="the run's logdir (its latest checkpoint)")
    source.add_argument("--checkpoint", help="a checkpoint directory or its learner.pt")
    export.add_argument("--format", default="torch", choices=("torch", "onnx"),
                        help="torch: a torch.export program (loads with torch alone); onnx: one ONNX graph with the "
                             "recurrent state as inputs and outputs (runs under onnxruntime; extra: recore-dist[onnx])")
    export.add_argument("--out", default=None,
                        help="the file (default policy.pt2 / policy.onnx); the metadata goes beside it as .json")

    plot = sub.add_parser("plot", help="PNG learning curves (evaluation on both splits vs env steps and minutes)")
    plot.add_argument("logdirs", nargs="+", help="run logdirs (each with a tb/ folder)")
    plot.add_argument("--out", required=True, help="folder for eval_vs_frames.png and eval_vs_minutes.png")
    plot.add_argument("--labels", default=None, help="comma-separated line labels (default: each run's objective)")
    plot.add_argument("--title", default=None)

    report = sub.add_parser("report", help="PNG plots of runs (evaluation, generalisation gap, throughput) + index.html")
    report.add_argument("logdirs", nargs="+", help="run logdirs (each with a tb/ folder)")
    report.add_argument("--out", required=True, help="folder for the PNGs and index.html")
    report.add_argument("--labels", default=None,
                        help="comma-separated line labels (default: what differs in the runs' saved configs)")
    report.add_argument("--title", default="recore-dist report")

    bench = sub.add_parser("bench", help="benchmarks that print ratios against a same-run baseline")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    envs = bench_sub.add_parser("envs", help="make_vector frames/s vs raw dm_control step+render")
    envs.add_argument("--json", action="store_true", help="print one JSON object")
    envs.add_argument("--task", default="walker-walk")
    envs.add_argument("--num-envs", type=int, default=4)
    envs.add_argument("--steps", type=int, default=300, help="lock-step steps per measurement")
    envs.add_argument("--size", type=int, default=64)
    envs.add_argument("--repeats", type=int, default=3, help="interleaved repeats (median reported)")

    learner = bench_sub.add_parser("learner", help="seconds per update vs RLlib DreamerV3 XS, FLOP rate")
    learner.add_argument("--json", action="store_true", help="print one JSON object")
    learner.add_argument("--threads", type=int, default=2, help="torch threads for every measurement")
    learner.add_argument("--sizes", default="xxs,xs", help="our model sizes to time (comma-separated)")
    learner.add_argument("--updates", type=int, default=5, help="timed updates per model (median)")
    learner.add_argument("--rllib-updates", type=int, default=2, help="timed RLlib updates (0: skip RLlib)")
    learner.add_argument("--actor-grads", default="reinforce,dynamics",
                         help="actor gradient modes to time: reinforce (as DreamerV3), dynamics (our default)")
    learner.add_argument("--compile", choices=("off", "on", "both"), default="both",
                         help="time learners without / with learner.compile (torch.compile of the step modules)")
    learner.add_argument("--batch-size", type=int, default=16)
    learner.add_argument("--length", type=int, default=64)

    policy = bench_sub.add_parser("policy", help="acting-step latency at batch 1, 1 thread: onnxruntime vs torch")
    policy.add_argument("--json", action="store_true", help="print one JSON object")
    policy.add_argument("--config", default="configs/bench_learn.yaml", help="the preset whose policy is timed")
    policy.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. learner.model.size=xxs")
    policy.add_argument("--steps", type=int, default=300, help="timed steps per runtime (median reported)")

    learn = bench_sub.add_parser("learn", help="train for a wall-clock budget; learned/random/blind on both splits (SR, SPL on navigation)")
    learn.add_argument("--json", action="store_true", help="print one JSON object")
    learn.add_argument("--minutes", type=float, default=None,
                       help="wall-clock training budget per run (default 45 when --frames is not given)")
    learn.add_argument("--frames", type=int, default=None,
                       help="env-frame budget per run, action repeat included (matched data across seeds and CPUs)")
    learn.add_argument("--seeds", type=int, default=1,
                       help="training seeds per method (each its own run); >1 adds mean / IQM / 95%% bootstrap CI")
    learn.add_argument("--stamp", default=None,
                       help="reuse an earlier invocation's run folders: finished runs are read back, others resume")
    learn.add_argument("--config", default="configs/bench_learn.yaml", help="training preset")
    learn.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    learn.add_argument("--episodes", type=int, default=None,
                       help="evaluation episodes per split, balanced over scenes (default: 40 navigation, 10 control)")
    learn.add_argument("--methods", default=None,
                       help="comma-separated objectives, each trained under the same budget in its own process")
    learn.add_argument("--parallel", action="store_true",
                       help="run the (method, seed) runs at once, as many as there are cores, each pinned to its share")
    learn.add_argument("--no-progress", action="store_true")
    actors = bench_sub.add_parser("actors", help="EnvRunner path (step+render+policy+chunk+push) vs raw make_vector")
    actors.add_argument("--json", action="store_true", help="print one JSON object")
    actors.add_argument("--config", default="configs/quickstart.yaml", help="env and model preset")
    actors.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    actors.add_argument("--num-envs", type=int, default=4, help="simulators per process")
    actors.add_argument("--steps", type=int, default=256, help="lock-steps per measurement")
    actors.add_argument("--repeats", type=int, default=3)

    replay = bench_sub.add_parser("replay", help="replay service insert+sample MB/s vs raw Ray actor calls")
    replay.add_argument("--json", action="store_true", help="print one JSON object")
    replay.add_argument("--producers", type=int, default=2)
    replay.add_argument("--calls", type=int, default=40, help="insert calls per producer")
    replay.add_argument("--chunks-per-call", type=int, default=4)
    replay.add_argument("--repeats", type=int, default=3)
    replay.add_argument("--log", action="store_true",
                        help="instead: the write-ahead log's cost, inserts/s and MB/s with each fsync policy vs no log")
    replay.add_argument("--log-dir", default=None, help="with --log: where the shard's folder goes (default runs/)")

    scaling = bench_sub.add_parser("scaling", help="env frames/s with 1 and 2 env runners (1 and 2 Ray nodes)")
    scaling.add_argument("--json", action="store_true", help="print one JSON object")
    scaling.add_argument("--config", default="configs/quickstart.yaml", help="env and model preset")
    scaling.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    scaling.add_argument("--num-envs", type=int, default=2, help="simulators per runner")
    scaling.add_argument("--steps", type=int, default=128, help="lock-steps per measurement")
    scaling.add_argument("--repeats", type=int, default=3)
    scaling.add_argument("--nodes", type=int, choices=(1, 2), default=2,
                         help="2: also measure on a 2-node cluster started on this machine")
    learners = bench_sub.add_parser("learners", help="updates/s and replayed steps/s with 1 and 2 data-parallel learners")
    learners.add_argument("--json", action="store_true", help="print one JSON object")
    learners.add_argument("--config", default="configs/quickstart.yaml", help="env, model and batch preset")
    learners.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    learners.add_argument("--learners", default="1,2", help="comma-separated learner counts (the first is the baseline)")
    learners.add_argument("--seconds", type=float, default=30.0, help="measured train() seconds per run")
    learners.add_argument("--repeats", type=int, default=2)
    chaos = bench_sub.add_parser("chaos", help="a run under SIGKILLed actors and malformed inserts; every count reconciled")
    chaos.add_argument("--json", action="store_true", help="print one JSON object")
    chaos.add_argument("--config", default="configs/quickstart.yaml", help="the job's preset")
    chaos.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    chaos.add_argument("--minutes", type=float, default=10.0, help="wall-clock length of each run")
    chaos.add_argument("--seed", type=int, default=0, help="seeds the faults, the victims and the hostile client")
    chaos.add_argument("--address", default=None, help="a running Ray cluster (default: an embedded local Ray)")
    chaos.add_argument("--every", default="20,40", help="seconds between kills: LOW,HIGH (uniform)")
    chaos.add_argument("--hostile-hz", type=float, default=2.0, help="malformed inserts per second")
    chaos.add_argument("--no-baseline", action="store_true", help="skip the two fault-free runs (return check)")
    chaos.add_argument("--logdir", default="runs/bench_chaos")
    compare = bench_sub.add_parser("compare", help="every objective for the same budget; train vs held-out returns")
    compare.add_argument("--json", action="store_true", help="print one JSON object")
    compare.add_argument("--config", default="configs/bench_compare.yaml", help="task and shared settings")
    compare.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    compare.add_argument("--minutes", type=float, default=10.0, help="wall-clock training budget per method")
    compare.add_argument("--methods", default="recore,core,hrssm,coral,recon", help="comma-separated objectives")
    compare.add_argument("--seeds", default="0", help="comma-separated seeds (every method runs each)")
    compare.add_argument("--episodes", type=int, default=5, help="evaluation episodes per split")
    compare.add_argument("--logdir", default="runs/bench_compare", help="each run's logs go in a subfolder")
    objectives = bench_sub.add_parser("objectives", help="every objective N updates on one cached random-policy "
                                      "replay: speed, clipping, gradient shares, SSL accuracy, held-out probe")
    objectives.add_argument("--json", action="store_true", help="print one JSON object")
    objectives.add_argument("--updates", type=int, default=500, help="learner updates per objective")
    objectives.add_argument("--size", default="xs", help="model size preset")
    objectives.add_argument("--methods", default="recore,core,hrssm,coral,recon", help="comma-separated objectives")
    objectives.add_argument("--batch-size", type=int, default=16)
    objectives.add_argument("--length", type=int, default=32)
    objectives.add_argument("--grad-every", type=int, default=25, help="updates between gradient diagnostics")
    objectives.add_argument("--episodes", type=int, default=32, help="random-policy episodes in the dataset")
    objectives.add_argument("--threads", type=int, default=2)
    objectives.add_argument("--env", default="dmc:cartpole-swingup", choices=["dmc:cartpole-swingup", "nav:pointgoal"],
                            help="dataset: distracted cartpole (same states under both splits; depth and reward "
                                 "probes) or navigation (train vs held-out scenes; the goal probe)")
    objectives.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                            help="learner config override for every method, e.g. objective.recore.aux_scale=2")
    return parser


def _agent_command(args: argparse.Namespace) -> int:
    """``evaluate`` and ``export``: problems with the run are one line, exit status 2."""
    from recore_dist.runtime.saved_run import SavedRunError
    from recore_dist.video import VideoError

    try:
        if args.command == "evaluate":
            from recore_dist.evaluate import format_table, run_evaluate

            result = run_evaluate(logdir=args.logdir, checkpoint=args.checkpoint, split=args.split,
                                  episodes=args.episodes, video=args.video, env=args.env, overrides=args.overrides)
            print(json.dumps(result) if args.json else format_table(result))
            return 0
        from recore_dist.runtime.saved_run import open_run

        run = open_run(args.logdir, args.checkpoint)
        if args.format == "onnx":
            from recore_dist.export_onnx import describe, export_onnx

            graph, meta = export_onnx(run, args.out or "policy.onnx")
            print(f"wrote {graph} ({describe(json.loads(meta.read_text()))}) and {meta} (metadata)")
            return 0
        from recore_dist.export import export_policy

        program, meta = export_policy(run, args.out or "policy.pt2")
        print(f"wrote {program} (torch.export program) and {meta} (metadata)")
        return 0
    except (SavedRunError, VideoError, ValueError) as exc:
        print(f"recore-dist {args.command}: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    ensure_mujoco_gl()
    args = _parser().parse_args(argv)
    if args.command == "train":
        from recore_dist import config
        from recore_dist.runtime.config import TrainConfig
        from recore_dist.runtime.local import train

        overrides = list(args.overrides) + ([f"runner={args.runner}"] if args.runner else [])
        overrides += [f"ray.address={args.address}"] if args.address else []
        try:
            cfg = config.load(TrainConfig, args.config, overrides)
        except config.ConfigError as exc:
            print(f"recore-dist: bad config: {exc}", file=sys.stderr)
            return 2
        if cfg.runner == "ray":
            from recore_dist.runtime.capacity import ClusterTooSmall
            from recore_dist.runtime.orchestrator import train as train_ray

            try:
                summary = train_ray(cfg, progress=not args.no_progress)
            except ClusterTooSmall as exc:
                print(f"recore-dist: {exc}", file=sys.stderr)
                return 2
        else:
            summary = train(cfg, progress=not args.no_progress)
        print(json.dumps(summary))
        return 0
    if args.command == "scale":
        from recore_dist.runtime.orchestrator import request_scale

        try:
            path = request_scale(args.logdir, args.runners)
        except (ValueError, OSError) as exc:
            print(f"recore-dist: {exc}", file=sys.stderr)
            return 2
        print(f"asked the job in {args.logdir} for {args.runners} env runners ({path})")
        return 0
    if args.command == "bench":
        return _bench(args)
    if args.command in ("evaluate", "export"):
        return _agent_command(args)
    if args.command in ("plot", "report"):
        return _plots(args)
    return 2  # pragma: no cover


def _plots(args: argparse.Namespace) -> int:
    """``plot`` (evaluation curves) and ``report`` (every plot and index.html)."""
    from recore_dist.report.curves import load_run, plot_runs

    labels = args.labels.split(",") if args.labels else [None] * len(args.logdirs)
    if len(labels) != len(args.logdirs):
        print(f"recore-dist: {len(labels)} labels for {len(args.logdirs)} runs", file=sys.stderr)
        return 2
    try:
        runs = [load_run(d, label) for d, label in zip(args.logdirs, labels)]
        if args.command == "report":
            from recore_dist.report.html import write_report

            written = write_report(runs, args.out, title=args.title, relabel=not args.labels)
            paths = [*written["images"], written["html"]]
        else:
            paths = plot_runs(runs, args.out, title=args.title)
    except (FileNotFoundError, ValueError) as exc:
        print(f"recore-dist: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.bench == "envs":
        from recore_dist.bench.envs import format_table, run_bench

        result = run_bench(task=args.task, num_envs=args.num_envs, steps=args.steps, size=args.size,
                           repeats=args.repeats)
        print(json.dumps(result) if args.json else format_table(result))
        return 0
    if args.bench == "policy":
        from recore_dist.bench.policy import format_table, run_bench

        result = run_bench(config=args.config, overrides=args.overrides, steps=args.steps)
        print(json.dumps(result) if args.json else format_table(result))
        return 0
    if args.bench == "learner":
        from recore_dist.bench.learner import format_table, run_bench

        result = run_bench(threads=args.threads, sizes=args.sizes.split(","), updates=args.updates,
                           rllib_updates=args.rllib_updates, batch_size=args.batch_size, length=args.length,
                           actor_grads=tuple(args.actor_grads.split(",")),
                           compile_modes={"off": (False,), "on": (True,), "both": (False, True)}[args.compile])
        print(json.dumps(result) if args.json else format_table(result))
        return 0
    if args.bench == "learn":
        from recore_dist.bench.learn import format_table, run_bench

        minutes = args.minutes if args.minutes is not None or args.frames else 45.0
        result = run_bench(config_path=args.config, overrides=args.overrides, minutes=minutes, frames=args.frames,
                           episodes=args.episodes, methods=args.methods.split(",") if args.methods else None,
                           seeds=args.seeds, parallel=args.parallel, progress=not args.no_progress,
                           stamp=args.stamp)
        print(json.dumps(result) if args.json else format_table(result))
        return 0
    if args.bench == "actors":
        from recore_dist.bench.actors import format_table, run_bench

        result = run_bench(config_path=args.config, overrides=args.overrides, num_envs=args.num_envs,
                           steps=args.steps, repeats=args.repeats)
        print(json.dumps(result) if args.json else format_table(result))
        return 0
    if args.bench == "replay" and args.log:
        from recore_dist.bench.replay import format_log_table, run_log_bench

        result = run_log_bench(calls=max(args.calls, 200), chunks_per_call=args.chunks_per_call,
                               repeats=args.repeats, directory=args.log_dir)
        print(json.dumps(result) if args.json else format_log_table(result))
        return 0
    if args.bench == "replay":
        from recore_dist.bench.replay import format_table, run_bench

        result = run_bench(producers=args.producers, calls=args.calls, chunks_per_call=args.chunks_per_call,
                           repeats=args.repeats)
        print(json.dumps(result) if args.json else format_table(result))
        return 0
    if args.bench == "learners":
        from recore_dist.bench.learners import format_table, run_bench

        result = run_bench(config_path=args.config, overrides=args.overrides,
                           learners=tuple(int(n) for n in args.learners.split(",")), seconds=args.seconds,
                           repeats=args.repeats)
        print(json.dumps(result) if args.json else format_table(result))
        return 0
    if args.bench == "chaos":
        from recore_dist.bench.chaos import format_table, run_bench

        low, high = (float(x) for x in args.every.split(","))
        result = run_bench(config_path=args.config, overrides=args.overrides, minutes=args.minutes, seed=args.seed,
                           address=args.address, every=(low, high), hostile_hz=args.hostile_hz,
                           baseline=not args.no_baseline, logdir=args.logdir)
        print(json.dumps(result, default=str) if args.json else format_table(result))
        return 0 if result["checks"]["passed"] else 1
    if args.bench == "scaling":
        from recore_dist.bench.scaling import format_table, run_bench

        result = run_bench(config_path=args.config, overrides=args.overrides, num_envs=args.num_envs,
                           steps=args.steps, repeats=args.repeats, nodes=args.nodes)
        print(json.dumps(result) if args.json else format_table(result))
        return 0
    if args.bench == "compare":
        from recore_dist.bench.compare import format_table, run_bench

        result = run_bench(methods=args.methods.split(","), minutes=args.minutes,
                           seeds=[int(s) for s in args.seeds.split(",")], config_path=args.config,
                           overrides=args.overrides, episodes=args.episodes, logdir=args.logdir)
        print(json.dumps(result) if args.json else format_table(result))
        return 0
    if args.bench == "objectives":
        from recore_dist.bench.objectives import format_table, run_bench

        result = run_bench(methods=args.methods.split(","), updates=args.updates, size=args.size,
                           batch_size=args.batch_size, length=args.length, grad_every=args.grad_every,
                           episodes=args.episodes, threads=args.threads, overrides=args.overrides, env=args.env)
        print(json.dumps(result) if args.json else format_table(result))
        return 0
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
