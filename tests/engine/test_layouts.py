"""engine.projection.layouts: the project dispatcher, its peers, and layout_of."""

import sys

import jax
import numpy as np
import pytest

from engine.projection import layout_of, pca, pivot_mds, project, project_ae

KEY = jax.random.key(0)


def test_project_dispatches_and_validates():
    x = np.random.default_rng(7).standard_normal((40, 3)).astype(np.float32)
    np.testing.assert_allclose(project(x, method="pca"), pca(x), atol=1e-6)
    np.testing.assert_allclose(project(x, method="pivotmds", key=KEY, k=8),
                               pivot_mds(x, k=8, key=KEY), atol=1e-6)
    with pytest.raises(ValueError, match="unknown projection method"):
        project(x, method="isomap", key=KEY)
    with pytest.raises(ValueError, match="unknown projection options"):
        project(x, method="pca", bogus=1)
    with pytest.raises(ValueError, match="key"):
        project(x, method="pivotmds")


@pytest.mark.parametrize(("method", "module"), [("umap", "umap"), ("tsne", "openTSNE")])
def test_missing_peer_names_the_extra(monkeypatch, method, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    x = np.zeros((10, 3), np.float32)
    with pytest.raises(ImportError, match=r"pip install hearsight\[peers\]"):
        project(x, method=method, key=KEY)


def test_layout_of_is_the_2d_projection_as_float32():
    x = np.random.default_rng(8).standard_normal((30, 6)).astype(np.float32)
    got = layout_of(x, method="pivotmds", key=KEY, pivots=50)  # more pivots than points: k = n
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == (30, 2)
    np.testing.assert_array_equal(got, np.asarray(pivot_mds(x, k=30, key=KEY)))
    np.testing.assert_array_equal(layout_of(x, method="pivotmds", key=KEY, pivots=8),
                                  np.asarray(pivot_mds(x, k=8, key=KEY)))
    np.testing.assert_array_equal(layout_of(x, method="pca", key=KEY, pivots=50),
                                  np.asarray(pca(x, dims=2)))


def test_layout_of_ae_fits_the_autoencoder_on_the_points_themselves():
    x = np.random.default_rng(9).standard_normal((40, 5)).astype(np.float32)
    got = layout_of(x, method="ae", key=KEY, pivots=50)
    assert got.dtype == np.float32 and got.shape == (40, 2)
    np.testing.assert_array_equal(got, np.asarray(project_ae(x, x, key=KEY, dims=2)))


def test_layout_of_turns_a_missing_peer_into_a_value_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)
    with pytest.raises(ValueError, match=r"pip install hearsight\[peers\]"):
        layout_of(np.zeros((10, 3), np.float32), method="umap", key=KEY, pivots=50)
