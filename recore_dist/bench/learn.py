"""``recore-dist bench learn``: does ReCoRe learn from pixels on this CPU within a time budget?

Trains the ``configs/bench_learn.yaml`` preset (ReCoRe on ``dmc:cartpole-swingup`` from 64 px
pixels with colour + background interventions on the train split) with the local runner for
``--minutes`` of wall-clock, then evaluates, in the same run and with the same number of
episodes each:

1. the learned policy (actor mode) on the train split of the interventions,
2. the learned policy on the held-out split (unseen colours and backgrounds),
3. a uniform random policy on the train split (the baseline).

Targets: train return >= 3x random; held-out >= 80% of train.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from recore_dist import config as config_lib
from recore_dist.runtime.config import TrainConfig
from recore_dist.runtime.local import LocalRunner


def run_bench(*, config_path: str, overrides: list[str], minutes: float, episodes: int = 10,
              progress: bool = True) -> dict[str, Any]:
    cfg = config_lib.load(TrainConfig, config_path, overrides)
    cfg.logdir = str(Path(cfg.logdir) / time.strftime("%Y%m%d-%H%M%S"))
    runner = LocalRunner(cfg, progress=progress)
    try:
        start = time.perf_counter()
        summary = runner.run(max_seconds=60.0 * minutes)
        trained = time.perf_counter() - start
        precision = str(runner.learner.dtype).replace("torch.", "")
        results = {**runner.evaluate("train", episodes), **runner.evaluate("heldout", episodes),
                   **runner.evaluate("train", episodes, random=True)}
    finally:
        runner.close()
    train = results["eval_policy_train/return"]
    heldout = results["eval_policy_heldout/return"]
    random = results["eval_random_train/return"]
    return {"task": cfg.env.name, "interventions": cfg.env.interventions, "minutes": minutes,
            "train_seconds": trained, "env_steps": summary["env_steps"], "updates": summary["updates"],
            "replay_ratio": cfg.replay.ratio, "precision": precision, "model_size": cfg.learner.model.size, "params": summary["params"],
            "episodes": episodes, "return_train": train, "return_heldout": heldout, "return_random": random,
            "train_over_random": train / random if random else None,
            "heldout_over_train": heldout / train if train else None,
            "target_train_3x_random": bool(random and train >= 3 * random),
            "target_heldout_80pct": bool(train and heldout >= 0.8 * train), "logdir": cfg.logdir}


def format_table(result: dict[str, Any]) -> str:
    return "\n".join([
        f"{result['task']} ({result['interventions']}), {result['minutes']:.0f} min budget: "
        f"{result['env_steps']} env steps, {result['updates']} updates, model {result['model_size']} "
        f"({result['params']['total']:,} params), replay ratio {result['replay_ratio']:g}, "
        f"{result.get('precision', '?')} autocast",
        f"{'policy':<28}{'return':>10}",
        f"{'learned, train split':<28}{result['return_train']:>10.1f}",
        f"{'learned, held-out split':<28}{result['return_heldout']:>10.1f}",
        f"{'random, train split':<28}{result['return_random']:>10.1f}",
        f"train / random = {result['train_over_random']:.2f} (target >= 3: "
        f"{'met' if result['target_train_3x_random'] else 'NOT met'}); held-out / train = "
        f"{result['heldout_over_train']:.2f} (target >= 0.8: {'met' if result['target_heldout_80pct'] else 'NOT met'})",
        f"logs: {result['logdir']}"])
