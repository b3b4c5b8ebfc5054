"""The observation/action contract every recore-dist environment follows.

Observations are a ``gymnasium.spaces.Dict``:

- ``image``: uint8 ``[H, W, 3]``, what the agent sees (with interventions applied).
- ``proprio``: float32 ``[P]``, proprioceptive / task state (for navigation: goal distance,
  sin/cos of goal heading, velocities).
- ``depth``: float32 ``[H, W, 1]`` in metres, when ``depth=True``.
- ``segmentation``: int32 ``[H, W]`` semantic class per pixel, when ``segmentation=True``;
  ``0`` is always sky / nothing, ``env.num_classes`` tells the head's size. DMC: ``1`` = static
  world (floor), ``2 + k`` = the agent's k-th body, last = other objects (tendons). Navigation:
  ``1`` floor, ``2`` walls, ``3`` goal marker.
- ``clean_image``: uint8 ``[H, W, 3]``, the same state rendered without any intervention, when
  ``clean_image=True`` (the denoising target).
- ``is_first``, ``is_last``, ``is_terminal``: 0-d numpy bool arrays. **The flags live in the
  observation**, as in dreamerv3's ``embodied``: ``reset`` returns ``is_first=True``; the step
  that ends an episode returns ``is_last=True`` and ``is_terminal=terminated`` (time-limit
  truncation is ``is_last`` without ``is_terminal``). ``terminated``/``truncated`` of the
  gymnasium API agree with them.

Depth, segmentation and ``clean_image`` are *intervention-invariant*: they are rendered from the
nominal camera with the nominal colours and no background, so colour, camera and background
interventions change ``image`` and never these targets.

Actions are float32 in ``[-1, 1]`` (continuous) and rescaled by each env to its actuator range.
``info`` carries ``intervention_id`` (str) and ``split`` (``"train"`` / ``"heldout"``), and for
navigation ``success`` and ``spl`` at episode end.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

FLAG_KEYS: tuple[str, ...] = ("is_first", "is_last", "is_terminal")
IMAGE_SIZES: tuple[int, ...] = (64, 84)


def flag_space() -> gym.spaces.Box:
    """A scalar boolean space for ``is_first`` / ``is_last`` / ``is_terminal``."""
    return gym.spaces.Box(low=0, high=1, shape=(), dtype=bool)


def observation_space(
    *,
    size: int,
    proprio_dim: int,
    depth: bool = False,
    segmentation: bool = False,
    clean_image: bool = False,
    num_classes: int = 2,
    max_depth: float = 100.0,
) -> gym.spaces.Dict:
    """The Dict space of the contract above."""
    spaces: dict[str, gym.Space] = {
        "image": gym.spaces.Box(0, 255, (size, size, 3), np.uint8),
        "proprio": gym.spaces.Box(-np.inf, np.inf, (proprio_dim,), np.float32),
    }
    if depth:
        spaces["depth"] = gym.spaces.Box(0.0, max_depth, (size, size, 1), np.float32)
    if segmentation:
        spaces["segmentation"] = gym.spaces.Box(0, num_classes - 1, (size, size), np.int32)
    if clean_image:
        spaces["clean_image"] = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
    for key in FLAG_KEYS:
        spaces[key] = flag_space()
    return gym.spaces.Dict(spaces)


def action_space(dim: int) -> gym.spaces.Box:
    """Continuous actions in [-1, 1]."""
    return gym.spaces.Box(-1.0, 1.0, (dim,), np.float32)


def flags(first: bool, last: bool, terminal: bool) -> dict[str, np.bool_]:
    """The three episode flags as numpy booleans."""
    return {"is_first": np.array(first, bool), "is_last": np.array(last, bool), "is_terminal": np.array(terminal, bool)}


def check_size(size: int) -> int:
    """Validate the image size (64 default, 84 option; any size >= 16 works)."""
    if not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"image size must be an int >= 16 (64 default, 84 option), got {size!r}")
    return int(size)
