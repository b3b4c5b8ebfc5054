"""``recore-dist evaluate`` and ``export`` on a real short run: actions, videos, one-line errors."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from recore_dist.runtime.local import LocalRunner
from tests.test_local_runner import tiny_train_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    logdir = tmp_path_factory.mktemp("agent") / "run"
    runner = LocalRunner(tiny_train_config(logdir), progress=False)
    try:
        runner.run()
    finally:
        runner.close()
    return logdir


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recore_dist.cli", *args], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)


def _compare_exported(run, program_path: Path, steps: int = 12) -> float:
    """Max |action difference| between the exported program and ``Policy`` (deterministic) on one
    observation sequence of 2 envs with a reset of env 1 in the middle."""
    from recore_dist.behavior import Policy
    from recore_dist.runtime.env_factory import make_envs

    cfg = run.cfg
    policy = Policy(cfg.learner.model, cfg.learner.behavior, run.spaces, num_envs=2,
                    modalities=cfg.learner.objective.modalities, state_mean=True)
    policy.load(run.weights, 0)
    step = torch.export.load(str(program_path)).module()
    envs = make_envs(cfg, "heldout", 2, 7)
    obs, _ = envs.reset()
    m = cfg.learner.model
    deter, stoch = torch.zeros(2, m.deter), torch.zeros(2, m.stoch_flat)
    prev = torch.zeros(2, run.spaces.action_dim)
    worst = 0.0
    rng = np.random.default_rng(0)
    try:
        for t in range(steps):
            is_first = obs["is_first"].copy()
            if t == steps // 2:
                is_first[1] = True  # a reset in the middle: both must forget env 1's history
            expected = policy.act(obs, is_first, explore=False)
            proprio = (torch.as_tensor(obs["proprio"], dtype=torch.float32) if "proprio" in policy.obs_keys
                       else torch.zeros(2, 0))
            with torch.no_grad():
                action, deter, stoch = step(torch.as_tensor(obs["image"]), proprio, torch.as_tensor(is_first),
                                            deter, stoch, prev)
            prev = action
            worst = max(worst, float(np.abs(action.numpy() - expected).max()))
            obs, *_ = envs.step(rng.uniform(-1, 1, (2, run.spaces.action_dim)).astype(np.float32))
    finally:
        envs.close()
    return worst


def test_exported_policy_matches_policy_and_loads_with_torch_alone(run_dir, tmp_path):
    from recore_dist.export import export_policy
    from recore_dist.runtime.saved_run import open_run

    run = open_run(run_dir)
    program, meta_path = export_policy(run, tmp_path / "policy.pt2")
    meta = json.loads(meta_path.read_text())
    assert meta["format"] == "torch.export" and meta["observation_keys"] == ["image"]
    assert meta["inputs"]["image"]["shape"][1:] == [32, 32, 3] and meta["inputs"]["image"]["dtype"] == "uint8"
    assert meta["outputs"]["action"]["shape"] == ["batch", 1] and meta["updates"] == run.updates > 0
    assert _compare_exported(run, program) < 1e-5
    # the example runs the file on the task with torch, numpy and the simulator only
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "run_exported_policy.py"), str(program),
                           "--episodes", "1", "--split", "heldout"], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["episodes"] == 1 and np.isfinite(summary["mean_return"])


def test_exported_navigation_policy_reads_the_goal(tmp_path):
    """Image + proprio signature, on a freshly initialised model (no training needed for equality)."""
    from recore_dist import config as config_lib
    from recore_dist.export import export_policy
    from recore_dist.learner import Learner
    from recore_dist.runtime.config import TrainConfig
    from recore_dist.runtime.env_factory import make_envs, spaces_of
    from recore_dist.runtime.saved_run import SavedRun

    cfg = config_lib.load(TrainConfig, ROOT / "configs" / "bench_nav.yaml",
                          ["env.size=32", "learner.model.image_size=32", "learner.model.size=xxs", "learner.compile=false"])
    envs = make_envs(cfg, "train", 1, 0)
    spaces = spaces_of(envs)
    envs.close()
    learner = Learner(cfg.learner, spaces)
    run = SavedRun(tmp_path, tmp_path, cfg, spaces, learner.policy_weights(), 0, 0, None)
    program, meta_path = export_policy(run, tmp_path / "nav.pt2")
    assert json.loads(meta_path.read_text())["observation_keys"] == ["image", "proprio"]
    assert _compare_exported(run, program) < 1e-5


def test_example_imports_only_torch_numpy_and_the_simulator():
    tree = ast.parse((ROOT / "examples" / "run_exported_policy.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
    outside = {n for n in names if n.split(".")[0] not in sys.stdlib_module_names}
    assert outside == {"numpy", "torch", "recore_dist.envs"}, outside


@pytest.mark.slow
def test_evaluate_prints_both_splits_and_writes_a_video(run_dir, tmp_path):
    from PIL import Image

    proc = _cli("evaluate", "--logdir", str(run_dir), "--episodes", "2", "--video", str(tmp_path / "agent.gif"),
                "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result["splits"]) == {"train", "heldout"} and result["updates"] > 0
    for split in result["splits"].values():
        assert split["episodes"] == 2.0 and np.isfinite(split["return"])
    with Image.open(tmp_path / "agent.gif") as gif:
        assert gif.n_frames > 10 and gif.size[0] > 2 * 64  # two 2x-upscaled 32 px clips side by side
    # the same checkpoint, by path, on one split: the same planned episodes give the same return
    again = _cli("evaluate", "--checkpoint", str(run_dir / "checkpoint" / "learner.pt"), "--split", "heldout",
                 "--episodes", "2", "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    held = json.loads(again.stdout.strip().splitlines()[-1])["splits"]["heldout"]
    assert held["return"] == pytest.approx(result["splits"]["heldout"]["return"], abs=1e-3)


def _damaged(run_dir: Path, tmp_path: Path, name: str) -> Path:
    copy = tmp_path / name
    shutil.copytree(run_dir, copy)
    return copy


@pytest.mark.slow
def test_broken_runs_are_one_line_errors(run_dir, tmp_path):
    cases = []
    cases.append((["--logdir", str(tmp_path / "nope")], "no such run directory"))
    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append((["--logdir", str(empty)], "no checkpoint"))
    garbage = _damaged(run_dir, tmp_path, "garbage")
    (garbage / "checkpoint" / "learner.pt").write_bytes(b"\x00not a torch file" * 10)
    cases.append((["--logdir", str(garbage)], "damaged, torch cannot read it"))
    future = _damaged(run_dir, tmp_path, "future")
    state = json.loads((future / "checkpoint" / "state.json").read_text())
    (future / "checkpoint" / "state.json").write_text(json.dumps({**state, "version": "9.9.9"}))
    cases.append((["--logdir", str(future)], "written by recore-dist 9.9.9"))
    other = _damaged(run_dir, tmp_path, "other")
    config = other / "config.yaml"
    config.write_text(config.read_text() + "\nrender_backend: vulkan\n")
    cases.append((["--logdir", str(other)], "from another version?"))
    bigger = _damaged(run_dir, tmp_path, "bigger")
    config = bigger / "config.yaml"
    config.write_text(config.read_text().replace("deter: 32", "deter: 48", 1))
    cases.append((["--logdir", str(bigger)], "does not fit the model"))
    for args, message in cases:
        proc = _cli("evaluate", *args, "--episodes", "1")
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (message, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr
    proc = _cli("export", "--logdir", str(garbage), "--out", str(tmp_path / "x.pt2"))
    assert proc.returncode == 2 and "damaged" in proc.stderr


def test_video_formats(tmp_path):
    from recore_dist.video import VideoError, captioned, side_by_side, write_video

    a = np.zeros((3, 8, 8, 3), np.uint8)
    b = np.full((5, 8, 6, 3), 200, np.uint8)
    both = side_by_side([a, b])
    assert both.shape == (5, 8, 8 + 2 + 6, 3) and (both[4, :, :8] == 0).all()  # the short clip holds its last frame
    assert captioned(both, "return 1.0").shape == (5, 8 + 12, 16, 3)
    assert write_video(tmp_path / "v.gif", both).stat().st_size > 0
    with pytest.raises(VideoError, match="gif or .mp4"):
        write_video(tmp_path / "v.avi", both)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "v.gif", both.astype(np.float32))
    try:
        import imageio  # noqa: F401
    except ImportError:
        with pytest.raises(VideoError, match="recore-dist\\[video\\]"):
            write_video(tmp_path / "v.mp4", both)


def test_training_logs_episode_and_open_loop_videos(run_dir):
    """The evaluation at the end of the run wrote both splits' episodes and the open-loop
    prediction as animated images into the real event files."""
    import io

    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0})
    acc.Reload()
    tags = set(acc.Tags()["images"])
    assert {"eval/episodes", "open_loop_video/depth"} <= tags, tags
    with Image.open(io.BytesIO(acc.Images("eval/episodes")[-1].encoded_image_string)) as gif:
        assert gif.format == "GIF" and gif.n_frames > 10
        assert gif.size == (32 + 2 + 32, 12 + 32)  # train | held-out, 32 px frames under a caption strip
    with Image.open(io.BytesIO(acc.Images("open_loop_video/depth")[-1].encoded_image_string)) as gif:
        assert gif.n_frames == 8 and gif.size[0] == 3 * gif.size[1]  # truth | model | error, T = batch_length


def test_report_of_a_real_run(run_dir, tmp_path):
    from recore_dist.report.curves import load_run
    from recore_dist.report.html import write_report
    from tests.test_plots import _check_png

    written = write_report([load_run(run_dir)], tmp_path / "report")
    assert {p.name for p in written["images"]} == {"eval_vs_frames.png", "eval_vs_minutes.png",
                                                   "generalization_gap.png", "throughput.png"}
    page = written["html"].read_text()
    for path in written["images"]:
        _check_png(path)
        assert f'src="{path.name}"' in page
    assert "same config" in page or "One run" in page
