"""Run a policy written by ``recore-dist export --format onnx`` on its task under ONNX Runtime.

Imports onnxruntime, numpy and the simulator (the env package: ``recore_dist.envs``, which
renders the same observations the agent trained on), nothing else from outside the standard
library: this is what a robot's computer runs, with the recurrent state carried between steps
by the caller.

    python examples/run_onnx_policy.py policy.onnx [--episodes 2] [--split heldout] [--max-steps N]

Prints one line per episode and a JSON summary on the last line. A file that is not a
recore-dist ONNX policy is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from recore_dist.envs import make  # the simulator

INPUTS = ["image", "proprio", "is_first", "deter", "stoch", "prev_action"]
OUTPUTS = ["action", "next_deter", "next_stoch"]


class NotAPolicy(Exception):
    """The file (or its metadata) is not a recore-dist ONNX policy."""


def load(path: Path) -> tuple[ort.InferenceSession, dict]:
    """The session (CPU, 1 thread: a robot shares its cores) and the metadata beside the file."""
    meta_path = path.with_suffix(".json")
    if not path.is_file():
        raise NotAPolicy(f"{path}: no such file")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise NotAPolicy(f"{path}: no readable metadata beside it ({meta_path.name}: {type(exc).__name__}); "
                         f"write both with `recore-dist export --format onnx`") from exc
    if meta.get("format") != "onnx":
        raise NotAPolicy(f"{path}: its metadata says format {meta.get('format')!r}, not 'onnx' "
                         f"(a torch.export program runs with examples/run_exported_policy.py)")
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.log_severity_level = 4  # the error below says it in one line
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for unreadable / invalid graphs
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NotAPolicy(f"{path}: onnxruntime cannot load it ({first[:200]})") from exc
    names = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
    if names != (INPUTS, OUTPUTS):
        raise NotAPolicy(f"{path}: an ONNX graph with inputs {names[0]} and outputs {names[1]}, not a recore-dist "
                         f"policy ({INPUTS} -> {OUTPUTS})")
    return session, meta


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", help="the .onnx file (its .json metadata beside it)")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--split", default="train", choices=("train", "heldout"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=None, help="cap episode length (navigation's max_steps)")
    args = parser.parse_args()
    try:
        session, meta = load(Path(args.policy))
    except NotAPolicy as exc:
        print(f"run_onnx_policy: {exc}", file=sys.stderr)
        return 2

    options = {**meta["env_options"], "split": args.split}
    if args.max_steps:
        options["max_steps"] = args.max_steps
    env = make(meta["env"], seed=args.seed, **options)
    inputs = meta["inputs"]
    state = {"deter": np.zeros((1, inputs["deter"]["shape"][1]), np.float32),
             "stoch": np.zeros((1, inputs["stoch"]["shape"][1]), np.float32),
             "prev_action": np.zeros((1, inputs["prev_action"]["shape"][1]), np.float32)}
    width = inputs["proprio"]["shape"][1]
    returns = []
    for episode in range(args.episodes):
        obs, _ = env.reset()
        total, done = 0.0, False
        while not done:
            feed = {"image": obs["image"][None],
                    "proprio": (obs["proprio"][None].astype(np.float32) if width else np.zeros((1, 0), np.float32)),
                    "is_first": np.array([bool(obs["is_first"])]),  # True after reset: the graph resets the state
                    **state}
            action, deter, stoch = session.run(OUTPUTS, feed)
            state = {"deter": deter, "stoch": stoch, "prev_action": action}
            obs, reward, terminated, truncated, _ = env.step(action[0])
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
        print(f"episode {episode}: return {total:.1f}")
    env.close()
    print(json.dumps({"episodes": len(returns), "mean_return": float(np.mean(returns)), "env": meta["env"],
                      "split": args.split, "runtime": f"onnxruntime {ort.__version__}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
