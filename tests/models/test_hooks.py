"""models.hooks: the one intervention arithmetic, as a function and at every sow point."""

import jax
import jax.numpy as jnp
import numpy as np

from models.hooks import intervene, intervening, make_intervention, tap


def test_intervene_formula():
    a = jnp.arange(6.0).reshape(2, 3)
    got = intervene("l", a, mask={"l": jnp.array([1.0, 0.0, 0.5])},
                    replace={"l": jnp.array([9.0, 7.0, 2.0])}, perturb={"l": jnp.ones((2, 3))})
    np.testing.assert_allclose(got, [[1.0, 8.0, 3.0], [4.0, 8.0, 4.5]])
    np.testing.assert_array_equal(intervene("other", a, mask={"l": jnp.zeros(3)}), a)


def test_mask_without_replace_is_zero_ablation_in_the_activations_dtype():
    a = jnp.arange(6.0, dtype=jnp.bfloat16).reshape(2, 3)
    got = jax.jit(lambda v: intervene("l", v, mask={"l": jnp.array([1.0, 0.0, 1.0])}))(a)
    assert got.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(got, np.float32), [[0.0, 0.0, 2.0], [3.0, 0.0, 5.0]])


def test_taps_apply_the_active_intervention_only_inside_the_block():
    a = jnp.arange(6.0).reshape(2, 3)
    terms = {"mask": {"l": jnp.array([0.0, 1.0, 1.0])}, "replace": {"l": jnp.full(3, 5.0)},
             "perturb": {"l": jnp.full((2, 3), 0.5)}}
    assert make_intervention() is None
    with intervening(make_intervention(**terms)):
        inside = jax.jit(lambda v: tap("l", v))(a)
        other = tap("m", a)
    np.testing.assert_array_equal(inside, intervene("l", a, **terms))
    np.testing.assert_array_equal(other, a)
    np.testing.assert_array_equal(tap("l", a), a)
