"""Benchmark: batched JAX fast Griffin-Lim against librosa.griffinlim looped, same run.

Input: 32 STFT magnitudes of real speech (the first 32 files of the 5-speaker FSDD copy in
``../shared/data/fsdd``, padded/trimmed to 1 s at 8 kHz; white noise with a fixed seed if the copy
is missing), d-DeVIS framing (n_fft 320, hop 53, periodic Hamming, centred, reflect padding).
Both run 32 iterations with momentum 0.99 from random phase. JAX: ``griffin_lim_batch`` (one
jitted vmap over the 32), timed after one warm-up call that compiles. librosa: ``griffinlim``
called 32 times in a Python loop. Median of 5 runs each; the table also gives the mean spectral
convergence of each method's output, so speed is not bought with quality.

Run from the repository root: ``python3 benchmarks/inversion.py [--repeats N]``; writes
``benchmarks/results/inversion.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import librosa  # noqa: E402
import numpy as np  # noqa: E402
import scipy.signal  # noqa: E402
import soundfile as sf  # noqa: E402

from data.features import ddevis_stft, stft  # noqa: E402
from engine.inversion import griffin_lim_batch, spectral_convergence  # noqa: E402

FSDD = ROOT.parent / "shared" / "data" / "fsdd"
BATCH, N_ITER, MOMENTUM = 32, 32, 0.99


def load_waves(n: int, n_samples: int) -> np.ndarray:
    """``(n, n_samples)`` float32 speech (or seeded noise when the corpus is absent)."""
    files = sorted(FSDD.glob("*.wav"))[:n]
    if len(files) < n:
        return np.random.default_rng(0).standard_normal((n, n_samples)).astype(np.float32) * 0.1
    out = np.zeros((n, n_samples), np.float32)
    for i, f in enumerate(files):
        x, _ = sf.read(f, dtype="float32")
        out[i, :min(len(x), n_samples)] = x[:n_samples]
    return out


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def mean_sc(mags: np.ndarray, waves: np.ndarray, frame: dict) -> float:
    est = jax.vmap(lambda w: jnp.abs(stft(w, **frame)))(jnp.asarray(waves, jnp.float32))
    return float(np.mean([spectral_convergence(m, e) for m, e in zip(mags, est)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    p = ddevis_stft()
    frame = dict(n_fft=p.n_fft, hop_length=p.hop_length, window=p.window)
    waves = load_waves(BATCH, p.n_samples)
    mags = np.asarray(jax.vmap(lambda w: jnp.abs(stft(w, **frame)))(jnp.asarray(waves)))
    win = scipy.signal.get_window(p.window, p.n_fft, fftbins=True)

    def run_jax():
        return griffin_lim_batch(mags, length=p.n_samples, n_iter=N_ITER, momentum=MOMENTUM,
                                 key=jax.random.key(0), **frame)

    def run_librosa():
        return np.stack([librosa.griffinlim(
            S=m, n_iter=N_ITER, hop_length=p.hop_length, n_fft=p.n_fft, window=win, center=True,
            pad_mode="reflect", length=p.n_samples, momentum=MOMENTUM, init="random",
            random_state=i) for i, m in enumerate(mags)])

    t0 = time.perf_counter()
    jax.block_until_ready(run_jax())
    compile_s = time.perf_counter() - t0
    jax_s, jax_out = timed(run_jax, args.repeats)
    lib_s, lib_out = timed(run_librosa, args.repeats)
    rows = [("jax griffin_lim_batch (jit, vmap)", jax_s, mean_sc(mags, jax_out, frame)),
            ("librosa.griffinlim looped", lib_s, mean_sc(mags, lib_out, frame))]
    print(f"{BATCH} spectrograms {mags.shape[1:]}, {N_ITER} iterations, median of {args.repeats}")
    print(f"{'method':<36}{'seconds':>10}{'mean SC':>10}")
    for name, sec, sc in rows:
        print(f"{name:<36}{sec:>10.3f}{sc:>10.3f}")
    print(f"speed-up librosa / jax: {lib_s / jax_s:.2f}x  (jax first call incl. compile: "
          f"{compile_s:.2f} s)")
    result = dict(batch=BATCH, n_iter=N_ITER, momentum=MOMENTUM, shape=list(mags.shape[1:]),
                  repeats=args.repeats, jax_s=jax_s, librosa_s=lib_s, ratio=lib_s / jax_s,
                  jax_compile_s=compile_s, jax_mean_sc=rows[0][2], librosa_mean_sc=rows[1][2],
                  device=str(jax.devices()[0]), jax=jax.__version__, librosa=librosa.__version__,
                  machine=platform.machine(), python=platform.python_version())
    out = ROOT / "benchmarks" / "results" / "inversion.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
