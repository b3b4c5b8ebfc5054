"""``recore-dist bench envs``: frames/s of ``make_vector`` against raw dm_control step+render.

Baseline (same run, same simulators, same render settings): K dm_control envs stepped in
lock-step with the task's action repeat, each rendered by a reused ``dm_control`` ``Camera``
with shadows, reflections and multisampling off. Variants: ``make_vector`` without
interventions; with dynamic colour + camera + background interventions; and the same with
depth + segmentation targets. Measurements are interleaved and repeated; medians are reported
with ratios to the baseline.
"""

from __future__ import annotations

import statistics
import time

import numpy as np


def _raw(task: str, num_envs: int, size: int, seed: int):
    import mujoco
    from dm_control import suite
    from dm_control.mujoco import engine

    from recore_dist.envs.dmc import ACTION_REPEAT, DEFAULT_ACTION_REPEAT

    domain, _, name = task.partition("-")
    envs, cams = [], []
    for i in range(num_envs):
        env = suite.load(domain, name, task_kwargs={"random": seed + i})
        env.physics.model.vis.quality.offsamples = 0
        cam = engine.Camera(env.physics, size, size, 0)
        cam.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        cam.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        env.reset()
        envs.append(env)
        cams.append(cam)
    repeat = ACTION_REPEAT.get(task, DEFAULT_ACTION_REPEAT)
    spec = envs[0].action_spec()
    rng = np.random.default_rng(seed)

    def step() -> None:
        for env, cam in zip(envs, cams):
            action = rng.uniform(spec.minimum, spec.maximum)
            for _ in range(repeat):
                ts = env.step(action)
            if ts.last():
                env.reset()
            cam.render().copy()

    return step


def _vector(task: str, num_envs: int, size: int, seed: int, **options):
    from recore_dist.envs import make_vector

    env = make_vector(f"dmc:{task}", num_envs, seed=seed, size=size, **options)
    env.reset()
    rng = np.random.default_rng(seed)
    shape = (num_envs, *env.single_action_space.shape)

    def step() -> None:
        env.step(rng.uniform(-1, 1, shape).astype(np.float32))

    return step


def run_bench(*, task: str = "walker-walk", num_envs: int = 4, steps: int = 300, size: int = 64,
              repeats: int = 3, seed: int = 0) -> dict:
    """Median frames/s per variant and ratios to the raw baseline."""
    every = dict(interventions="colour,camera,background", dynamic=True, difficulty="medium")
    variants = {
        "raw_dm_control": _raw(task, num_envs, size, seed),
        "vector_plain": _vector(task, num_envs, size, seed),
        "vector_interventions": _vector(task, num_envs, size, seed, **every),
        "vector_interventions_targets": _vector(task, num_envs, size, seed, depth=True, segmentation=True, **every),
    }
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for step in variants.values():  # warm up (GL contexts, caches, background videos)
        for _ in range(10):
            step()
    for _ in range(repeats):
        for name, step in variants.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            samples[name].append(steps * num_envs / (time.perf_counter() - start))
    fps = {k: statistics.median(v) for k, v in samples.items()}
    base = fps["raw_dm_control"]
    return {"task": task, "num_envs": num_envs, "size": size, "steps": steps, "repeats": repeats,
            "frames_per_second": fps, "ratio_to_raw": {k: v / base for k, v in fps.items()}}


def format_table(result: dict) -> str:
    lines = [f"bench envs: dmc:{result['task']}, {result['num_envs']} simulators, {result['size']}x{result['size']}, "
             f"{result['steps']} steps x {result['repeats']} repeats (median)",
             f"{'variant':32s} {'frames/s':>10s} {'ratio':>7s}"]
    for name, fps in result["frames_per_second"].items():
        lines.append(f"{name:32s} {fps:10.1f} {result['ratio_to_raw'][name]:7.2f}")
    return "\n".join(lines)
