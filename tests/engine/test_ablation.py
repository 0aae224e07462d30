"""Known-answer tests of engine.ablation on a hand-built two-class model and a small d-DeVIS CNN."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from engine import ablation as AB
from engine.predictor import make_acts_fn
from models.hooks import intervene
from models.registry import build_model

F, T = 3, 4


def acts_fn(x, *, perturb=None, mask=None, replace=None):
    """Hidden units: 0 = mean of x (the only one the head uses), 1 = mean of x², 2 = constant 1.

    Class 0's logit is h0, class 1's a bias of 0.6: class 0 iff mean(x) > 0.6.
    """
    flat = x.reshape(x.shape[0], -1)
    h = jnp.stack([flat.mean(1), (flat ** 2).mean(1), jnp.ones(x.shape[0])], axis=-1)
    h = intervene("hidden", h, perturb=perturb, mask=mask, replace=replace)
    logits = jnp.stack([h[:, 0], jnp.full(x.shape[0], 0.6)], axis=-1)
    return logits, {"hidden": h}


def data():
    """Four examples of class 0 (mean 1) and four of class 1 (mean 0); h0 has mean 0.5."""
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(8, F, T))
    noise -= noise.mean(axis=(1, 2), keepdims=True)
    x = 0.1 * noise + np.repeat([1.0, 0.0], 4)[:, None, None]
    return jnp.asarray(x, jnp.float32), np.repeat([0, 1], 4)


def conv_acts(x, *, perturb=None, mask=None, replace=None):
    a = jnp.stack([x, 2.0 * x + 1.0], axis=-1)
    a = intervene("conv", a, perturb=perturb, mask=mask, replace=replace)
    return a.sum(axis=(1, 2)), {"conv": a}


def test_channel_means_matches_numpy():
    x, _ = data()
    np.testing.assert_allclose(AB.channel_means(acts_fn, x, "hidden"),
                               [0.5, np.mean(np.asarray(x).reshape(8, -1) ** 2, axis=1).mean(),
                                1.0], rtol=1e-5)
    xc = jnp.asarray(np.random.default_rng(1).normal(size=(2, F, T)), jnp.float32)
    np.testing.assert_allclose(AB.channel_means(conv_acts, xc, "conv"),
                               [xc.mean(), 2 * xc.mean() + 1], rtol=1e-5)


def test_switching_off_the_used_channel_hurts_its_class():
    x, y = data()
    np.testing.assert_allclose(AB.ablation_effect(acts_fn, x, y, layer="hidden", channels=[0]),
                               [-1.0, 0.0])
    means = AB.channel_means(acts_fn, x, "hidden")
    got = AB.ablation_effect(acts_fn, x, y, layer="hidden", channels=[0], mode="mean",
                             means=means)
    np.testing.assert_allclose(got, [-1.0, 0.0])


@pytest.mark.parametrize("channels", [[1], [2], [1, 2]])
def test_switching_off_unused_channels_changes_nothing(channels):
    x, y = data()
    np.testing.assert_array_equal(
        AB.ablation_effect(acts_fn, x, y, layer="hidden", channels=channels), [0.0, 0.0])


def test_absent_class_gives_nan():
    x, y = data()
    got = np.asarray(AB.ablation_effect(acts_fn, x[:4], y[:4], layer="hidden", channels=[0]))
    assert got[0] == -1.0 and np.isnan(got[1])


@pytest.mark.parametrize("by", ["probability", "accuracy"])
def test_rank_channels_puts_the_used_channel_first(by):
    x, y = data()
    order, drop = AB.rank_channels(acts_fn, x, y, layer="hidden", by=by, channel_batch_size=2)
    assert int(order[0]) == 0
    assert float(drop[0]) > 0
    np.testing.assert_allclose(drop[1:], 0.0, atol=1e-7)
    if by == "accuracy":
        np.testing.assert_allclose(drop[0], 0.5)  # class 0's four examples of eight fail


def test_rank_channels_probability_drop_by_hand():
    x, y = data()
    _, drop = AB.rank_channels(acts_fn, x, y, layer="hidden")
    h0 = np.asarray(x).reshape(8, -1).mean(1)
    p = lambda l0: np.exp(np.where(y == 0, l0, 0.6)) / (np.exp(l0) + np.exp(0.6))
    np.testing.assert_allclose(drop[0], np.mean(p(h0) - p(0.0)), rtol=1e-5)


def test_boundary_errors():
    x, y = data()
    with pytest.raises(ValueError, match="not among"):
        AB.channel_means(acts_fn, x, "conv9")
    with pytest.raises(ValueError, match=r"channels must be ints in \[0, 3\)"):
        AB.ablation_effect(acts_fn, x, y, layer="hidden", channels=[3])
    with pytest.raises(ValueError, match="needs means"):
        AB.ablation_effect(acts_fn, x, y, layer="hidden", channels=[0], mode="mean")
    with pytest.raises(ValueError, match="mode must be"):
        AB.rank_channels(acts_fn, x, y, layer="hidden", mode="noise")
    with pytest.raises(ValueError, match="by must be"):
        AB.rank_channels(acts_fn, x, y, layer="hidden", by="loss")


@pytest.fixture(scope="module")
def cnn():
    """A d-DeVIS CNN on 16 x 16 inputs (untrained, eval mode), its acts_fn and one input."""
    model = build_model("ddevis_cnn", n_classes=3, input_shape=(16, 16), seed=0)
    model.eval()
    x = np.random.default_rng(5).normal(-2.0, 1.0, (16, 16)).astype(np.float32)
    return model, make_acts_fn(*nnx.split(model)), x


def test_class_probs_are_the_models_softmax(cnn):
    model, acts_fn, x = cnn
    got = AB.class_probs(acts_fn, x)
    assert got.shape == (3,) and isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, np.asarray(jax.nn.softmax(model(jnp.asarray(x)[None]))[0]),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(), 1.0, rtol=1e-6)


def test_masked_probs_with_every_channel_on_are_the_class_probs(cnn):
    _, acts_fn, x = cnn
    np.testing.assert_allclose(AB.masked_probs(acts_fn, x, layer="conv4", on=np.ones(32, bool)),
                               AB.class_probs(acts_fn, x), rtol=1e-6, atol=1e-7)


def test_masking_the_last_conv_layer_off_replaces_it_with_zeros(cnn):
    model, acts_fn, x = cnn
    got = AB.masked_probs(acts_fn, x, layer="conv4", on=np.zeros(32, bool))
    # With conv4 at zero, the pooled map is zero and the head sees only its biases.
    hidden = jax.nn.relu(model.dense1.bias[...])
    ref = jax.nn.softmax(hidden @ model.out.kernel[...] + model.out.bias[...])
    np.testing.assert_allclose(got, np.asarray(ref), rtol=1e-5, atol=1e-6)
    # The same through the protocol's other route: adding minus the activation.
    xb = jnp.asarray(x)[None]
    act = acts_fn(xb)[1]["conv4"]
    zeroed = jax.nn.softmax(acts_fn(xb, perturb={"conv4": -act})[0][0])
    np.testing.assert_allclose(got, np.asarray(zeroed), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, AB.class_probs(acts_fn, x), atol=1e-3)


def test_masked_probs_switch_off_only_the_channels_asked(cnn):
    _, acts_fn, x = cnn
    on = np.ones(32, bool)
    on[[3, 17]] = False
    direct = jax.jit(lambda z, m: jax.nn.softmax(acts_fn(z, mask={"conv4": m})[0][0]))
    np.testing.assert_allclose(AB.masked_probs(acts_fn, x, layer="conv4", on=on),
                               np.asarray(direct(jnp.asarray(x)[None], jnp.asarray(on, jnp.float32))),
                               rtol=1e-6, atol=1e-7)


def test_toggling_channels_compiles_once(cnn):
    _, acts_fn, x = cnn
    AB.masked_probs(acts_fn, x, layer="conv3", on=np.ones(32, bool))
    before = AB._masked_probs._cache_size()
    for c in range(4):
        on = np.ones(32, bool)
        on[c] = False
        AB.masked_probs(acts_fn, x, layer="conv3", on=on)
    assert AB._masked_probs._cache_size() == before
