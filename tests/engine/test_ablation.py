"""Known-answer tests of engine.ablation on a hand-built two-class model."""

import jax.numpy as jnp
import numpy as np
import pytest

from engine import ablation as AB

F, T = 3, 4


def acts_fn(x, *, perturb=None, mask=None, replace=None):
    """Hidden units: 0 = mean of x (the only one the head uses), 1 = mean of x², 2 = constant 1.

    Class 0's logit is h0, class 1's a bias of 0.6: class 0 iff mean(x) > 0.6.
    """
    flat = x.reshape(x.shape[0], -1)
    h = jnp.stack([flat.mean(1), (flat ** 2).mean(1), jnp.ones(x.shape[0])], axis=-1)
    h = AB.intervene("hidden", h, perturb=perturb, mask=mask, replace=replace)
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
    a = AB.intervene("conv", a, perturb=perturb, mask=mask, replace=replace)
    return a.sum(axis=(1, 2)), {"conv": a}


def test_intervene_formula():
    a = jnp.arange(6.0).reshape(2, 3)
    got = AB.intervene("l", a, mask={"l": jnp.array([1.0, 0.0, 0.5])},
                       replace={"l": jnp.array([9.0, 7.0, 2.0])}, perturb={"l": jnp.ones((2, 3))})
    np.testing.assert_allclose(got, [[1.0, 8.0, 3.0], [4.0, 8.0, 4.5]])
    np.testing.assert_array_equal(AB.intervene("other", a, mask={"l": jnp.zeros(3)}), a)


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
