"""Activation maximisation and objectives on tiny hand-built pure-JAX models."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.special import softmax

from engine.actmax import latent_start, make_maximiser, noise_start, run, success_rate
from engine.objectives import (TARGET, channel_mean, class_log_prob, class_logit, class_prob, jitter, l2,
                               total_variation, unit)

F, T, C = 6, 8, 4


def linear_model(seed=0, scale=1.0, classes=C):
    """logits = scale * (W · vec(x) + b): the gradient of a logit is its weight row."""
    rng = np.random.default_rng(seed)
    w = jnp.asarray(rng.normal(size=(classes, F * T)), jnp.float32)
    b = jnp.asarray(rng.normal(size=classes), jnp.float32)

    def acts_fn(x):
        logits = scale * (x.reshape(x.shape[0], -1) @ w.T + b)
        return logits, {"dense1": logits}

    return acts_fn, w, b


def tiny_cnn(seed=1):
    """conv 3×3 (3 channels, tanh) → dense 5 (tanh) → logits 3; acts NHWC and (batch, units)."""
    rng = np.random.default_rng(seed)
    k = jnp.asarray(rng.normal(size=(3, 3, 1, 3)) * 0.5, jnp.float32)
    w1 = jnp.asarray(rng.normal(size=(F * T * 3, 5)) * 0.1, jnp.float32)
    w2 = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)

    def acts_fn(x):
        h = jax.lax.conv_general_dilated(x[..., None], k, (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        conv1 = jnp.tanh(h)
        dense1 = jnp.tanh(conv1.reshape(x.shape[0], -1) @ w1)
        return dense1 @ w2, {"conv1": conv1, "dense1": dense1}

    return acts_fn


# --- objectives -----------------------------------------------------------------------------

def test_objective_values_match_hand_and_scipy():
    logits = jnp.array([[1.0, 2.0, 3.0], [0.0, -1.0, 5.0]])
    conv = jnp.arange(2 * 2 * 3 * 4, dtype=jnp.float32).reshape(2, 2, 3, 4)
    acts = {"conv1": conv, "dense1": jnp.array([[7.0, 8.0], [9.0, 10.0]])}
    np.testing.assert_allclose(class_logit(1)(logits, acts), [2.0, -1.0])
    np.testing.assert_allclose(class_prob(2)(logits, acts), softmax(np.asarray(logits), axis=1)[:, 2],
                               rtol=1e-6)
    np.testing.assert_allclose(class_log_prob(0)(logits, acts),
                               np.log(softmax(np.asarray(logits), axis=1)[:, 0]), rtol=1e-5)
    np.testing.assert_allclose(unit("dense1", 1)(logits, acts), [8.0, 10.0])
    np.testing.assert_allclose(unit("conv1", (1, 2, 3))(logits, acts), conv[:, 1, 2, 3])
    np.testing.assert_allclose(channel_mean("conv1", 2)(logits, acts),
                               np.asarray(conv)[..., 2].mean(axis=(1, 2)))


def test_composed_objective_equals_sum_of_parts():
    rng = np.random.default_rng(3)
    logits = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
    acts = {"conv2": jnp.asarray(rng.normal(size=(5, 3, 2, 6)), jnp.float32)}
    a, b = class_prob(3), channel_mean("conv2", 5)
    composed = jax.jit(lambda l, ac: (a + 0.1 * b - 2 * class_logit(0))(l, ac))(logits, acts)
    expected = a(logits, acts) + 0.1 * b(logits, acts) - 2 * logits[:, 0]
    np.testing.assert_allclose(composed, expected, rtol=1e-5, atol=1e-6)
    assert (a + b).target_class == 3 and b.target_class is None
    assert hash(a + 0.1 * b) == hash(class_prob(3) + 0.1 * channel_mean("conv2", 5))


def test_objective_errors_name_the_problem():
    logits, acts = jnp.zeros((2, 3)), {"conv1": jnp.zeros((2, 4, 4, 2))}
    with pytest.raises(ValueError, match="no activation named 'conv9'"):
        unit("conv9", 0)(logits, acts)
    with pytest.raises(ValueError, match="one index per non-batch axis"):
        unit("conv1", 1)(logits, acts)
    with pytest.raises(ValueError, match="out of range"):
        class_prob(3)(logits, acts)
    with pytest.raises(ValueError, match="non-negative"):
        class_prob(-1)


def test_penalties_and_jitter_known_values():
    x = jnp.array([[[0.0, 1.0], [2.0, 4.0]]])
    np.testing.assert_allclose(l2(2.0)(x), [2.0 * (0 + 1 + 4 + 16) / 4])
    np.testing.assert_allclose(total_variation(1.0, 0.0)(x), [1.5])   # |1-0|, |4-2|
    np.testing.assert_allclose(total_variation(0.0, 1.0)(x), [2.5])   # |2-0|, |4-1|
    ramp = jnp.arange(10.0)[None, :].repeat(2, axis=0)
    seen = set()
    for k in jax.random.split(jax.random.key(0), 40):
        y = np.asarray(jitter(2)(ramp, k))
        shifts = [s for s in range(-2, 3) if np.array_equal(y, np.roll(ramp, s, axis=-1))]
        assert len(shifts) == 1
        seen.add(shifts[0])
    assert seen == {-2, -1, 0, 1, 2}


# --- maximiser ------------------------------------------------------------------------------

@pytest.mark.parametrize("objective", [class_logit(1), class_prob(2), unit("dense1", 3),
                                       channel_mean("conv1", 1)], ids=["logit", "prob", "unit", "chan"])
def test_objective_rises_for_each_kind(objective):
    init, step = make_maximiser(tiny_cnn(), objective, lr=0.05)
    state = init(noise_start(jax.random.key(1), 8, (F, T)), key=jax.random.key(2))
    values = []
    for _ in range(20):
        state, m = step(state)
        values.append(np.asarray(m["objective"]))
    values = np.stack(values)                                   # (steps, starts)
    assert np.all(values[-1] > values[0] + 0.05)
    assert np.mean(np.diff(values, axis=0) >= -1e-3) > 0.9    # monotone-ish


def test_noise_to_class_reaches_target_on_linear_softmax():
    acts_fn, _, _ = linear_model()
    for c in (0, C - 1):
        init, step = make_maximiser(acts_fn, class_prob(c))    # Soomro: lr 0.01, RMS grads
        state, m = run(init, step, noise_start(jax.random.key(c), 64, (F, T)), 20,
                       key=jax.random.key(10 + c))
        assert float(np.mean(np.asarray(m["pred"]) == c)) >= 0.95
        probs = softmax(np.asarray(acts_fn(m["x"])[0]), axis=1)
        np.testing.assert_allclose(m["target_prob"], probs[:, c], rtol=1e-5)
        np.testing.assert_allclose(m["probs"], probs, rtol=1e-5, atol=1e-7)  # every class


def test_per_start_targets_match_one_maximiser_per_class_and_compile_once():
    acts_fn, _, _ = linear_model()
    traces = []

    def counted(x):
        traces.append(x.shape)
        return acts_fn(x)

    x0 = noise_start(jax.random.key(3), 12, (F, T))
    targets = np.arange(12) % C
    init, step = make_maximiser(counted, class_prob(TARGET))
    _, mixed = run(init, step, x0, 8, key=jax.random.key(4), target=targets)
    n_traces = len(traces)
    # A different set of targets reuses the compiled step: the class is data, not code.
    run(init, step, x0, 8, key=jax.random.key(4), target=(targets + 1) % C)
    assert len(traces) == n_traces
    for c in range(C):
        fixed_init, fixed_step = make_maximiser(acts_fn, class_prob(c))
        _, fixed = run(fixed_init, fixed_step, x0, 8, key=jax.random.key(4))
        rows = targets == c
        np.testing.assert_allclose(mixed["x"][rows], fixed["x"][rows], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(mixed["target_prob"][rows], fixed["target_prob"][rows], rtol=1e-5)


def test_per_start_target_needs_classes_at_init():
    acts_fn, _, _ = linear_model()
    init, _ = make_maximiser(acts_fn, class_prob(TARGET))
    x0 = noise_start(jax.random.key(0), 2, (F, T))
    with pytest.raises(ValueError, match="TARGET"):
        init(x0, key=jax.random.key(1))
    with pytest.raises(ValueError, match="non-negative"):
        init(x0, key=jax.random.key(1), target=[-1, 0])
    with pytest.raises(ValueError, match="init\\(\\.\\.\\., target=\\)"):
        make_maximiser(acts_fn, class_prob(TARGET), target=1)
    fixed_init, _ = make_maximiser(acts_fn, class_prob(0))
    with pytest.raises(ValueError, match="TARGET"):
        fixed_init(x0, key=jax.random.key(1), target=[0, 0])
    with pytest.raises(ValueError, match="pass target="):
        class_prob(TARGET)(jnp.zeros((2, C)), {})


def test_latent_space_output_lies_in_decoder_range():
    acts_fn, _, _ = linear_model()
    rng = np.random.default_rng(5)
    d = jnp.asarray(rng.normal(size=(F * T, 3)), jnp.float32)
    off = jnp.asarray(rng.normal(size=F * T), jnp.float32)
    decode = lambda z: (z @ d.T + off).reshape(z.shape[0], F, T)
    init, step = make_maximiser(acts_fn, class_logit(1), space="latent", decode_fn=decode)
    state = init(latent_start(jax.random.key(0), 16, 3), key=jax.random.key(1))
    state, m0 = step(state)
    for _ in range(19):
        state, m = step(state)
    assert np.all(np.asarray(m["objective"]) > np.asarray(m0["objective"]) + 1.0)
    resid = np.asarray(m["x"]).reshape(16, -1) - np.asarray(off)
    coef, *_ = np.linalg.lstsq(np.asarray(d), resid.T, rcond=None)
    np.testing.assert_allclose(np.asarray(d) @ coef, resid.T, atol=1e-3)
    np.testing.assert_allclose(m["x"], decode(state.params), atol=1e-5)


def test_rms_normalisation_makes_step_size_lr_whatever_the_scale():
    x0 = noise_start(jax.random.key(0), 5, (F, T))
    trajectories = []
    for scale in (1.0, 1000.0):
        acts_fn, _, _ = linear_model(scale=scale)
        init, step = make_maximiser(acts_fn, class_logit(0), lr=0.01)
        state, xs = init(x0, key=jax.random.key(1)), []
        for _ in range(10):
            state, m = step(state)
            xs.append(np.asarray(m["x"]))
        trajectories.append(np.stack(xs))
    np.testing.assert_allclose(trajectories[0], trajectories[1], atol=1e-5)
    first = trajectories[0][0] - np.asarray(x0)
    np.testing.assert_allclose(np.sqrt(np.mean(first ** 2, axis=(1, 2))), 0.01, rtol=1e-4)


def test_linear_logit_step_follows_weight_row():
    acts_fn, w, _ = linear_model()
    init, step = make_maximiser(acts_fn, class_logit(2), lr=0.1, normalise_grad=None)
    state = init(jnp.zeros((1, F, T)), key=jax.random.key(0))
    state, m = step(state)
    np.testing.assert_allclose(np.asarray(m["x"]).reshape(-1), 0.1 * np.asarray(w[2]), rtol=1e-5)


def test_step_compiles_once_and_clip_and_regularisers_apply():
    traces = []
    base, _, _ = linear_model()

    def acts_fn(x):
        traces.append(1)
        return base(x)

    init, step = make_maximiser(acts_fn, class_prob(1), clip=(-0.05, 0.0), optimizer=optax.adam(0.1),
                                regularisers=(l2(0.1), total_variation(0.1, 0.1), jitter(2)))
    state = init(noise_start(jax.random.key(0), 4, (F, T)), key=jax.random.key(1))
    state, m = step(state)
    n_traces = len(traces)
    for _ in range(30):
        state, m = step(state)
    assert len(traces) == n_traces and int(state.step) == 31
    x = np.asarray(m["x"])
    assert x.min() >= -0.05 and x.max() <= 0.0


def test_run_stops_within_one_step_and_calls_back():
    acts_fn, _, _ = linear_model()
    init, step = make_maximiser(acts_fn, class_prob(0))
    seen = []
    state, m = run(init, step, noise_start(jax.random.key(0), 2, (F, T)), 20, key=jax.random.key(1),
                   callback=lambda i, s, met: seen.append(i), should_stop=lambda: len(seen) >= 3)
    assert seen == [0, 1, 2] and int(state.step) == 3 and m["x"].shape == (2, F, T)


def test_noise_start_statistics_and_success_rate():
    x = np.asarray(noise_start(jax.random.key(0), 200, (F, T), sigma=0.1, mean=-2.0))
    assert x.shape == (200, F, T)
    assert abs(x.mean() + 2.0) < 0.01 and abs(x.std() - 0.1) < 0.005
    r = success_rate(np.array([1, 1, 2, 1]), np.array([1, 0, 1, 1]), 1)
    assert r == dict(own=0.75, separate=0.75, both=0.5)


def test_maximiser_validates_at_the_boundary():
    acts_fn, _, _ = linear_model()
    with pytest.raises(ValueError, match="decode_fn"):
        make_maximiser(acts_fn, class_prob(0), space="latent")
    with pytest.raises(ValueError, match="space"):
        make_maximiser(acts_fn, class_prob(0), space="pixel")
    with pytest.raises(ValueError, match="normalise_grad"):
        make_maximiser(acts_fn, class_prob(0), normalise_grad="l1")
    with pytest.raises(ValueError, match="regularisers"):
        make_maximiser(acts_fn, class_prob(0), regularisers=("tv",))
    init, _ = make_maximiser(acts_fn, class_prob(0))
    with pytest.raises(ValueError, match=r"\(n, freq, time\)"):
        init(jnp.zeros((F, T)), key=jax.random.key(0))
    with pytest.raises(ValueError, match="equal"):
        success_rate(np.array([1]), np.array([1, 2]), 1)


def test_chunked_step_equals_one_batch():
    acts_fn = tiny_cnn()
    x0 = noise_start(jax.random.key(3), 6, (F, T))
    outs = []
    for chunk in (None, 4):          # 4 -> chunks of 3 (largest divisor of 6 not above 4)
        init, step = make_maximiser(acts_fn, class_prob(0), optimizer=optax.adam(0.05),
                                    regularisers=(jitter(1),), chunk_size=chunk)
        state = init(x0, key=jax.random.key(4))
        for _ in range(3):
            state, m = step(state)
        outs.append((np.asarray(m["x"]), np.asarray(m["objective"])))
    for x, obj in outs[1:]:
        np.testing.assert_allclose(x, outs[0][0], atol=1e-5)
        np.testing.assert_allclose(obj, outs[0][1], rtol=1e-4, atol=1e-6)
    assert not np.allclose(outs[0][0], np.asarray(x0), atol=1e-3)
