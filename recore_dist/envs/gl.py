"""Choose MuJoCo's OpenGL backend before dm_control or mujoco is imported.

MuJoCo reads ``MUJOCO_GL`` once, at import time. Headless machines need software GL:
``egl`` (Debian: libegl1 libgl1-mesa-dri libegl-mesa0 libgbm1 libopengl0, the default here) or ``osmesa``
(libosmesa6). A value the user exported wins; we only fill in the default.
"""

from __future__ import annotations

import os
import sys

DEFAULT_BACKEND = "egl"
SYSTEM_PACKAGES = {
    "egl": "libegl1 libgl1-mesa-dri libegl-mesa0 libgbm1 libopengl0",
    "osmesa": "libosmesa6",
}


def ensure_mujoco_gl(default: str = DEFAULT_BACKEND) -> str:
    """Set ``MUJOCO_GL`` (and PyOpenGL's platform) unless already set; return the backend."""
    chosen = "MUJOCO_GL" in os.environ
    backend = os.environ.setdefault("MUJOCO_GL", default)
    if backend in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    if "mujoco" in sys.modules and not chosen:
        raise RuntimeError(
            "mujoco was imported before MUJOCO_GL was set (by another library, e.g. `import ray.rllib` "
            "loads gymnasium's MuJoCo envs), so it picked its default GL backend and cannot render "
            f"headless. Import recore_dist.rllib before ray.rllib, or export MUJOCO_GL={default}.")
    return backend


def gl_help(backend: str | None = None) -> str:
    """A message naming the system packages the backend needs."""
    backend = backend or os.environ.get("MUJOCO_GL", DEFAULT_BACKEND)
    pkgs = SYSTEM_PACKAGES.get(backend, "a working OpenGL driver")
    return (
        f"MuJoCo could not render with MUJOCO_GL={backend}. Install the software OpenGL packages "
        f"(Debian/Ubuntu: `apt-get install -y {pkgs}`; or run `bash scripts/ensure_system_gl.sh`), "
        f"or set MUJOCO_GL=osmesa with libosmesa6."
    )
