"""Audio in/out: decoding, resampling, fitting, and every bad-input message."""

from __future__ import annotations

import io
import wave as wavelib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data.audio import (AudioError, check_not_silent, fit_to_window, load_audio,
                        peak_normalise, prepare_wave, to_wav_bytes)
from data.features import FeatureParams

FSDD = Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd" / "0_george_0.wav"


def _sine(freq, rate, seconds, amp=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(wave, rate):
    spec = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return np.fft.rfftfreq(wave.size, 1 / rate)[np.argmax(spec)]


@pytest.mark.parametrize("fmt,subtype,ext,tol", [
    ("WAV", "PCM_16", "wav", 1e-4), ("WAV", "FLOAT", "wav", 0.0),
    ("FLAC", "PCM_16", "flac", 1e-4), ("OGG", "VORBIS", "ogg", 0.05)])
def test_formats_round_trip(tmp_path, fmt, subtype, ext, tol):
    x = _sine(440, 8000, 0.25)
    path = tmp_path / f"a.{ext}"
    sf.write(path, x, 8000, format=fmt, subtype=subtype)
    y, rate = load_audio(path)
    assert rate == 8000 and y.dtype == np.float32
    if fmt == "OGG":  # lossy: same pitch, similar level
        assert abs(_peak_hz(y[:x.size], 8000) - 440) < 10
        assert abs(np.sqrt(np.mean(y**2)) - np.sqrt(np.mean(x**2))) < tol
    else:
        np.testing.assert_allclose(y, x, atol=tol)


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile without mp3")
def test_mp3(tmp_path):
    path = tmp_path / "a.mp3"
    sf.write(path, _sine(440, 8000, 1.0), 8000, format="MP3", subtype="MPEG_LAYER_III")
    y, rate = load_audio(path)
    assert rate == 8000 and abs(y.size - 8000) < 2000  # encoder delay/padding
    assert abs(_peak_hz(y, 8000) - 440) < 10


def test_bytes_equals_file(tmp_path):
    x = _sine(300, 8000, 0.1)
    path = tmp_path / "b.wav"
    sf.write(path, x, 8000, subtype="PCM_16")
    a, _ = load_audio(path)
    b, _ = load_audio(path.read_bytes(), name="upload.wav")
    np.testing.assert_array_equal(a, b)


def test_stereo_is_channel_mean(tmp_path):
    left, right = _sine(200, 8000, 0.1, 0.6), _sine(500, 8000, 0.1, 0.2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    y, _ = load_audio(path)
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-7)


def test_resample_keeps_sine_frequency(tmp_path):
    path = tmp_path / "s16k.wav"
    sf.write(path, _sine(440, 16000, 1.0), 16000, subtype="FLOAT")
    y, rate = load_audio(path, sample_rate=8000)
    assert rate == 8000 and y.shape == (8000,)
    assert abs(_peak_hz(y, 8000) - 440) <= 1.0


def test_real_recording():
    y, rate = load_audio(FSDD)
    info = sf.info(str(FSDD))
    assert rate == 8000 == info.samplerate and y.shape == (info.frames,)
    params = FeatureParams()
    w = prepare_wave(FSDD, params)
    assert w.shape == (params.n_samples,) and w.dtype == np.float32
    assert np.isclose(np.max(np.abs(w)), 0.99, atol=1e-6)


def _expect(source, *keywords, **kw):
    with pytest.raises(AudioError) as info:
        load_audio(source, **kw)
    msg = str(info.value).lower()
    for k in keywords:
        assert k.lower() in msg, msg
    return msg


def test_missing_file(tmp_path):
    _expect(tmp_path / "nope.wav", "nope.wav", "missing")


def test_empty_file_and_bytes(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    _expect(p, "empty.wav", "empty")
    _expect(b"", "clip.wav", "empty", name="clip.wav")


def test_zero_sample_wav(tmp_path):
    p = tmp_path / "nosamples.wav"
    sf.write(p, np.zeros(0, np.float32), 8000)
    _expect(p, "nosamples.wav", "empty")


def test_corrupt_bytes_and_file(tmp_path):
    p = tmp_path / "junk.wav"
    p.write_bytes(b"this is not audio at all" * 10)
    _expect(p, "junk.wav", "decoded")
    _expect(b"RIFF\x00\x00garbage", "up.wav", "decoded", name="up.wav")


def test_nan_samples(tmp_path):
    x = _sine(440, 8000, 0.05)
    x[10] = np.nan
    p = tmp_path / "nan.wav"
    sf.write(p, x, 8000, subtype="FLOAT")
    _expect(p, "nan.wav", "nan")


def test_too_long_checked_from_header(tmp_path, monkeypatch):
    p = tmp_path / "long.wav"
    sf.write(p, np.zeros(8000 * 3, np.float32), 8000, subtype="PCM_16")

    def no_read(*a, **k):  # the header alone must be enough to refuse it
        raise AssertionError("samples were read")

    monkeypatch.setattr(sf.SoundFile, "read", no_read)
    _expect(p, "long.wav", "too long", max_seconds=2.0)


def test_too_low_rate(tmp_path):
    p = tmp_path / "lowrate.wav"
    with wavelib.open(str(p), "wb") as w:  # soundfile itself refuses to write such a rate
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(500)
        w.writeframes(np.full(100, 1000, np.int16).tobytes())
    _expect(p, "lowrate.wav", "sample rate", "500")


def test_too_large_bytes_and_wrong_type():
    _expect(b"\x00" * 101, "big.wav", "too large", name="big.wav", max_bytes=100)
    _expect(12345, "expected a file path or bytes")


def test_silent():
    with pytest.raises(AudioError, match=r"quiet\.wav: is silent \(peak 1e-05"):
        check_not_silent(np.full(100, 1e-5, np.float32), name="quiet.wav")
    check_not_silent(np.full(100, 1e-3, np.float32), name="ok.wav")


def test_prepare_silent_file_names_it(tmp_path):
    p = tmp_path / "hush.wav"
    sf.write(p, np.zeros(800, np.float32), 8000)
    with pytest.raises(AudioError, match=r"hush\.wav: is silent"):
        prepare_wave(p, FeatureParams())


def test_fit_to_window_keeps_loudest_and_centres():
    w = np.zeros(100, np.float32)
    w[60:70] = 1.0
    out = fit_to_window(w, 20)
    assert out.shape == (20,) and out.sum() == 10.0  # whole burst kept
    np.testing.assert_array_equal(out, w[50:70])  # first window reaching max energy
    padded = fit_to_window(np.ones(4, np.float32), 10)
    np.testing.assert_array_equal(padded, [0, 0, 0, 1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(fit_to_window(w, 100), w)


def test_peak_normalise():
    x = np.array([0.1, -0.5, 0.25], np.float32)
    np.testing.assert_allclose(peak_normalise(x), x * (0.99 / 0.5), rtol=1e-6)
    z = peak_normalise(np.zeros(5, np.float32))
    assert not z.any() and z.dtype == np.float32


def test_to_wav_bytes_clips_and_round_trips():
    x = np.array([0.0, 0.5, -0.25, 2.0, -3.0], np.float32)
    data = to_wav_bytes(x, 8000)
    y, rate = sf.read(io.BytesIO(data), dtype="float32")
    info = sf.info(io.BytesIO(data))
    assert rate == 8000 and info.subtype == "PCM_16"
    np.testing.assert_allclose(y, np.clip(x, -1, 1), atol=1 / 32767)


# --- decoding is bounded by what the model will hear ------------------------------------

def _wav_bytes(data: np.ndarray, rate: int, fmt="WAV", subtype="PCM_16") -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, data, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def test_many_channels_are_refused_from_the_header():
    data = np.zeros((100, 65), np.float32)
    with pytest.raises(AudioError, match="has 65 channels, more than the 64 accepted"):
        load_audio(_wav_bytes(data, 8000), name="wide.wav")


def test_decoding_memory_is_the_mono_clip_not_the_file():
    import tracemalloc

    rate, n, ch = 96_000, 96_000 * 6, 16  # 6 s x 16 channels: 37 MB as float32
    rng = np.random.default_rng(0)
    data = (rng.uniform(-0.5, 0.5, (n, ch))).astype(np.float32)
    blob = _wav_bytes(data, rate, subtype="FLOAT")
    expected = data.mean(axis=1)
    del data
    tracemalloc.start()
    wave, got_rate = load_audio(blob, name="multi.wav", max_bytes=len(blob))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert got_rate == rate and np.allclose(wave, expected, atol=1e-6)
    # mono parts + their concatenation 4.6 MB, one 4 MB block and its temporaries: ~15 MB;
    # decoding the whole file first would hold 37 MB before mixing
    assert peak < 20e6, f"decoding peaked at {peak / 1e6:.1f} MB"


def test_flac_of_unknown_length_is_read_up_to_the_limit():
    x = (0.5 * np.sin(np.arange(16_000) * 0.1)).astype(np.float32)
    flac = bytearray(_wav_bytes(x, 16_000, fmt="FLAC"))
    flac[21] &= 0xF0  # STREAMINFO total samples (36 bits) = 0: "length unknown"
    flac[22:26] = b"\0\0\0\0"
    wave, rate = load_audio(bytes(flac), name="stream.flac")
    # libsndfile fails on the read that crosses the open end: at most one block is lost
    assert rate == 16_000 and 16_000 - 256 <= wave.shape[0] <= 16_000
    assert np.allclose(wave, x[:wave.shape[0]], atol=1e-4)
    with pytest.raises(AudioError, match=r"too long \(over 0.5 s, the limit; its header does "
                                         r"not say how long\)"):
        load_audio(bytes(flac), name="stream.flac", max_seconds=0.5)


def test_limits_are_never_printed_rounded_onto_the_limit():
    x = np.full(int(8000 * 30.01), 0.1, np.float32)
    with pytest.raises(AudioError, match=r"too long \(30.01 s, limit 30 s\)"):
        load_audio(_wav_bytes(x, 8000), name="a.wav", max_bytes=10**9)
    blob = _wav_bytes(np.full(100, 0.1, np.float32), 8000)
    with pytest.raises(AudioError, match=rf"too large \({len(blob):,} bytes, over the "
                                         rf"{len(blob) - 1:,}-byte limit\)"):
        load_audio(blob, name="b.wav", max_bytes=len(blob) - 1)


def test_channels_that_cancel_are_named_not_called_quiet():
    x = (0.5 * np.sin(np.arange(8000) * 0.1)).astype(np.float32)
    with pytest.raises(AudioError, match="channels cancel out when mixed to mono"):
        load_audio(_wav_bytes(np.stack([x, -x], axis=1), 8000, subtype="FLOAT"), name="c.wav")
    wave, _ = load_audio(_wav_bytes(np.zeros((8000, 2), np.float32), 8000), name="quiet.wav")
    assert not wave.any()  # true silence still loads (editing accepts it)
