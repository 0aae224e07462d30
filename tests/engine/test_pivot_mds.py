"""Known-answer tests of engine.projection.pivot_mds (PivotMDS, its pivots and streaming)."""

import importlib

import jax
import numpy as np
import pytest
from scipy.spatial import procrustes

import engine.projection.maxmin as maxmin
from engine.projection import aligned_empty, classical_mds, pivot_mds
from engine.projection.maxmin import first_pivot, maxmin_pivots
from engine.projection.pivot_mds import _cross_block, _cross_host, _pivot_layout, random_pivots

KEY = jax.random.key(0)


def _plane(rng, n, d, scales=(3.0, 1.0)):
    """Points on a 2-D plane embedded in d dimensions: returns (x (n, d), true coords (n, 2))."""
    z = rng.standard_normal((n, 2)) * np.asarray(scales)
    basis, _ = np.linalg.qr(rng.standard_normal((d, 2)))
    return (z @ basis.T + 5.0).astype(np.float32), z


def _affine_residual(z, y):
    """Relative residual of the best affine map z -> y (0 iff y is a linear image of z)."""
    a = np.c_[z, np.ones(len(z))]
    coef = np.linalg.lstsq(a, np.asarray(y, np.float64), rcond=None)[0]
    return np.sum((a @ coef - y) ** 2) / np.sum((y - np.mean(y, axis=0)) ** 2)


@pytest.mark.parametrize("pivots", ["maxmin", "random"])
def test_all_points_as_pivots_is_classical_mds(pivots):
    x = np.random.default_rng(0).standard_normal((60, 5)).astype(np.float32)
    ref = jax.jit(classical_mds, static_argnames="dims")(x, dims=2)
    got = pivot_mds(x, k=60, pivots=pivots, key=KEY)
    assert procrustes(np.asarray(ref), np.asarray(got))[2] < 1e-8
    # The sign convention makes the layouts equal entry by entry, not just up to rotation.
    np.testing.assert_allclose(got, ref, atol=1e-4)


@pytest.mark.parametrize("gram_rows", [4096, 33])
def test_host_and_device_random_pivot_paths_agree(monkeypatch, gram_rows):
    # gram_rows 33: Gram products of 33 rows inside blocks of 100 (and 3 at each block's end).
    monkeypatch.setattr(importlib.import_module("engine.projection.pivot_mds"), "GRAM_ROWS",
                        gram_rows)
    # NumPy-array input on the CPU backend takes the BLAS path; a jax.Array the jit kernels.
    # The same pivots (same key) must give the same layout, chunked unevenly on purpose.
    x = np.random.default_rng(9).standard_normal((1003, 12)).astype(np.float32)
    host = np.asarray(pivot_mds(x, k=15, pivots="random", key=KEY, chunk=256))
    device = np.asarray(pivot_mds(jax.device_put(x), k=15, pivots="random", key=KEY, chunk=256))
    np.testing.assert_allclose(host, device, atol=1e-4 * np.abs(device).max())
    b = x[:15] - x[:256].mean(axis=0)
    f32, gram, total, shift = _cross_host(x, b, 100)
    ref = -2.0 * x.astype(np.float64) @ b.T
    # F = D - s with s the first block's column means, and its Gram terms over 11 blocks.
    np.testing.assert_allclose(shift, ref[:100].mean(axis=0), rtol=1e-5, atol=1e-4)
    f = ref - shift
    np.testing.assert_allclose(f32, f, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(gram, f.T @ f, rtol=1e-5)
    np.testing.assert_allclose(total, f.sum(axis=0), atol=1e-3 * np.abs(f).sum(axis=0).max())


def _reference_maxmin(x, k, first):
    """Greedy farthest-point pivots as the textbook k passes, float64, lowest index on ties."""
    x = np.asarray(x, np.float64)
    mind, idx = np.full(len(x), np.inf), [first]
    for _ in range(k - 1):
        mind = np.minimum(mind, np.sum((x - x[idx[-1]]) ** 2, axis=1))
        idx.append(int(np.argmax(mind)))
    return idx


def _clusters(rng, n, d):
    centres = rng.standard_normal((8, d)) * 6.0
    return (centres[rng.integers(0, 8, n)] + rng.standard_normal((n, d))).astype(np.float32)


@pytest.mark.parametrize("tight", [False, True])
@pytest.mark.parametrize("data", ["gauss", "clusters", "offset", "grid", "few"])
def test_maxmin_pivots_equal_the_k_pass_reference(monkeypatch, data, tight):
    # tight: small batches, guesses too high and narrow activation, so a few thousand points
    # go through every path: guesses lowered, batches in bound order, many activation scans,
    # the last streamed block overlapping. Default settings: the guesses mostly too low.
    if tight:  # also refreshes gathered a few rows at a time (the memory bound's path)
        monkeypatch.setattr(maxmin, "BATCH", 16)
        monkeypatch.setattr(maxmin, "FIRST_GUESS", 0.999)
        monkeypatch.setattr(maxmin, "WIDEN", 0.99)
        monkeypatch.setattr(maxmin, "REFRESH_ROWS", 100)
    rng = np.random.default_rng(5)
    x = {"gauss": lambda: rng.standard_normal((3001, 24)).astype(np.float32),
         "clusters": lambda: _clusters(rng, 3001, 16),
         "offset": lambda: rng.standard_normal((3001, 8)).astype(np.float32) + 100.0,
         # integer points: exact distances, so many ties, broken by the lowest index; "few"
         # has 8 distinct points for 40 pivots, so all distances reach 0 (then row 0 is chosen)
         "grid": lambda: rng.integers(0, 4, (801, 3)).astype(np.float32),
         "few": lambda: rng.integers(0, 2, (801, 3)).astype(np.float32)}[data]()
    for seed in range(3):
        key = jax.random.key(seed)
        got = maxmin_pivots(x, 40, key=key, chunk=700)
        first = first_pivot(key, len(x))
        assert got.tolist() == _reference_maxmin(x, 40, first)
    device = maxmin_pivots(jax.device_put(x), 40, key=KEY, chunk=700)
    assert device.tolist() == maxmin_pivots(x, 40, key=KEY, chunk=700).tolist()


class _CountingRows:
    """A host matrix that counts the rows read through indexing (the engine's only access)."""

    def __init__(self, x):
        self.x, self.shape, self.dtype, self.ndim, self.rows = x, x.shape, x.dtype, x.ndim, 0

    def __getitem__(self, item):
        out = self.x[item]
        self.rows += out.shape[0] if out.ndim == 2 else 1
        return out


def test_default_pivot_mds_reads_the_data_a_few_times_not_k():
    # Max-min is k greedy choices, but each needs only the points whose bound can still win:
    # the default reads the rows a few times (the first pivot's distances, the layout's
    # distances, the centre's block, the batches re-evaluated), where the k-pass loop read
    # them k + 2 times (21 here).
    rng = np.random.default_rng(6)
    x = _clusters(rng, 20_000, 8)
    counting = _CountingRows(x)
    y = pivot_mds(counting, k=20, key=KEY, chunk=4096)
    assert counting.rows <= 5 * len(x)  # 3.9 n here, padding of the batches included
    np.testing.assert_allclose(y, pivot_mds(x, k=20, key=KEY, chunk=4096), atol=1e-4)


def test_default_pivot_mds_compiles_once_per_shape():
    # The page projects one layer after another with new data: after the first call of a
    # shape nothing compiles again; the last block overlaps the one before, so it is no new shape.
    # A host array on the CPU backend compiles only the first pass's kernel (the first call's
    # cost): the rest is NumPy, the device path's kernels are never traced.
    rng = np.random.default_rng(7)
    unused = (_cross_block, _pivot_layout)
    unused_before = [f._cache_size() for f in unused]
    pivot_mds(rng.standard_normal((5000, 7)).astype(np.float32), k=12, key=KEY, chunk=1024)
    before = maxmin._sqdist_to._cache_size()
    for seed in range(3):
        x = rng.standard_normal((5000, 7)).astype(np.float32) * (seed + 1)
        pivot_mds(x, k=12, key=jax.random.key(seed), chunk=1024)
    assert maxmin._sqdist_to._cache_size() == before
    pivot_mds(rng.standard_normal((3333, 9)).astype(np.float32), k=12, key=KEY, chunk=1024)
    assert maxmin._sqdist_to._cache_size() == before + 1
    assert [f._cache_size() for f in unused] == unused_before


def _reference_layout(x, idx, dims=2):
    """PivotMDS in float64 from the exact squared distances to the pivots (sorted rows)."""
    x = np.asarray(x, np.float64)
    d2 = np.sum((x[:, None, :] - x[np.sort(idx)][None]) ** 2, axis=-1)
    c = -0.5 * (d2 - d2.mean(axis=1, keepdims=True) - d2.mean(axis=0) + d2.mean())
    evals, evecs = np.linalg.eigh(c.T @ c)
    order = np.argsort(evals)[::-1][:dims]
    y = c @ evecs[:, order] / np.sqrt(np.sqrt(evals[order]))
    return y * np.sign(y[np.argmax(np.abs(y), axis=0), np.arange(dims)])


def test_host_layout_keeps_float32_accuracy_far_from_the_origin():
    # The host path forms CᵀC from block Gram sums. Data 10^4 from the origin give D columns
    # whose means are ~500x their spread: DᵀD - n μμᵀ would lose everything (0.93 relative
    # error with the shift removed), the first block's column means as a shift keep it ~1e-4,
    # as the device path's centred copy does.
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((3000, 6)) * [3, 2, 1, .5, .5, .5] + 1e4).astype(np.float32)
    idx = random_pivots(KEY, 3000, 20)
    ref = _reference_layout(x, idx)
    host = np.asarray(pivot_mds(x, k=20, pivots="random", key=KEY, chunk=512))
    device = np.asarray(pivot_mds(jax.device_put(x), k=20, pivots="random", key=KEY, chunk=512))
    scale = np.abs(ref).max()
    assert np.abs(host - ref).max() < 1e-3 * scale
    assert np.abs(device - ref).max() < 1e-3 * scale


def test_first_pivot_is_uniform_and_follows_the_key():
    assert first_pivot(jax.random.key(3), 1000) == first_pivot(jax.random.key(3), 1000)
    assert first_pivot(jax.random.PRNGKey(3), 1000) == first_pivot(jax.random.key(3), 1000)
    draws = [first_pivot(jax.random.key(i), 10) for i in range(3000)]
    assert min(draws) == 0 and max(draws) == 9
    counts = np.bincount(draws, minlength=10)
    assert np.sum((counts - 300) ** 2 / 300) < 27.9  # chi2(9) 0.999 quantile
    assert len({first_pivot(jax.random.key(i), 10**9) for i in range(50)}) == 50


def test_random_pivots_are_a_uniform_subset():
    idx = random_pivots(KEY, 1000, 50)
    assert idx.shape == (50,) and len(set(idx.tolist())) == 50
    assert np.all(np.diff(idx) > 0) and idx.min() >= 0 and idx.max() < 1000
    np.testing.assert_array_equal(idx, random_pivots(KEY, 1000, 50))
    # Uniform: over many keys every index of 0..9 is drawn 3/10 of the time (chi-square).
    counts = np.zeros(10)
    for i in range(2000):
        counts[random_pivots(jax.random.key(i), 10, 3)] += 1
    expected = 2000 * 3 / 10
    assert np.sum((counts - expected) ** 2 / expected) < 27.9  # chi2(9) 0.999 quantile
    with pytest.raises(ValueError, match="k <= n"):
        random_pivots(KEY, 5, 6)


def test_random_pivots_layout_ignores_a_large_offset():
    # Only cross terms enter the random-pivot path; the centre keeps them small in float32.
    x = np.random.default_rng(8).standard_normal((500, 6)).astype(np.float32)
    base = np.asarray(pivot_mds(x, k=20, pivots="random", key=KEY))
    shifted = np.asarray(pivot_mds(x + np.float32(50.0), k=20, pivots="random", key=KEY))
    np.testing.assert_allclose(shifted, base, atol=2e-3 * np.abs(base).max())


def test_pivot_mds_recovers_plane_in_50d():
    x, z = _plane(np.random.default_rng(2), 300, 50)
    y = np.asarray(pivot_mds(x, k=20, key=KEY))
    # The layout spans exactly the plane: a linear image of the true coordinates ...
    assert _affine_residual(z, y) < 1e-8
    # ... and, with spread-out max-min pivots, nearly a similarity transform of them.
    assert procrustes(z, y)[2] < 1e-3


def test_chunked_equals_one_chunk():
    x = np.random.default_rng(3).standard_normal((1000, 6)).astype(np.float32)
    for pivots in ("maxmin", "random"):
        whole = pivot_mds(x, k=12, pivots=pivots, key=KEY, chunk=4096)
        parts = pivot_mds(x, k=12, pivots=pivots, key=KEY, chunk=128)
        np.testing.assert_allclose(parts, whole, rtol=1e-4, atol=1e-4)


def test_large_n_streams_without_n_by_n_matrix():
    # 200k x 200k float32 would be 160 GB; streaming keeps it at n*k plus one chunk.
    rng = np.random.default_rng(4)
    n, d = 200_000, 8
    x = aligned_empty((n, d))
    z = rng.standard_normal((n, 2)).astype(np.float32) * np.float32([2.0, 1.0])
    x[:] = z @ rng.standard_normal((2, d)).astype(np.float32)
    y = np.asarray(pivot_mds(x, k=10, key=KEY, chunk=65536))
    assert y.shape == (n, 2) and np.all(np.isfinite(y))
    assert _affine_residual(z[:5000], y[:5000]) < 1e-6


def test_boundaries_raise_clear_errors():
    x = np.zeros((30, 3), np.float32)
    with pytest.raises(ValueError, match="k <= n"):
        pivot_mds(x, k=31, key=KEY)
    with pytest.raises(ValueError, match="pivots"):
        pivot_mds(x, k=5, pivots="kmeans", key=KEY)
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        pivot_mds(np.zeros(30), key=KEY)
    with pytest.raises(ValueError, match="k <= n"):
        maxmin_pivots(x, 31, key=KEY)
