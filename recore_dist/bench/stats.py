"""Aggregates over seeds: mean, interquartile mean and 95% bootstrap confidence intervals.

The statistics follow rliable (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical
Precipice"): the **IQM** is the mean of the middle 50% of runs (``scipy.stats.trim_mean`` with
0.25 cut from each end, rliable's ``metrics.aggregate_iqm``), and intervals are **percentile
bootstrap** intervals over runs; with one task rliable's stratified bootstrap is a bootstrap over
that task's runs. We compute them with ``scipy.stats.bootstrap`` rather than the ``rliable``
package: rliable 1.2 ships only as a source archive and pulls ``arch``, ``seaborn``, ``pandas``
and ``absl-py`` for the two functions used here, while SciPy is already a dependency.

With 3 seeds an interval is coarse (the bootstrap can only recombine three values, so it spans
most of their range); it is printed beside every value so that a reader sees that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 5000


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean after cutting ``floor(n / 4)`` values from each end."""
    from scipy.stats import trim_mean

    x = _finite(values)
    return float(trim_mean(x, 0.25))


def _finite(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(list(values), dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"need a non-empty list of numbers, got {list(values)!r}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"values must be finite, got {x.tolist()}")
    return x


def bootstrap_ci(values: Sequence[float], statistic: str = "mean", *, confidence: float = CONFIDENCE,
                 resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``statistic`` (``mean`` or ``iqm``) over ``values``;
    ``None`` for a single value (no spread to resample)."""
    from scipy.stats import bootstrap, trim_mean

    x = _finite(values)
    if x.size < 2:
        return None
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence} must be in (0, 1)")
    if np.ptp(x) == 0.0:  # every resample gives the same value
        return float(x[0]), float(x[0])
    funcs = {"mean": lambda a, axis: np.mean(a, axis=axis), "iqm": lambda a, axis: trim_mean(a, 0.25, axis=axis)}
    if statistic not in funcs:
        raise ValueError(f"statistic={statistic!r} must be one of {sorted(funcs)}")
    res = bootstrap((x,), funcs[statistic], confidence_level=confidence, n_resamples=resamples,
                    method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def aggregate(values: Sequence[float], *, confidence: float = CONFIDENCE, seed: int = 0) -> dict[str, Any]:
    """``{n, values, mean, mean_ci, iqm, iqm_ci, std}`` of per-seed ``values``."""
    x = _finite(values)
    return {"n": int(x.size), "values": x.tolist(), "mean": float(x.mean()),
            "mean_ci": bootstrap_ci(x, "mean", confidence=confidence, seed=seed),
            "iqm": iqm(x), "iqm_ci": bootstrap_ci(x, "iqm", confidence=confidence, seed=seed),
            "std": float(x.std(ddof=1)) if x.size > 1 else 0.0}


def ratio(num: float | None, den: float | None) -> float | None:
    """``num / den``, or ``None`` when either is missing or the denominator is 0."""
    if num is None or den is None or den == 0 or not math.isfinite(num) or not math.isfinite(den):
        return None
    return num / den
