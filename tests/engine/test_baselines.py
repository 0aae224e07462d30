"""engine.attribution.baselines: the blur baseline is scipy's Gaussian filter."""

import jax.numpy as jnp
import numpy as np
import scipy.ndimage

from engine.attribution import make_baseline


def test_blur_baseline_matches_scipy():
    x = np.random.default_rng(0).normal(size=(1, 30, 25)).astype(np.float32)
    got = make_baseline(jnp.asarray(x), "blur", blur_sigma=(2.0, 1.5))
    ref = scipy.ndimage.gaussian_filter(x[0], sigma=(2.0, 1.5), mode="nearest")
    np.testing.assert_allclose(got[0], ref, rtol=1e-4, atol=1e-5)
