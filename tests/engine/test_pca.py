"""Known-answer tests of engine.projection.pca (thin SVD and the streamed covariance)."""

from functools import partial

import jax
import numpy as np

from engine.projection import classical_mds, pca


def test_pca_matches_svd_and_streamed_covariance():
    x = np.random.default_rng(6).standard_normal((300, 7)).astype(np.float32) * np.arange(1, 8)
    small = np.asarray(jax.jit(partial(pca, dims=2))(x))
    streamed = np.asarray(pca(x, dims=2, chunk=64))
    np.testing.assert_allclose(streamed, small, rtol=1e-3, atol=1e-3)
    # Independent reference: scores on the top eigenvectors of numpy's covariance.
    xc = x - x.mean(axis=0)
    _, vecs = np.linalg.eigh(np.cov(xc.T))
    ref = xc @ vecs[:, ::-1][:, :2]
    np.testing.assert_allclose(np.abs(small), np.abs(ref), rtol=1e-3, atol=1e-3)
    # PCA of Euclidean data equals classical MDS.
    np.testing.assert_allclose(small, classical_mds(x), rtol=1e-3, atol=1e-3)
