"""Options shared by the Explain page and the faithfulness experiment (engine.attribution.options)."""

import jax
import jax.numpy as jnp

from engine.attribution.options import conv_layer_names, default_patch, method_options, model_fns


def _acts_fn(x, **_):
    conv = jnp.stack([x, -x], axis=-1)  # (batch, freq, time, 2): a 4-D "conv" map
    return conv.mean(axis=(1, 2, 3))[:, None] * jnp.ones((1, 3)), {"conv": conv,
                                                                    "dense": conv.mean((1, 2))}


def test_conv_layers_are_the_four_dimensional_activations():
    assert conv_layer_names(_acts_fn, (8, 6)) == ["conv"]


def test_patch_and_occlusion_window_scale_with_the_input():
    assert default_patch((160, 150)) == (8, 5)  # d-DeVIS's input
    assert default_patch((10, 10)) == (1, 1)
    opts = method_options((160, 150), steps=16, baseline="mean", layer="conv", seed=3)
    assert opts["occlusion"]["window"] == (16, 10) and opts["occlusion"]["stride"] == (8, 5)
    assert opts["integrated_gradients"] == {"steps": 16, "baseline": "mean", "floor": -4.0}
    assert opts["grad_cam"] == {"layer": "conv"}
    assert jnp.array_equal(jax.random.key_data(opts["smoothgrad"]["key"]),
                           jax.random.key_data(jax.random.PRNGKey(3)))


def test_model_fns_fall_back_to_a_view_of_acts_fn():
    class P:
        acts_fn = staticmethod(_acts_fn)

    acts_fn, logits_fn = model_fns(P())
    x = jnp.ones((1, 4, 4))
    assert acts_fn is _acts_fn and jnp.allclose(logits_fn(x), _acts_fn(x)[0])
    assert model_fns(object()) == (None, None)
