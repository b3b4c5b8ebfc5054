"""Default action repeats and env frames per env step, without importing any simulator.

Plots and benchmarks count **env frames** (simulator control steps, action repeat included) so
that runs at different action repeats, and the reference curves of other papers, compare at the
same amount of experience: DreamerV3's DMC score files are at action repeat 2, so 20k frames
there are 10k of its agent's decisions.
"""

from __future__ import annotations

# CoRe paper, Table 6 (action repeat per task); 2 for tasks it does not list (DreamerV2's default).
ACTION_REPEAT: dict[str, int] = {
    "ball_in_cup-catch": 4,
    "cartpole-swingup": 8,
    "cheetah-run": 4,
    "finger-spin": 2,
    "reacher-easy": 4,
    "walker-walk": 2,
}
DEFAULT_ACTION_REPEAT = 2


def frames_per_step(env_name: str, action_repeat: int | None) -> int:
    """Simulator control steps per env step of ``env_name`` (``suite:task``) at ``action_repeat``
    (``None``: the env's own default: CoRe Table 6 on ``dmc:*``, 1 on navigation and iGibson,
    whose control period is 0.1 s)."""
    if action_repeat is not None:
        if int(action_repeat) < 1:
            raise ValueError(f"action_repeat={action_repeat} must be >= 1")
        return int(action_repeat)
    suite, _, task = env_name.partition(":")
    if suite == "dmc":
        return ACTION_REPEAT.get(task, DEFAULT_ACTION_REPEAT)
    return 1
