"""Neighbourhood preservation of a layout: trustworthiness, continuity, kNN preservation, and
:func:`projection_quality`, every quality measure of one layout on one seeded subsample.

All take ``x`` of shape ``(n, D)`` (the activations) and ``y`` of shape ``(n, d)`` (their layout),
rows paired. They are NumPy/SciPy host code; the quadratic ones work in row chunks so memory stays
O(chunk · n).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from engine.projection.dependence import distance_correlation, mutual_information_ksg
from engine.projection.pairs import check_k, paired, subsample
from engine.projection.procrustes import procrustes_distance

ROW_CHUNK = 512


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
    x, y = paired(x, y)
    n = x.shape[0]
    check_k(k, n, limit=n / 2)
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
    x, y = paired(x, y)
    n = x.shape[0]
    check_k(k, n, limit=n)
    nx, ny = _knn(x, k), _knn(y, k)
    shared = [np.intersect1d(a, b, assume_unique=True).size for a, b in zip(nx, ny)]
    return float(np.mean(shared) / k)


def projection_quality(x, y, *, k: int = 10, max_n: int = 2000, seed: int = 0) -> dict[str, float]:
    """All metrics of layout ``y (n, d)`` of data ``x (n, D)`` on one seeded subsample.

    Returns a dict with ``procrustes_distance``, ``distance_correlation``,
    ``mutual_information`` (nats, KSG with ``k``), ``trustworthiness``, ``continuity``,
    ``knn_preservation`` (all with ``k``) and ``n`` (rows used).
    """
    x, y = paired(x, y)
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
