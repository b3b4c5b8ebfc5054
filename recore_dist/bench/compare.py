"""``recore-dist bench compare``: the world-model objectives head to head on held-out interventions.

Every method (``recore``, ``core``, ``hrssm``, ``coral``, ``recon``) trains on the same distracted
DMC task (``configs/bench_compare.yaml``: dynamic colour + background + camera interventions) for
the same wall-clock budget, from the same seeds, on the Ray runner (env runner, replay shard,
learner and evaluator actors, so both cores work). Each (method, seed) runs in a fresh process
(one Ray session per process). At the end, its final weights are evaluated on the train split
and on the held-out split (unseen colours, backgrounds and camera poses), and a uniform random
policy is evaluated on both splits once per seed, as the floor. The table has the returns, the
held-out / train ratio, and the updates and env steps each method managed in the budget, with its
parameter count (same model size for all).

Methods' own defaults: ``core`` acts with latent SAC at the paper's learning rates, as in the
CoRe paper (``METHOD_OVERRIDES``); the others learn behaviour in imagination.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

METHODS = ("recore", "core", "hrssm", "coral", "recon")
METHOD_OVERRIDES: dict[str, list[str]] = {  # CoRe acts by latent SAC at the paper's learning rates
    "core": ["learner.behavior.kind=sac", "learner.actor_opt.lr=1e-3", "learner.critic_opt.lr=1e-3"]}


def run_one(*, method: str, seed: int, minutes: float, config_path: str, overrides: list[str], episodes: int,
            logdir: str, random_baseline: bool) -> dict[str, Any]:
    """Train one method for ``minutes`` and evaluate it (call in a fresh process)."""
    import ray

    from recore_dist import config as config_lib
    from recore_dist.runtime.config import TrainConfig
    from recore_dist.runtime.orchestrator import Orchestrator

    cfg = config_lib.load(TrainConfig, config_path, [
        *overrides, f"learner.objective.name={method}", *METHOD_OVERRIDES.get(method, []), f"seed={seed}",
        f"logdir={logdir}", f"eval.episodes={episodes}"])
    orch = Orchestrator(cfg, progress=False)
    try:
        start = time.perf_counter()
        summary = orch.run(max_seconds=60.0 * minutes)
        seconds = time.perf_counter() - start
        params = ray.get(orch.learner.param_counts.remote())
        random = ray.get(orch.evaluator.evaluate.remote(None, 0, episodes=episodes, random=True)) if random_baseline \
            else {}
    finally:
        orch.close()
    return {"method": method, "seed": seed, "seconds": seconds, "updates": summary["updates"],
            "env_steps": summary["env_steps"], "params": params,
            "train": summary.get("eval_policy_train/return"), "heldout": summary.get("eval_policy_heldout/return"),
            "random_train": random.get("eval_random_train/return"), "random_heldout": random.get("eval_random_heldout/return"),
            "logdir": logdir}


def run_bench(*, methods: list[str], minutes: float, seeds: list[int], config_path: str = "configs/bench_compare.yaml",
              overrides: list[str] | None = None, episodes: int = 5, logdir: str = "runs/bench_compare",
              progress: bool = True) -> dict[str, Any]:
    from recore_dist import config as config_lib
    from recore_dist.runtime.config import TrainConfig

    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(METHODS)}")
    cfg = config_lib.load(TrainConfig, config_path, list(overrides or []))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs = []
    for seed in seeds:
        for index, method in enumerate(methods):
            args = {"method": method, "seed": seed, "minutes": minutes, "config_path": config_path,
                    "overrides": list(overrides or []), "episodes": episodes,
                    "logdir": str(Path(logdir) / stamp / f"{method}-seed{seed}"), "random_baseline": index == 0}
            if progress:
                print(f"[bench compare] {method}, seed {seed}: {minutes:g} min", file=sys.stderr, flush=True)
            out = subprocess.run([sys.executable, "-m", "recore_dist.bench.compare", json.dumps(args)],
                                 capture_output=True, text=True, timeout=int(60 * minutes) + 1800)
            if out.returncode != 0:
                raise RuntimeError(f"bench compare: {method} (seed {seed}) failed:\n{out.stderr[-3000:]}")
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = []
    for method in methods:
        mine = [r for r in runs if r["method"] == method]
        train = statistics.mean(r["train"] for r in mine)
        heldout = statistics.mean(r["heldout"] for r in mine)
        rows.append({"method": method, "params": mine[0]["params"]["total"], "train": train, "heldout": heldout,
                     "heldout_over_train": heldout / train if train else None,
                     "updates": statistics.mean(r["updates"] for r in mine),
                     "env_steps": statistics.mean(r["env_steps"] for r in mine),
                     "train_per_seed": [r["train"] for r in mine], "heldout_per_seed": [r["heldout"] for r in mine]})
    randoms = [r for r in runs if r["random_train"] is not None]
    return {"task": cfg.env.name, "interventions": cfg.env.interventions, "dynamic": cfg.env.dynamic,
            "difficulty": cfg.env.difficulty, "model_size": cfg.learner.model.size, "minutes": minutes,
            "seeds": seeds, "episodes": episodes, "rows": rows, "runs": runs,
            "random_train": statistics.mean(r["random_train"] for r in randoms),
            "random_heldout": statistics.mean(r["random_heldout"] for r in randoms)}


def format_table(r: dict[str, Any]) -> str:
    lines = [f"{r['task']} 64px, {'dynamic ' if r['dynamic'] else ''}{r['interventions']} ({r['difficulty']}), "
             f"model {r['model_size']}, {r['minutes']:g} min per method on the Ray runner, seeds {r['seeds']}, "
             f"{r['episodes']} eval episodes per split",
             f"{'method':<8}{'params':>11}{'updates':>9}{'env steps':>11}{'train':>9}{'held-out':>10}{'held/train':>12}"]
    for row in r["rows"]:
        ratio = f"{row['heldout_over_train']:.2f}" if row["heldout_over_train"] is not None else "-"
        lines.append(f"{row['method']:<8}{row['params']:>11,}{row['updates']:>9.0f}{row['env_steps']:>11.0f}"
                     f"{row['train']:>9.1f}{row['heldout']:>10.1f}{ratio:>12}")
    lines.append(f"{'random':<8}{'':>11}{'':>9}{'':>11}{r['random_train']:>9.1f}{r['random_heldout']:>10.1f}")
    return "\n".join(lines)


if __name__ == "__main__":  # one (method, seed), in its own process (see run_bench)
    from recore_dist.envs.gl import ensure_mujoco_gl

    ensure_mujoco_gl()
    print(json.dumps(run_one(**json.loads(sys.argv[1]))))
