"""Bucketed jitted forward: no retrace on time length, exact agreement with a direct call."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from engine.forward import make_forward
from models.architectures import DdevisCNN, call_with_intermediates

FLOOR = -4.0
SHAPE = (16, 150)


@pytest.fixture(scope="module")
def model():
    m = DdevisCNN(3, SHAPE, rngs=nnx.Rngs(0))
    m.eval()
    return m


def _direct(model, x_fitted):
    """Unbucketed reference: the model called eagerly on exactly these examples."""
    logits, acts = call_with_intermediates(model, jnp.asarray(x_fitted))
    return np.asarray(logits), {k: np.asarray(v) for k, v in acts.items()}


def _fit_by_hand(x, frames=SHAPE[1]):
    if x.shape[2] >= frames:
        return x[:, :, :frames]
    return np.concatenate([x, np.full((*x.shape[:2], frames - x.shape[2]), FLOOR,
                                      np.float32)], axis=2)


def test_time_lengths_never_retrace_and_results_match(model):
    fwd = make_forward(model, max_batch=8, floor=FLOOR, labels=["a", "b", "c"])
    rng = np.random.default_rng(0)
    calls = [(1, 140), (3, 150), (4, 170), (1, 170), (3, 140), (4, 150)]
    for batch, frames in calls:
        x = rng.uniform(FLOOR, 0, (batch, SHAPE[0], frames)).astype(np.float32)
        logits, acts = fwd(x)
        ref_logits, ref_acts = _direct(model, _fit_by_hand(x))
        assert logits.shape == (batch, 3) and isinstance(logits, np.ndarray)
        np.testing.assert_allclose(logits, ref_logits, rtol=1e-5, atol=1e-5)
        for name in model.layer_names:
            np.testing.assert_allclose(acts[name], ref_acts[name], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(acts["probs"], jax.nn.softmax(ref_logits, axis=-1),
                                   rtol=1e-5, atol=1e-6)
    assert fwd.trace_count == 2  # buckets 1 and 4 only
    assert fwd.labels == ["a", "b", "c"] and fwd.layer_names == model.layer_names


def test_large_batches_run_in_chunks(model):
    fwd = make_forward(model, max_batch=2, floor=FLOOR)
    x = np.random.default_rng(1).uniform(FLOOR, 0, (5, *SHAPE)).astype(np.float32)
    logits, acts = fwd(jnp.asarray(x))
    np.testing.assert_allclose(logits, _direct(model, x)[0], rtol=1e-5, atol=1e-5)
    assert acts["conv4"].shape == (5, 2, 18, 32)
    assert fwd.trace_count == 2  # chunks of 2, 2, 1 → buckets 2 and 1
    assert [fwd.bucket(n) for n in (1, 2, 3, 5)] == [1, 2, 2, 2]


def test_pure_functions_agree_and_differentiate(model):
    fwd = make_forward(model, max_batch=4, floor=FLOOR)
    x = jnp.asarray(np.random.default_rng(2).uniform(FLOOR, 0, (2, *SHAPE)), jnp.float32)
    logits, _ = fwd.apply(fwd.state, x)
    np.testing.assert_allclose(np.asarray(jax.jit(fwd.logits_fn)(fwd.state, x)),
                               np.asarray(logits), rtol=1e-5, atol=1e-5)
    # Gradient of a logit w.r.t. the input, checked against a central finite difference.
    f = jax.jit(lambda v: fwd.logits_fn(fwd.state, v)[0, 1])
    g = np.asarray(jax.grad(f)(x))
    direction = np.zeros_like(g)
    direction[0, 5, 20] = 1.0
    eps = 1e-2
    fd = (f(x + eps * direction) - f(x - eps * direction)) / (2 * eps)
    assert g[1].max() == 0.0 and g[1].min() == 0.0  # example 1 does not affect example 0
    np.testing.assert_allclose(g[0, 5, 20], float(fd), rtol=0.05, atol=1e-3)


def test_bad_inputs_are_rejected(model):
    fwd = make_forward(model, floor=FLOOR)
    with pytest.raises(ValueError, match=r"\(batch, 16, time\)"):
        fwd(np.zeros((2, 15, 150), np.float32))
    with pytest.raises(ValueError, match="input_shape"):
        make_forward(object())
