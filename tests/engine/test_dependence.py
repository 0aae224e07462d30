"""Known-answer tests of engine.projection.dependence (distance correlation, KSG) against brute
force and closed forms."""

import numpy as np
import pytest

from engine.projection import distance_correlation, mutual_information_ksg, subsample


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


def test_distance_correlation_matches_brute_force():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((25, 3))
    y = np.c_[np.sin(x[:, 0]), x[:, 1] ** 2] + 0.1 * rng.standard_normal((25, 2))
    assert distance_correlation(x, y) == pytest.approx(_brute_dcor(x, y), rel=1e-10)


def test_distance_correlation_known_values():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 4))
    assert distance_correlation(x, -3.0 * x + 7.0) == pytest.approx(1.0, abs=1e-12)
    a, b = rng.standard_normal((2000, 2)), rng.standard_normal((2000, 2))
    # The V-statistic's bias shrinks like 1/sqrt(n): about 0.06 here, and 0 in the limit.
    assert distance_correlation(a, b) < 0.1
    assert distance_correlation(a, b, max_n=200) > distance_correlation(a, b)


def test_distance_correlation_subsamples_with_seed():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 2))
    y = x[:, :1] + rng.standard_normal((500, 1))
    one = distance_correlation(x, y, max_n=100, seed=4)
    idx = subsample(500, 100, 4)
    assert idx.size == 100
    assert one == pytest.approx(distance_correlation(x[idx], y[idx]), rel=1e-12)


def test_ksg_mutual_information_of_correlated_gaussians():
    rho, n = 0.6, 2000
    rng = np.random.default_rng(5)
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)
    got = mutual_information_ksg(z[:, 0], z[:, 1], k=10)
    assert got == pytest.approx(-0.5 * np.log(1 - rho**2), abs=0.05)
    indep = mutual_information_ksg(z[:, 0], rng.standard_normal(n), k=10)
    assert abs(indep) < 0.05
