"""hearsight's own flax models behind the contract: same logits and layers as a direct call."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data.features import ddevis_stft, features, soomro_logmel
from models.architectures import call_with_intermediates
from models.contract import describe, flax_adapter
from models.registry import build_model


def test_ddevis_cnn_behind_the_contract_equals_a_direct_call():
    fp = ddevis_stft()
    net = build_model("ddevis_cnn", n_classes=10, input_shape=fp.shape, seed=0)
    model = flax_adapter(net, features=fp, labels=[str(d) for d in range(10)], spec="ddevis")
    assert model.input.kind == "features" and model.input.feature_params == fp
    assert [(lay.name, lay.kind) for lay in model.layers] == [
        ("conv1", "freq_time"), ("conv2", "freq_time"), ("conv3", "freq_time"),
        ("conv4", "freq_time"), ("dense1", "vector"), ("logits", "vector")]
    wave = jnp.asarray(np.random.default_rng(0).uniform(-0.5, 0.5, fp.n_samples), jnp.float32)
    x = jax.jit(model.input.from_wave)(wave)[None]
    np.testing.assert_allclose(np.asarray(x[0]), np.asarray(features(wave, fp)), atol=1e-6)
    logits, acts = jax.jit(model.apply)(model.params, x)
    ref_logits, ref_acts = call_with_intermediates(net, x)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(ref_logits), atol=1e-5)
    for layer in model.layers:
        assert acts[layer.name].shape == (1, *layer.shape)
        np.testing.assert_allclose(np.asarray(acts[layer.name]),
                                   np.asarray(ref_acts[layer.name]), atol=1e-5)
    assert describe(model)["adapter"] == "flax"


def test_frame_models_are_refused():
    fp = soomro_logmel()
    net = build_model("frame_mlp", n_classes=3, input_shape=(80, 11), seed=0)
    with pytest.raises(ValueError, match=r"takes inputs of shape \(80, 11\)"):
        flax_adapter(net, features=fp, labels=["a", "b", "c"], spec="frames")
