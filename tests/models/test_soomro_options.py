"""SoomroCNN's options: per-row input normalisation removes a stationary channel response, the
time-pooled head ignores where a word sits, and a checkpoint rebuilds the options it was
trained with (older checkpoints, without options, still load as the original model)."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from data.features import soomro_logmel
from models.architectures import SoomroCNN, normalise_rows
from models.checkpoint import load_checkpoint, save_checkpoint
from models.registry import build_model

SHAPE = (80, 90)


def _model(**options):
    return build_model("soomro_cnn", n_classes=5, input_shape=SHAPE, seed=3, options=options)


def _logits(model, x):
    model.eval()
    return np.asarray(model(jnp.asarray(x)))


def _features(seed=0, n=3):
    return np.random.default_rng(seed).uniform(-5.0, 0.0, (n, *SHAPE)).astype(np.float32)


def _row_offsets(seed=1):
    # a microphone response: a constant per feature row (log units), the same at every frame
    return np.random.default_rng(seed).normal(0.0, 0.7, (1, SHAPE[0], 1)).astype(np.float32)


@pytest.mark.parametrize("norm", ["mean", "meanstd"])
def test_input_norm_removes_a_constant_offset_per_row(norm):
    x, c = _features(), _row_offsets()
    model = _model(input_norm=norm)
    np.testing.assert_allclose(_logits(model, x + c), _logits(model, x), atol=1e-4)
    # the original model is changed by the same offset (so the check above can fail)
    plain = _model()
    assert np.abs(_logits(plain, x + c) - _logits(plain, x)).max() > 1e-2


def test_normalise_rows_known_values():
    x = jnp.asarray([[[1.0, 3.0], [-5.0, -5.0]]])  # rows: mean 2 (std 1); constant -5
    np.testing.assert_allclose(np.asarray(normalise_rows(x)), [[[-1.0, 1.0], [0.0, 0.0]]])
    np.testing.assert_allclose(np.asarray(normalise_rows(x, std=True)),
                               [[[-1 / 1.1, 1 / 1.1], [0.0, 0.0]]], rtol=1e-6)


def _word_at(start, width=16):
    x = np.full((1, *SHAPE), -5.0, np.float32)
    x[0, 10:50, start:start + width] = np.random.default_rng(4).uniform(-3, 0, (40, width))
    return x


def test_pooled_head_does_not_care_where_the_word_sits():
    # a shift by a multiple of the 8 frames that three 2x2 poolings span moves the conv3 map
    # by whole columns; max-pooling over time then sees the same patterns
    pooled, flat = _model(head="pool"), _model()
    np.testing.assert_allclose(_logits(pooled, _word_at(16)), _logits(pooled, _word_at(40)),
                               atol=1e-5)
    assert np.abs(_logits(flat, _word_at(16)) - _logits(flat, _word_at(40))).max() > 1e-3
    assert pooled.dense1.kernel[...].shape[0] == (SHAPE[0] // 8) * 32


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match="input_norm"):
        SoomroCNN(5, SHAPE, rngs=nnx.Rngs(0), input_norm="cmvn")
    with pytest.raises(ValueError, match="head"):
        SoomroCNN(5, SHAPE, rngs=nnx.Rngs(0), head="attention")


def _meta(**options):
    return {"arch": "soomro_cnn",
            "arch_kwargs": {"n_classes": 5, "input_shape": list(SHAPE), **options},
            "labels": list("abcde"), "features": soomro_logmel()}


def test_checkpoint_rebuilds_the_options(tmp_path):
    model = _model(input_norm="mean", head="pool")
    path = save_checkpoint(tmp_path / "ck", model, _meta(input_norm="mean", head="pool"))
    loaded, meta = load_checkpoint(path)
    assert (loaded.input_norm, loaded.head) == ("mean", "pool")
    assert meta["arch_kwargs"]["input_norm"] == "mean"
    x = _features(seed=5) + _row_offsets(seed=6)
    np.testing.assert_allclose(_logits(loaded, x), _logits(model, x), atol=1e-6)


def test_checkpoint_without_options_is_the_original_model(tmp_path):
    model = _model()
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "old", model, _meta()))
    assert (loaded.input_norm, loaded.head) == ("", "flatten")
    x = _features(seed=7)
    np.testing.assert_array_equal(_logits(loaded, x), _logits(model, x))


def test_dropout_acts_only_while_training_and_is_absent_by_default():
    x = jnp.asarray(_features(seed=8, n=2))
    model = _model(dropout=0.5)
    model.train()
    assert np.abs(np.asarray(model(x)) - np.asarray(model(x))).max() > 1e-3
    model.eval()
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(model(x)))
    assert not hasattr(_model(), "drop")  # the original model's state is unchanged
    with pytest.raises(ValueError, match="dropout"):
        _model(dropout=1.0)


def test_fit_config_options_read_back_from_json_equal_the_originals():
    from models.fit import FitConfig

    config = FitConfig(arch="soomro_cnn", arch_options=(("input_norm", "mean"), ("head", "pool")))
    assert config.arch_options == (("head", "pool"), ("input_norm", "mean"))
    assert FitConfig(arch="soomro_cnn", arch_options=[["input_norm", "mean"], ["head", "pool"]]) \
        == config == FitConfig(arch="soomro_cnn", arch_options={"head": "pool", "input_norm": "mean"})
    assert config != FitConfig(arch="soomro_cnn", arch_options=(("input_norm", "mean"),))


def test_keep_rows_makes_the_model_deaf_above_them():
    x = _features(seed=9)
    above = x.copy()
    above[:, 56:] = np.random.default_rng(10).uniform(-5.0, 0.0, above[:, 56:].shape)
    below = x.copy()
    below[:, 55] = np.random.default_rng(11).uniform(-5.0, 0.0, below[:, 55].shape)  # kept
    model = _model(input_norm="mean", head="pool", keep_rows=56)
    np.testing.assert_array_equal(_logits(model, above), _logits(model, x))
    assert np.abs(_logits(model, below) - _logits(model, x)).max() > 1e-4
    full = _model(input_norm="mean", head="pool")
    assert np.abs(_logits(full, above) - _logits(full, x)).max() > 1e-3
    with pytest.raises(ValueError, match="keep_rows"):
        _model(keep_rows=81)


def test_channels_and_kernel_set_the_convolutions_and_bad_values_are_refused():
    m = SoomroCNN(35, (80, 90), rngs=nnx.Rngs(0), head="pool", channels=(16, 32, 64), kernel=3)
    assert m.conv1.kernel.shape == (3, 3, 1, 16) and m.conv3.kernel.shape == (3, 3, 32, 64)
    assert m.dense1.kernel.shape == (10 * 64, 512)  # pooled head: 10 rows x 64 channels
    assert m(jnp.zeros((2, 80, 90))).shape == (2, 35)
    paper = SoomroCNN(35, (80, 90), rngs=nnx.Rngs(0))
    assert paper.conv1.kernel.shape == (2, 2, 1, 8) and paper.conv3.kernel.shape == (2, 2, 16, 32)
    for bad in ({"channels": (8, 16)}, {"channels": (8, 0, 32)}, {"kernel": 0}):
        with pytest.raises(ValueError, match="channels must be"):
            SoomroCNN(35, (80, 90), rngs=nnx.Rngs(0), **bad)
