"""MuJoCo side of ``nav:pointgoal``: MJCF of a scene, compiled scenes, and the shared GL context.

:func:`scene_xml` writes one scene's MJCF (hidden collision boxes plus textured wall meshes from
:func:`box_mesh`, floor, sky, robot with its egocentric camera). :class:`_Scene` compiles it and
holds physics, :class:`~recore_dist.envs.render.FastCamera`, planner and geom classes; all scenes of
an env render on one GL context (:func:`_shared_gl_context`, :func:`_attach_gl`).
"""

from __future__ import annotations

from recore_dist.envs.gl import ensure_mujoco_gl

ensure_mujoco_gl()

import numpy as np  # noqa: E402
from dm_control import _render as dm_render  # noqa: E402
from dm_control import mujoco as dm_mujoco  # noqa: E402
from dm_control.mujoco import engine as dm_engine  # noqa: E402
from dm_control.mujoco.wrapper import core as dm_core  # noqa: E402

from recore_dist.envs.nav_geodesic import GeodesicPlanner  # noqa: E402
from recore_dist.envs.nav_layout import (  # noqa: E402
    CAMERA_FORWARD,
    CAMERA_FOVY,
    CAMERA_HEIGHT,
    CELL,
    CLASS_FLOOR,
    CLASS_GOAL,
    CLASS_NOTHING,
    CLASS_WALL,
    ROBOT_RADIUS,
    TIMESTEP,
    WALL_HEIGHT,
    SceneSpec,
)
from recore_dist.envs.render import FastCamera  # noqa: E402

# -- MJCF --------------------------------------------------------------------------------------
def _rgb(c) -> str:
    return " ".join(f"{x:.4g}" for x in c)


def _fmt(a: np.ndarray) -> str:
    a = np.asarray(a).ravel()
    if np.issubdtype(a.dtype, np.integer):
        return " ".join(str(int(v)) for v in a)
    return " ".join(f"{v:.4f}" for v in a)


# Box faces: outward normal axis/sign and the in-plane (u, v) axes with u x v = normal.
_FACES = (
    ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    ((-1, 0, 0), (0, -1, 0), (0, 0, 1)),
    ((0, 1, 0), (-1, 0, 0), (0, 0, 1)),
    ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
    ((0, 0, 1), (1, 0, 0), (0, 1, 0)),
    ((0, 0, -1), (1, 0, 0), (0, -1, 0)),
)


def box_mesh(half: np.ndarray, centre: np.ndarray, repeat: float):
    """A box mesh (24 vertices, 12 triangles) with texture coordinates in world metres x ``repeat``.

    MuJoCo maps 2D textures on primitive geoms by their x-y object coordinates, which smears them
    into stripes on vertical faces; a mesh with explicit UVs shows walls with undistorted
    textures, continuous across adjacent wall pieces. Vertices are centred on the box centre.
    """
    half = np.asarray(half, np.float64)
    centre = np.asarray(centre, np.float64)
    verts, faces, uvs = [], [], []
    for normal, u_axis, v_axis in _FACES:
        n, a, b = (np.asarray(x, np.float64) for x in (normal, u_axis, v_axis))
        base_index = len(verts)
        for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            p = n * half + su * a * half + sv * b * half
            verts.append(p)
            world = p + centre
            uvs.append((float(a @ world) * repeat, float(b @ world) * repeat))
        faces += [(base_index, base_index + 1, base_index + 2), (base_index, base_index + 2, base_index + 3)]
    return np.asarray(verts), np.asarray(faces, np.int64), np.asarray(uvs)


def scene_xml(spec: SceneSpec, *, size: int, goal_marker: bool = False) -> str:
    """The MJCF of one scene (walls, floor, sky, robot with its egocentric camera)."""
    pal, layout = spec.palette, spec.layout
    half = layout.n * CELL / 2.0
    walls, meshes = [], []
    for k, (x0, y0, x1, y1) in enumerate(layout.wall_boxes()):
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2, WALL_HEIGHT / 2])
        extent = np.array([(x1 - x0) / 2, (y1 - y0) / 2, WALL_HEIGHT / 2])
        pos, size_ = " ".join(f"{v:.4f}" for v in centre), " ".join(f"{v:.4f}" for v in extent)
        # collision: a box, hidden (group 3); looks: a box mesh with world-aligned UVs
        walls.append(f'<geom name="wall{k}" type="box" pos="{pos}" size="{size_}" group="3"/>')
        vert, face, uv = box_mesh(extent, centre, pal.wall_repeat)
        meshes.append(
            f'<mesh name="wallmesh{k}" vertex="{_fmt(vert)}" face="{_fmt(face)}" texcoord="{_fmt(uv)}"/>'
        )
        walls.append(
            f'<geom name="wallvis{k}" type="mesh" mesh="wallmesh{k}" pos="{pos}" material="wall" '
            'contype="0" conaffinity="0" mass="0"/>'
        )
    wb, wm = pal.wall_texture
    fb, fm = pal.floor_texture
    goal = (
        '<body name="goal" mocap="true" pos="0 0 0">'
        '<geom name="goal_marker" type="cylinder" size="0.12 0.25" pos="0 0 0.25" contype="0" conaffinity="0" '
        'rgba="1 0.45 0.05 1"/></body>'
        if goal_marker
        else ""
    )
    return f"""
<mujoco model="{spec.scene_id}">
  <compiler angle="radian"/>
  <option timestep="{TIMESTEP}" gravity="0 0 0" integrator="Euler"/>
  <statistic extent="10" center="0 0 0.5"/>
  <visual>
    <global offwidth="{size}" offheight="{size}"/>
    <quality offsamples="0" shadowsize="0"/>
    <map znear="0.003" zfar="3"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.45 0.45 0.45" specular="0 0 0"/>
  </visual>
  <asset>
    <texture name="sky" type="skybox" builtin="gradient" rgb1="{_rgb(pal.sky_rgb[0])}" rgb2="{_rgb(pal.sky_rgb[1])}"
      width="64" height="64"/>
    <texture name="wall" type="2d" builtin="{wb}" mark="{wm}" random="{pal.wall_random}"
      rgb1="{_rgb(pal.wall_rgb[0])}" rgb2="{_rgb(pal.wall_rgb[1])}" markrgb="{_rgb(pal.wall_mark_rgb)}"
      width="128" height="128"/>
    <texture name="floor" type="2d" builtin="{fb}" mark="{fm}" random="{pal.floor_random}"
      rgb1="{_rgb(pal.floor_rgb[0])}" rgb2="{_rgb(pal.floor_rgb[1])}" markrgb="{_rgb(pal.floor_mark_rgb)}"
      width="128" height="128"/>
    <material name="wall" texture="wall" specular="0" shininess="0"/>
    {"".join(meshes)}
    <material name="floor" texture="floor" texrepeat="{pal.floor_repeat} {pal.floor_repeat}" texuniform="true"
      specular="0" shininess="0"/>
  </asset>
  <worldbody>
    <light directional="true" pos="0 0 5" dir="0.35 0.55 -1" diffuse="0.5 0.5 0.5" specular="0 0 0"
      castshadow="false"/>
    <geom name="floor" type="plane" size="{half:.3f} {half:.3f} 0.1" material="floor" contype="0" conaffinity="0"/>
    {"".join(walls)}
    {goal}
    <body name="robot" pos="0 0 0">
      <joint name="x" type="slide" axis="1 0 0"/>
      <joint name="y" type="slide" axis="0 1 0"/>
      <joint name="yaw" type="hinge" axis="0 0 1"/>
      <geom name="robot_collision" type="sphere" size="{ROBOT_RADIUS}" pos="0 0 {ROBOT_RADIUS}" mass="5"
        group="3" rgba="0.2 0.2 0.2 1"/>
      <geom name="robot_base" type="cylinder" size="{ROBOT_RADIUS} 0.05" pos="0 0 0.05" mass="1"
        contype="0" conaffinity="0" group="3" rgba="0.3 0.3 0.3 1"/>
      <camera name="egocam" pos="{CAMERA_FORWARD} 0 {CAMERA_HEIGHT}" xyaxes="0 -1 0 0 0 1" fovy="{CAMERA_FOVY}"/>
    </body>
  </worldbody>
</mujoco>
"""


def _shared_gl_context(size: int):
    """One GL context for all scenes of an env (held by the env through its refcount)."""
    gl = dm_render.Renderer(max_width=size, max_height=size)
    gl.increment_refcount()
    return gl


def _attach_gl(physics, gl) -> None:
    """Give ``physics`` a MuJoCo render context on the shared GL context ``gl``.

    The first ``MjrContext`` made on a fresh GL context costs ~120 ms in software GL (one-time
    driver set-up); later ones ~5 ms. dm_control makes one GL context per ``Physics``, so a
    scene switch would pay the 120 ms every time; sharing one GL context avoids that. dm_control
    refcounts GL contexts: ``physics.free()`` releases this scene's ``MjrContext`` and leaves the
    shared GL context alive while other holders remain.
    """
    ctx = dm_core.MjrContext(physics.model, gl)
    with physics._contexts_lock:  # dm_control has no public hook for a shared context
        physics._contexts = dm_engine.Contexts(gl=gl, mujoco=ctx)


class _Scene:
    """A compiled scene: physics, camera, planner and geom classes."""

    def __init__(self, spec: SceneSpec, *, size: int, goal_marker: bool, gl=None):
        self.spec = spec
        self.physics = dm_mujoco.Physics.from_xml_string(scene_xml(spec, size=size, goal_marker=goal_marker))
        if gl is not None:
            _attach_gl(self.physics, gl)
        model = self.physics.model
        names = [model.id2name(g, "geom") for g in range(model.ngeom)]
        classes = np.zeros(model.ngeom, np.int32)
        for g, name in enumerate(names):
            if name == "floor":
                classes[g] = CLASS_FLOOR
            elif name.startswith("wall"):
                classes[g] = CLASS_WALL
            elif name == "goal_marker":
                classes[g] = CLASS_GOAL
        self.geom_class = classes
        self.camera = FastCamera(self.physics, "egocam", size, classes, other_class=CLASS_NOTHING)
        self.planner = GeodesicPlanner(spec.layout)
        self.mocap_goal = model.body_mocapid[model.name2id("goal", "body")] if goal_marker else -1

    def free(self) -> None:
        self.physics.free()
