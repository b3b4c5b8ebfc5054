"""``recore-dist export --format onnx``: the policy under onnxruntime acts as ``Policy`` does, the
example runs it on the task, and files that are not such a policy are one-line errors."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_agent_commands import _cli, run_dir  # noqa: F401  (module-scoped fixture: a short real run)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "run_onnx_policy.py"


def _compare_onnx(run, graph: Path, steps: int = 12) -> float:
    """Max |action difference| between the ONNX graph under onnxruntime and ``Policy`` (actor mode,
    posterior mode) on one observation sequence of 2 envs with a reset of env 1 in the middle."""
    from recore_dist.behavior import Policy
    from recore_dist.export_onnx import OUTPUTS, session
    from recore_dist.runtime.env_factory import make_envs

    cfg, m = run.cfg, run.cfg.learner.model
    policy = Policy(m, cfg.learner.behavior, run.spaces, num_envs=2, modalities=cfg.learner.objective.modalities,
                    state_mean=True)
    policy.load(run.weights, 0)
    ort = session(graph)
    width = run.spaces.proprio_dim if "proprio" in policy.obs_keys else 0
    state = {"deter": np.zeros((2, m.deter), np.float32), "stoch": np.zeros((2, m.stoch_flat), np.float32),
             "prev_action": np.zeros((2, run.spaces.action_dim), np.float32)}
    envs = make_envs(cfg, "heldout", 2, 7)
    obs, _ = envs.reset()
    worst, rng = 0.0, np.random.default_rng(0)
    try:
        for t in range(steps):
            is_first = obs["is_first"].copy()
            if t == steps // 2:
                is_first[1] = True  # a reset in the middle: both must forget env 1's history
            expected = policy.act(obs, is_first, explore=False)
            proprio = obs["proprio"].astype(np.float32) if width else np.zeros((2, 0), np.float32)
            action, deter, stoch = ort.run(list(OUTPUTS), {"image": obs["image"], "proprio": proprio,
                                                           "is_first": is_first.astype(bool), **state})
            state = {"deter": deter, "stoch": stoch, "prev_action": action}
            worst = max(worst, float(np.abs(action - expected).max()))
            obs, *_ = envs.step(rng.uniform(-1, 1, (2, run.spaces.action_dim)).astype(np.float32))
    finally:
        envs.close()
    return worst


def test_onnx_export_of_a_trained_run_acts_as_policy_and_runs_on_the_task(run_dir, tmp_path):  # noqa: F811
    from recore_dist.runtime.saved_run import open_run

    out = tmp_path / "policy.onnx"
    proc = _cli("export", "--logdir", str(run_dir), "--format", "onnx", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ONNX opset 18" in proc.stdout and "matches torch within" in proc.stdout
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["format"] == "onnx" and meta["opset"] == 18 and meta["observation_keys"] == ["image"]
    assert meta["input_names"] == ["image", "proprio", "is_first", "deter", "stoch", "prev_action"]
    assert meta["inputs"]["image"]["dtype"] == "uint8" and meta["inputs"]["proprio"]["shape"] == ["batch", 0]
    assert meta["outputs"]["action"]["low"] == -1.0 and meta["outputs"]["action"]["high"] == 1.0
    assert meta["verified_max_abs_difference"] <= 1e-4 and meta["recore_dist_version"]
    run = open_run(run_dir)
    assert _compare_onnx(run, out) < 1e-4
    # the example: onnxruntime, numpy and the simulator only, the state carried between steps
    proc = subprocess.run([sys.executable, str(EXAMPLE), str(out), "--episodes", "1", "--split", "heldout"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["episodes"] == 1 and np.isfinite(summary["mean_return"])
    assert summary["runtime"].startswith("onnxruntime")


def test_onnx_export_of_an_image_and_goal_policy_acts_as_policy(tmp_path):
    """Image + proprio signature (navigation), on a freshly initialised model."""
    from recore_dist import config as config_lib
    from recore_dist.export_onnx import export_onnx
    from recore_dist.learner import Learner
    from recore_dist.runtime.config import TrainConfig
    from recore_dist.runtime.env_factory import make_envs, spaces_of
    from recore_dist.runtime.saved_run import SavedRun

    cfg = config_lib.load(TrainConfig, ROOT / "configs" / "bench_nav.yaml",
                          ["env.size=32", "learner.model.image_size=32", "learner.model.size=xxs", "learner.compile=false"])
    envs = make_envs(cfg, "train", 1, 0)
    spaces = spaces_of(envs)
    envs.close()
    run = SavedRun(tmp_path, tmp_path, cfg, spaces, Learner(cfg.learner, spaces).policy_weights(), 0, 0, None)
    graph, meta_path = export_onnx(run, tmp_path / "nav.onnx")
    meta = json.loads(meta_path.read_text())
    assert meta["observation_keys"] == ["image", "proprio"] and meta["inputs"]["proprio"]["shape"] == ["batch", 5]
    assert _compare_onnx(run, graph) < 1e-4


def _example(policy: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLE), str(policy)], capture_output=True, text=True, timeout=120)


def test_files_that_are_not_an_onnx_policy_are_one_line_errors(run_dir, tmp_path):  # noqa: F811
    from recore_dist.export_onnx import OnnxExportError, _require

    good = tmp_path / "good.onnx"
    assert _cli("export", "--logdir", str(run_dir), "--format", "onnx", "--out", str(good)).returncode == 0
    meta = good.with_suffix(".json").read_text()
    cases = []
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not a protobuf" * 50)
    garbage.with_suffix(".json").write_text(meta)
    cases.append((garbage, "onnxruntime cannot load it"))
    foreign = tmp_path / "foreign.onnx"
    with torch.no_grad():
        torch.onnx.export(torch.nn.Linear(3, 2).eval(), (torch.zeros(1, 3),), str(foreign), dynamo=True,
                          input_names=["x"], output_names=["y"], verbose=False)
    foreign.with_suffix(".json").write_text(meta)
    cases.append((foreign, "not a recore-dist policy"))
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(good.read_bytes())
    cases.append((bare, "no readable metadata beside it"))
    program = tmp_path / "program.onnx"
    program.write_bytes(good.read_bytes())
    program.with_suffix(".json").write_text(json.dumps({**json.loads(meta), "format": "torch.export"}))
    cases.append((program, "not 'onnx'"))
    cases.append((tmp_path / "missing.onnx", "no such file"))
    for path, message in cases:
        proc = _example(path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], (path.name, proc.stderr[-2000:])
    with pytest.raises(OnnxExportError, match=r"pip install 'recore-dist\[onnx\]'"):
        _require("no_such_onnx_module")


def test_onnx_example_imports_only_onnxruntime_numpy_and_the_simulator():
    names = set()
    for node in ast.walk(ast.parse(EXAMPLE.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
    outside = {n for n in names if n.split(".")[0] not in sys.stdlib_module_names}
    assert outside == {"numpy", "onnxruntime", "recore_dist.envs"}, outside


def test_bench_policy_times_every_runtime_on_the_same_sequence():
    from recore_dist.bench.policy import format_table, run_bench

    result = run_bench(config=str(ROOT / "configs" / "quickstart.yaml"),
                       overrides=["env.size=32", "learner.model.image_size=32", "learner.model.size=xxs"],
                       steps=12, warmup=2)
    assert list(result["rows"]) == ["torch Policy.act", "torch step", "torch.export program", "onnxruntime"]
    assert all(row["seconds"] > 0 and np.isfinite(row["speedup"]) for row in result["rows"].values())
    assert result["rows"]["torch Policy.act"]["speedup"] == 1.0
    assert result["onnx_vs_policy_max_abs_action_difference"] < 1e-4
    assert result["threads"] == 1 and result["batch"] == 1
    assert "onnxruntime vs torch step" in format_table(result)
