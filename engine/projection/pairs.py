"""Data rows paired with the rows of their layout: what every projection-quality measure checks
first, and the seeded subsample the quadratic measures work on.
"""

from __future__ import annotations

import numpy as np


def paired(x, y, *, min_n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``x (n, D)`` and ``y (n, d)`` as float64 matrices (1-D inputs become one column).

    Raises ValueError unless both have the same ``n >= min_n`` rows and are finite.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, None] if y.ndim == 1 else y
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] < min_n:
        raise ValueError(f"x and y must be (n, D) and (n, d) with the same n >= {min_n}, "
                         f"got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite (found NaN or inf)")
    return x, y


def check_k(k: int, n: int, *, limit: float) -> None:
    """ValueError unless the neighbour count ``k`` satisfies ``1 <= k < limit``."""
    if not 1 <= k < limit:
        raise ValueError(f"k={k} must satisfy 1 <= k < {limit:g} for n={n} points")


def subsample(n: int, max_n: int, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded uniform subsample of at most ``max_n`` of ``n`` rows."""
    if n <= max_n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_n, replace=False))
