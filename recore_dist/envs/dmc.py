"""DeepMind Control Suite tasks from pixels, with intervention-invariant targets.

``DMCEnv("walker-walk")`` renders ``image`` with :class:`~recore_dist.envs.render.FastCamera`
(shadows, reflections and multisampling off: ~15-20x dm_control's default speed in software GL),
applies the :mod:`~recore_dist.envs.interventions`, and adds the targets the ReCoRe regularizer
learns from: ``depth`` (metres, clipped at ``max_depth``), ``segmentation`` (semantic classes,
see :mod:`~recore_dist.envs.base`) and ``clean_image``. Targets are rendered from the nominal
camera with the nominal colours and no background, so interventions never change them. When no
camera intervention is on, depth comes from the image's own render pass for free.
"""

from __future__ import annotations

from recore_dist.envs.gl import ensure_mujoco_gl

ensure_mujoco_gl()

import dataclasses  # noqa: E402
from typing import Any  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from dm_control import suite  # noqa: E402

from recore_dist.envs import base  # noqa: E402
from recore_dist.envs.interventions import InterventionConfig, Interventions  # noqa: E402
from recore_dist.envs.render import FastCamera, make_fast  # noqa: E402

from recore_dist.envs.action_repeat import ACTION_REPEAT, DEFAULT_ACTION_REPEAT  # noqa: E402,F401
DEFAULT_CAMERA: dict[str, int] = {"quadruped": 2}  # as in DreamerV2 / DrQ


class DMCEnv(gym.Env):
    """A dm_control task as a gymnasium env following :mod:`recore_dist.envs.base`.

    Args:
        task: ``"domain-task"``, e.g. ``"walker-walk"`` or ``"ball_in_cup-catch"``.
        size: image height and width (64 default, 84 option).
        action_repeat: physics control steps per env step (default: CoRe Table 6).
        camera: camera id (default 0; 2 for quadruped).
        depth / segmentation / clean_image: add these intervention-invariant targets.
        max_depth: depth is clipped here (metres); the sky reads as ``max_depth``.
        interventions: an :class:`InterventionConfig`, a dict of its fields, or a string
            such as ``"colour,camera,background"``.
        split, difficulty, dynamic: shortcuts for the intervention config's fields.
        seed: seeds the task and the episode draws (``reset(seed=...)`` re-seeds).
    """

    terminates: bool = False
    """Whether the task has terminal states: dm_control episodes end only by the time limit (``is_last`` without ``is_terminal``)."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        task: str,
        *,
        size: int = 64,
        action_repeat: int | None = None,
        camera: int | None = None,
        depth: bool = False,
        segmentation: bool = False,
        clean_image: bool = False,
        max_depth: float = 10.0,
        interventions: InterventionConfig | dict | str | None = None,
        split: str | None = None,
        difficulty: str | None = None,
        dynamic: bool | None = None,
        seed: int | None = None,
        render_mode: str | None = "rgb_array",
    ):
        domain, _, task_name = task.partition("-")
        if not task_name:
            raise ValueError(f"DMC task must be 'domain-task' (e.g. 'walker-walk'), got {task!r}")
        if (domain, task_name) not in suite.ALL_TASKS:
            known = ", ".join(f"{d}-{t}" for d, t in suite.ALL_TASKS[:8])
            raise ValueError(f"unknown dm_control task {task!r}; known tasks include {known}, ...")
        self.task = task
        self.size = base.check_size(size)
        self.action_repeat = int(action_repeat or ACTION_REPEAT.get(task, DEFAULT_ACTION_REPEAT))
        if self.action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat!r}")
        self.max_depth = float(max_depth)
        self._want = {"depth": depth, "segmentation": segmentation, "clean_image": clean_image}
        self.render_mode = render_mode
        overrides = {k: v for k, v in (("split", split), ("difficulty", difficulty), ("dynamic", dynamic)) if v is not None}
        config = dataclasses.replace(InterventionConfig.from_options(interventions), **overrides)
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._env = suite.load(domain, task_name, task_kwargs={"random": int(self._rng.integers(2**31))})
        physics = self._env.physics
        make_fast(physics)
        self._geom_class, self.num_classes = _geom_classes(physics)
        cam_id = DEFAULT_CAMERA.get(domain, 0) if camera is None else camera
        self._camera = FastCamera(physics, cam_id, self.size, self._geom_class, other_class=self.num_classes - 1)
        self.interventions = Interventions(config, physics, self._camera, size=self.size)
        spec = self._env.action_spec()
        self._act_low, self._act_high = spec.minimum.astype(np.float32), spec.maximum.astype(np.float32)
        self._proprio_keys = list(self._env.observation_spec().keys())
        proprio_dim = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
        self.observation_space = base.observation_space(
            size=self.size, proprio_dim=proprio_dim, num_classes=self.num_classes, max_depth=self.max_depth,
            **self._want,
        )
        self.action_space = base.action_space(int(spec.shape[0]))
        self._last_image: np.ndarray | None = None

    @property
    def split(self) -> str:
        return self.interventions.config.split

    @property
    def physics(self):
        return self._env.physics

    # -- gymnasium API ---------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._env.task._random = np.random.RandomState(int(self._rng.integers(2**31)))
        time_step = self._env.reset()
        self.interventions.reset(self._rng)
        obs = self._observe(time_step.observation, first=True, last=False, terminal=False)
        return obs, self._info()

    def step(self, action):
        action = np.asarray(action, np.float32)
        if action.shape != self.action_space.shape or not np.all(np.isfinite(action)):
            raise ValueError(f"{self.task}: action must be finite float32 {self.action_space.shape}, got {action!r}")
        scaled = self._act_low + (np.clip(action, -1.0, 1.0) + 1.0) * 0.5 * (self._act_high - self._act_low)
        reward = 0.0
        for _ in range(self.action_repeat):
            time_step = self._env.step(scaled)
            reward += float(time_step.reward or 0.0)
            if time_step.last():
                break
        self.interventions.step(self._rng)
        last = time_step.last()
        terminal = bool(last and time_step.discount == 0.0)
        obs = self._observe(time_step.observation, first=False, last=last, terminal=terminal)
        return obs, np.float32(reward), terminal, bool(last and not terminal), self._info()

    def render(self):
        return self._last_image

    def close(self):
        self._env.close()

    # -- the same state under other interventions --------------------------------------------
    def make_interventions(self, split: str) -> Interventions:
        """This env's intervention config on ``split``, over this env's physics and camera.

        The caller drives the result (``reset(rng)`` per episode, ``step(rng)`` per env step) and
        renders with :meth:`render_under`; this env's own interventions are not touched.
        """
        config = dataclasses.replace(self.interventions.config, split=split)
        self.interventions.restore_colours()  # a new set records the model's colours as nominal
        try:
            return Interventions(config, self.physics, self._camera, size=self.size)
        finally:
            self.interventions.apply_colours()

    def render_under(self, interventions: Interventions) -> dict[str, np.ndarray]:
        """The current physics state rendered under ``interventions`` (from :meth:`make_interventions`).

        Returns ``image`` and the targets this env renders (``depth`` ``[H, W, 1]``, ...), as in an
        observation. Physics, this env's own interventions and its last image are left unchanged.
        """
        if interventions._physics is not self.physics:
            raise ValueError(f"{self.task}: interventions were built for another env's physics; "
                             "use this env's make_interventions(split)")
        own = self.interventions
        own.restore_colours()
        interventions.apply_colours()
        self.interventions = interventions
        try:
            return self._render_all()
        finally:
            self.interventions = own
            own.restore_colours()
            own.apply_colours()

    # -- observation -----------------------------------------------------------------------
    def _info(self) -> dict[str, Any]:
        return {"intervention_id": self.interventions.id, "split": self.split}

    def _observe(self, raw: dict, *, first: bool, last: bool, terminal: bool) -> dict[str, np.ndarray]:
        proprio = np.concatenate([np.asarray(raw[k], np.float32).ravel() for k in self._proprio_keys])
        obs = {"image": None, "proprio": proprio}
        obs.update(self._render_all())
        obs.update(base.flags(first, last, terminal))
        self._last_image = obs["image"]
        return obs

    def _render_all(self) -> dict[str, np.ndarray]:
        """One pass for the image (+ depth when the camera is nominal), then targets as needed."""
        iv, cam, want = self.interventions, self._camera, self._want
        config = iv.config
        pose = iv.camera_transform()
        need_depth_pass = config.background or (want["depth"] and pose is None)
        image, depth = cam.render(depth=need_depth_pass, pose=pose, skybox=not config.background)
        out: dict[str, np.ndarray] = {}
        if config.background:
            image = iv.composite(image, depth)
        out["image"] = image
        nominal_depth = depth if pose is None else None
        if want["segmentation"]:  # nominal camera; its pass also gives the nominal depth
            out["segmentation"], seg_depth = cam.segmentation(depth=True)
            nominal_depth = seg_depth if nominal_depth is None else nominal_depth
        if want["clean_image"] or (want["depth"] and nominal_depth is None):
            if config.active:
                iv.restore_colours()
                clean, clean_depth = cam.render(depth=True)
                iv.apply_colours()
            else:
                clean, clean_depth = image, depth
            nominal_depth = clean_depth if nominal_depth is None else nominal_depth
            if want["clean_image"]:
                out["clean_image"] = clean
        if want["depth"]:
            out["depth"] = np.minimum(nominal_depth, self.max_depth)[..., None]
        return out


def _geom_classes(physics) -> tuple[np.ndarray, int]:
    """Geom id -> class: 1 for the static world (body 0), 2 + k for the agent's k-th body."""
    body = np.asarray(physics.model.geom_bodyid)
    classes = np.where(body == 0, 1, body + 1).astype(np.int32)
    num_classes = int(physics.model.nbody) + 2  # sky, world, nbody-1 agent bodies, other objects
    return classes, num_classes
