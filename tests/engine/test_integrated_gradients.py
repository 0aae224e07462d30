"""Known-answer tests of engine.attribution.integrated_gradients (completeness, exactness)."""

import jax.numpy as jnp
import numpy as np
import pytest

from engine.attribution import integrated_gradients, make_baseline
from engine.attribution.integrated_gradients import _integrated_gradients


@pytest.mark.parametrize("baseline", ["zeros", "silence", "blur"])
def test_integrated_gradients_completeness(toy, baseline):
    mlp, X, TARGET = toy.mlp, toy.X, toy.TARGET
    attr = integrated_gradients(mlp, X, TARGET, baseline=baseline, steps=128)
    base = make_baseline(X, baseline)
    idx = np.arange(2)
    expected = np.asarray(mlp(X))[idx, TARGET] - np.asarray(mlp(base))[idx, TARGET]
    assert np.all(np.abs(expected) > 1e-2)
    np.testing.assert_allclose(np.asarray(attr).sum(axis=(1, 2)), expected, rtol=1e-2)


def test_integrated_gradients_of_linear_model_is_exact(toy):
    attr = integrated_gradients(toy.linear, toy.X, toy.TARGET, baseline="silence", steps=3)
    np.testing.assert_allclose(attr, toy.W[toy.TARGET] * (toy.X + 4.0), rtol=1e-5, atol=1e-5)


def test_integrated_gradients_does_not_depend_on_internal_batch_size(toy):
    mlp, X, TARGET = toy.mlp, toy.X, toy.TARGET
    ref = np.asarray(integrated_gradients(mlp, X, TARGET, steps=16, internal_batch_size=64))
    for ibs in (1, 5, 16):
        got = integrated_gradients(mlp, X, TARGET, steps=16, internal_batch_size=ibs)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_boundary_errors(toy):
    with pytest.raises(ValueError, match="baseline must be one of"):
        integrated_gradients(toy.linear, toy.X, toy.TARGET, baseline="pink")
    with pytest.raises(ValueError, match="positive integer"):
        integrated_gradients(toy.linear, toy.X, toy.TARGET, steps=0)


def test_jitted_cores_compile_once_per_model(toy):
    before = _integrated_gradients._cache_size()
    for seed in range(3):
        x = jnp.asarray(np.random.default_rng(seed).normal(size=(2, toy.F, toy.T)), jnp.float32)
        integrated_gradients(toy.mlp, x, toy.TARGET, steps=8, internal_batch_size=8)
    assert _integrated_gradients._cache_size() - before <= 1
