"""Autoencoder projection: reconstructs a plane, is a fixed map, is deterministic from its key."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from engine.projection import (AEProjection, fit_ae_projection, procrustes_distance, project_ae,
                               trustworthiness)


@pytest.fixture(scope="module")
def plane():
    """512 points uniform on a square, embedded by an orthonormal map into 20-D, scaled, shifted."""
    rng = np.random.default_rng(0)
    z = rng.uniform(-1.0, 1.0, (512, 2))
    q, _ = np.linalg.qr(rng.standard_normal((20, 2)))
    x = (3.0 * z @ q.T + 1.0).astype(np.float32)
    return z, x


@pytest.fixture(scope="module")
def trained(plane):
    _, x = plane
    return fit_ae_projection(x, key=jax.random.key(0), epochs=150, batch_size=64, lr=1e-3)


def test_reconstructs_a_plane_and_its_code_matches_the_plane(plane, trained):
    z, x = plane
    ae = trained
    # Standardisation uses the training statistics (known: column mean and std of x).
    np.testing.assert_allclose(ae.mean, x.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(ae.std, x.std(axis=0), rtol=1e-4)
    recon = np.asarray(ae.reconstruct(x))
    mse = np.mean(((recon - x) / x.std(axis=0)) ** 2)
    # The data are exactly 2-D, so a 2-D bottleneck can reconstruct them: MSE (standardised
    # units, total variance 1 per column) near 0. Observed ~1e-4..5e-3 over keys; bound 0.02.
    assert mse < 0.02
    code = np.asarray(ae.transform(x))
    assert code.shape == (512, 2)
    # The ReLU encoder warps the plane (piecewise linear), so the code matches the true plane
    # coordinates only up to a smooth deformation. Loose bounds: PD < 0.6 (observed 0.16..0.46
    # over keys; a random layout scores ~1) and trustworthiness > 0.95 (observed >= 0.966).
    assert procrustes_distance(z, code) < 0.6
    assert trustworthiness(z, code, k=10) > 0.95
    rand = np.random.default_rng(1).standard_normal((512, 2))
    assert procrustes_distance(z, rand) > 0.9  # the bound above separates good from random


def test_is_a_fixed_map(plane, trained):
    _, x = plane
    full = np.asarray(trained.transform(x))
    np.testing.assert_array_equal(full, np.asarray(trained.transform(x)))
    # Rows are encoded independently: a subset (and any chunking) gives the subset's rows.
    idx = np.array([5, 17, 300, 511, 0])
    np.testing.assert_allclose(np.asarray(trained.transform(x[idx])), full[idx], atol=1e-5)
    np.testing.assert_allclose(np.asarray(trained.transform(x, chunk=100)), full, atol=1e-5)
    # ... and equals the encoder written out by hand (ReLU between layers, linear bottleneck).
    h = (x - np.asarray(trained.mean)) / np.asarray(trained.std)
    for i, (w, b) in enumerate(trained.encoder):
        h = h @ np.asarray(w) + np.asarray(b)
        h = np.maximum(h, 0.0) if i < len(trained.encoder) - 1 else h
    np.testing.assert_allclose(full, h, atol=1e-4)


def test_architecture_is_d_100_10_2_with_symmetric_decoder(trained):
    assert [w.shape for w, _ in trained.encoder] == [(20, 100), (100, 10), (10, 2)]
    assert [w.shape for w, _ in trained.decoder] == [(2, 10), (10, 100), (100, 20)]
    assert trained.dims == 2
    assert 1 <= int(trained.epochs_run) <= 150 and np.isfinite(float(trained.valid_mse))


def test_deterministic_from_key_and_jit_friendly(plane):
    _, x = plane
    x = x[:128]
    kw = dict(hidden=(16, 4), epochs=5, batch_size=32)
    a = fit_ae_projection(x, key=jax.random.key(3), **kw)
    b = fit_ae_projection(x, key=jax.random.key(3), **kw)
    c = fit_ae_projection(x, key=jax.random.key(4), **kw)
    np.testing.assert_array_equal(np.asarray(a.transform(x)), np.asarray(b.transform(x)))
    assert not np.allclose(np.asarray(a.transform(x)), np.asarray(c.transform(x)))
    # The result is a pytree: it passes through jit as an argument.
    enc = jax.jit(lambda ae, v: ae.transform(v))(a, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(enc), np.asarray(a.transform(x)), atol=1e-5)
    leaves = jax.tree.leaves(a)
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    y = project_ae(x, x[:10], key=jax.random.key(3), **kw)
    np.testing.assert_allclose(np.asarray(y), np.asarray(a.transform(x[:10])), atol=1e-6)


def test_constant_columns_do_not_break_standardisation(plane):
    # Dead ReLU units are constant columns: their std is set to 1 instead of dividing by 0.
    x = plane[1][:128].copy()
    x[:, 18:] = 0.0
    ae = fit_ae_projection(x, key=jax.random.key(3), hidden=(16, 4), epochs=5, batch_size=32)
    np.testing.assert_array_equal(np.asarray(ae.std)[18:], [1.0, 1.0])
    assert np.all(np.isfinite(np.asarray(ae.transform(x))))


def test_rejects_bad_input(plane, trained):
    _, x = plane
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="shape"):
        fit_ae_projection(x[:, 0], key=key)
    with pytest.raises(ValueError, match="NaN"):
        fit_ae_projection(np.full((8, 3), np.nan), key=key)
    with pytest.raises(ValueError, match="epochs"):
        fit_ae_projection(x, key=key, epochs=0)
    with pytest.raises(ValueError, match="holdout"):
        fit_ae_projection(x, key=key, holdout=0.7)
    with pytest.raises(ValueError, match=r"\(n, 20\)"):
        trained.transform(x[:, :5])
    with pytest.raises(ValueError, match="same d"):
        project_ae(x, x[:, :5], key=key)
    assert isinstance(trained, AEProjection)
