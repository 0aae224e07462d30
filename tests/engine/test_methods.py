"""engine.attribution.methods: the attribute dispatcher reaches every method by name."""

import numpy as np
import pytest

from engine.attribution import METHODS, attribute, grad_cam, gradient_x_input


def test_attribute_dispatches_and_validates(toy, planted):
    np.testing.assert_allclose(attribute("saliency", toy.X, toy.TARGET, logits_fn=toy.linear),
                               toy.W[toy.TARGET])
    x = planted.input()
    np.testing.assert_allclose(
        attribute("grad_cam", x, 0, acts_fn=planted.acts, layer="conv"),
        grad_cam(planted.acts, x, 0, layer="conv"))
    got = attribute("gradient_x_input", x, 0, acts_fn=planted.acts)
    np.testing.assert_allclose(got, gradient_x_input(planted.logits, x, 0), rtol=1e-6)
    assert set(METHODS) >= {"saliency", "integrated_gradients", "smoothgrad", "occlusion"}
    with pytest.raises(ValueError, match="unknown attribution method"):
        attribute("lime", toy.X, toy.TARGET, logits_fn=toy.linear)
    with pytest.raises(ValueError, match="needs acts_fn"):
        attribute("grad_cam", toy.X, toy.TARGET, logits_fn=toy.linear, layer="c")
