"""Known-answer tests of engine.attribution.grad_cam (hand-computed map, planted patch)."""

import jax.numpy as jnp
import numpy as np
import pytest

from engine.attribution import grad_cam
from models.hooks import intervene


def test_grad_cam_hand_computed(toy):
    v = jnp.asarray(np.random.default_rng(2).normal(size=(toy.F, toy.T)) + 0.5, jnp.float32)

    def acts_fn(x, *, perturb=None):
        a = intervene("c", jnp.stack([x, 2.0 * x], axis=-1), perturb=perturb)
        logits = jnp.stack([(a[..., 0] * v).sum((1, 2)), 0.0 * a[..., 1].sum((1, 2))], -1)
        return logits, {"c": a}

    x = jnp.abs(toy.X)
    expected = np.maximum(float(v.mean()) * np.asarray(x), 0.0)
    np.testing.assert_allclose(grad_cam(acts_fn, x, 0, layer="c"), expected, rtol=1e-5)
    np.testing.assert_allclose(grad_cam(acts_fn, x, 1, layer="c"), 0.0, atol=1e-7)


def test_grad_cam_finds_planted_patch(planted):
    x = planted.input()
    cam = np.asarray(grad_cam(planted.acts, x, 0, layer="conv"))
    assert cam.shape == x.shape
    for m in cam:
        f, t = np.unravel_index(np.argmax(m), m.shape)
        assert 8 <= f < 16 and 8 <= t < 16
    assert np.all(planted.mass(cam) > 0.8)


def test_unknown_layer_is_named(planted):
    with pytest.raises(ValueError, match="not among"):
        grad_cam(planted.acts, planted.input(), 0, layer="dense9")
