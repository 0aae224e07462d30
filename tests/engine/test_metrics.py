"""Known-answer tests of engine.metrics against references (scikit-learn, scipy, brute force)."""

import numpy as np
import pytest
from scipy.spatial import procrustes
from sklearn.manifold import trustworthiness as sk_trustworthiness

from engine import metrics


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 10))
    y = x @ rng.standard_normal((10, 2)) + 0.3 * rng.standard_normal((120, 2))
    return x, y


def _brute_dcor(x, y):
    """Székely et al. (2007) eqs. 2.8–2.10 written out element by element."""
    n = len(x)
    a = np.array([[np.linalg.norm(x[j] - x[l]) for l in range(n)] for j in range(n)])
    b = np.array([[np.linalg.norm(y[j] - y[l]) for l in range(n)] for j in range(n)])

    def centred(m):
        return np.array([[m[j, l] - m[j].mean() - m[:, l].mean() + m.mean() for l in range(n)]
                         for j in range(n)])

    ca, cb = centred(a), centred(b)
    v = lambda p, q: sum(p[j, l] * q[j, l] for j in range(n) for l in range(n)) / n**2
    return np.sqrt(v(ca, cb) / np.sqrt(v(ca, ca) * v(cb, cb)))


def test_trustworthiness_matches_sklearn(pair):
    x, y = pair
    for k in (1, 5, 12):
        assert metrics.trustworthiness(x, y, k=k) == pytest.approx(
            sk_trustworthiness(x, y, n_neighbors=k), abs=1e-12)


def test_continuity_is_trustworthiness_with_roles_exchanged(pair):
    x, y = pair
    assert metrics.continuity(x, y, k=5) == pytest.approx(sk_trustworthiness(y, x, n_neighbors=5),
                                                          abs=1e-12)


def test_rank_penalty_streams_over_row_chunks(pair, monkeypatch):
    x, y = pair
    whole = metrics.trustworthiness(x, y, k=5)
    monkeypatch.setattr(metrics, "ROW_CHUNK", 7)
    assert metrics.trustworthiness(x, y, k=5) == pytest.approx(whole, abs=1e-12)


def test_distance_correlation_matches_brute_force():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((25, 3))
    y = np.c_[np.sin(x[:, 0]), x[:, 1] ** 2] + 0.1 * rng.standard_normal((25, 2))
    assert metrics.distance_correlation(x, y) == pytest.approx(_brute_dcor(x, y), rel=1e-10)


def test_distance_correlation_known_values():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 4))
    assert metrics.distance_correlation(x, -3.0 * x + 7.0) == pytest.approx(1.0, abs=1e-12)
    a, b = rng.standard_normal((2000, 2)), rng.standard_normal((2000, 2))
    # The V-statistic's bias shrinks like 1/sqrt(n): about 0.06 here, and 0 in the limit.
    assert metrics.distance_correlation(a, b) < 0.1
    assert metrics.distance_correlation(a, b, max_n=200) > metrics.distance_correlation(a, b)


def test_distance_correlation_subsamples_with_seed():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 2))
    y = x[:, :1] + rng.standard_normal((500, 1))
    one = metrics.distance_correlation(x, y, max_n=100, seed=4)
    idx = metrics.subsample(500, 100, 4)
    assert idx.size == 100
    assert one == pytest.approx(metrics.distance_correlation(x[idx], y[idx]), rel=1e-12)


def test_ksg_mutual_information_of_correlated_gaussians():
    rho, n = 0.6, 2000
    rng = np.random.default_rng(5)
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)
    got = metrics.mutual_information_ksg(z[:, 0], z[:, 1], k=10)
    assert got == pytest.approx(-0.5 * np.log(1 - rho**2), abs=0.05)
    indep = metrics.mutual_information_ksg(z[:, 0], rng.standard_normal(n), k=10)
    assert abs(indep) < 0.05


def test_procrustes_distance_is_scipy_disparity(pair):
    x, y = pair
    x2 = x[:, :2]
    assert metrics.procrustes_distance(x2, y) == pytest.approx(procrustes(x2, y)[2], rel=1e-10)


def test_procrustes_distance_pads_the_layout_with_zero_columns(pair):
    x, y = pair
    ref = procrustes(x, np.c_[y, np.zeros((len(y), 8))])[2]
    assert metrics.procrustes_distance(x, y) == pytest.approx(ref, rel=1e-10)
    # Data on a plane of 10-D space vs a similarity copy of that plane: distance 0.
    plane = np.c_[y, np.zeros((len(y), 8))]
    copy = 0.5 * y @ np.array([[0.0, 1.0], [1.0, 0.0]]) + 3.0
    assert metrics.procrustes_distance(plane, copy) == pytest.approx(0.0, abs=1e-12)


def test_knn_preservation_known_values(pair):
    x, _ = pair
    rng = np.random.default_rng(6)
    assert metrics.knn_preservation(x, x, k=5) == 1.0
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    assert metrics.knn_preservation(x, 2.0 * x @ q - 1.0, k=5) == 1.0
    shuffled = x[rng.permutation(len(x))]
    assert metrics.knn_preservation(x, shuffled, k=5) < 0.2  # chance is 5/119


def test_projection_quality_reports_every_metric_on_a_subsample():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((600, 20))
    y = x[:, :2]
    q = metrics.projection_quality(x, y, k=5, max_n=150, seed=1)
    assert q["n"] == 150
    idx = metrics.subsample(600, 150, 1)
    assert q["trustworthiness"] == pytest.approx(
        sk_trustworthiness(x[idx], y[idx], n_neighbors=5), abs=1e-12)
    assert q["procrustes_distance"] == pytest.approx(
        procrustes(x[idx], np.c_[y[idx], np.zeros((150, 18))])[2], rel=1e-10)
    assert 0 < q["distance_correlation"] < 1 and 0 < q["knn_preservation"] < 1


def test_bad_input_raises():
    with pytest.raises(ValueError, match="same n"):
        metrics.trustworthiness(np.zeros((10, 3)), np.zeros((9, 2)), k=2)
    with pytest.raises(ValueError, match="k=6"):
        metrics.trustworthiness(np.ones((10, 3)), np.ones((10, 2)), k=6)
    with pytest.raises(ValueError, match="finite"):
        metrics.knn_preservation(np.full((10, 3), np.nan), np.zeros((10, 2)), k=2)
