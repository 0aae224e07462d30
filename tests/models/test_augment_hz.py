"""Hz-true frequency warp (VTLP on mel rows) and the speaking-rate stretch."""

from __future__ import annotations

import numpy as np
import pytest

from data.features import soomro_logmel
from models.augment import SpecAugment, stretch_time, warp_frequency
from models.fit import FitConfig, _augmenter, row_frequencies


def _line_at(row: int, n_freq: int = 80, n_time: int = 10) -> np.ndarray:
    spec = np.full((n_freq, n_time), -5.0, np.float32)
    spec[row] = 0.0
    return spec


def test_an_hz_warp_moves_a_formant_by_the_factor_in_hz_on_mel_rows():
    hz = np.asarray(row_frequencies(soomro_logmel()))
    for row in (10, 40, 55):  # ~ 0.5, 2.4, 3.9 kHz on the 80 mel rows to 8 kHz
        out = warp_frequency(_line_at(row), 1.15, floor=-5.0, row_hz=hz)
        profile = out[:, 0] + 5.0
        peak_hz = float((profile * hz).sum() / profile.sum())  # energy-weighted centre
        assert peak_hz == pytest.approx(1.15 * hz[row], rel=0.03), (row, peak_hz, hz[row])
    # the row-index warp moves a 3.9 kHz line to row 63 (about 5.8 kHz: a factor of 1.5)
    by_row = warp_frequency(_line_at(55), 1.15, floor=-5.0)
    assert hz[int(np.argmax(by_row[:, 0]))] / hz[55] > 1.3


def test_hz_warp_by_one_is_the_identity_and_rejects_bad_rows():
    hz = np.asarray(row_frequencies(soomro_logmel()))
    spec = np.random.default_rng(0).uniform(-5, 0, (80, 12)).astype(np.float32)
    np.testing.assert_allclose(warp_frequency(spec, 1.0, floor=-5.0, row_hz=hz), spec, atol=1e-6)
    with pytest.raises(ValueError, match="increasing"):
        warp_frequency(spec, 1.1, floor=-5.0, row_hz=hz[::-1])


def test_a_stretch_lengthens_a_word_about_the_centre_and_fills_with_floor():
    spec = np.full((4, 41), -5.0, np.float32)
    spec[:, 15:26] = 0.0  # an 11-frame word centred on frame 20
    slow = stretch_time(spec, 1.5, floor=-5.0)
    loud = np.flatnonzero(slow[0] > -2.5)
    assert (loud.min(), loud.max()) == (12, 28)  # 20 ± 5.5 × 1.5, half-level crossings
    assert np.allclose(stretch_time(spec, 1.0, floor=-5.0), spec)
    fast = stretch_time(spec, 0.5, floor=-5.0)  # frames from outside the clip: floor
    assert np.all(fast[:, :10] == -5.0) and np.all(fast[:, -10:] == -5.0)


def test_recipes_without_the_new_options_draw_exactly_as_before():
    base = FitConfig(arch="soomro_cnn", freq_warp=0.1, band_limit=0.5, reverb=0.3)
    x = np.random.default_rng(1).uniform(-5, 0, (6, 80, 90)).astype(np.float32)
    a = _augmenter(base)
    assert a.row_hz == () and a.time_stretch == 0.0
    legacy = SpecAugment(**{k: getattr(a, k) for k in a.__dataclass_fields__
                            if k not in ("row_hz", "time_stretch")})
    np.testing.assert_array_equal(a(x, np.random.default_rng(3)), legacy(x, np.random.default_rng(3)))
    on = _augmenter(FitConfig(arch="soomro_cnn", freq_warp=0.1, warp_hz=True, time_stretch=0.2))
    assert len(on.row_hz) == 80 and on.time_stretch == 0.2
    assert not np.array_equal(on(x, np.random.default_rng(3)), a(x, np.random.default_rng(3)))
