"""Known-answer tests of engine.attribution.gradients (saliency, gradient × input, SmoothGrad)."""

import jax
import numpy as np
import pytest

from engine.attribution import gradient_x_input, saliency, smoothgrad


def test_saliency_of_linear_model_is_its_weight_row(toy):
    np.testing.assert_allclose(saliency(toy.linear, toy.X, toy.TARGET), toy.W[toy.TARGET],
                               rtol=1e-6)
    np.testing.assert_allclose(saliency(toy.linear, toy.X, toy.TARGET, absolute=True),
                               np.abs(toy.W[toy.TARGET]), rtol=1e-6)


def test_gradient_x_input_of_linear_model(toy):
    np.testing.assert_allclose(gradient_x_input(toy.linear, toy.X, toy.TARGET),
                               toy.W[toy.TARGET] * toy.X, rtol=1e-6)


def test_smoothgrad_of_linear_model_is_its_weight_row(toy):
    got = smoothgrad(toy.linear, toy.X, toy.TARGET, key=jax.random.key(0), n=4, sigma=0.5)
    np.testing.assert_allclose(got, toy.W[toy.TARGET], rtol=1e-5)


def test_smoothgrad_is_seeded_and_chunk_independent(toy):
    mlp, X, TARGET = toy.mlp, toy.X, toy.TARGET
    key = jax.random.key(3)
    a = smoothgrad(mlp, X, TARGET, key=key, n=6, sigma=0.2, internal_batch_size=4)
    b = smoothgrad(mlp, X, TARGET, key=key, n=6, sigma=0.2, internal_batch_size=12)
    c = smoothgrad(mlp, X, TARGET, key=jax.random.key(4), n=6, sigma=0.2)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not np.allclose(a, c)
    np.testing.assert_allclose(smoothgrad(mlp, X, TARGET, key=key, n=3, sigma=0.0),
                               saliency(mlp, X, TARGET), rtol=1e-5, atol=1e-7)


def test_boundary_errors(toy):
    linear, X = toy.linear, toy.X
    with pytest.raises(ValueError, match=r"\(batch, freq, time\)"):
        saliency(linear, X[0], 0)
    with pytest.raises(ValueError, match="integer"):
        saliency(linear, X, np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        saliency(linear, X, np.array([0, 1, 2]))
