"""Known-answer tests of engine.projection.quality against references (scikit-learn, scipy)."""

import numpy as np
import pytest
from scipy.spatial import procrustes
from sklearn.manifold import trustworthiness as sk_trustworthiness

from engine.projection import quality, subsample


def test_trustworthiness_matches_sklearn(pair):
    x, y = pair
    for k in (1, 5, 12):
        assert quality.trustworthiness(x, y, k=k) == pytest.approx(
            sk_trustworthiness(x, y, n_neighbors=k), abs=1e-12)


def test_continuity_is_trustworthiness_with_roles_exchanged(pair):
    x, y = pair
    assert quality.continuity(x, y, k=5) == pytest.approx(sk_trustworthiness(y, x, n_neighbors=5),
                                                          abs=1e-12)


def test_rank_penalty_streams_over_row_chunks(pair, monkeypatch):
    x, y = pair
    whole = quality.trustworthiness(x, y, k=5)
    monkeypatch.setattr(quality, "ROW_CHUNK", 7)
    assert quality.trustworthiness(x, y, k=5) == pytest.approx(whole, abs=1e-12)


def test_knn_preservation_known_values(pair):
    x, _ = pair
    rng = np.random.default_rng(6)
    assert quality.knn_preservation(x, x, k=5) == 1.0
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    assert quality.knn_preservation(x, 2.0 * x @ q - 1.0, k=5) == 1.0
    shuffled = x[rng.permutation(len(x))]
    assert quality.knn_preservation(x, shuffled, k=5) < 0.2  # chance is 5/119


def test_projection_quality_reports_every_metric_on_a_subsample():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((600, 20))
    y = x[:, :2]
    q = quality.projection_quality(x, y, k=5, max_n=150, seed=1)
    assert q["n"] == 150
    idx = subsample(600, 150, 1)
    assert q["trustworthiness"] == pytest.approx(
        sk_trustworthiness(x[idx], y[idx], n_neighbors=5), abs=1e-12)
    assert q["procrustes_distance"] == pytest.approx(
        procrustes(x[idx], np.c_[y[idx], np.zeros((150, 18))])[2], rel=1e-10)
    assert 0 < q["distance_correlation"] < 1 and 0 < q["knn_preservation"] < 1


def test_bad_input_raises():
    with pytest.raises(ValueError, match="same n"):
        quality.trustworthiness(np.zeros((10, 3)), np.zeros((9, 2)), k=2)
    with pytest.raises(ValueError, match="k=6"):
        quality.trustworthiness(np.ones((10, 3)), np.ones((10, 2)), k=6)
    with pytest.raises(ValueError, match="finite"):
        quality.knn_preservation(np.full((10, 3), np.nan), np.zeros((10, 2)), k=2)
