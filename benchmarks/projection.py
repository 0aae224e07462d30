"""Benchmark: PivotMDS at a million points (jit vs NumPy) and projection quality vs UMAP/t-SNE.

Part 1, scale: n = 1,000,000 points in d = 1000 (float32, ~4 GB, generated in chunks from a seeded
rank-10 + isotropic noise model into a 64-byte aligned host array, so XLA reads it without
copies). ``engine.projection.pivot_mds`` (jit kernels streamed over 65,536-row chunks) against a
plain NumPy PivotMDS of the same algorithm (same ||a||²+||b||²−2ab distances, double centring,
eigh of CᵀC), both with k = 50 random pivots; medians of several runs after one warm-up. The
max-min pivot choice (k passes over the data) is timed once as an extra row.

Part 2, quality: n = 10,000 points in d = 1000 from a labelled 10-class Gaussian mixture;
PivotMDS (max-min), PCA, UMAP and openTSNE times and their Procrustes distance, distance
correlation, KSG mutual information (k = 10), trustworthiness, continuity, kNN preservation
(k = 10) on a 2,000-point subsample, plus the label agreement of 10 layout neighbours.

Run from the repository root: ``python3 benchmarks/projection.py [--quick]``; writes
``benchmarks/results/projection.json``. Needs ``pip install hearsight[peers]`` for part 2's peers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import jax  # noqa: E402
import numpy as np  # noqa: E402

from engine.projection import (aligned_empty, pivot_mds, procrustes_distance, project,  # noqa: E402
                               projection_quality, random_pivots, subsample)

CHUNK = 65536


def lowrank_data(n: int, d: int, *, rank: int = 10, noise: float = 0.1, seed: int = 0) -> np.ndarray:
    """``(n, d)`` float32 = latent ``(n, rank)`` @ random ``(rank, d)`` + N(0, noise²), in chunks."""
    rng = np.random.default_rng(seed)
    mix = (rng.standard_normal((rank, d)) / np.sqrt(rank)).astype(np.float32)
    scales = np.linspace(3.0, 0.5, rank, dtype=np.float32)
    x = aligned_empty((n, d))
    for s in range(0, n, CHUNK):
        m = min(CHUNK, n - s)
        z = rng.standard_normal((m, rank), dtype=np.float32) * scales
        x[s:s + m] = z @ mix
        x[s:s + m] += noise * rng.standard_normal((m, d), dtype=np.float32)
    return x


def numpy_pivot_mds(x: np.ndarray, *, idx: np.ndarray, dims: int = 2, chunk: int = CHUNK,
                    plain: bool = False) -> np.ndarray:
    """The same PivotMDS in NumPy with the given pivot rows ``idx``, chunked.

    ``plain=True`` is the textbook form: squared distances ``||a||² + ||b||² − 2ab`` of a
    centred copy of each block to the pivots, then double centring. ``plain=False`` uses the
    engine's arithmetic: only the cross term ``−2 x·b`` (one matmul, one read of the block),
    since double centring removes the row and column norm terms anyway.
    """
    n, k = x.shape[0], idx.size
    centre = x[:chunk].mean(axis=0, dtype=np.float64).astype(np.float32)
    b = x[idx] - centre
    bb = np.einsum("ij,ij->i", b, b)
    bt = np.ascontiguousarray(-2 * b.T)  # contiguous, so matmul goes straight to BLAS
    d2 = np.empty((n, k), np.float32)
    for s in range(0, n, chunk):
        xb = x[s:s + chunk]
        if plain:
            a = xb - centre
            d2[s:s + chunk] = np.maximum(np.einsum("ij,ij->i", a, a)[:, None] + bb
                                         - 2 * (a @ b.T), 0)
        else:
            d2[s:s + chunk] = xb @ bt
    c = -0.5 * (d2 - d2.mean(axis=1, keepdims=True) - d2.mean(axis=0) + d2.mean())
    evals, evecs = np.linalg.eigh(c.T @ c)
    order = np.argsort(evals)[::-1][:dims]
    y = (c @ evecs[:, order]) / np.sqrt(np.sqrt(np.maximum(evals[order], 1e-30)))
    return y * np.sign(y[np.argmax(np.abs(y), axis=0), np.arange(dims)])


def timed(fn, repeats: int) -> tuple[float, list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def scale_part(n: int, d: int, *, k: int, repeats: int) -> dict:
    t0 = time.perf_counter()
    x = lowrank_data(n, d)
    print(f"generated {n:,} x {d} float32 ({x.nbytes / 2**30:.1f} GiB) in {time.perf_counter() - t0:.1f} s")
    key = jax.random.key(0)
    jfn = lambda: pivot_mds(x, k=k, pivots="random", key=key, chunk=CHUNK)
    first, _, _ = timed(jfn, 1)
    jmed, jtimes, yj = timed(jfn, repeats)
    # The same pivots as the engine's run (drawn from the same key).
    idx = random_pivots(key, n, k)
    nmed, ntimes, yn = timed(lambda: numpy_pivot_mds(x, idx=idx), repeats)
    pmed, ptimes, _ = timed(lambda: numpy_pivot_mds(x, idx=idx, plain=True), repeats)
    mm, _, ym = timed(lambda: pivot_mds(x, k=k, pivots="maxmin", key=key, chunk=CHUNK), 1)
    sub = subsample(n, 2000, 0)
    agree = procrustes_distance(np.asarray(yj)[sub], np.asarray(yn)[sub])
    return {"n": n, "d": d, "k": k, "chunk": CHUNK, "jax_first_call_s": first,
            "jax_random_median_s": jmed, "jax_random_times_s": jtimes,
            "numpy_random_median_s": nmed, "numpy_random_times_s": ntimes,
            "numpy_plain_median_s": pmed, "numpy_plain_times_s": ptimes,
            "speedup_vs_numpy": nmed / jmed, "speedup_vs_numpy_plain": pmed / jmed,
            "jax_maxmin_s": mm,
            "pd_jax_vs_numpy_layout": agree}


def mixture(n: int, d: int, *, classes: int = 10, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Labelled Gaussian mixture: class means of norm ~20, isotropic noise of 0.5 per coordinate."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((classes, d)) * (10.0 / np.sqrt(d)) * 2.0
    labels = rng.integers(0, classes, size=n)
    x = means[labels] + rng.standard_normal((n, d)) * 0.5
    return x.astype(np.float32), labels


def label_hit(y: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each point's k layout neighbours that share its label."""
    from scipy.spatial import cKDTree

    nbrs = cKDTree(y).query(y, k=k + 1)[1][:, 1:]
    return float(np.mean(labels[nbrs] == labels[:, None]))


def warm(name: str, x: np.ndarray, key: jax.Array) -> None:
    """One untimed run (jit compile; numba compile for UMAP) on the first 500 rows, or all."""
    data = x if name in ("pivotmds", "pca") else x[:500]
    jax.block_until_ready(project(data, method=name, key=key))


def quality_part(n: int, d: int, *, repeats: int, peers: bool) -> list[dict]:
    x, labels = mixture(n, d)
    key = jax.random.key(0)
    runs = {"pivotmds": (lambda: project(x, method="pivotmds", key=key, k=50), repeats),
            "pca": (lambda: project(x, method="pca"), repeats)}
    if peers:
        runs["umap"] = (lambda: project(x, method="umap", key=key), 1)
        runs["tsne"] = (lambda: project(x, method="tsne", key=key), 1)
    rows = []
    for name, (fn, reps) in runs.items():
        warm(name, x, key)
        med, _, y = timed(fn, reps)
        y = np.asarray(y, np.float64)
        t0 = time.perf_counter()
        q = projection_quality(x, y, k=10, max_n=2000, seed=0)
        rows.append({"method": name, "time_s": med, **q, "label_hit": label_hit(y, labels),
                     "metrics_s": time.perf_counter() - t0})
        print(f"  {name}: {med:.2f} s")
    return rows


def print_tables(scale: dict, rows: list[dict]) -> None:
    print(f"\nPivotMDS, n={scale['n']:,} d={scale['d']} k={scale['k']} (random pivots), median s")
    print(f"  jax jit              {scale['jax_random_median_s']:8.2f}"
          f"   (first call {scale['jax_first_call_s']:.2f})")
    print(f"  numpy, same kernels  {scale['numpy_random_median_s']:8.2f}"
          f"   speed-up {scale['speedup_vs_numpy']:.2f}x")
    print(f"  numpy, plain         {scale['numpy_plain_median_s']:8.2f}"
          f"   speed-up {scale['speedup_vs_numpy_plain']:.2f}x")
    print(f"  jax, max-min pivots  {scale['jax_maxmin_s']:8.2f}   (one run)")
    print(f"  Procrustes distance jax vs numpy layout: {scale['pd_jax_vs_numpy_layout']:.4f}")
    cols = ["time_s", "procrustes_distance", "distance_correlation", "mutual_information",
            "trustworthiness", "continuity", "knn_preservation", "label_hit"]
    heads = ["time s", "PD", "DC", "MI", "trust", "contin", "kNN", "label"]
    print("\n" + f"{'method':10s}" + "".join(f"{h:>9s}" for h in heads))
    for r in rows:
        print(f"{r['method']:10s}" + "".join(f"{r[c]:9.3f}" for c in cols))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--no-peers", action="store_true", help="skip UMAP and openTSNE")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "projection.json")
    args = ap.parse_args()
    big, small, reps = ((100_000, 100), (2000, 100), 3) if args.quick else \
        ((1_000_000, 1000), (10_000, 1000), 3)
    scale = scale_part(*big, k=50, repeats=reps)
    rows = quality_part(*small, repeats=reps, peers=not args.no_peers)
    print_tables(scale, rows)
    result = {"benchmark": "projection", "quick": args.quick, "scale": scale, "quality": rows,
              "platform": {"python": platform.python_version(), "jax": jax.__version__,
                           "numpy": np.__version__, "backend": jax.default_backend(),
                           "cpus": os.cpu_count(), "machine": platform.machine()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
