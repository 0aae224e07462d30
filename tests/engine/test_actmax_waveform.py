"""Activation maximisation, penalties and strips on a waveform input ``(samples,)``.

A linear model of the raw wave, ``logits = W · x + b``: the gradient of a logit is its weight
row, so one RMS-normalised step moves the wave along ``W_c / rms(W_c)``; a box of ``[-1, 1]``
holds after every step; the strip's L∞ budget and box hold and the target's probability rises.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import softmax

from engine.actmax import make_maximiser, noise_start
from engine.objectives import class_logit, class_prob, l2, total_variation
from engine.strips import strip_frames

S, C = 64, 3
_rng = np.random.default_rng(0)
W = jnp.asarray(_rng.normal(size=(C, S)), jnp.float32)
B = jnp.asarray([1.0, 0.0, 0.0], jnp.float32)


def acts_fn(x):
    logits = x @ W.T + B
    return logits, {"dense1": logits}


def test_one_step_on_a_wave_follows_the_weight_row_and_stays_in_the_box():
    init, step = make_maximiser(acts_fn, class_logit(2), lr=0.01, clip=(-1.0, 1.0),
                                input_shape=(S,))
    x0 = noise_start(jax.random.key(0), 3, (S,), sigma=0.05)
    assert x0.shape == (3, S)
    _, m = step(init(x0, key=jax.random.key(1)))
    w = np.asarray(W[2])
    np.testing.assert_allclose(np.asarray(m["x"]) - np.asarray(x0),
                               np.broadcast_to(0.01 * w / np.sqrt(np.mean(w * w)), (3, S)),
                               atol=1e-6)
    init, step = make_maximiser(acts_fn, class_prob(1), lr=0.5, clip=(-1.0, 1.0),
                                input_shape=(S,))
    state = init(x0, key=jax.random.key(1))
    for _ in range(5):
        state, m = step(state)
    x = np.asarray(m["x"])
    assert x.min() >= -1.0 and x.max() <= 1.0 and np.isclose(np.abs(x).max(), 1.0)
    assert np.all(np.asarray(m["target_prob"]) > softmax(np.asarray(acts_fn(x0)[0]), axis=1)[:, 1])


def test_wave_starts_must_have_the_input_shape():
    init, _ = make_maximiser(acts_fn, class_prob(0), input_shape=(S,))
    with pytest.raises(ValueError, match=r"\(n, 64\), got \(2, 32\)"):
        init(jnp.zeros((2, 32)), key=jax.random.key(0))
    with pytest.raises(ValueError, match="input_shape"):
        make_maximiser(acts_fn, class_prob(0), input_shape=(0,))
    with pytest.raises(ValueError, match="shape of positive ints"):
        noise_start(jax.random.key(0), 2, ())


def test_penalties_of_a_wave_are_its_power_and_sample_steps():
    x = jnp.array([[0.0, 1.0, -1.0, 1.0]])
    np.testing.assert_allclose(l2(2.0)(x), [2.0 * 3 / 4])
    np.testing.assert_allclose(total_variation(1.0, 5.0)(x), [(1 + 2 + 2) / 3])  # no freq axis
    with pytest.raises(ValueError, match=r"\(batch, samples\)"):
        l2(1.0)(jnp.zeros((1, 2, 2, 2)))


def test_strip_of_a_wave_rises_inside_budget_and_box():
    x0 = jnp.asarray(np.random.default_rng(1).uniform(-0.95, 0.95, S), jnp.float32)
    frames = list(strip_frames(acts_fn, x0, 2, n_frames=4, steps_per_frame=3, budget=0.05,
                               clip=(-1.0, 1.0), input_shape=(S,)))
    p = np.array([f.target_prob for f in frames])
    assert np.all(np.diff(p) >= -1e-6) and p[-1] > p[0]
    for f in frames:
        assert f.x.shape == (S,) and np.abs(f.diff).max() <= 0.05 + 1e-6
        assert f.x.min() >= -1.0 and f.x.max() <= 1.0
    with pytest.raises(ValueError, match=r"one input \(64,\)"):
        strip_frames(acts_fn, x0[:32], 0, input_shape=(S,))
