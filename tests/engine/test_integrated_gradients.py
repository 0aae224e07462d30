"""Known-answer tests of engine.attribution.integrated_gradients (completeness, exactness)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import engine.attribution.batching as batching
from engine.attribution import integrated_gradients, make_baseline
from engine.attribution.batching import MAX_CHUNK_ELEMENTS, rows_per_chunk
from engine.attribution.integrated_gradients import _ig_chunk, ig_chunks


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
    before = _ig_chunk._cache_size()
    for seed in range(3):
        x = jnp.asarray(np.random.default_rng(seed).normal(size=(2, toy.F, toy.T)), jnp.float32)
        integrated_gradients(toy.mlp, x, toy.TARGET, steps=8, internal_batch_size=8)
        integrated_gradients(toy.mlp, x, toy.TARGET, steps=8, internal_batch_size=5)
    # one shape per chunk size: the short last chunk is padded (8 steps in chunks of 5)
    assert _ig_chunk._cache_size() - before <= 2


def test_default_chunk_holds_all_steps_of_a_clip():
    # The Explain page's call: one (160, 150) clip, 64 steps -> one batch of 64 path points.
    assert ig_chunks(1, 64, rows_per_chunk(160 * 150, None)) == (1, 64)
    # Many clips: whole clips per chunk, bounded by the element budget.
    eb, sb = ig_chunks(256, 64, rows_per_chunk(160 * 150, None))
    assert sb == 64 and eb >= 2 and eb * sb * 160 * 150 <= MAX_CHUNK_ELEMENTS
    # Huge inputs: one example, fewer steps per chunk.
    assert ig_chunks(4, 64, rows_per_chunk(400_000, None)) == (1, 10)
    assert ig_chunks(4, 16, 5) == (1, 5) and ig_chunks(4, 16, 40) == (2, 16)


def _traced(fn, x):
    return str(jax.make_jaxpr(fn)(x))


def test_default_runs_the_path_as_one_batch_without_a_loop(toy):
    # A lax.scan/lax.map over chunks ran the d-DeVIS model's convolutions ~3x slower on
    # XLA:CPU than top-level ones (benchmarks/attribution.py: 0.35 vs 1.73 clips/s).
    jaxpr = _traced(lambda x: integrated_gradients(toy.mlp, x, toy.TARGET, steps=16), toy.X)
    assert "scan[" not in jaxpr and "while[" not in jaxpr
    assert jaxpr.count("name=_ig_chunk") == 1


def test_memory_bound_splits_into_chunks_with_the_same_answer(toy, monkeypatch):
    x = jnp.asarray(np.random.default_rng(4).normal(size=(5, toy.F, toy.T)), jnp.float32)
    target = np.array([0, 1, 2, 0, 1])
    ref = np.asarray(integrated_gradients(toy.mlp, x, target, steps=12))
    monkeypatch.setattr(batching, "MAX_CHUNK_ELEMENTS", 2 * 12 * toy.F * toy.T)  # 2 clips
    jaxpr = _traced(lambda z: integrated_gradients(toy.mlp, z, target, steps=12), x)
    assert jaxpr.count("name=_ig_chunk") == 3
    got = integrated_gradients(toy.mlp, x, target, steps=12)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
