"""Known-answer tests of engine.attribution.occlusion (brute force, planted patch)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from engine.attribution import occlusion


def occlusion_reference(fn, x, target, window, stride, fill):
    """Brute force: loop over windows in Python with NumPy bookkeeping."""
    p = lambda z: np.asarray(jax.nn.softmax(fn(jnp.asarray(z)), -1))[np.arange(len(z)), target]
    p0, (b, f, t) = p(x), x.shape
    total, count = np.zeros(x.shape), np.zeros((f, t))
    fs = sorted(set(list(range(0, f - window[0] + 1, stride[0])) + [f - window[0]]))
    ts = sorted(set(list(range(0, t - window[1] + 1, stride[1])) + [t - window[1]]))
    for i in fs:
        for j in ts:
            z = np.array(x)
            z[:, i:i + window[0], j:j + window[1]] = fill
            total[:, i:i + window[0], j:j + window[1]] += (p0 - p(z))[:, None, None]
            count[i:i + window[0], j:j + window[1]] += 1
    return total / count


@pytest.mark.parametrize("window,stride", [((1, 1), (1, 1)), ((2, 3), (1, 2)), ((3, 2), (2, 2))])
def test_occlusion_matches_brute_force(toy, window, stride):
    got = occlusion(toy.mlp, toy.X, toy.TARGET, window=window, stride=stride, baseline="zeros",
                    internal_batch_size=7)
    ref = occlusion_reference(toy.mlp, np.asarray(toy.X), toy.TARGET, window, stride, 0.0)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


def test_occlusion_finds_planted_patch(planted):
    x = planted.input()
    occ = np.asarray(occlusion(planted.logits, x, 0, window=(2, 2), stride=(1, 1)))
    for m in occ:
        f, t = np.unravel_index(np.argmax(m), m.shape)
        assert 8 <= f < 16 and 8 <= t < 16
    assert np.all(planted.mass(occ) > 0.8)


def test_window_larger_than_the_input_is_refused(toy):
    with pytest.raises(ValueError, match="larger than the input"):
        occlusion(toy.linear, toy.X, toy.TARGET, window=(8, 2))
