"""PivotMDS and the chained Procrustes alignment on Dask equal the in-memory path (same pivots)."""

from __future__ import annotations

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

import jax  # noqa: E402

from engine.projection.distributed import (  # noqa: E402
    dask_align_layers,
    dask_maxmin_pivots,
    dask_pivot_mds,
    gram_stats,
)
from engine.projection.maxmin import maxmin_pivots  # noqa: E402
from engine.projection.pivot_mds import pivot_mds, random_pivots  # noqa: E402
from engine.projection.procrustes import align_layers  # noqa: E402


def _data(n=3000, d=24, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (5, d))
    return (centres[rng.integers(0, 5, n)] + rng.normal(0, 1, (n, d))).astype(np.float32)


def _close(a, b, tol=1e-5):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= tol * np.abs(b).max(), np.abs(a - b).max() / np.abs(b).max()


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as c, distributed.Client(c) as client:
        yield client


def test_gram_stats_sum_over_blocks_is_the_whole():
    x = _data(500, 6)
    b = x[:7] - x[:7].mean(0)
    whole = gram_stats(x, b)[0]
    parts = gram_stats(x[:123], b)[0] + gram_stats(x[123:], b)[0]
    np.testing.assert_allclose(parts, whole, rtol=1e-5)


def test_random_pivot_layout_equals_in_memory(cluster):
    x = _data()
    key = jax.random.PRNGKey(3)
    ref = np.asarray(pivot_mds(x, k=20, pivots="random", key=key))
    y = dask_pivot_mds(da.from_array(x, chunks=(700, -1)), k=20, pivots="random", key=key)
    assert y.numblocks[0] == 5  # one layout block per row block: nothing of size n meets
    _close(y.compute(), ref)
    np.testing.assert_array_equal(random_pivots(key, len(x), 20),
                                  np.sort(random_pivots(key, len(x), 20)))


def test_maxmin_pivots_and_layout_equal_in_memory(cluster):
    x = _data(2000, 16, seed=1)
    key = jax.random.PRNGKey(0)
    ref_idx = maxmin_pivots(x, 12, key=key)
    idx = dask_maxmin_pivots(da.from_array(x, chunks=(333, -1)), 12, key=key)
    np.testing.assert_array_equal(idx, ref_idx)
    ref = np.asarray(pivot_mds(x, k=12, pivots="maxmin", key=key))
    _close(dask_pivot_mds(da.from_array(x, chunks=(333, -1)), k=12, idx=idx, key=key).compute(), ref)


def test_chained_procrustes_equals_in_memory(cluster):
    rng = np.random.default_rng(2)
    base = rng.normal(size=(1500, 2)).astype(np.float32)
    layouts = []
    for i, angle in enumerate((0.0, 0.7, 2.0, -1.1)):
        c, s = np.cos(angle), np.sin(angle)
        rot = np.array([[c, -s], [s, c]]) * (1.0 + i)
        if i == 2:
            rot = rot @ np.diag([1.0, -1.0])  # a mirrored layer: the test for mirroring finds it
        layouts.append((base @ rot + rng.normal(0, 0.05, base.shape) + i).astype(np.float32))
    for keep_size in (True, False):
        ref = align_layers(layouts, keep_size=keep_size)
        got = dask_align_layers([da.from_array(y, chunks=(400, -1)) for y in layouts],
                                keep_size=keep_size)
        for r, g in zip(ref, got):
            _close(g.aligned.compute(), r.aligned, tol=2e-5)
            assert bool(r.reflected) == g.reflected
            assert float(r.residual) == pytest.approx(g.residual, abs=1e-5)
    assert got[2].reflected and not got[1].reflected


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="dask array"):
        dask_pivot_mds(np.zeros((5, 2)), k=2, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="dims <= k <= n"):
        dask_pivot_mds(da.zeros((5, 3), chunks=(2, 3)), k=9, key=jax.random.PRNGKey(0))


def test_layout_written_by_the_workers_reads_back_equal(cluster, tmp_path):
    x = _data(1200, 8, seed=4)
    key = jax.random.PRNGKey(1)
    ref = np.asarray(pivot_mds(x, k=10, pivots="random", key=key))
    y = dask_pivot_mds(da.from_array(x, chunks=(500, -1)), k=10, pivots="random", key=key,
                       out=tmp_path / "layout")
    assert sorted(p.name for p in (tmp_path / "layout").iterdir()) == [
        "block-00000.npy", "block-00001.npy", "block-00002.npy"]
    _close(y.compute(), ref)
