"""Reference learning curves of other methods, drawn beside ours (``recore-dist plot``).

DreamerV3 (Hafner et al. 2023) on DMC from pixels: training-episode returns, mean of its 10
seeds, from danijar/dreamerv3's score file ``scores/dmc_vision-dreamerv3.json.gz`` (values as
recorded in shared/FACTS.md), on the **clean** tasks, against env frames at action repeat 2.
Between the recorded points the curve is interpolated linearly (the score files are denser; the
four points keep the shape to within the plots' resolution at the budgets used here).
"""

from __future__ import annotations

import numpy as np

SOURCE = "DreamerV3 (danijar/dreamerv3 scores/dmc_vision-dreamerv3.json.gz, mean of 10 seeds, clean task)"

# frames -> mean training return; the 0-frame point is the uniform random policy's return
DREAMERV3_DMC_VISION: dict[str, dict[int, float]] = {
    "cartpole-swingup": {0: 27, 20_000: 169, 50_000: 349, 100_000: 615, 1_000_000: 862},
    "cartpole-balance": {0: 350, 20_000: 304, 50_000: 658, 100_000: 946, 1_000_000: 996},
    "walker-stand": {0: 135, 20_000: 373, 50_000: 776, 100_000: 911, 1_000_000: 975},
    "walker-walk": {0: 30, 20_000: 189, 50_000: 439, 100_000: 639, 1_000_000: 962},
    "reacher-easy": {0: 33, 20_000: 211, 50_000: 374, 100_000: 409, 1_000_000: 930},
    "finger-spin": {0: 0, 20_000: 236, 50_000: 446, 100_000: 505, 1_000_000: 589},
    "ball_in_cup-catch": {0: 0, 20_000: 100, 50_000: 533, 100_000: 877, 1_000_000: 971},
    "cheetah-run": {0: 3, 20_000: 129, 50_000: 239, 100_000: 337, 1_000_000: 822},
}


def reference_curve(env_name: str) -> dict[int, float] | None:
    """DreamerV3's curve (frames -> return) for ``dmc:task``; ``None`` for other envs."""
    suite, _, task = env_name.partition(":")
    return DREAMERV3_DMC_VISION.get(task) if suite == "dmc" else None


def reference_at(env_name: str, frames: float) -> float | None:
    """DreamerV3's return at ``frames`` env frames (linear between recorded points), or ``None``."""
    curve = reference_curve(env_name)
    if curve is None:
        return None
    xs = sorted(curve)
    if not xs[0] <= frames <= xs[-1]:
        raise ValueError(f"{frames} frames is outside DreamerV3's recorded range {xs[0]}-{xs[-1]}")
    return float(np.interp(frames, xs, [curve[x] for x in xs]))
