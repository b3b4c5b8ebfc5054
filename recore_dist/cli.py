"""``recore-dist`` command line: ``train`` and ``bench``.

    recore-dist train --config configs/quickstart.yaml [--set key=value ...] [--runner local]
    recore-dist bench envs | learner | learn [--json]
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
    train.add_argument("--runner", choices=["local"], default=None,
                       help="runner (overrides the config's `runner`): local = one process")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")

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

    learn = bench_sub.add_parser("learn", help="train recore for a wall-clock budget; train/held-out/random returns")
    learn.add_argument("--json", action="store_true", help="print one JSON object")
    learn.add_argument("--minutes", type=float, default=45.0, help="wall-clock training budget")
    learn.add_argument("--config", default="configs/bench_learn.yaml", help="training preset")
    learn.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    learn.add_argument("--episodes", type=int, default=10, help="evaluation episodes per split")
    learn.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    ensure_mujoco_gl()
    args = _parser().parse_args(argv)
    if args.command == "train":
        from recore_dist import config
        from recore_dist.runtime.config import TrainConfig
        from recore_dist.runtime.local import train

        overrides = list(args.overrides) + ([f"runner={args.runner}"] if args.runner else [])
        try:
            cfg = config.load(TrainConfig, args.config, overrides)
        except config.ConfigError as exc:
            print(f"recore-dist: bad config: {exc}", file=sys.stderr)
            return 2
        summary = train(cfg, progress=not args.no_progress)
        print(json.dumps(summary))
        return 0
    if args.command == "bench":
        return _bench(args)
    return 2  # pragma: no cover


def _bench(args: argparse.Namespace) -> int:
    if args.bench == "envs":
        from recore_dist.bench.envs import format_table, run_bench

        result = run_bench(task=args.task, num_envs=args.num_envs, steps=args.steps, size=args.size,
                           repeats=args.repeats)
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

        result = run_bench(config_path=args.config, overrides=args.overrides, minutes=args.minutes,
                           episodes=args.episodes, progress=not args.no_progress)
        print(json.dumps(result) if args.json else format_table(result))
        return 0
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
