"""Architectures: intermediate names and shapes, known-answer layers, modes, registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
from flax import nnx

from models.architectures import (DdevisCNN, FrameMLP, SoomroCNN, call_with_intermediates,
                                  frame_windows)
from models.autoencoder import SpectrogramAE
from models.registry import ARCHITECTURES, DEFAULT_FEATURES, build_model


def _act_shapes(model, shape, batch=2):
    """Shapes of the output and every intermediate, by abstract evaluation (no compile).

    ``model`` may itself be abstract (``nnx.eval_shape``), so real-size models cost nothing.
    """
    model.eval()
    graphdef, state = nnx.split(model)

    def run(s, x):
        return call_with_intermediates(nnx.merge(graphdef, s), x)

    out, acts = jax.eval_shape(run, state, jax.ShapeDtypeStruct((batch, *shape), jnp.float32))
    return out.shape, {k: v.shape for k, v in acts.items()}


def test_ddevis_intermediates_at_the_real_input_shape():
    # 'SAME' convs keep the size; each 2x2 VALID pool floors: 160x150 → 80x75 → 40x37 → 20x18.
    model = nnx.eval_shape(lambda: DdevisCNN(10, (160, 150), rngs=nnx.Rngs(0)))
    out, acts = _act_shapes(model, (160, 150))
    assert out == (2, 10)
    assert acts == {"conv1": (2, 160, 150, 16), "conv2": (2, 80, 75, 16),
                    "conv3": (2, 40, 37, 32), "conv4": (2, 20, 18, 32),
                    "dense1": (2, 256), "logits": (2, 10)}
    assert tuple(acts) == model.layer_names
    assert model.dense1.kernel.shape == (10 * 9 * 32, 256)  # after the 4th pool: 10x9x32


def test_soomro_intermediates_at_the_real_input_shape():
    model = nnx.eval_shape(lambda: SoomroCNN(rngs=nnx.Rngs(0)))
    out, acts = _act_shapes(model, (80, 90))
    assert out == (2, 35)
    assert acts == {"conv1": (2, 80, 90, 8), "conv2": (2, 40, 45, 16), "conv3": (2, 20, 22, 32),
                    "dense1": (2, 512), "dense2": (2, 256), "dense3": (2, 128),
                    "logits": (2, 35)}
    assert tuple(acts) == model.layer_names
    assert model.dense1.kernel.shape == (10 * 11 * 32, 512)
    assert model.conv1.kernel.shape == (2, 2, 1, 8)


def test_frame_mlp_names_follow_depth():
    model = FrameMLP(4, (6, 5), hidden=7, depth=3, rngs=nnx.Rngs(0))
    out, acts = _act_shapes(model, (6, 5), batch=3)
    assert out == (3, 4)
    assert acts == {"dense1": (3, 7), "dense2": (3, 7), "dense3": (3, 7), "logits": (3, 4)}
    assert model.layer_names == ("dense1", "dense2", "dense3", "logits")
    big = nnx.eval_shape(lambda: FrameMLP(2, (80, 11), rngs=nnx.Rngs(0)))
    assert big.layer_names[-2] == "dense5" and big.dense1.kernel.shape == (880, 1000)


def test_ddevis_conv1_matches_scipy_correlation():
    # At initialisation BatchNorm (eval) is (x - 0) / sqrt(1 + eps) * 1 + 0.
    model = DdevisCNN(2, (16, 16), rngs=nnx.Rngs(1))
    model.eval()
    x = np.random.default_rng(0).uniform(-4, 0, (1, 16, 16)).astype(np.float32)
    _, acts = nnx.jit(lambda m, v: call_with_intermediates(m, v))(model, jnp.asarray(x))
    k, b = np.asarray(model.conv1.kernel[...]), np.asarray(model.conv1.bias[...])
    for c in (0, 5):
        ref = scipy.signal.correlate2d(x[0], k[:, :, 0, c], mode="same") + b[c]
        ref = np.maximum(ref, 0) / np.sqrt(1 + model.bn1.epsilon)
        np.testing.assert_allclose(np.asarray(acts["conv1"])[0, :, :, c], ref, atol=1e-4)


def test_eval_is_deterministic_and_train_dropout_is_not():
    model = DdevisCNN(3, (16, 16), rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(2).uniform(-4, 0, (4, 16, 16)), jnp.float32)
    fwd = nnx.jit(lambda m, v: m(v))
    model.eval()
    a, b = fwd(model, x), fwd(model, x)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    model.train()
    c, d = fwd(model, x), fwd(model, x)  # dropout draws fresh masks each call
    assert not np.allclose(np.asarray(c), np.asarray(d))


def test_autoencoder_shapes_range_and_composition():
    ae = SpectrogramAE((13, 11), latent=5, floor=-4.0, rngs=nnx.Rngs(0))
    ae.eval()
    x = jnp.asarray(np.random.default_rng(3).uniform(-4, 0, (2, 13, 11)), jnp.float32)
    (recon, acts) = nnx.jit(lambda m, v: call_with_intermediates(m, v))(ae, x)
    assert recon.shape == (2, 13, 11) and acts["latent"].shape == (2, 5)
    assert float(recon.min()) > -4.0 and float(recon.max()) < 0.0
    composed = nnx.jit(lambda m, v: m.decode(m.encode(v)))(ae, x)
    np.testing.assert_allclose(np.asarray(composed), np.asarray(recon), atol=1e-6)
    out, acts = _act_shapes(nnx.eval_shape(lambda: SpectrogramAE(rngs=nnx.Rngs(0))), (80, 90))
    assert out == (2, 80, 90) and acts["latent"] == (2, 256) and acts["enc3"] == (2, 10, 12, 64)


def test_frame_windows_known_answer():
    feats = (np.arange(2 * 3 * 6, dtype=np.float32).reshape(2, 3, 6) - 50.0)
    w = frame_windows(feats, context=3, floor=-99.0)
    assert w.shape == (2, 6, 3, 3)
    np.testing.assert_array_equal(w[:, :, :, 1], feats.transpose(0, 2, 1))  # centre column
    np.testing.assert_array_equal(w[1, 0, 2], [-99.0, feats[1, 2, 0], feats[1, 2, 1]])
    np.testing.assert_array_equal(w[0, 5, 0], [feats[0, 0, 4], feats[0, 0, 5], -99.0])
    h = frame_windows(feats, context=3, hop=4)
    assert h.shape == (2, 2, 3, 3)  # centres at frames 0 and 4
    np.testing.assert_array_equal(h[:, 1], w[:, 4])
    assert frame_windows(feats, context=3)[0, 0, 0, 0] == feats.min()  # default pad = min


def test_models_reject_wrong_shapes():
    model = SoomroCNN(2, (16, 16), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\(batch, 16, 16\)"):
        model(jnp.zeros((1, 16, 15)))
    with pytest.raises(ValueError, match="too small"):
        DdevisCNN(2, (8, 30), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="context"):
        frame_windows(np.zeros((1, 2, 3)), context=0)


def test_registry_names_features_and_factories():
    assert set(ARCHITECTURES) == set(DEFAULT_FEATURES)
    assert DEFAULT_FEATURES["ddevis_cnn"] == "stft"
    assert {DEFAULT_FEATURES[a] for a in ("soomro_cnn", "frame_mlp", "spectrogram_ae")} == {
        "logmel"}
    kinds = {"ddevis_cnn": DdevisCNN, "soomro_cnn": SoomroCNN, "frame_mlp": FrameMLP,
             "spectrogram_ae": SpectrogramAE}
    for name, cls in kinds.items():
        model = build_model(name, n_classes=3, input_shape=(16, 16), seed=1)
        assert isinstance(model, cls) and model.input_shape == (16, 16)
    a = build_model("soomro_cnn", n_classes=3, input_shape=(16, 16), seed=4)
    b = build_model("soomro_cnn", n_classes=3, input_shape=(16, 16), seed=4)
    c = build_model("soomro_cnn", n_classes=3, input_shape=(16, 16), seed=5)
    np.testing.assert_array_equal(np.asarray(a.conv1.kernel[...]), np.asarray(b.conv1.kernel[...]))
    assert not np.allclose(np.asarray(a.conv1.kernel[...]), np.asarray(c.conv1.kernel[...]))
