"""Waveform edits, chains, JSON and undo/redo, against hand-derived answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data.edits import (EDIT_SCHEMAS, EDITS, EditHistory, add_noise, apply_chain,
                        chain_from_json, chain_to_json, crossfade_cut, fade, gain,
                        loudness_ramp, pitch_shift, repeat, reverse, slice_, time_stretch,
                        validate_edit)

SR = 8000


@pytest.fixture
def wave():
    return np.random.default_rng(0).uniform(-0.4, 0.4, 400).astype(np.float32)


def _sine(freq, n=4000, rate=SR):
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def _peak_hz(x, rate=SR):
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return np.fft.rfftfreq(x.size, 1 / rate)[np.argmax(spec)]


def test_gain_6db_doubles(wave):
    out = gain(wave, SR, db=20 * np.log10(2))  # 6.0206 dB
    np.testing.assert_allclose(out, 2 * wave, rtol=1e-6)
    assert out.dtype == np.float32


def test_reverse_twice_is_identity(wave):
    np.testing.assert_array_equal(reverse(wave, SR), wave[::-1])
    np.testing.assert_array_equal(reverse(reverse(wave, SR), SR), wave)


def test_repeat_is_tile(wave):
    out = repeat(wave, SR, times=2)
    assert out.shape == (3 * wave.size,)
    np.testing.assert_array_equal(out, np.tile(wave, 3))


def test_slice_middle_half(wave):
    np.testing.assert_array_equal(slice_(wave, SR, start_pct=25, end_pct=75), wave[100:300])


def test_crossfade_cut_equal_power():
    w = np.arange(1, 1001, dtype=np.float32)
    plain = crossfade_cut(w, SR, start_pct=40, end_pct=60, fade_ms=0)
    np.testing.assert_array_equal(plain, np.concatenate([w[:400], w[600:]]))
    out = crossfade_cut(w, SR, start_pct=40, end_pct=60, fade_ms=1)  # 8 samples
    assert out.shape == (1000 - 200 - 8,)
    np.testing.assert_array_equal(out[:392], w[:392])
    np.testing.assert_array_equal(out[400:], w[608:])
    t = (np.arange(8) + 0.5) / 8 * np.pi / 2
    np.testing.assert_allclose(out[392:400], w[392:400] * np.cos(t) + w[600:608] * np.sin(t),
                               rtol=1e-6)


def test_loudness_ramp_endpoints():
    out = loudness_ramp(np.ones(101, np.float32), SR, start_db=-20, end_db=20)
    np.testing.assert_allclose(out[[0, 50, 100]], [0.1, 1.0, 10.0], rtol=1e-5)


def test_fade_in_and_out(wave):
    out = fade(np.ones(400, np.float32), SR, fade_in_ms=10, fade_out_ms=5)  # 80, 40 samples
    assert out[0] == 0.0 and out[-1] == 0.0
    np.testing.assert_allclose(out[:80], np.linspace(0, 1, 80), rtol=1e-6)
    np.testing.assert_array_equal(out[80:360], 1.0)
    np.testing.assert_array_equal(fade(wave, SR), wave)


def test_noise_exact_snr_and_seeded():
    x = _sine(440)
    out = add_noise(x, SR, snr_db=10, seed=3)
    noise = out.astype(np.float64) - x
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(noise**2))
    assert abs(snr - 10) < 0.1
    np.testing.assert_array_equal(out, add_noise(x, SR, snr_db=10, seed=3))
    assert not np.array_equal(out, add_noise(x, SR, snr_db=10, seed=4))
    with pytest.raises(ValueError, match="silent"):
        add_noise(np.zeros(10, np.float32), SR, snr_db=10, seed=0)


def test_time_stretch_halves_length():
    x = _sine(440)
    out = time_stretch(x, SR, rate=2.0)
    assert abs(out.size - x.size / 2) <= 0.01 * x.size / 2


def test_pitch_shift_octave_doubles_frequency():
    x = _sine(300)
    out = pitch_shift(x, SR, semitones=12)
    assert out.shape == x.shape
    assert abs(_peak_hz(out) - 600) <= 10


@pytest.mark.parametrize("call,word", [
    (lambda w: gain(w, SR, db=31), "db"),
    (lambda w: repeat(w, SR, times=4), "times"),
    (lambda w: repeat(w, SR, times=1.5), "times"),
    (lambda w: slice_(w, SR, start_pct=60, end_pct=40), "start_pct"),
    (lambda w: slice_(w, SR, start_pct=-1, end_pct=40), "start_pct"),
    (lambda w: crossfade_cut(w, SR, start_pct=0, end_pct=100), "whole clip"),
    (lambda w: add_noise(w, SR, snr_db=float("nan"), seed=0), "snr_db"),
    (lambda w: time_stretch(w, SR, rate=0.1), "rate"),
    (lambda w: gain(w, 10, db=1), "sample_rate"),
    (lambda w: gain(w[None], SR, db=1), "1-D"),
])
def test_bad_parameters_named(wave, call, word):
    with pytest.raises(ValueError, match=word):
        call(wave)


def test_schemas_cover_edits_and_defaults_valid(wave):
    assert set(EDIT_SCHEMAS) == set(EDITS)
    for op, schema in EDIT_SCHEMAS.items():
        for name, (kind, lo, hi, default) in schema.items():
            assert kind in (int, float) and lo <= default <= hi, (op, name)
        out = apply_chain(_sine(440, 1000), SR, [{"op": op}])
        assert out.dtype == np.float32 and out.ndim == 1 and np.isfinite(out).all()


def test_chain_json_round_trip_and_replay(wave):
    chain = [{"op": "gain", "params": {"db": 3}}, {"op": "reverse"},
             {"op": "slice", "params": {"start_pct": 10, "end_pct": 90}},
             {"op": "noise", "params": {"snr_db": 20, "seed": 7}}]
    text = chain_to_json(chain)
    back = chain_from_json(text)
    assert back == json.loads(text) and back[1] == {"op": "reverse", "params": {}}
    expected = add_noise(slice_(reverse(gain(wave, SR, db=3), SR), SR, start_pct=10,
                                end_pct=90), SR, snr_db=20, seed=7)
    np.testing.assert_array_equal(apply_chain(wave, SR, back), expected)
    np.testing.assert_array_equal(apply_chain(wave, SR, chain), expected)


@pytest.mark.parametrize("chain,word", [
    ([{"op": "explode"}], "explode"),
    ([{"op": "gain", "params": {"dB": 3}}], "dB"),
    ([{"op": "gain", "params": {"db": 99}}], "db"),
    ([{"op": "gain", "extra": 1}], "extra"),
    ({"op": "gain"}, "list"),
])
def test_chain_errors_name_the_problem(wave, chain, word):
    with pytest.raises(ValueError, match=word):
        apply_chain(wave, SR, chain)


def test_chain_from_json_rejects_bad_text():
    with pytest.raises(ValueError, match="not valid JSON"):
        chain_from_json("__import__('os')")
    with pytest.raises(ValueError, match="unknown edit op"):
        chain_from_json('[{"op": "eval"}]')


def test_history_undo_redo(wave):
    h = EditHistory()
    assert h.undo() is None and h.redo() is None
    a, b, c = ({"op": "gain", "params": {"db": 6}}, {"op": "reverse"},
               {"op": "repeat", "params": {"times": 1}})
    h.push(a)
    h.push(b)
    assert h.undo() == validate_edit(b) and h.chain == [validate_edit(a)]
    assert h.redo() == validate_edit(b) and len(h.chain) == 2
    np.testing.assert_array_equal(h.apply(wave, SR), reverse(gain(wave, SR, db=6), SR))
    h.undo()
    h.push(c)  # a new edit after undo drops the redo stack
    assert not h.can_redo and h.redo() is None
    assert [e["op"] for e in h.chain] == ["gain", "repeat"]
    h.chain.clear()  # the property is a copy
    assert len(h.chain) == 2
    with pytest.raises(ValueError, match="unknown edit op"):
        h.push({"op": "nope"})


# --- bounds on what a user's chain can make the server do -------------------------------

def test_repeats_stop_at_the_duration_limit_naming_the_edit():
    one_second = _sine(440, n=SR)
    chain = [{"op": "repeat", "params": {"times": 3}}] * 6  # would grow 1 s to 4096 s
    with pytest.raises(ValueError, match=r"edit 3 \(repeat, times=3\) makes the clip "
                                         r"64\.00 s long, over the 30 s limit"):
        apply_chain(one_second, SR, chain)
    # two repeats (16 s) stay under the limit and are exact copies
    out = apply_chain(one_second, SR, chain[:2])
    assert out.shape == (16 * SR,) and np.array_equal(out[SR:2 * SR], one_second)
    assert apply_chain(one_second, SR, chain, max_seconds=None).shape == (4096 * SR,)


def test_stacked_gains_are_refused_before_they_overflow():
    chain = [{"op": "gain", "params": {"db": 30.0}}] * 3  # 0.5 peak * 10**4.5 = +84 dBFS
    with pytest.raises(ValueError, match=r"edit 3 \(gain, db=30\) drives the peak to \+84 dBFS"):
        apply_chain(_sine(440), SR, chain)
    out = apply_chain(_sine(440), SR, chain[:2])  # +60 dB on a 0.5 peak: 500, allowed
    assert np.isclose(np.abs(out).max(), 0.5 * 1000, rtol=1e-3)


def test_long_chains_and_large_files_are_refused_unrun():
    with pytest.raises(ValueError, match="1,000,000 edits, more than the 100 allowed"):
        apply_chain(_sine(440), SR, [{"op": "reverse"}] * 1_000_000)
    text = json.dumps([{"op": "reverse"}] * 10_000)
    with pytest.raises(ValueError, match=r"bytes, over the 100,000-byte limit"):
        chain_from_json(text)
    history = EditHistory([{"op": "reverse"}] * 100)
    with pytest.raises(ValueError, match="already holds 100 edits"):
        history.push({"op": "reverse"})
    assert len(history.chain) == 100


@pytest.mark.parametrize("text,word", [
    ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
    ('[{"op": ["gain"]}]', r"edit 1: unknown edit op \['gain'\]"),
    ('[{"op": {"a": 1}}]', "unknown edit op"),
    ('[{"op": "gain", "params": {"db": 1' + "0" * 400 + '}}]', "must be a finite number"),
    ('[{"op": "repeat", "params": {"times": 1' + "0" * 30 + '}}]', r"must be in \[1, 3\]"),
    ('[{"op": "gain", "params": {"db": NaN}}]', "must be a finite number"),
    ('[{"op": "gain", "params": {"db": Infinity}}]', "must be a finite number"),
    ('[{"op": "gain", "params": {"db": "6"}}]', "must be a finite number"),
    ('[{"op": "reverse"}, 7]', "edit 2: an edit must be a dict"),
], ids=["deep", "op-list", "op-dict", "huge-float", "huge-int", "nan", "inf", "string", "int"])
def test_malformed_chain_json_gets_a_message(text, word):
    with pytest.raises(ValueError, match=word):
        chain_from_json(text)
