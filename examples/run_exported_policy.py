"""Run a policy written by ``recore-dist export`` on its task.

Imports torch, numpy and the simulator (the env package: ``recore_dist.envs``, which renders
the same observations the agent trained on), nothing else from outside the standard library:
the policy file needs no recore-dist code to load or run.

    python examples/run_exported_policy.py policy.pt2 [--episodes 2] [--split heldout] [--max-steps N]

Prints one line per episode and a JSON summary on the last line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from recore_dist.envs import make  # the simulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", help="the exported program (its .json metadata beside it)")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--split", default="train", choices=("train", "heldout"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=None, help="cap episode length (navigation's max_steps)")
    args = parser.parse_args()

    meta = json.loads(Path(args.policy).with_suffix(".json").read_text())
    step = torch.export.load(args.policy).module()
    options = {**meta["env_options"], "split": args.split}
    if args.max_steps:
        options["max_steps"] = args.max_steps
    env = make(meta["env"], seed=args.seed, **options)
    inputs = meta["inputs"]
    deter = torch.zeros(1, inputs["deter"]["shape"][1])
    stoch = torch.zeros(1, inputs["stoch"]["shape"][1])
    action = torch.zeros(1, inputs["prev_action"]["shape"][1])
    returns = []
    for episode in range(args.episodes):
        obs, _ = env.reset()
        total, done = 0.0, False
        while not done:
            image = torch.as_tensor(obs["image"][None])
            width = inputs["proprio"]["shape"][1]
            proprio = torch.as_tensor(obs["proprio"][None], dtype=torch.float32) if width else torch.zeros(1, 0)
            with torch.no_grad():
                is_first = torch.tensor([bool(obs["is_first"])])  # True after reset: the step resets its state
                action, deter, stoch = step(image, proprio, is_first, deter, stoch, action)
            obs, reward, terminated, truncated, _ = env.step(action[0].numpy().astype(np.float32))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
        print(f"episode {episode}: return {total:.1f}")
    env.close()
    print(json.dumps({"episodes": len(returns), "mean_return": float(np.mean(returns)), "env": meta["env"],
                      "split": args.split}))


if __name__ == "__main__":
    main()
