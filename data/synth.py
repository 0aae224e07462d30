"""Synthetic speech from eSpeak NG: voices, one word on demand, and augmented corpus clips.

The ``synth`` corpus (built in :mod:`data.synth_corpus`) speaks the 35 Speech Commands v0.02
words with many eSpeak NG voice variants; a "speaker" is one voice such as ``"en-us+m3"``.
Every clip is drawn from its own ``np.random.default_rng`` so that it does not depend on the
order in which clips are made.

References: eSpeak NG (https://github.com/espeak-ng/espeak-ng); Warden 2018, "Speech
Commands: A Dataset for Limited-Vocabulary Speech Recognition" (the word list).
"""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np

from data import espeak

SPEECH_COMMANDS_WORDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward",
    "four", "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one",
    "right", "seven", "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow",
    "yes", "zero")

# Variants that still sound like a person (the folder also holds robots, croaks, whispers).
HUMAN_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
                  "klatt", "klatt2", "klatt3")


@lru_cache(maxsize=1)
def list_voices() -> tuple[str, ...]:
    """Every voice name :func:`synthesise_word` accepts: English bases and ``base+variant``."""
    bases = espeak.english_base_voices()
    return tuple(sorted(bases + tuple(f"{b}+{v}" for b in bases
                                      for v in espeak.voice_variants())))


def corpus_voices(n: int) -> tuple[str, ...]:
    """``n`` distinct human-sounding voices spread evenly over base voices and variants.

    Voice ``k`` pairs base ``k mod B`` with variant ``(k + k // B) mod V``; consecutive
    voices of one base then step through the variants by ``B + 1``, which is coprime with
    ``V = 16``, so pairs do not repeat before ``B * V``.
    """
    bases = espeak.english_base_voices()
    have = set(espeak.voice_variants())
    variants = tuple(v for v in HUMAN_VARIANTS if v == "" or v in have)
    if not 1 <= n <= len(bases) * len(variants):
        raise ValueError(f"can make 1..{len(bases) * len(variants)} voices, asked for {n}")
    out = []
    for k in range(n):
        v = variants[(k + k // len(bases)) % len(variants)]
        b = bases[k % len(bases)]
        out.append(f"{b}+{v}" if v else b)
    if len(set(out)) != n:
        raise ValueError(f"{n} voices would repeat with {len(variants)} variants")
    return tuple(out)


def check_voice(voice: str) -> str:
    """``voice`` itself, or ``ValueError`` unless it is one of :func:`list_voices`."""
    if voice not in list_voices():
        raise ValueError(f"unknown voice {voice!r}; choose one of list_voices(), "
                         f"e.g. {list_voices()[:4]}")
    return voice


def resample(x: np.ndarray, *, orig_rate: int, rate: int) -> np.ndarray:
    """Resample ``(samples,)`` float audio from ``orig_rate`` to ``rate`` Hz.

    Uses libsoxr (a librosa dependency, and far quicker to import than ``scipy.signal``,
    which matters in the short-lived synthesis workers); polyphase filtering otherwise.
    """
    x = np.asarray(x, dtype=np.float32)
    if orig_rate == rate:
        return x
    try:
        import soxr
    except ImportError:  # pragma: no cover - soxr ships with librosa >= 0.10
        from scipy.signal import resample_poly

        g = gcd(orig_rate, rate)
        return resample_poly(x, up=rate // g, down=orig_rate // g).astype(np.float32)
    return soxr.resample(x, orig_rate, rate, quality="HQ").astype(np.float32)


def synthesise_word(text: str, *, voice: str = "en", pitch: int = 50, rate: int = 175,
                    sample_rate: int = 16000) -> np.ndarray:
    """Speak a short plain word or phrase with eSpeak NG.

    Args:
      text: letters, spaces, apostrophes and hyphens only, at most 40 characters (nothing
        else, so no SSML or control characters ever reach the library).
      voice: one of :func:`list_voices`, e.g. ``"en-us+f2"``.
      pitch: base pitch 0..100 (50 normal); rate: words per minute, 80..450.
      sample_rate: output rate in Hz.
    Returns:
      ``(samples,)`` float32 mono in [-1, 1] at ``sample_rate``, with the synthesiser's own
      short leading and trailing silence.
    """
    check_voice(voice)
    if not 1000 <= sample_rate <= 96000:
        raise ValueError(f"sample_rate {sample_rate} Hz is outside 1000..96000")
    samples, native = espeak.speak(text, voice=voice, pitch=pitch, rate=rate)
    return resample(samples.astype(np.float32) / 32768.0, orig_rate=native, rate=sample_rate)


def trim_silence(x: np.ndarray, *, rel_threshold: float = 0.01) -> np.ndarray:
    """``x`` without leading/trailing samples below ``rel_threshold`` × its peak."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak == 0.0:
        raise ValueError("the synthesiser returned silence")
    idx = np.flatnonzero(np.abs(x) >= rel_threshold * peak)
    return x[idx[0]: idx[-1] + 1]


def pink_noise(n: int, *, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` pink (1/f power) noise with unit RMS, shaped in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    spec = spec / np.sqrt(np.maximum(f, 1.0))  # amplitude ∝ f^-1/2 → power ∝ 1/f
    x = np.fft.irfft(spec, n=n)
    return x / max(float(np.sqrt(np.mean(x ** 2))), 1e-12)


def augment(speech: np.ndarray, *, rng: np.random.Generator, rate: int, min_duration_s: float,
            max_onset_s: float, gain_db: tuple[float, float],
            snr_db: tuple[float, float]) -> np.ndarray:
    """Place a word at a random onset, apply random gain and add white or pink noise.

    Args:
      speech: ``(samples,)`` float word with silence trimmed, at ``rate`` Hz.
      min_duration_s: the clip is at least this long (longer words are kept whole).
      max_onset_s: the onset is uniform in ``[0, max_onset_s]`` seconds, limited by the room
        left in the clip.
      gain_db, snr_db: uniform ranges; the SNR is relative to the word's mean power.
    Returns:
      ``(samples,)`` float32 in [-1, 1].
    """
    # Peak 0.4 leaves room for +6 dB and the noise before the clip at ±1.
    x = 0.4 * speech / float(np.max(np.abs(speech)))
    x = x * 10.0 ** (rng.uniform(*gain_db) / 20.0)
    n_min = int(round(min_duration_s * rate))
    room = max(0, n_min - x.size) / rate
    onset = int(round(rng.uniform(0.0, min(max_onset_s, room)) * rate))
    clip = np.zeros(max(n_min, onset + x.size), np.float64)
    clip[onset:onset + x.size] = x
    pink = bool(rng.integers(0, 2))
    noise = pink_noise(clip.size, rng=rng) if pink else rng.standard_normal(clip.size)
    noise_rms = np.sqrt(np.mean(x ** 2) / 10.0 ** (rng.uniform(*snr_db) / 10.0))
    clip = clip + noise_rms * noise / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)
    return np.clip(clip, -1.0, 32767 / 32768).astype(np.float32)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] as 16-bit PCM samples (round to nearest)."""
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
