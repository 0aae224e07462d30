"""Known-answer tests of engine.attribution on hand-built pure-JAX models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from engine import attribution as A
from engine.ablation import intervene

F, T, C = 4, 5, 3
RNG = np.random.default_rng(0)
W = jnp.asarray(RNG.normal(size=(C, F, T)), jnp.float32)
B0 = jnp.asarray([0.1, -0.2, 0.3], jnp.float32)
W1 = jnp.asarray(RNG.normal(size=(6, F * T)) * 0.3, jnp.float32)
W2 = jnp.asarray(RNG.normal(size=(C, 6)), jnp.float32)


def linear(x):
    return jnp.einsum("cft,bft->bc", W, x) + B0


def mlp(x):
    h = jnp.tanh(x.reshape(x.shape[0], -1) @ W1.T)
    return jax.nn.softplus(h) @ W2.T


X = jnp.asarray(RNG.normal(size=(2, F, T)), jnp.float32)
TARGET = np.array([0, 2])

# Planted patch: class 0's logit is 4 × the mean of a ReLU "detector" over a patch region of a
# 2×2-average-pooled input; channel 1 detects the opposite and is unused.
PF, PT = 24, 20
PATCH = (slice(8, 16), slice(8, 16))


def planted_acts(x, *, perturb=None, mask=None, replace=None):
    pooled = x.reshape(x.shape[0], PF // 2, 2, PT // 2, 2).mean(axis=(2, 4))
    a = jax.nn.relu(jnp.stack([pooled, -pooled], axis=-1))
    a = intervene("conv", a, perturb=perturb, mask=mask, replace=replace)
    logit0 = 4.0 * a[:, 4:8, 4:8, 0].mean(axis=(1, 2))
    return jnp.stack([logit0, jnp.zeros_like(logit0)], axis=-1), {"conv": a}


def planted_logits(x):
    return planted_acts(x)[0]


def planted_input(n=2, seed=1):
    x = -1.0 + 0.1 * np.random.default_rng(seed).normal(size=(n, PF, PT))
    x[:, PATCH[0], PATCH[1]] += 2.0
    return jnp.asarray(x, jnp.float32)


def patch_mass(m):
    m = np.asarray(m)
    return m[:, PATCH[0], PATCH[1]].sum(axis=(1, 2)) / m.sum(axis=(1, 2))


def test_saliency_of_linear_model_is_its_weight_row():
    np.testing.assert_allclose(A.saliency(linear, X, TARGET), W[TARGET], rtol=1e-6)
    np.testing.assert_allclose(A.saliency(linear, X, TARGET, absolute=True),
                               np.abs(W[TARGET]), rtol=1e-6)


def test_gradient_x_input_of_linear_model():
    np.testing.assert_allclose(A.gradient_x_input(linear, X, TARGET), W[TARGET] * X, rtol=1e-6)


@pytest.mark.parametrize("baseline", ["zeros", "silence", "blur"])
def test_integrated_gradients_completeness(baseline):
    attr = A.integrated_gradients(mlp, X, TARGET, baseline=baseline, steps=128)
    base = A.make_baseline(X, baseline)
    idx = np.arange(2)
    expected = np.asarray(mlp(X))[idx, TARGET] - np.asarray(mlp(base))[idx, TARGET]
    assert np.all(np.abs(expected) > 1e-2)
    np.testing.assert_allclose(np.asarray(attr).sum(axis=(1, 2)), expected, rtol=1e-2)


def test_integrated_gradients_of_linear_model_is_exact():
    attr = A.integrated_gradients(linear, X, TARGET, baseline="silence", steps=3)
    np.testing.assert_allclose(attr, W[TARGET] * (X + 4.0), rtol=1e-5, atol=1e-5)


def test_integrated_gradients_does_not_depend_on_internal_batch_size():
    ref = np.asarray(A.integrated_gradients(mlp, X, TARGET, steps=16, internal_batch_size=64))
    for ibs in (1, 5, 16):
        got = A.integrated_gradients(mlp, X, TARGET, steps=16, internal_batch_size=ibs)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_smoothgrad_of_linear_model_is_its_weight_row():
    got = A.smoothgrad(linear, X, TARGET, key=jax.random.key(0), n=4, sigma=0.5)
    np.testing.assert_allclose(got, W[TARGET], rtol=1e-5)


def test_smoothgrad_is_seeded_and_chunk_independent():
    key = jax.random.key(3)
    a = A.smoothgrad(mlp, X, TARGET, key=key, n=6, sigma=0.2, internal_batch_size=4)
    b = A.smoothgrad(mlp, X, TARGET, key=key, n=6, sigma=0.2, internal_batch_size=12)
    c = A.smoothgrad(mlp, X, TARGET, key=jax.random.key(4), n=6, sigma=0.2)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not np.allclose(a, c)
    np.testing.assert_allclose(A.smoothgrad(mlp, X, TARGET, key=key, n=3, sigma=0.0),
                               A.saliency(mlp, X, TARGET), rtol=1e-5, atol=1e-7)


def test_blur_baseline_matches_scipy():
    x = RNG.normal(size=(1, 30, 25)).astype(np.float32)
    got = A.make_baseline(jnp.asarray(x), "blur", blur_sigma=(2.0, 1.5))
    ref = scipy.ndimage.gaussian_filter(x[0], sigma=(2.0, 1.5), mode="nearest")
    np.testing.assert_allclose(got[0], ref, rtol=1e-4, atol=1e-5)


def test_grad_cam_hand_computed():
    v = jnp.asarray(RNG.normal(size=(F, T)) + 0.5, jnp.float32)

    def acts_fn(x, *, perturb=None):
        a = intervene("c", jnp.stack([x, 2.0 * x], axis=-1), perturb=perturb)
        logits = jnp.stack([(a[..., 0] * v).sum((1, 2)), 0.0 * a[..., 1].sum((1, 2))], -1)
        return logits, {"c": a}

    x = jnp.abs(X)
    expected = np.maximum(float(v.mean()) * np.asarray(x), 0.0)
    np.testing.assert_allclose(A.grad_cam(acts_fn, x, 0, layer="c"), expected, rtol=1e-5)
    np.testing.assert_allclose(A.grad_cam(acts_fn, x, 1, layer="c"), 0.0, atol=1e-7)


def test_grad_cam_finds_planted_patch():
    x = planted_input()
    cam = np.asarray(A.grad_cam(planted_acts, x, 0, layer="conv"))
    assert cam.shape == x.shape
    for m in cam:
        f, t = np.unravel_index(np.argmax(m), m.shape)
        assert 8 <= f < 16 and 8 <= t < 16
    assert np.all(patch_mass(cam) > 0.8)


def occlusion_reference(fn, x, target, window, stride, fill):
    """Brute force: loop over windows in Python with NumPy bookkeeping."""
    p = lambda z: np.asarray(jax.nn.softmax(fn(jnp.asarray(z)), -1))[np.arange(len(z)), target]
    p0, (b, f, t) = p(x), x.shape
    total, count = np.zeros(x.shape), np.zeros((f, t))
    fs = sorted(set(list(range(0, f - window[0] + 1, stride[0])) + [f - window[0]]))
    ts = sorted(set(list(range(0, t - window[1] + 1, stride[1])) + [t - window[1]]))
    for i in fs:
        for j in ts:
            z = np.array(x)
            z[:, i:i + window[0], j:j + window[1]] = fill
            total[:, i:i + window[0], j:j + window[1]] += (p0 - p(z))[:, None, None]
            count[i:i + window[0], j:j + window[1]] += 1
    return total / count


@pytest.mark.parametrize("window,stride", [((1, 1), (1, 1)), ((2, 3), (1, 2)), ((3, 2), (2, 2))])
def test_occlusion_matches_brute_force(window, stride):
    got = A.occlusion(mlp, X, TARGET, window=window, stride=stride, baseline="zeros",
                      internal_batch_size=7)
    ref = occlusion_reference(mlp, np.asarray(X), TARGET, window, stride, 0.0)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


def test_occlusion_finds_planted_patch():
    x = planted_input()
    occ = np.asarray(A.occlusion(planted_logits, x, 0, window=(2, 2), stride=(1, 1)))
    for m in occ:
        f, t = np.unravel_index(np.argmax(m), m.shape)
        assert 8 <= f < 16 and 8 <= t < 16
    assert np.all(patch_mass(occ) > 0.8)


def test_attribute_dispatches_and_validates():
    np.testing.assert_allclose(A.attribute("saliency", X, TARGET, logits_fn=linear), W[TARGET])
    x = planted_input()
    np.testing.assert_allclose(
        A.attribute("grad_cam", x, 0, acts_fn=planted_acts, layer="conv"),
        A.grad_cam(planted_acts, x, 0, layer="conv"))
    got = A.attribute("gradient_x_input", x, 0, acts_fn=planted_acts)
    np.testing.assert_allclose(got, A.gradient_x_input(planted_logits, x, 0), rtol=1e-6)
    assert set(A.METHODS) >= {"saliency", "integrated_gradients", "smoothgrad", "occlusion"}
    with pytest.raises(ValueError, match="unknown attribution method"):
        A.attribute("lime", X, TARGET, logits_fn=linear)
    with pytest.raises(ValueError, match="needs acts_fn"):
        A.attribute("grad_cam", X, TARGET, logits_fn=linear, layer="c")


def test_boundary_errors():
    with pytest.raises(ValueError, match=r"\(batch, freq, time\)"):
        A.saliency(linear, X[0], 0)
    with pytest.raises(ValueError, match="integer"):
        A.saliency(linear, X, np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        A.saliency(linear, X, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="baseline must be one of"):
        A.integrated_gradients(linear, X, TARGET, baseline="pink")
    with pytest.raises(ValueError, match="not among"):
        A.grad_cam(planted_acts, planted_input(), 0, layer="dense9")
    with pytest.raises(ValueError, match="larger than the input"):
        A.occlusion(linear, X, TARGET, window=(8, 2))
    with pytest.raises(ValueError, match="positive integer"):
        A.integrated_gradients(linear, X, TARGET, steps=0)


def test_jitted_cores_compile_once_per_model():
    before = A._integrated_gradients._cache_size()
    for seed in range(3):
        x = jnp.asarray(np.random.default_rng(seed).normal(size=(2, F, T)), jnp.float32)
        A.integrated_gradients(mlp, x, TARGET, steps=8, internal_batch_size=8)
    assert A._integrated_gradients._cache_size() - before <= 1
