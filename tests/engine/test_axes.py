"""The spectral layouts orient their axes the same way (engine.projection.axes)."""

import jax
import numpy as np

from engine.projection import classical_mds, pca, pivot_mds

KEY = jax.random.key(0)


def test_largest_entry_of_each_axis_is_positive():
    x = np.random.default_rng(5).standard_normal((50, 4)).astype(np.float32)
    for y in (pivot_mds(x, k=10, key=KEY), pca(x), classical_mds(x)):
        y = np.asarray(y)
        assert np.all(y[np.argmax(np.abs(y), axis=0), [0, 1]] > 0)
