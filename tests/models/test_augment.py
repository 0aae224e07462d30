"""Training augmentation with known answers: shifts, masks and the frequency warp."""

from __future__ import annotations

import numpy as np
import pytest

from models.augment import SpecAugment, warp_frequency

FLOOR = -4.0


def test_warp_by_one_is_the_identity_and_by_two_doubles_row_positions():
    spec = np.random.default_rng(0).uniform(FLOOR, 0, (16, 5)).astype(np.float32)
    np.testing.assert_allclose(warp_frequency(spec, 1.0, floor=FLOOR), spec)
    up = warp_frequency(spec, 2.0, floor=FLOOR)
    np.testing.assert_allclose(up[::2], spec[:8])                        # row 2k <- row k
    np.testing.assert_allclose(up[1::2][:7], (spec[:7] + spec[1:8]) / 2)  # halfway rows
    down = warp_frequency(spec, 0.5, floor=FLOOR)
    np.testing.assert_allclose(down[:8], spec[::2][:8])                  # row k <- row 2k
    assert np.all(down[8:] == FLOOR)                                     # beyond the top: silence
    assert up.dtype == np.float32


def test_a_formant_moves_up_by_the_warp_factor():
    spec = np.full((40, 3), FLOOR, np.float32)
    spec[10] = 0.0                                  # one energy band at row 10
    out = warp_frequency(spec, 1.2, floor=FLOOR)
    assert int(np.argmax(out[:, 0])) == 12


def test_warp_rejects_non_positive_factors():
    with pytest.raises(ValueError, match="> 0"):
        warp_frequency(np.zeros((4, 4)), 0.0, floor=FLOOR)


def test_augment_keeps_shape_and_range_and_is_seeded():
    x = np.random.default_rng(1).uniform(FLOOR, 0, (6, 20, 30)).astype(np.float32)
    aug = SpecAugment(floor=FLOOR, max_shift=4, freq_width=3, time_width=3, freq_warp=0.1)
    a, b = aug(x, np.random.default_rng(7)), aug(x, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and a.min() >= FLOOR and a.max() <= 0.0
    assert not np.array_equal(a, x)
    np.testing.assert_array_equal(x, np.random.default_rng(1).uniform(FLOOR, 0, (6, 20, 30))
                                  .astype(np.float32))   # the input is not modified


def test_time_shift_moves_an_onset_and_fills_with_floor():
    x = np.full((1, 4, 10), FLOOR, np.float32)
    x[0, :, 5] = 0.0
    aug = SpecAugment(floor=FLOOR, max_shift=3, freq_masks=0, time_masks=0)
    rng = np.random.default_rng(3)
    expected_shift = int(np.random.default_rng(3).integers(-3, 4))
    out = aug(x, rng)[0]
    assert int(np.argmax(out[0])) == 5 + expected_shift
    assert np.count_nonzero(out == 0.0) == 4
