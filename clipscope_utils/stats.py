"""Intervals for every number the book reports: a seeded percentile bootstrap.

The book never shows a rate without its sample size and a 95 % interval, so a reader can tell a
bias from noise at the sizes a CPU run affords.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats


def bootstrap_ci(
    values, stat=np.mean, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` over ``values`` (NaN, NaN when empty)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (float("nan"), float("nan"))
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    boots = np.apply_along_axis(stat, 1, x[idx]) if stat is not np.mean else x[idx].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    return float(lo), float(hi)


def rate_table(frame: pd.DataFrame, by: list[str], hit: str, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Tidy table of the mean of boolean column ``hit`` per group: ``n``, ``rate``, ``ci_low``, ``ci_high``."""
    rows = []
    for key, group in frame.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        values = group[hit].astype(float).to_numpy()
        lo, hi = bootstrap_ci(values, n_boot=n_boot, seed=seed)
        rows.append({**dict(zip(by, key)), "n": len(values), "rate": float(values.mean()), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=[*by, "n", "rate", "ci_low", "ci_high"])


def t_interval(values, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of a few values (paper B's Table 7 over five seeds); NaN below two values."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return (float("nan"), float("nan"))
    half = scipy_stats.t.ppf((1 + level) / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return float(x.mean() - half), float(x.mean() + half)
