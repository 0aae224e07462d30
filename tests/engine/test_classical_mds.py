"""Known-answer tests of engine.projection.classical_mds (Torgerson MDS)."""

import jax
import numpy as np
import pytest
from scipy.spatial import procrustes

from engine.projection import classical_mds
from engine.projection.classical_mds import MAX_MDS_POINTS


def _plane(rng, n, d, scales=(3.0, 1.0)):
    """Points on a 2-D plane embedded in d dimensions: returns (x (n, d), true coords (n, 2))."""
    z = rng.standard_normal((n, 2)) * np.asarray(scales)
    basis, _ = np.linalg.qr(rng.standard_normal((d, 2)))
    return (z @ basis.T + 5.0).astype(np.float32), z


def test_classical_mds_of_points_in_plane_recovers_them():
    x, z = _plane(np.random.default_rng(1), 80, 10)
    y = jax.jit(classical_mds, static_argnames="dims")(x, dims=2)
    assert procrustes(z, np.asarray(y))[2] < 1e-8


def test_more_points_than_the_n_by_n_limit_refer_to_pivot_mds():
    with pytest.raises(ValueError, match="pivot_mds"):
        classical_mds(np.zeros((MAX_MDS_POINTS + 1, 1), np.float32))
