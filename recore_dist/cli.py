"""``recore-dist`` command line: ``train`` (data collection until the learner lands) and ``bench``."""

from __future__ import annotations

import argparse
import json
import sys

from recore_dist.envs.gl import ensure_mujoco_gl


def main(argv: list[str] | None = None) -> int:
    ensure_mujoco_gl()
    parser = argparse.ArgumentParser(prog="recore-dist", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="run the main job from a config preset")
    train.add_argument("--config", default=None, help="YAML preset, e.g. configs/quickstart.yaml")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key (repeatable), e.g. --set env.size=84")
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

    args = parser.parse_args(argv)
    if args.command == "train":
        from recore_dist import collect, config

        cfg = config.load(collect.CollectConfig, args.config, args.overrides)
        summary = collect.run(cfg, progress=not args.no_progress)
        print(json.dumps(summary))
        return 0
    if args.command == "bench" and args.bench == "envs":
        from recore_dist.bench.envs import format_table, run_bench

        result = run_bench(task=args.task, num_envs=args.num_envs, steps=args.steps, size=args.size,
                           repeats=args.repeats)
        print(json.dumps(result) if args.json else format_table(result))
        return 0
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
