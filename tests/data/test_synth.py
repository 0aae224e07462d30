"""The eSpeak NG binding, the augmentation maths and the cached, deterministic synth corpus."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import welch

from data import espeak, synth, synth_corpus
from data.corpora import open_corpus


@pytest.fixture(scope="module")
def small_corpora(tmp_path_factory):
    """synth:small built twice from scratch in two cache folders."""
    a, b = tmp_path_factory.mktemp("cache_a"), tmp_path_factory.mktemp("cache_b")
    return (open_corpus("synth:small", cache_dir=a, progress=False), a,
            open_corpus("synth:small", cache_dir=b, progress=False))


def test_small_corpus_shape_and_voice_holdout(small_corpora):
    c, _, _ = small_corpora
    assert c.name == "synth" and c.sample_rate == 16000
    assert c.labels == ("down", "no", "up", "yes") and len(c.items) == 4 * 6 * 1
    splits_of = defaultdict(set)
    for it in c.items:
        splits_of[it.speaker].add(it.split)
        assert Path(it.path).is_file() and it.id == f"synth/{it.label}/{it.speaker}_0"
    assert len(splits_of) == 6 and all(len(s) == 1 for s in splits_of.values())
    assert c.summary()["splits"] == {"train": 16, "valid": 4, "test": 4}
    x, rate = sf.read(c.items[0].path, dtype="int16")
    assert rate == 16000 and x.ndim == 1 and x.size >= 16000


def test_small_corpus_is_byte_identical_across_builds(small_corpora):
    a, _, b = small_corpora
    assert [it.id for it in a.items] == [it.id for it in b.items]
    assert [it.path for it in a.items] != [it.path for it in b.items]
    for ia, ib in zip(a.items, b.items):
        assert Path(ia.path).read_bytes() == Path(ib.path).read_bytes(), ia.id


_SPEAK_BREATHY = """
import hashlib, sys
sys.path.insert(0, {root!r})
from data import espeak
print(hashlib.sha256(espeak.speak("backward", voice="en+f2")[0].tobytes()).hexdigest())
"""


def test_a_breathy_voice_is_the_same_in_any_second():
    """eSpeak NG seeds its breath noise with the clock at initialisation: without a seed per
    utterance, en+f2 came out different in processes started a second apart (490 of the
    synth corpus's 3,360 clips differed between two builds)."""
    import subprocess
    import sys
    import time

    root = str(Path(__file__).resolve().parents[2])
    code = _SPEAK_BREATHY.format(root=root)
    digests = []
    for _ in range(2):
        digests.append(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                      text=True, check=True).stdout.strip())
        time.sleep(1.1)  # the next process initialises in another second of the clock
    assert len(digests[0]) == 64 and digests[0] == digests[1]


def test_cache_is_reused_without_synthesising(small_corpora, monkeypatch):
    c, cache, _ = small_corpora

    def boom(*args, **kwargs):
        raise AssertionError("synthesiser called although the cache is complete")

    monkeypatch.setattr(synth_corpus, "_render_all", boom)
    monkeypatch.setattr(espeak, "speak", boom)
    again = open_corpus("synth:small", cache_dir=cache, progress=False)
    assert again.items == c.items


def test_interrupted_build_leaves_no_complete_looking_cache(tmp_path, monkeypatch):
    def interrupted(cfg, seed, root, *, progress):
        (root / "yes").mkdir()
        (root / "yes" / "half.wav").write_bytes(b"RIFF")
        raise KeyboardInterrupt

    monkeypatch.setattr(synth_corpus, "_render_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        open_corpus("synth:small", cache_dir=tmp_path, progress=False)
    assert list((tmp_path / "corpora").iterdir()) == []


def test_synthesise_word_energy_duration_and_rate():
    x16 = synth.synthesise_word("seven", voice="en-us+m3")
    x8 = synth.synthesise_word("seven", voice="en-us+m3", sample_rate=8000)
    assert x16.dtype == np.float32 and x16.ndim == 1 and np.all(np.abs(x16) <= 1.0)
    assert 0.2 <= x16.size / 16000 <= 1.5
    assert np.sqrt(np.mean(x16 ** 2)) > 0.01
    # the same word at half the rate has half the samples (up to the synthesiser's jitter)
    assert abs(x16.size / x8.size - 2.0) < 0.05


@pytest.mark.parametrize("text", ["<speak>yes</speak>", "yes\x00no", "a" * 41, "", "[[h@l'oU]]",
                                  "yes\n"])
def test_synthesise_word_rejects_unsafe_text(text):
    with pytest.raises(ValueError, match="letters, spaces"):
        synth.synthesise_word(text)


def test_voices():
    voices = synth.list_voices()
    assert {"en", "en-us", "en-us+m3", "en-gb-x-rp+f2"} <= set(voices)
    corpus_voices = synth.corpus_voices(48)
    assert len(set(corpus_voices)) == 48 and set(corpus_voices) <= set(voices)
    assert len(synth_corpus.config_for("default").voices) >= 40
    with pytest.raises(ValueError, match="unknown voice"):
        synth.synthesise_word("yes", voice="klingon")
    assert espeak.native_rate() == 22050


def test_augment_hits_the_requested_snr_and_gain():
    rate = 16000
    t = np.arange(4000) / rate
    speech = np.sin(2 * np.pi * 400 * t)  # 40 samples a period: the peak sample is exactly 1
    rng = np.random.default_rng(0)
    out = synth.augment(speech, rng=rng, rate=rate, min_duration_s=1.0, max_onset_s=0.0,
                        gain_db=(6.0, 6.0), snr_db=(20.0, 20.0))
    assert out.shape == (16000,)
    clean = np.zeros(16000)
    clean[:4000] = 0.4 * 10 ** (6 / 20) * speech  # peak 0.4, then +6 dB
    noise = out.astype(np.float64) - clean
    snr = 10 * np.log10(np.mean(clean[:4000] ** 2) / np.mean(noise ** 2))
    assert abs(snr - 20.0) < 0.01


def test_pink_noise_has_minus_one_spectral_slope():
    x = synth.pink_noise(2 ** 16, rng=np.random.default_rng(1))
    f, p = welch(x, fs=1.0, nperseg=4096)
    keep = (f > 1e-3) & (f < 0.4)
    slope = np.polyfit(np.log(f[keep]), np.log(p[keep]), 1)[0]
    assert abs(slope + 1.0) < 0.15 and abs(np.sqrt(np.mean(x ** 2)) - 1.0) < 1e-9


def test_voice_splits_hold_out_whole_voices():
    voices = tuple(f"v{i}" for i in range(20))
    s = synth_corpus.voice_splits(voices, seed=0, holdout_frac=0.1)
    assert sorted(s.values()).count("test") == 2 and sorted(s.values()).count("valid") == 2
    assert s == synth_corpus.voice_splits(voices, seed=0, holdout_frac=0.1)
    assert s != synth_corpus.voice_splits(voices, seed=1, holdout_frac=0.1)


def test_large_variant_has_more_takes_of_the_same_words_and_held_out_voices():
    default, large = synth_corpus.config_for("default"), synth_corpus.config_for("large")
    assert (large.words, large.voices) == (default.words, default.voices)
    assert (default.takes, large.takes) == (2, 4) and large.key(0) != default.key(0)
    split = lambda cfg: synth_corpus.voice_splits(cfg.voices, seed=0, holdout_frac=cfg.holdout_frac)
    assert split(large) == split(default)
    with pytest.raises(ValueError, match="synth:large"):
        synth_corpus.config_for("huge")
