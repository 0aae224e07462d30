"""Known-answer tests of engine.faithfulness (deletion / insertion, Petsiuk et al. 2018)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from engine import faithfulness as FA
from engine.attribution import gradient_x_input, integrated_gradients

RNG = np.random.default_rng(0)
W = jnp.asarray(RNG.normal(size=(2, 3, 4)), jnp.float32)


def linear(x):
    return jnp.einsum("cft,bft->bc", W, x)


PF, PT = 24, 20


def planted_logits(x):
    """Class 0's logit is 4 × the mean of a ReLU detector over rows 8:16, columns 8:16."""
    logit0 = 4.0 * jax.nn.relu(x[:, 8:16, 8:16]).mean(axis=(1, 2))
    return jnp.stack([logit0, jnp.zeros_like(logit0)], axis=-1)


def planted_input(n=3, seed=1):
    x = -1.0 + 0.1 * np.random.default_rng(seed).normal(size=(n, PF, PT))
    x[:, 8:16, 8:16] += 2.0
    return jnp.asarray(x, jnp.float32)


def curve_reference(x, target, attr, base, n_steps, insertion):
    """Brute force with NumPy: sort cells, replace the top k, evaluate."""
    b = x.shape[0]
    out = np.zeros((b, n_steps))
    for e in range(b):
        order = np.argsort(-attr[e].ravel(), kind="stable")
        for s, frac in enumerate(np.linspace(0, 1, n_steps)):
            chosen = np.zeros(x[e].size, bool)
            chosen[order[:int(np.round(frac * x[e].size))]] = True
            chosen = chosen.reshape(x[e].shape)
            z = np.where(chosen, x[e], base[e]) if insertion else np.where(chosen, base[e], x[e])
            p = np.asarray(jax.nn.softmax(linear(jnp.asarray(z[None]))))[0]
            out[e, s] = p[target[e]]
    return out


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
def test_curve_matches_brute_force(mode):
    x = RNG.normal(size=(2, 3, 4)).astype(np.float32)
    attr = RNG.normal(size=(2, 3, 4)).astype(np.float32)
    target = np.array([0, 1])
    got = FA.curve(linear, x, target, attr, mode=mode, n_steps=13, internal_batch_size=5)
    ref = curve_reference(x, target, attr, np.full_like(x, -4.0), 13, mode == "insertion")
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_curve_endpoints_are_input_and_baseline():
    x = jnp.asarray(RNG.normal(size=(2, 3, 4)), jnp.float32)
    target = np.array([1, 0])
    p = lambda z: np.asarray(jax.nn.softmax(linear(z)))[np.arange(2), target]
    d = np.asarray(FA.curve(linear, x, target, x, mode="deletion", baseline="zeros", n_steps=5))
    i = np.asarray(FA.curve(linear, x, target, x, mode="insertion", baseline="zeros", n_steps=5))
    np.testing.assert_allclose(d[:, 0], p(x), rtol=1e-6)
    np.testing.assert_allclose(d[:, -1], 0.5, rtol=1e-6)
    np.testing.assert_allclose(i[:, 0], 0.5, rtol=1e-6)
    np.testing.assert_allclose(i[:, -1], p(x), rtol=1e-6)


def test_auc_is_the_trapezoid_rule():
    curves = RNG.uniform(size=(3, 7))
    np.testing.assert_allclose(FA.auc(curves), np.trapezoid(curves, np.linspace(0, 1, 7), axis=1),
                               rtol=1e-6)
    np.testing.assert_allclose(FA.auc(jnp.ones((1, 4))), [1.0], rtol=1e-6)


def test_patch_ranks_and_ids():
    attr = jnp.asarray([[[1.0, 5.0], [3.0, 2.0]]])
    np.testing.assert_array_equal(FA.patch_ranks(attr), [[3, 0, 1, 2]])
    np.testing.assert_array_equal(FA.patch_ids((3, 5), (2, 2)),
                                  [[0, 0, 1, 1, 2], [0, 0, 1, 1, 2], [3, 3, 4, 4, 5]])
    # Patch means (not sums), so the small edge patch [9] outranks [[1, 2], [3, 4]] (mean 2.5).
    attr = jnp.asarray([[[1.0, 2.0, 9.0], [3.0, 4.0, 0.0]]])
    np.testing.assert_array_equal(FA.patch_ranks(attr, patch=(1, 2)), [[2, 0, 1, 3]])
    r = np.asarray(FA.random_ranks(jax.random.key(0), 4, 10))
    assert all(sorted(row) == list(range(10)) for row in r)
    assert len({tuple(row) for row in r}) > 1


def test_true_attribution_beats_random_on_planted_model():
    x = planted_input()
    attrs = {"ig": integrated_gradients(planted_logits, x, 0, steps=16),
             "gxi": gradient_x_input(planted_logits, x, 0)}
    res = FA.evaluate(planted_logits, x, np.zeros(3, int), attrs, key=jax.random.key(0),
                      patch=(2, 2), n_steps=11)
    for name in ("ig", "gxi"):
        assert np.all(res[name]["deletion_auc"] < res["random"]["deletion_auc"])
        assert np.all(res[name]["insertion_auc"] > res["random"]["insertion_auc"])
        assert res[name]["deletion_curve"].shape == (3, 11)
    summary = FA.faithfulness_summary(res)
    assert summary["ig"]["beats_random"] and summary["gxi"]["beats_random"]
    # The reversed order is the worst possible one: it must lose to random.
    res = FA.evaluate(planted_logits, x, np.zeros(3, int), {"rev": -attrs["ig"]},
                      key=jax.random.key(0), patch=(2, 2), n_steps=11)
    assert not FA.faithfulness_summary(res)["rev"]["beats_random"]


def test_summary_statistics_by_hand():
    part1 = {"m": {"deletion_auc": np.array([0.1, 0.3]), "insertion_auc": np.array([0.9, 0.7])},
             "random": {"deletion_auc": np.array([0.5, 0.5]),
                        "insertion_auc": np.array([0.6, 0.8])}}
    part2 = {"m": {"deletion_auc": np.array([0.2]), "insertion_auc": np.array([0.2])},
             "random": {"deletion_auc": np.array([0.2]), "insertion_auc": np.array([0.7])}}
    s = FA.faithfulness_summary([part1, part2])
    assert s["m"]["deletion_auc_mean"] == pytest.approx(0.2)
    assert s["m"]["deletion_auc_std"] == pytest.approx(np.std([0.1, 0.3, 0.2]))
    assert s["m"]["insertion_auc_mean"] == pytest.approx(0.6)
    assert s["random"]["deletion_auc_mean"] == pytest.approx(0.4)
    assert s["random"]["insertion_auc_mean"] == pytest.approx(0.7)
    assert s["m"]["n"] == 3
    assert s["m"]["beats_random_deletion"] and not s["m"]["beats_random_insertion"]
    assert not s["m"]["beats_random"]
    assert "beats_random" not in s["random"]


def test_boundary_errors():
    x = np.zeros((1, 3, 4), np.float32)
    with pytest.raises(ValueError, match="key for the random order"):
        FA.curve(linear, x, 0)
    with pytest.raises(ValueError, match="must equal x shape"):
        FA.curve(linear, x, 0, np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="mode must be"):
        FA.curve(linear, x, 0, x, mode="both")
    with pytest.raises(ValueError, match="reserved"):
        FA.evaluate(linear, x, 0, {"random": x}, key=jax.random.key(0))
    with pytest.raises(ValueError, match="'random' entry"):
        FA.faithfulness_summary({"m": {}})
