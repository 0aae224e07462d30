"""Statistical dependence between data ``x (n, D)`` and its layout ``y (n, d)``: distance
correlation and mutual information (KSG). NumPy/SciPy host code, rows paired.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist
from scipy.special import digamma

from engine.projection.pairs import check_k, paired, subsample


def _centred_distances(z: np.ndarray) -> np.ndarray:
    a = cdist(z, z)
    return a - a.mean(axis=0) - a.mean(axis=1)[:, None] + a.mean()


def distance_correlation(x, y, *, max_n: int = 2000, seed: int = 0) -> float:
    """Distance correlation dCor(x, y) in [0, 1]; 0 iff independent (population), 1 for similarity.

    O(n²): rows beyond ``max_n`` are subsampled with ``np.random.default_rng(seed)``. Uses the
    V-statistic ``dCov² = mean(A * B)`` of the double-centred Euclidean distance matrices.

    References:
      Székely, Rizzo & Bakirov (2007), Measuring and testing dependence by correlation of
      distances. Ann. Statist. 35(6).
    """
    x, y = paired(x, y)
    idx = subsample(x.shape[0], max_n, seed)
    a, b = _centred_distances(x[idx]), _centred_distances(y[idx])
    vxy, vxx, vyy = np.mean(a * b), np.mean(a * a), np.mean(b * b)
    if vxx <= 0 or vyy <= 0:
        return 0.0
    return float(np.sqrt(max(vxy, 0.0) / np.sqrt(vxx * vyy)))


def mutual_information_ksg(x, y, *, k: int = 10, rescale: bool = True) -> float:
    """Mutual information I(x; y) in nats by the Kraskov–Stögbauer–Grassberger estimator 1.

    ``I = ψ(k) + ψ(n) − ⟨ψ(n_x + 1) + ψ(n_y + 1)⟩`` where ε_i is the max-norm distance from
    point i to its k-th neighbour in the joint space and n_x, n_y count the points strictly
    closer than ε_i in each marginal space. With ``rescale`` each of x and y is divided by its
    overall standard deviation (one scalar per block, so the geometry inside a block is kept),
    since the max-norm otherwise lets the larger-scaled block dominate.

    References:
      Kraskov, Stögbauer & Grassberger (2004), Estimating mutual information.
      Phys. Rev. E 69, 066138, eq. (8).
    """
    x, y = paired(x, y)
    n = x.shape[0]
    check_k(k, n, limit=n)
    if rescale:
        x = x / (x.std() or 1.0)
        y = y / (y.std() or 1.0)
    joint = np.hstack([x, y])
    eps = cKDTree(joint).query(joint, k=k + 1, p=np.inf)[0][:, k]
    radius = np.nextafter(eps, 0)  # strictly closer than eps_i
    nx = cKDTree(x).query_ball_point(x, r=radius, p=np.inf, return_length=True) - 1
    ny = cKDTree(y).query_ball_point(y, r=radius, p=np.inf, return_length=True) - 1
    return float(digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1)))
