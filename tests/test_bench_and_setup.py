"""The envs benchmark runs and reports ratios; the GL set-up script and messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recore_dist.envs.gl import gl_help

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_envs_json():
    cmd = [sys.executable, "-m", "recore_dist.cli", "bench", "envs", "--json", "--steps", "10", "--repeats", "1",
           "--num-envs", "2"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["ratio_to_raw"]["raw_dm_control"] == 1.0
    for name in ("vector_plain", "vector_interventions", "vector_interventions_targets"):
        assert report["frames_per_second"][name] > 0 and report["ratio_to_raw"][name] > 0


def test_gl_script_rejects_unknown_backend():
    env = {**os.environ, "MUJOCO_GL": "bogus"}
    result = subprocess.run(["bash", str(ROOT / "scripts/ensure_system_gl.sh")], env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "unknown MUJOCO_GL=bogus" in result.stderr


def test_gl_script_passes_when_packages_present():
    result = subprocess.run(["bash", str(ROOT / "scripts/ensure_system_gl.sh")], capture_output=True, text=True,
                            env={**os.environ, "MUJOCO_GL": "egl"})
    assert result.returncode == 0, result.stderr


def test_gl_help_names_packages():
    assert "libegl1" in gl_help("egl") and "libosmesa6" in gl_help("osmesa")


def test_mujoco_gl_set_before_dm_control_import():
    code = "import os; os.environ.pop('MUJOCO_GL', None); import recore_dist.envs, sys; " \
           "print(os.environ['MUJOCO_GL'], 'dm_control' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["egl", "False"], out.stderr
