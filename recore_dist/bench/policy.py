"""``recore-dist bench policy``: one acting step's latency at batch 1 on one CPU thread, ONNX
Runtime against torch, for the same policy.

What a robot's computer pays per control step. The policy is the preset's (model size,
image size, observation fields) with freshly initialised weights: latency does not depend on
the values. Four ways to run the same deterministic step, each timed over the same observation
sequence (random pixels, a reset every 50 steps), median of ``steps`` calls after ``warmup``:

- ``torch Policy.act``: what recore-dist's env runners and evaluators call (numpy in and out,
  the state kept inside) - the baseline;
- ``torch step``: the exported ``ActingStep`` module called eagerly with tensors, the state fed
  back by the caller (the graph both files hold);
- ``torch.export program``: the ``.pt2`` file loaded with ``torch.export.load``;
- ``onnxruntime``: the ``.onnx`` file in a CPU session with 1 intra-op thread.

Every runtime gets one thread (``torch.set_num_threads(1)``; ONNX Runtime's intra- and
inter-op pools of 1). The actions of the ONNX session are compared with ``Policy.act``'s on the
whole sequence (max |difference| printed).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _tiny_run(config: str, overrides: list[str], logdir: Path):
    """A ``SavedRun`` of the preset with freshly initialised weights (no training needed for latency)."""
    from recore_dist import config as config_lib
    from recore_dist.learner import Learner
    from recore_dist.runtime.config import TrainConfig
    from recore_dist.runtime.env_factory import make_envs, spaces_of
    from recore_dist.runtime.saved_run import SavedRun

    cfg = config_lib.load(TrainConfig, config, ["learner.compile=false", *overrides])
    envs = make_envs(cfg, "train", 1, 0)
    try:
        spaces = spaces_of(envs)
    finally:
        envs.close()
    learner = Learner(cfg.learner, spaces)
    return SavedRun(logdir, logdir, cfg, spaces, learner.policy_weights(), 0, 0, None)


def _observations(run, steps: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    size, spaces = run.cfg.learner.model.image_size, run.spaces
    width = spaces.proprio_dim if "proprio" in run.cfg.learner.objective.modalities else 0
    return [{"image": rng.integers(0, 256, (1, size, size, spaces.image_channels), dtype=np.uint8),
             "proprio": rng.normal(size=(1, width)).astype(np.float32),
             "is_first": np.array([t % 50 == 0])} for t in range(steps)]


def _time(call, observations: list[dict[str, np.ndarray]], warmup: int) -> tuple[float, list[np.ndarray]]:
    """Median seconds per call over ``observations`` (after ``warmup`` untimed calls) and the actions."""
    for obs in observations[:warmup]:
        call(obs)
    times, actions = [], []
    for obs in observations:
        start = time.perf_counter()
        actions.append(call(obs))
        times.append(time.perf_counter() - start)
    return statistics.median(times), actions


def run_bench(*, config: str = "configs/bench_learn.yaml", overrides: list[str] | None = None, steps: int = 300,
              warmup: int = 20) -> dict[str, Any]:
    from recore_dist.behavior import Policy
    from recore_dist.export import acting_step, export_policy
    from recore_dist.export_onnx import OUTPUTS, export_onnx, session

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        run = _tiny_run(config, list(overrides or []), Path(tmp))
        cfg, spaces = run.cfg, run.spaces
        model = cfg.learner.model
        observations = _observations(run, steps)
        rows: dict[str, dict[str, Any]] = {}

        policy = Policy(model, cfg.learner.behavior, spaces, num_envs=1, modalities=cfg.learner.objective.modalities,
                        state_mean=True)
        policy.load(run.weights, 0)

        def act(obs):
            return policy.act({k: v for k, v in obs.items() if k != "is_first"}, obs["is_first"], explore=False)

        reference = _time(act, observations, warmup)
        rows["torch Policy.act"] = {"seconds": reference[0]}

        def stepper(module):
            state = {"deter": torch.zeros(1, model.deter), "stoch": torch.zeros(1, model.stoch_flat),
                     "prev_action": torch.zeros(1, spaces.action_dim)}

            def call(obs):
                with torch.no_grad():
                    action, state["deter"], state["stoch"] = module(
                        torch.as_tensor(obs["image"]), torch.as_tensor(obs["proprio"]), torch.as_tensor(obs["is_first"]),
                        state["deter"], state["stoch"], state["prev_action"])
                state["prev_action"] = action
                return action.numpy()
            return call

        rows["torch step"] = {"seconds": _time(stepper(acting_step(run)), observations, warmup)[0]}
        program, _ = export_policy(run, Path(tmp) / "policy.pt2")
        rows["torch.export program"] = {"seconds": _time(stepper(torch.export.load(str(program)).module()),
                                                         observations, warmup)[0]}
        graph, _ = export_onnx(run, Path(tmp) / "policy.onnx")
        ort_session = session(graph, threads=1)
        ort_state = {"deter": np.zeros((1, model.deter), np.float32),
                     "stoch": np.zeros((1, model.stoch_flat), np.float32),
                     "prev_action": np.zeros((1, spaces.action_dim), np.float32)}

        def ort_call(obs):
            action, ort_state["deter"], ort_state["stoch"] = session_run(ort_session, obs, ort_state, OUTPUTS)
            ort_state["prev_action"] = action
            return action

        seconds, actions = _time(ort_call, observations, warmup)
        rows["onnxruntime"] = {"seconds": seconds}
        # the warm-up calls ran through both, so both saw the same sequence from the same start
        difference = float(max(np.abs(a - b).max() for a, b in zip(actions, reference[1], strict=True)))
        params = sum(v.size for v in run.weights.values())
    base = rows["torch Policy.act"]["seconds"]
    for row in rows.values():
        row["ms"] = 1000 * row["seconds"]
        row["speedup"] = base / row["seconds"]
    return {"config": config, "env": cfg.env.name, "model_size": model.size, "image_size": model.image_size,
            "observation_keys": list(cfg.learner.objective.modalities), "policy_params": int(params),
            "threads": 1, "batch": 1, "steps": steps, "rows": rows, "onnx_vs_policy_max_abs_action_difference": difference,
            "torch_version": torch.__version__, "onnxruntime_version": _ort_version()}


def session_run(ort_session, obs: dict[str, np.ndarray], state: dict[str, np.ndarray], outputs) -> list[np.ndarray]:
    return ort_session.run(list(outputs), {"image": obs["image"], "proprio": obs["proprio"],
                                           "is_first": obs["is_first"], **state})


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def format_table(result: dict[str, Any]) -> str:
    lines = [f"acting step, batch 1, 1 thread: {result['env']} policy ({', '.join(result['observation_keys'])}), "
             f"model {result['model_size']} ({result['policy_params']:,} policy parameters), "
             f"{result['image_size']} px, median of {result['steps']} steps",
             f"  {'runtime':<24}{'ms/step':>10}{'vs Policy.act':>15}"]
    for name, row in result["rows"].items():
        lines.append(f"  {name:<24}{row['ms']:>10.2f}{row['speedup']:>14.2f}x")
    lines.append(f"  onnxruntime vs torch step: {result['rows']['torch step']['seconds'] / result['rows']['onnxruntime']['seconds']:.2f}x; "
                 f"max |action difference| vs Policy.act over the sequence: {result['onnx_vs_policy_max_abs_action_difference']:.1e}")
    lines.append(f"  torch {result['torch_version']}, onnxruntime {result['onnxruntime_version']}")
    return "\n".join(lines)
