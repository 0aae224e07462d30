"""The model contract validates at the boundary and describes any model (no torch needed)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data.features import soomro_logmel
from models.contract import (
    InputSpace,
    Inverse,
    LayerInfo,
    LoadedModel,
    describe,
    load_model,
    parameter_count,
)


def _linear_model() -> LoadedModel:
    """A linear 'classifier' of 8-sample waveforms: logits = x @ w, one vector layer."""
    w = jnp.arange(16.0).reshape(8, 2) / 16

    def apply(params, x):
        h = x @ params["w"]
        return h, {"dense": h}

    return LoadedModel(spec="test:linear", input=InputSpace("waveform", 8, 8, (8,)),
                       params={"w": w}, apply=apply, labels=("a", "b"),
                       layers=(LayerInfo("dense", "vector", (2,)),), info={"adapter": "test"})


def test_gradient_of_a_linear_contract_model_is_its_weights():
    model = _linear_model()
    g = jax.jit(jax.grad(lambda x: model.apply(model.params, x)[0][0, 1]))(jnp.ones((1, 8)))
    np.testing.assert_allclose(np.asarray(g)[0], np.asarray(model.params["w"][:, 1]))


def test_describe_is_json_ready():
    d = describe(_linear_model())
    assert json.loads(json.dumps(d)) == d
    assert d["parameters"] == 16 and d["labels"] == ["a", "b"] and d["adapter"] == "test"
    assert d["layers"] == [{"name": "dense", "kind": "vector", "shape": [2]}]
    assert d["input"]["duration_s"] == 1.0


def test_layer_lookup_names_the_layers():
    model = _linear_model()
    assert model.layer("dense").kind == "vector" and model.n_classes == 2
    with pytest.raises(ValueError, match=r"no layer 'conv9'; layers: \['dense'\]"):
        model.layer("conv9")


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(kind="image", sample_rate=8, n_samples=8, shape=(8,)), "'waveform' or 'features'"),
    (dict(kind="waveform", sample_rate=8, n_samples=8, shape=(9,)), r"has shape \(8,\)"),
    (dict(kind="features", sample_rate=8, n_samples=8, shape=(2, 3)), "feature function"),
    (dict(kind="features", sample_rate=8, n_samples=8, shape=(2, 3), features=lambda w: w),
     "so that it can be heard"),
    (dict(kind="waveform", sample_rate=0, n_samples=8, shape=(8,)), "positive sample_rate"),
])
def test_input_space_validates(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InputSpace(**kwargs)


def test_feature_space_from_wave_and_length_check():
    fp = soomro_logmel()
    from data.features import features
    space = InputSpace("features", fp.sample_rate, fp.n_samples, fp.shape,
                       features=lambda w: features(w, fp), feature_params=fp)
    x = jax.jit(space.from_wave)(jnp.zeros(fp.n_samples).at[100].set(1.0))
    assert x.shape == fp.shape
    with pytest.raises(ValueError, match="expected 16000 samples"):
        space.from_wave(jnp.zeros(100))
    inv = Inverse(lambda x: x, n_fft=512, hop_length=160)
    assert inv.window == "hann"


def test_layer_info_checks_rank_per_kind():
    assert LayerInfo("c", "freq_time", (4, 5, 6)).shape == (4, 5, 6)
    with pytest.raises(ValueError, match="rank-2 shape"):
        LayerInfo("s", "sequence", (4,))
    with pytest.raises(ValueError, match="kind must be one of"):
        LayerInfo("x", "matrix", (4, 4))


@pytest.mark.parametrize("spec", ["model.onnx", "hf:", "keras:x.h5", "ddevis_cnn"])
def test_load_model_refuses_specs_without_an_adapter(spec):
    with pytest.raises(ValueError, match="names no adapter"):
        load_model(spec)


def test_parameter_count_counts_scalars():
    assert parameter_count({"a": np.zeros((3, 4)), "b": [np.zeros(5)]}) == 17
