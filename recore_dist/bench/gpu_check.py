"""``scripts/gpu-check``: what one GPU does for this system, in one command (< 8 min, no downloads).

Measures, on ``--device`` (``cuda`` by default; ``cpu`` runs the same code paths, for testing
the script on a machine without a GPU):

1. **Learner updates** for each ``--sizes`` model (default ``xs,s,m``) at B16 x T64, 64 px,
   ReCoRe objective, bfloat16 autocast on CUDA: median seconds per update after two warm-ups,
   the FLOPs of one update (``FlopCounterMode``: matmuls and convolutions, forward and backward),
   their rate against a large matmul in the same dtype on the same device, and the peak device
   memory. Anchor (issue 16): the JAX DreamerV3 learner does 22 ms per update at B16 x T64 on
   one GB200; TorchRL's compiled torch version 358 ms.
2. **The env-runner path** with the policy on CPU (``recore-dist bench actors``' measurement:
   frames/s of an ``EnvRunner`` against raw stepping, 1 torch thread).
3. **A short ReCoRe run** on the Ray runtime (embedded local Ray) with the learner on the
   device: ``--minutes`` (default 5) of the quickstart preset at ``xs``, reporting updates/s,
   env steps/s, the final train / held-out returns and the device the learner used.

Writes one JSON (``--out``, default ``runs/gpu_check.json``) and prints a table. Every part runs
in a fresh subprocess, so one failing part is reported and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def learner_update(*, size: str, device: str, updates: int, batch_size: int = 16, length: int = 64) -> dict[str, Any]:
    """Seconds per update, FLOP rate vs a matmul, peak memory (call in a fresh process)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from recore_dist import config as config_lib
    from recore_dist.bench.learner import _batch
    from recore_dist.learner import Learner, LearnerConfig
    from recore_dist.models.world_model import Spaces

    spec = {"model": {"size": size}, "objective": {"name": "recore"}, "batch_size": batch_size,
            "batch_length": length, "precision": "auto", "device": device, "compile": False,
            "grad_diagnostics_every": 0}
    learner = Learner(config_lib.from_dict(LearnerConfig, spec), Spaces(action_dim=1))
    batch = _batch(batch_size, length, learner.cfg.model.image_size)
    cuda = learner.device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    for _ in range(2):
        learner.update(batch)
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(updates):
        start = time.perf_counter()
        learner.update(batch)
        sync()
        times.append(time.perf_counter() - start)
    counter = FlopCounterMode(display=False)
    with counter:
        learner.update(batch)
    sync()
    flops = counter.get_total_flops()
    seconds = statistics.median(times)
    dtype = str(learner.dtype).replace("torch.", "")
    rate = matmul_rate(device, dtype)
    return {"size": size, "device": str(learner.device), "precision": dtype, "batch": [batch_size, length],
            "params": learner.param_counts()["total"], "seconds_per_update": seconds, "seconds_min": min(times),
            "updates_timed": updates, "flops_per_update": flops, "flop_rate": flops / seconds,
            "matmul_rate": rate, "fraction_of_matmul": flops / seconds / rate,
            "peak_memory_bytes": int(torch.cuda.max_memory_allocated()) if cuda else None,
            "anchor_jax_dreamerv3_gb200_s": 0.022, "anchor_torchrl_compiled_s": 0.358}


def matmul_rate(device: str, dtype_name: str, n: int = 8192, repeats: int = 5) -> float:
    """FLOP/s of an ``n x n`` matmul on ``device`` in ``dtype_name`` (best of ``repeats``)."""
    import torch

    dtype = getattr(torch, dtype_name)
    n = n if device.startswith("cuda") else 2048
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def actor_path(*, steps: int) -> dict[str, Any]:
    from recore_dist.bench.actors import run_bench

    return run_bench(steps=steps, repeats=2)


def short_run(*, device: str, minutes: float, logdir: str) -> dict[str, Any]:
    from recore_dist import config as config_lib
    from recore_dist.runtime.config import TrainConfig
    from recore_dist.runtime.orchestrator import train

    gpus = 1 if device.startswith("cuda") else 0
    cfg = config_lib.load(TrainConfig, "configs/quickstart.yaml", [
        f"logdir={logdir}", "env_steps=10000000", "learner.model.size=xs", f"learner.device={device}",
        f"ray.learner_gpus={gpus}", "ray.eval_every_s=0", "eval.episodes=2", "eval.videos=false"])
    start = time.perf_counter()
    summary = train(cfg, progress=False, max_seconds=60.0 * minutes)
    seconds = time.perf_counter() - start
    return {"device": device, "minutes": minutes, "seconds": seconds, "updates": summary["updates"],
            "env_steps": summary["env_steps"], "updates_per_second": summary["updates"] / seconds,
            "env_steps_per_second": summary["env_steps"] / seconds,
            "return_train": summary.get("eval_policy_train/return"),
            "return_heldout": summary.get("eval_policy_heldout/return"), "logdir": logdir}


PARTS = {"learner": learner_update, "actors": actor_path, "run": short_run}


def _child(part: str, kwargs: dict[str, Any], timeout: float) -> dict[str, Any]:
    env = {**os.environ}
    env.setdefault("MUJOCO_GL", "egl")
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "recore_dist.bench.gpu_check", "--child", part, json.dumps(kwargs)],
                              capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"part": part, "error": f"timed out after {timeout:.0f} s", **kwargs}
    if proc.returncode != 0:
        return {"part": part, "error": proc.stderr.strip().splitlines()[-1][:500] if proc.stderr.strip() else
                f"exit {proc.returncode}", **kwargs}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"part": part, "wall_seconds": time.perf_counter() - start, **out}


def run_check(*, device: str, sizes: list[str], updates: int, minutes: float, actor_steps: int,
              out: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu-check: no CUDA device here (torch.cuda.is_available() is False); "
                         "--device cpu runs the same code paths on the CPU")
    result: dict[str, Any] = {"device": device, "torch": torch.__version__,
                              "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
                              "learner": [], "actors": None, "run": None}
    if "learner" not in skip:
        for size in sizes:
            result["learner"].append(_child("learner", {"size": size, "device": device, "updates": updates}, 240))
    if "actors" not in skip:
        result["actors"] = _child("actors", {"steps": actor_steps}, 240)
    if "run" not in skip:
        logdir = str(Path(out).with_suffix("")) + "_run"
        result["run"] = _child("run", {"device": device, "minutes": minutes, "logdir": logdir}, 60 * minutes + 240)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=1))
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [f"gpu-check on {result['device']} ({result['gpu'] or 'no GPU'}), torch {result['torch']}"]
    lines.append(f"{'size':<6}{'params':>12}{'s/update':>10}{'vs JAX 22 ms':>14}{'TFLOP/s':>9}"
                 f"{'of matmul':>10}{'peak GiB':>10}  precision")
    for row in result["learner"]:
        if "error" in row:
            lines.append(f"{row['size']:<6} failed: {row['error']}")
            continue
        peak = f"{row['peak_memory_bytes'] / 2**30:.2f}" if row["peak_memory_bytes"] else "-"
        lines.append(f"{row['size']:<6}{row['params']:>12,}{row['seconds_per_update']:>10.3f}"
                     f"{row['seconds_per_update'] / 0.022:>13.1f}x{row['flop_rate'] / 1e12:>9.2f}"
                     f"{row['fraction_of_matmul']:>10.0%}{peak:>10}  {row['precision']}")
    actors = result.get("actors")
    if actors:
        if "error" in actors:
            lines.append(f"actor path failed: {actors['error']}")
        else:
            lines.append(f"actor path (policy on CPU): {json.dumps({k: v for k, v in actors.items() if 'ratio' in k or 'fps' in k})}")
    run = result.get("run")
    if run:
        if "error" in run:
            lines.append(f"Ray run failed: {run['error']}")
        else:
            lines.append(f"Ray run, learner on {run['device']}, {run['minutes']:g} min: {run['updates']} updates "
                         f"({run['updates_per_second']:.2f}/s), {run['env_steps']} env steps "
                         f"({run['env_steps_per_second']:.0f}/s), return train {run['return_train']} / held-out "
                         f"{run['return_heldout']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 3 and argv[0] == "--child":
        print(json.dumps(PARTS[argv[1]](**json.loads(argv[2]))))
        return 0
    parser = argparse.ArgumentParser(prog="gpu-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (the same code paths, for testing)")
    parser.add_argument("--sizes", default="xs,s,m", help="learner model sizes to time")
    parser.add_argument("--updates", type=int, default=10, help="timed learner updates per size (median)")
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the Ray run")
    parser.add_argument("--actor-steps", type=int, default=256, help="lock-step steps per actor-path repeat")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: learner, actors, run")
    parser.add_argument("--out", default="runs/gpu_check.json", help="the JSON written")
    parser.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    args = parser.parse_args(argv)
    result = run_check(device=args.device, sizes=args.sizes.split(","), updates=args.updates, minutes=args.minutes,
                       actor_steps=args.actor_steps, out=args.out,
                       skip=tuple(s for s in args.skip.split(",") if s))
    print(json.dumps(result) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
