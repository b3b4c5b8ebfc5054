"""Env names (``dmc:walker-walk``, ``nav:pointgoal``, ``igibson:pointnav``) to constructors.

``make(name, **options)`` builds one env; :func:`register_gymnasium` makes the same envs
available as ``gymnasium.make("recore/dmc-walker-walk-v0", **options)``.
"""

from __future__ import annotations

from typing import Callable

import gymnasium as gym

GYM_NAMESPACE = "recore"
# The DMC tasks registered with gymnasium by default (any dm_control task works with make()).
DMC_TASKS: tuple[str, ...] = (
    "ball_in_cup-catch", "cartpole-swingup", "cartpole-balance", "cheetah-run", "finger-spin",
    "reacher-easy", "reacher-hard", "walker-walk", "walker-run", "walker-stand", "hopper-hop",
    "quadruped-walk", "pendulum-swingup",
)


def _make_dmc(task: str, **options) -> gym.Env:
    from recore_dist.envs.dmc import DMCEnv

    return DMCEnv(task, **options)


def _make_nav(task: str, **options) -> gym.Env:
    from recore_dist.envs.navigation import PointGoalNavEnv

    if task != "pointgoal":
        raise ValueError(f"unknown navigation task 'nav:{task}'; available: nav:pointgoal")
    return PointGoalNavEnv(**options)


def _make_igibson(task: str, **options) -> gym.Env:
    from recore_dist.envs.igibson import IGibsonPointNavEnv

    if task != "pointnav":
        raise ValueError(f"unknown iGibson task 'igibson:{task}'; available: igibson:pointnav")
    return IGibsonPointNavEnv(**options)


SUITES: dict[str, Callable[..., gym.Env]] = {"dmc": _make_dmc, "nav": _make_nav, "igibson": _make_igibson}


def parse_name(name: str) -> tuple[str, str]:
    """Split ``"suite:task"``; errors name the accepted suites."""
    suite_name, sep, task = str(name).partition(":")
    if not sep or not task or suite_name not in SUITES:
        raise ValueError(
            f"env name must be 'suite:task' with suite in {sorted(SUITES)} "
            f"(e.g. 'dmc:walker-walk', 'nav:pointgoal', 'igibson:pointnav'), got {name!r}"
        )
    return suite_name, task


def make(name: str, **options) -> gym.Env:
    """Build one env by name; ``options`` go to its constructor (size, depth, interventions, ...)."""
    suite_name, task = parse_name(name)
    return SUITES[suite_name](task, **options)


def gym_id(name: str) -> str:
    """Gymnasium id of a recore-dist env name: ``dmc:walker-walk`` -> ``recore/dmc-walker-walk-v0``."""
    suite_name, task = parse_name(name)
    return f"{GYM_NAMESPACE}/{suite_name}-{task}-v0"


def _entry(name: str) -> Callable[..., gym.Env]:
    def entry_point(**options) -> gym.Env:
        return make(name, **options)

    return entry_point


def register_gymnasium() -> list[str]:
    """Register every named env with gymnasium (idempotent); returns the ids."""
    names = [f"dmc:{t}" for t in DMC_TASKS] + ["nav:pointgoal", "igibson:pointnav"]
    ids = []
    for name in names:
        env_id = gym_id(name)
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=_entry(name), disable_env_checker=True)
        ids.append(env_id)
    return ids
