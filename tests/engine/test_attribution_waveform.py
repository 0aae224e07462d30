"""The attribution methods on waveform inputs ``(batch, n_samples)``, and the time-frequency
picture of a waveform's attribution, with known answers.

Toy waveform models over ``N`` samples: a linear model (its gradient is its weight row); a
scale-invariant one that normalises each clip first, as wav2vec2 does (its logit changes only
very near silence on the path from silence, which is why integrated gradients spaces its nodes
in log α on waveforms); a 1-d "conv" layer of 4-sample means for Grad-CAM over time.
"""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from engine.attribution import (check_batch, grad_cam, gradient_x_input, integrated_gradients,
                                make_baseline, occlusion, path_nodes, saliency, smoothgrad,
                                waveform_attribution_picture, waveform_time_picture)
from engine.attribution.options import default_patch, explain_layers, method_options
from engine.contract_predictor import picture_params, row_frequencies
from models.hooks import intervene

N, C = 64, 3
RNG = np.random.default_rng(0)
WL = jnp.asarray(RNG.normal(size=(C, N)), jnp.float32)
V = jnp.asarray(RNG.normal(size=(C, N)), jnp.float32)
XW = jnp.asarray(RNG.normal(0, 0.3, size=(2, N)), jnp.float32)
TARGET = np.array([0, 2])
SR = 16000
PP = picture_params(SR, SR)  # the display STFT of a 1 s, 16 kHz waveform model: 400 / 160


def linear(x):
    return x @ WL.T


def normalising(x):
    """``V · tanh(normalise(x))``: the logit of ``αx`` is the same for every ``α`` well above
    ``sqrt(1e-10) / std(x)`` ≈ 3e-5."""
    z = (x - x.mean(-1, keepdims=True)) / jnp.sqrt(x.var(-1, keepdims=True) + 1e-10)
    return jnp.tanh(z) @ V.T


def time_acts(x, *, perturb=None, mask=None, replace=None):
    """A "time" layer (batch, N / 4, 2): 4-sample means and twice them; the class-0 logit reads
    channel 0 weighted by ``V[0]``'s block means, class 1 nothing."""
    pooled = x.reshape(x.shape[0], N // 4, 4).mean(-1)
    a = intervene("conv", jnp.stack([pooled, 2 * pooled], -1), perturb=perturb, mask=mask,
                  replace=replace)
    v = V[0].reshape(N // 4, 4).mean(-1)
    return jnp.stack([(a[..., 0] * v).sum(-1), 0.0 * a[..., 1].sum(-1)], -1), {"conv": a}


def test_waveforms_are_named_at_the_boundary():
    with pytest.raises(ValueError, match="waveform=True"):
        saliency(linear, XW, TARGET)  # (batch, n_samples) without the flag
    with pytest.raises(ValueError, match=r"\(batch, n_samples\)"):
        saliency(linear, XW[0], 0, waveform=True)
    x, t = check_batch(XW, 1)  # analyses that only run the model take any batch
    assert x.shape == (2, N) and t.tolist() == [1, 1]


def test_gradient_methods_of_a_linear_waveform_model():
    w = np.asarray(WL)[TARGET]
    np.testing.assert_allclose(saliency(linear, XW, TARGET, waveform=True), w, rtol=1e-6)
    np.testing.assert_allclose(saliency(linear, XW, TARGET, absolute=True, waveform=True),
                               np.abs(w), rtol=1e-6)
    np.testing.assert_allclose(gradient_x_input(linear, XW, TARGET, waveform=True),
                               w * np.asarray(XW), rtol=1e-5, atol=1e-7)
    key = jax.random.PRNGKey(0)
    np.testing.assert_allclose(smoothgrad(linear, XW, TARGET, key=key, n=4, sigma=0.3,
                                          absolute=True, waveform=True), np.abs(w), rtol=1e-5)
    # Absolute SmoothGrad averages magnitudes: never below the magnitude of the mean.
    mean = smoothgrad(normalising, XW, TARGET, key=key, n=8, waveform=True)
    mags = smoothgrad(normalising, XW, TARGET, key=key, n=8, absolute=True, waveform=True)
    assert np.all(np.asarray(mags) >= np.abs(np.asarray(mean)) - 1e-6)


@pytest.mark.parametrize("schedule", ["linear", "log"], ids=["linear", "log"])
def test_integrated_gradients_of_a_linear_waveform_model_is_exact(schedule):
    attr = integrated_gradients(linear, XW, TARGET, baseline="silence", floor=0.0, steps=64,
                                schedule=schedule, waveform=True)
    np.testing.assert_allclose(attr, np.asarray(WL)[TARGET] * np.asarray(XW), rtol=1e-4,
                               atol=1e-6)


def test_log_nodes_integrate_what_linear_nodes_miss():
    """Completeness on a model that normalises each clip: from silence its logit moves only
    for α below ~1e-4; Gauss-Legendre nodes on [0, 1] miss that, nodes in log α do not."""
    expected = np.asarray(normalising(XW) - normalising(jnp.zeros_like(XW)))[[0, 1], TARGET]
    assert np.all(np.abs(expected) > 0.1)
    sums = {}
    for schedule in ("linear", "log"):
        a = integrated_gradients(normalising, XW, TARGET, baseline="silence", floor=0.0,
                                 steps=64, schedule=schedule, waveform=True)
        sums[schedule] = np.asarray(a).sum(axis=1)
    np.testing.assert_allclose(sums["log"], expected, rtol=0.02)
    assert np.all(np.abs(sums["linear"] - expected) > 0.2 * np.abs(expected))


def test_log_nodes_are_a_quadrature_of_the_unit_interval():
    alphas, w = path_nodes(64, schedule="log", alpha_min=1e-12)
    assert alphas.min() > 1e-12 and alphas.max() < 1.0
    np.testing.assert_allclose(w.sum(), 1.0 - 1e-12, rtol=1e-9)  # ∫ 1 dα over [1e-12, 1]
    np.testing.assert_allclose((w * alphas).sum(), 0.5, rtol=1e-9)  # ∫ α dα
    with pytest.raises(ValueError, match="schedule"):
        path_nodes(8, schedule="cubic")


def test_blur_of_a_waveform_is_scipys_gaussian_along_samples():
    got = make_baseline(XW, "blur", blur_sigma=(4.0, 2.5))
    ref = scipy.ndimage.gaussian_filter1d(np.asarray(XW), 2.5, axis=-1, mode="nearest")
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(make_baseline(XW, "silence", floor=0.0), 0.0)


def occlusion_reference(fn, x, target, window, stride):
    """Brute force: every window of samples set to 0 in a Python loop."""
    p = lambda z: np.asarray(jax.nn.softmax(fn(jnp.asarray(z)), -1))[np.arange(len(z)), target]
    x = np.asarray(x)
    p0, n = p(x), x.shape[1]
    total, count = np.zeros(x.shape), np.zeros(n)
    for s in sorted(set(list(range(0, n - window + 1, stride)) + [n - window])):
        z = x.copy()
        z[:, s:s + window] = 0.0
        total[:, s:s + window] += (p0 - p(z))[:, None]
        count[s:s + window] += 1
    return total / count


@pytest.mark.parametrize("window,stride", [(1, 1), (8, 4), (10, 7)], ids=["1-1", "8-4", "10-7"])
def test_occlusion_of_time_windows_matches_brute_force(window, stride):
    got = occlusion(normalising, XW, TARGET, window=(window,), stride=(stride,), floor=0.0,
                    internal_batch_size=5, waveform=True)
    ref = occlusion_reference(normalising, XW, TARGET, window, stride)
    assert got.shape == XW.shape
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="one entry per axis"):
        occlusion(linear, XW, TARGET, window=(4, 4), stride=(2, 2), waveform=True)


def test_grad_cam_over_time_of_a_waveform_model():
    x = jnp.abs(XW)
    pooled = np.asarray(x).reshape(2, N // 4, 4).mean(-1)
    v = np.asarray(V[0]).reshape(N // 4, 4).mean(-1)
    cam = np.maximum(v.mean() * pooled, 0.0)  # α_0 = mean of v, α_1 = 0
    expected = jax.image.resize(cam, (2, N), method="linear")
    got = grad_cam(time_acts, x, 0, layer="conv", waveform=True)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(grad_cam(time_acts, x, 1, layer="conv", waveform=True), 0.0,
                               atol=1e-7)


def test_grad_cam_over_time_of_a_feature_model_is_the_same_in_every_row():
    def acts_fn(x, *, perturb=None):
        frames = x.mean(axis=1)  # (batch, time): a layer over time of (batch, freq, time)
        a = intervene("t", jnp.stack([frames, -frames], -1), perturb=perturb)
        return jnp.stack([a[..., 0].sum(-1), a[..., 1].sum(-1)], -1), {"t": a}

    x = jnp.asarray(np.abs(RNG.normal(size=(2, 6, 10))), jnp.float32)
    got = np.asarray(grad_cam(acts_fn, x, 0, layer="t"))
    assert got.shape == x.shape
    np.testing.assert_allclose(got, np.broadcast_to(np.asarray(x.mean(1))[:, None], x.shape),
                               rtol=1e-5)


def test_picture_keeps_the_attributions_sum():
    rng = np.random.default_rng(1)
    wave = rng.normal(0, 0.2, SR).astype(np.float32)
    attr = rng.normal(size=SR).astype(np.float32) + 0.05
    for params in (PP, replace(PP, n_frames=60)):  # 60 frames: the rest go to the last frame
        pic = np.asarray(waveform_attribution_picture(attr, wave, params))
        assert pic.shape == (params.n_freq, params.n_frames)
        np.testing.assert_allclose(pic.sum(dtype=np.float64), attr.sum(dtype=np.float64),
                                   rtol=1e-5)


def test_attribution_in_the_second_half_leaves_the_first_halfs_frames_empty():
    rng = np.random.default_rng(2)
    wave = rng.normal(0, 0.2, SR).astype(np.float32)
    attr = np.zeros(SR, np.float32)
    attr[SR // 2:] = rng.normal(size=SR // 2)
    pic = np.asarray(waveform_attribution_picture(attr, wave, PP))
    # Frame j's window spans samples 160 j - 200 ... 160 j + 199: frames 0..48 end before 8000.
    last_empty = (SR // 2 - PP.n_fft // 2) // PP.hop_length - 1
    assert np.abs(pic[:, :last_empty + 1]).max() == 0.0
    assert np.abs(pic[:, SR // 2 // PP.hop_length + 2:]).sum(axis=0).min() > 0
    np.testing.assert_allclose(pic.sum(dtype=np.float64), attr.sum(dtype=np.float64), rtol=1e-5)


def test_a_1khz_tone_puts_the_mass_on_the_1khz_row():
    wave = (0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(SR) / SR)).astype(np.float32)
    pic = np.asarray(waveform_attribution_picture(np.ones(SR, np.float32), wave, PP))
    row = int(np.argmin(np.abs(row_frequencies(PP) - 1000.0)))
    assert row_frequencies(PP)[row] == 1000.0
    # Every frame but the two at the ends (the reflect padding there folds the tone onto
    # itself, the picture's own edge effect) peaks on the 1 kHz row.
    assert set(np.argmax(pic[:, 1:-1], axis=0).tolist()) == {row}
    assert pic[row - 1:row + 2].sum() > 0.95 * pic.sum()


def test_a_silent_frame_spreads_its_share_evenly():
    wave = np.zeros(SR, np.float32)
    pic = np.asarray(waveform_attribution_picture(np.ones(SR, np.float32), wave, PP))
    np.testing.assert_allclose(pic, pic[:1].repeat(PP.n_freq, 0), rtol=1e-6)
    np.testing.assert_allclose(pic.sum(), SR, rtol=1e-5)


def test_a_profile_over_time_is_drawn_as_its_frame_means():
    values = np.zeros(SR, np.float32)
    values[SR // 2:] = 2.0
    pic = np.asarray(waveform_time_picture(values, PP))
    assert pic.shape == (PP.n_freq, PP.n_frames)
    np.testing.assert_allclose(pic, pic[:1].repeat(PP.n_freq, 0))
    np.testing.assert_allclose(pic[0, :45], 0.0, atol=1e-7)
    np.testing.assert_allclose(pic[0, 55:], 2.0, rtol=1e-6)
    np.testing.assert_allclose(waveform_time_picture(np.full(SR, 0.7, np.float32), PP), 0.7,
                               rtol=1e-6)


def test_waveform_options_and_layers():
    assert default_patch((16000,), segment=160) == (160,)
    assert default_patch((16000,)) == (160,)
    opts = method_options((16000,), steps=64, baseline="silence", layer="conv2", floor=0.0,
                          segment=160)
    assert all(o["waveform"] is True for o in opts.values())
    assert opts["occlusion"]["window"] == (320,) and opts["occlusion"]["stride"] == (160,)
    assert opts["integrated_gradients"]["schedule"] == "log"
    assert opts["saliency"]["absolute"] and opts["smoothgrad"]["absolute"]

    def acts_fn(x, **_):
        b = x.shape[0]
        return jnp.zeros((b, 2)), {"c": jnp.zeros((b, 8, 4)), "s": jnp.zeros((b, 8, 5)),
                                   "v": jnp.zeros((b, 5))}

    kinds = {"c": "time", "s": "sequence", "v": "vector"}
    names, hidden = explain_layers(acts_fn, (N,), kinds)
    assert names == ["c", "s"] and list(hidden) == ["v"]
    names, hidden = explain_layers(acts_fn, (4, 16), kinds)  # a feature input: tokens hidden
    assert names == ["c"] and set(hidden) == {"s", "v"} and "tokens" in hidden["s"]
