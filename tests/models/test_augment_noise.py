"""Stationary noise at a random SNR: its mean power sits ``depth`` log10 units below the clip's
maximum, silence (floored cells) takes the noise's level, and recipes without noise draw and
augment exactly as before."""

import numpy as np

from models.augment import SpecAugment, add_noise

FLOOR = -5.0


def _spec(seed=0):
    spec = np.random.default_rng(seed).uniform(-3.0, 0.0, (80, 90)).astype(np.float32)
    spec[:, :30] = FLOOR  # padding: digital silence
    spec[0, 40] = 0.0
    return spec


def test_noise_power_in_silence_is_the_drawn_level():
    spec = _spec()
    out = add_noise(spec, 3.0, np.random.default_rng(1), floored=spec <= FLOOR)
    mean_power = np.mean(10.0 ** out[:, :30])  # silence only: noise alone
    assert abs(np.log10(mean_power) - (0.0 - 3.0)) < 0.05  # maximum 0, 3 log10 units below
    assert np.all(out[:, 30:] >= spec[:, 30:])  # power only ever adds
    # the loud cell barely moves; a cell 3 units down is changed by the same-level noise
    assert abs(out[0, 40]) < 0.01


def test_noise_off_changes_nothing_and_draws_nothing():
    kw = dict(floor=FLOOR, max_shift=5, tilt=0.5, reverb=0.5, band_limit=0.5,
              band_rows=(50, 60), gate=0.5)
    x = np.stack([_spec(s) for s in range(4)])
    a = SpecAugment(**kw)(x, np.random.default_rng(7))
    b = SpecAugment(**kw, noise=0.0, noise_depth=(1.0, 2.0))(x, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    c = SpecAugment(**kw, noise=1.0)(x, np.random.default_rng(7))
    assert not np.array_equal(a, c)
    # with noise on, the padding is no longer silent (before any gate), and stays normalised
    d = SpecAugment(floor=FLOOR, max_shift=0, freq_masks=0, time_masks=0, noise=1.0,
                    noise_depth=(2.0, 2.0))(x, np.random.default_rng(8))
    assert np.mean(d[:, :, :30] > FLOOR) > 0.9 and np.allclose(d.max(axis=(1, 2)), 0.0)
