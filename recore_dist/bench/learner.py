"""``recore-dist bench learner``: seconds per update of our learner vs RLlib DreamerV3, FLOP rate.

Every measurement runs in a fresh subprocess with the same torch thread count, on the same
shapes: B sequences of T steps of 64x64x3 pixels, a 1-dim continuous action (cartpole's).

- Ours: ``Learner.update`` (ReCoRe objective: two augmented views, momentum key encoder, RSSM,
  depth decoder, KL/reward/continue; then 15-step imagination from all B*T posterior states and
  the actor and critic steps) for each requested model size; median over timed updates after
  two warm-up updates.
- Baseline: RLlib's DreamerV3 learner (size XS, torch) on the same B, T and image size
  (:mod:`recore_dist.bench.rllib_dreamer`).
- FLOP rate: the FLOPs of one of our updates counted by ``torch.utils.flop_counter.FlopCounterMode``
  (matmuls and convolutions, forward and backward), divided by the median update time, against
  the rate of a 4096x4096 matmul measured in the same process, threads and dtype as the learner's
  autocast dtype (bfloat16 where the CPU supports it; float32 otherwise).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

RLLIB_MODULE = "recore_dist.bench.rllib_dreamer"


def _batch(batch_size: int, length: int, size: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    is_first = np.zeros((batch_size, length), bool)
    is_first[:, 0] = True
    return {"image": rng.integers(0, 256, (batch_size, length, size, size, 3), dtype=np.uint8),
            "depth": rng.uniform(0.5, 10.0, (batch_size, length, size, size, 1)).astype(np.float32),
            "action": rng.uniform(-1, 1, (batch_size, length, 1)).astype(np.float32),
            "reward": rng.uniform(0, 1, (batch_size, length)).astype(np.float32),
            "is_first": is_first, "is_last": np.zeros((batch_size, length), bool),
            "is_terminal": np.zeros((batch_size, length), bool)}


def matmul_rate(dtype_name: str, n: int = 4096, repeats: int = 5) -> float:
    """FLOP/s of an ``n x n`` matmul in ``dtype_name`` (best of ``repeats``)."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def measure_ours(*, size: str, threads: int, updates: int, batch_size: int, length: int,
                 objective: str = "recore", precision: str = "auto", actor_grad: str = "reinforce",
                 compile: bool = False) -> dict[str, Any]:
    """Time our learner in this process (call it in a fresh process with ``threads`` set).

    With ``compile`` the timed learner has ``learner.compile=true`` (the setting of the learning
    benchmark); its FLOPs are counted on an uncompiled twin, since compiled graphs hide their ops
    from ``FlopCounterMode`` and compiling does not change the arithmetic.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from recore_dist import config as config_lib
    from recore_dist.learner import Learner, LearnerConfig
    from recore_dist.models.world_model import Spaces

    torch.set_num_threads(threads)
    spec = {"model": {"size": size}, "objective": {"name": objective}, "batch_size": batch_size,
            "batch_length": length, "behavior": {"actor_grad": actor_grad}, "precision": precision,
            "device": "cpu", "compile": compile,
            "grad_diagnostics_every": 0}  # the timed update only: no diagnostic backward passes
    cfg = config_lib.from_dict(LearnerConfig, spec)
    learner = Learner(cfg, Spaces(action_dim=1))
    batch = _batch(batch_size, length, cfg.model.image_size)
    warmup_start = time.perf_counter()
    for _ in range(2):
        learner.update(batch)
    warmup = time.perf_counter() - warmup_start
    times, cpu = [], []
    for _ in range(updates):
        start, start_cpu = time.perf_counter(), time.process_time()
        learner.update(batch)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    counted = Learner(config_lib.from_dict(LearnerConfig, {**spec, "compile": False}), Spaces(action_dim=1)) \
        if compile else learner
    counter = FlopCounterMode(display=False)
    with counter:
        counted.update(batch)
    flops = counter.get_total_flops()
    seconds = statistics.median(times)
    dtype = str(learner.dtype).replace("torch.", "")
    peak = matmul_rate(dtype)
    peak_fp32 = peak if dtype == "float32" else matmul_rate("float32")
    return {"size": size, "objective": objective, "actor_grad": actor_grad, "compile": compile,
            "warmup_seconds": warmup, "threads": threads, "precision": dtype,
            "seconds_per_update": seconds, "seconds_min": min(times), "cpu_per_wall": sum(cpu) / sum(times),
            "params": learner.param_counts()["total"], "params_detail": learner.param_counts(),
            "flops_per_update": flops, "flop_rate": flops / seconds, "matmul_rate": peak,
            "fraction_of_matmul": flops / seconds / peak, "matmul_rate_float32": peak_fp32,
            "fraction_of_float32_matmul": flops / seconds / peak_fp32}


def _child(args: list[str], threads: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.setdefault("MUJOCO_GL", "disable")
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_bench(*, threads: int = 2, sizes: list[str] | tuple[str, ...] = ("xxs", "xs"), updates: int = 5,
              rllib_updates: int = 2, batch_size: int = 16, length: int = 64,
              actor_grads: tuple[str, ...] = ("reinforce", "dynamics"),
              compile_modes: tuple[bool, ...] = (False,)) -> dict[str, Any]:
    """All measurements, each in a fresh subprocess; ratios against RLlib DreamerV3 XS.

    ``reinforce`` rows run the same algorithm as RLlib's DreamerV3 (score-function actor
    gradients); ``dynamics`` rows backpropagate returns through imagination (our default for
    continuous actions, more work per update). ``compile_modes`` picks rows without and / or with
    ``learner.compile`` (two warm-up updates absorb the compile time, reported per row).
    """
    ours = []
    for size in sizes:
        for actor_grad in actor_grads:
            for compile in compile_modes:
                spec = json.dumps({"size": size, "threads": threads, "updates": updates, "batch_size": batch_size,
                                   "length": length, "actor_grad": actor_grad, "compile": compile})
                ours.append(_child([__name__, "--child", spec], threads))
    result: dict[str, Any] = {"threads": threads, "batch_size": batch_size, "length": length, "image": 64,
                              "ours": ours}
    if rllib_updates:
        rllib = _child([RLLIB_MODULE, "--threads", str(threads), "--updates", str(rllib_updates),
                        "--batch-size", str(batch_size), "--length", str(length), "--json"], threads)
        result["rllib_dreamerv3"] = rllib
        for row in ours:
            row["speedup_vs_rllib"] = rllib["seconds_per_update"] / row["seconds_per_update"]
            row["params_ratio_vs_rllib"] = row["params"] / rllib["params"]
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [f"learner update, B={result['batch_size']} T={result['length']} 64x64x3, "
             f"{result['threads']} thread(s), same shapes for every row"]
    header = (f"{'learner':<40}{'params':>12}{'s/update':>10}{'speedup':>9}{'GFLOP/upd':>11}{'GFLOP/s':>9}"
              f"{'of matmul':>11}{'of fp32 mm':>12}")
    lines.append(header)
    rllib = result.get("rllib_dreamerv3")
    if rllib:
        lines.append(f"{'RLlib DreamerV3 XS (torch, fp32)':<40}{rllib['params']:>12,}"
                     f"{rllib['seconds_per_update']:>10.2f}{1.0:>9.2f}{'-':>11}{'-':>9}{'-':>11}{'-':>12}")
    for row in result["ours"]:
        name = f"recore-dist {row['size']} {row['actor_grad']}{' compiled' if row.get('compile') else ''}"
        speed = f"{row['speedup_vs_rllib']:.2f}" if "speedup_vs_rllib" in row else "-"
        lines.append(f"{name:<40}{row['params']:>12,}{row['seconds_per_update']:>10.2f}{speed:>9}"
                     f"{row['flops_per_update'] / 1e9:>11.1f}{row['flop_rate'] / 1e9:>9.1f}"
                     f"{row['fraction_of_matmul']:>10.0%} {row['fraction_of_float32_matmul']:>11.0%}")
    for row in result["ours"]:
        lines.append(f"{row['size']}/{row['actor_grad']}{'/compiled' if row.get('compile') else ''}: "
                     f"{row['precision']} autocast, warm-up (2 updates) {row.get('warmup_seconds', 0):.0f} s; "
                     f"matmul 4096^2 in its process: {row['precision']} "
                     f"{row['matmul_rate'] / 1e9:.0f} GFLOP/s, float32 {row['matmul_rate_float32'] / 1e9:.0f} GFLOP/s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--child":
        print(json.dumps(measure_ours(**json.loads(argv[1]))))
        return 0
    print("usage: python -m recore_dist.bench.learner --child JSON (use `recore-dist bench learner`)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
