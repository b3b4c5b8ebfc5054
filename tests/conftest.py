"""Shared test set-up: software GL before dm_control is imported, small sizes."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
