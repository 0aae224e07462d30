"""Projection-quality metrics: how much of the high-dimensional structure a layout keeps.

All take ``x`` of shape ``(n, D)`` (the activations) and ``y`` of shape ``(n, d)`` (their layout),
rows paired. They are NumPy/SciPy host code; the quadratic ones work in row chunks so memory stays
O(chunk · n), and :func:`projection_quality` evaluates all of them on a seeded subsample.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist
from scipy.special import digamma

ROW_CHUNK = 512


def _pair(x, y, *, min_n: int = 3) -> tuple[np.ndarray, np.ndarray]:
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


def _check_k(k: int, n: int, *, limit: float) -> None:
    if not 1 <= k < limit:
        raise ValueError(f"k={k} must satisfy 1 <= k < {limit:g} for n={n} points")


def subsample(n: int, max_n: int, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded uniform subsample of at most ``max_n`` of ``n`` rows."""
    if n <= max_n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_n, replace=False))


def procrustes_distance(x, y) -> float:
    """Procrustes distance (PD) between data ``x (n, D)`` and its layout ``y (n, d)``; lower is better.

    Both are centred and scaled to unit Frobenius norm; the narrower one is padded with zero
    columns (a 2-D layout becomes a plane in D-space); PD = min over orthogonal R of
    ``||x - y R||²`` = ``1 - (sum of singular values of x^T y)²``. For 2-D vs 2-D this is
    ``scipy.spatial.procrustes``'s disparity; a random layout scores ≈ 1. Zero padding changes
    nothing but makes the matrices conformable, so x^T y is computed as a (D, d) product.

    References:
      Kendall (1989), A survey of the statistical theory of shape. Statist. Sci. 4(2);
      used for embeddings by McInnes et al. (2018) and by the seed autoencoder-projection paper.
    """
    x, y = _pair(x, y)
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    if nx == 0 or ny == 0:
        raise ValueError("procrustes_distance needs x and y with non-zero spread")
    sv = np.linalg.svd((x / nx).T @ (y / ny), compute_uv=False)
    return float(max(0.0, 1.0 - sv.sum() ** 2))


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
    x, y = _pair(x, y)
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
    x, y = _pair(x, y)
    n = x.shape[0]
    _check_k(k, n, limit=n)
    if rescale:
        x = x / (x.std() or 1.0)
        y = y / (y.std() or 1.0)
    joint = np.hstack([x, y])
    eps = cKDTree(joint).query(joint, k=k + 1, p=np.inf)[0][:, k]
    radius = np.nextafter(eps, 0)  # strictly closer than eps_i
    nx = cKDTree(x).query_ball_point(x, r=radius, p=np.inf, return_length=True) - 1
    ny = cKDTree(y).query_ball_point(y, r=radius, p=np.inf, return_length=True) - 1
    return float(digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1)))


def _knn(z: np.ndarray, k: int) -> np.ndarray:
    """Indices ``(n, k)`` of each row's k nearest neighbours (Euclidean, self excluded)."""
    if z.shape[1] <= 16:
        return cKDTree(z).query(z, k=k + 1)[1][:, 1:]
    out = np.empty((z.shape[0], k), dtype=np.int64)
    for s in range(0, z.shape[0], ROW_CHUNK):
        d = cdist(z[s:s + ROW_CHUNK], z, "sqeuclidean")
        d[np.arange(d.shape[0]), np.arange(s, s + d.shape[0])] = np.inf
        part = np.argpartition(d, k, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d, part, axis=1), axis=1)
        out[s:s + ROW_CHUNK] = np.take_along_axis(part, order, axis=1)
    return out


def _rank_penalty(ref: np.ndarray, emb: np.ndarray, k: int) -> float:
    """Σ_i Σ_{j in kNN_emb(i)} max(0, rank_ref(i, j) − k), with ranks 1-based in ``ref``."""
    nbrs = _knn(emb, k)
    total = 0
    for s in range(0, ref.shape[0], ROW_CHUNK):
        d = cdist(ref[s:s + ROW_CHUNK], ref, "sqeuclidean")
        rows = np.arange(d.shape[0])
        d[rows, np.arange(s, s + d.shape[0])] = np.inf
        ranks = np.empty_like(d, dtype=np.int64)
        ranks[rows[:, None], np.argsort(d, axis=1)] = np.arange(1, d.shape[1] + 1)
        r = np.take_along_axis(ranks, nbrs[s:s + ROW_CHUNK], axis=1) - k
        total += int(r[r > 0].sum())
    return total


def trustworthiness(x, y, *, k: int = 10) -> float:
    """Trustworthiness in [0, 1]: are the layout's k nearest neighbours also near in the data?

    ``T = 1 − 2 / (n k (2n − 3k − 1)) Σ_i Σ_{j ∈ U_i} (r(i, j) − k)`` where U_i are the layout
    neighbours of i that are not data neighbours and r(i, j) is the rank of j among i's data
    neighbours. Needs ``k < n / 2``. O(n²) time in row chunks.

    References:
      Venna & Kaski (2001), Neighborhood preservation in nonlinear projection methods: an
      experimental study. ICANN, LNCS 2130.
    """
    x, y = _pair(x, y)
    n = x.shape[0]
    _check_k(k, n, limit=n / 2)
    return 1.0 - _rank_penalty(x, y, k) * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))


def continuity(x, y, *, k: int = 10) -> float:
    """Continuity in [0, 1]: are the data's k nearest neighbours also near in the layout?

    The trustworthiness formula with the roles of data and layout exchanged.

    References:
      Venna & Kaski (2001), as :func:`trustworthiness`.
    """
    return trustworthiness(y, x, k=k)


def knn_preservation(x, y, *, k: int = 10) -> float:
    """Mean fraction of each point's k nearest data neighbours that stay among its k nearest
    layout neighbours; 1 is perfect, about k / (n − 1) is chance.

    References:
      e.g. Espadoto et al. (2021), Toward a quantitative survey of dimension reduction
      techniques. IEEE TVCG 27(3) (neighbourhood hit / preservation).
    """
    x, y = _pair(x, y)
    n = x.shape[0]
    _check_k(k, n, limit=n)
    nx, ny = _knn(x, k), _knn(y, k)
    shared = [np.intersect1d(a, b, assume_unique=True).size for a, b in zip(nx, ny)]
    return float(np.mean(shared) / k)


def projection_quality(x, y, *, k: int = 10, max_n: int = 2000, seed: int = 0) -> dict[str, float]:
    """All metrics of layout ``y (n, d)`` of data ``x (n, D)`` on one seeded subsample.

    Returns a dict with ``procrustes_distance``, ``distance_correlation``,
    ``mutual_information`` (nats, KSG with ``k``), ``trustworthiness``, ``continuity``,
    ``knn_preservation`` (all with ``k``) and ``n`` (rows used).
    """
    x, y = _pair(x, y)
    idx = subsample(x.shape[0], max_n, seed)
    xs, ys = x[idx], y[idx]
    return {
        "procrustes_distance": procrustes_distance(xs, ys),
        "distance_correlation": distance_correlation(xs, ys, max_n=max_n),
        "mutual_information": mutual_information_ksg(xs, ys, k=k),
        "trustworthiness": trustworthiness(xs, ys, k=k),
        "continuity": continuity(xs, ys, k=k),
        "knn_preservation": knn_preservation(xs, ys, k=k),
        "n": int(idx.size),
    }
