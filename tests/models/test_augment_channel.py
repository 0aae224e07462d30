"""The channel augmentations (band limit, reverberation, gate) on spectrograms with known
answers, and the feature row of a frequency."""

import numpy as np
import pytest

from data.features import ddevis_stft, soomro_logmel
from models.augment import SpecAugment, reverberate
from models.fit import row_of_frequency

FLOOR = -5.0


def _spec():
    """Rows 0-3 loud (0 at row 0), rows 4-9 quieter, values in [-4, 0]."""
    x = np.full((10, 6), -3.0, np.float32)
    x[:4] = -1.0
    x[0, 2] = 0.0
    x[9] = -2.5
    return x


def _only(**kw):
    return SpecAugment(floor=FLOOR, max_shift=0, freq_masks=0, time_masks=0, **kw)


def test_band_limit_silences_every_row_from_the_cutoff_up():
    x = _spec()
    out = _only(band_limit=1.0, band_rows=(6, 6))(x[None], np.random.default_rng(0))[0]
    assert np.all(out[6:] == FLOOR)
    np.testing.assert_allclose(out[:6], x[:6])  # the maximum (row 0) is kept: no renormalising


def test_gate_silences_cells_below_its_depth_only():
    x = _spec()
    out = _only(gate=1.0, gate_depth=(2.0, 2.0))(x[None], np.random.default_rng(0))[0]
    np.testing.assert_allclose(out, np.where(x < -2.0, FLOOR, x))


def test_reverberation_adds_an_exponential_tail_after_an_impulse():
    spec = np.full((1, 6), FLOOR)
    spec[0, 1] = 0.0  # unit power at frame 1, silence elsewhere
    out = reverberate(spec, 2.0, 0.0, floored=spec <= FLOOR)
    assert out[0, 0] == -np.inf  # before the sound: still silent
    assert out[0, 1] == pytest.approx(0.0)
    for t in range(2, 6):  # power exp(-(t - 1) / 2) at 0 dB
        assert out[0, t] == pytest.approx(-(t - 1) / 2 / np.log(10))


def test_reverberation_through_augment_stays_normalised_and_floored():
    x = _spec()
    out = _only(reverb=1.0, reverb_frames=(3.0, 3.0), reverb_gain_db=(-3.0, -3.0))(
        x[None], np.random.default_rng(0))[0]
    assert out.max() == pytest.approx(0.0) and out.min() >= FLOOR
    assert out[5, 5] > x[5, 5]  # the tail raises later cells


def test_row_of_frequency():
    assert row_of_frequency(ddevis_stft(), 3400.0) == 136  # 25 Hz bins at 8 kHz, n_fft 320
    assert row_of_frequency(ddevis_stft(), 1e9) == 159  # clipped to the top row
    import librosa

    centres = librosa.mel_frequencies(82, fmin=20.0, fmax=8000.0)[1:-1]
    row = row_of_frequency(soomro_logmel(), 4000.0)
    assert centres[row - 1] < 4000.0 <= centres[row]
