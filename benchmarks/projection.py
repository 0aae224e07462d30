"""Benchmark: PivotMDS at scale (jit vs NumPy, each pivot strategy) and projection quality.

Part 1, scale: n = 200,000 points in d = 512 (float32, 0.4 GB; ``--n``/``--d`` for other sizes;
generated in chunks from a seeded rank-10 + isotropic noise model into a 64-byte aligned host
array, so XLA reads it without copies), k = 50 pivots. In the same run, round-robin so that the
shared machine's load falls on every variant alike:

- ``jax_default``: ``engine.projection.pivot_mds(x, k=k, key=key)``, the call the Embeddings page
  and ``hearsight project`` make (max-min pivots);
- ``jax_random``: the same with ``pivots="random"``;
- ``numpy_plain``: a textbook NumPy PivotMDS with the same random pivots (centred copy of each
  block, ``||a||²+||b||²−2ab``, double centring, eigh of CᵀC), the peer the README compares with;
- ``numpy_random``: NumPy with the engine's arithmetic (only the cross term, one matmul a block);
- ``numpy_maxmin``: NumPy with max-min pivots as k passes (one matrix-vector product each), then
  the engine's arithmetic: the like-for-like peer of the default.

Medians of ``--repeats`` runs after one warm-up each; the first call of each JAX variant and of
NumPy is timed in a fresh process (``cold``). The 1-minute load average is recorded before and
after. Also checked: the default's pivots equal NumPy's k-pass max-min, and the layouts agree.

Part 2, quality: n = 10,000 points in d = 1000 from a labelled 10-class Gaussian mixture;
PivotMDS (max-min), PCA, UMAP and openTSNE times and their Procrustes distance, distance
correlation, KSG mutual information (k = 10), trustworthiness, continuity, kNN preservation
(k = 10) on a 2,000-point subsample, plus the label agreement of 10 layout neighbours.

Run from the repository root: ``python3 benchmarks/projection.py [--quick] [--part scale]``;
writes ``benchmarks/results/projection.json`` (``--part`` re-runs one part and keeps the other
as the file had it, each part stamped with its own run). Part 2's peers need
``pip install hearsight[peers]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import jax  # noqa: E402
import numpy as np  # noqa: E402

from engine.projection import (aligned_empty, pivot_mds, procrustes_distance, project,  # noqa: E402
                               projection_quality, random_pivots, subsample)
from engine.projection.maxmin import first_pivot, maxmin_pivots  # noqa: E402

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


def numpy_maxmin_pivots(x: np.ndarray, *, first: int, k: int, chunk: int = CHUNK) -> np.ndarray:
    """Greedy max-min pivots as k passes over ``x`` (one matrix-vector product each), in NumPy.

    The textbook loop, with the old engine's arithmetic: float32 squared distances about the
    centre of the first block, ``||a||² + ||b||² − 2ab``, the lowest index among equal maxima.
    """
    centre = x[:chunk].mean(axis=0, dtype=np.float64).astype(np.float32)
    aa = np.concatenate([np.einsum("ij,ij->i", x[s:s + chunk] - centre, x[s:s + chunk] - centre)
                         for s in range(0, x.shape[0], chunk)])
    mind, idx = np.full(x.shape[0], np.inf, np.float32), [first]
    for _ in range(k - 1):
        b = x[idx[-1]] - centre
        d2 = np.maximum(aa + b @ b - 2 * (x @ b - centre @ b), 0)
        np.minimum(mind, d2, out=mind)
        idx.append(int(np.argmax(mind)))
    return np.asarray(idx)


def timed(fn, repeats: int) -> tuple[float, list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def scale_variants(x: np.ndarray, k: int) -> dict:
    """The scale part's variants as ``name -> callable`` (see the module docstring)."""
    key, n = jax.random.key(0), x.shape[0]
    idx = random_pivots(key, n, k)  # the same pivots as the engine's random run
    first = first_pivot(key, n)  # the engine's first max-min pivot
    return {
        "jax_default": lambda: pivot_mds(x, k=k, key=key, chunk=CHUNK),
        "jax_random": lambda: pivot_mds(x, k=k, pivots="random", key=key, chunk=CHUNK),
        "numpy_plain": lambda: numpy_pivot_mds(x, idx=idx, plain=True),
        "numpy_random": lambda: numpy_pivot_mds(x, idx=idx),
        "numpy_maxmin": lambda: numpy_pivot_mds(x, idx=numpy_maxmin_pivots(x, first=first, k=k)),
    }


COLD = ("jax_default", "jax_random", "numpy_plain")


def floors(x: np.ndarray, k: int, repeats: int) -> dict:
    """What the machine allows: a NumPy copy of ``x`` (its memory bandwidth), the one pass of
    squared distances to a point that max-min starts with, and the ``(n, d) @ (d, k)`` product
    every PivotMDS needs (OpenBLAS, as the engine's host path and the NumPy peers), each the
    median of ``repeats`` after a warm-up."""
    from engine.projection.maxmin import _first_distances

    dst, bt = aligned_empty(x.shape), np.ascontiguousarray(x[:k].T)
    out = aligned_empty((x.shape[0], k))

    def gemm():
        for s in range(0, x.shape[0], CHUNK):
            np.matmul(x[s:s + CHUNK], bt, out=out[s:s + CHUNK])

    runs = {"copy_s": lambda: np.copyto(dst, x),
            "first_pass_s": lambda: _first_distances(x, x[0], CHUNK), "gemm_s": gemm}
    out_s = {}
    for name, fn in runs.items():
        fn()
        out_s[name] = timed(fn, repeats)[0]
    flops = 2.0 * x.shape[0] * x.shape[1] * k
    return {**out_s, "copy_gb_per_s": 2 * x.nbytes / out_s["copy_s"] / 1e9,
            "gemm_gflop_per_s": flops / out_s["gemm_s"] / 1e9, "data_gb": x.nbytes / 1e9}


def cold_worker(name: str, n: int, d: int, k: int) -> float:
    """Seconds of the first call of variant ``name`` in this fresh process (backend started)."""
    x = lowrank_data(n, d)
    jax.devices()
    fn = scale_variants(x, k)[name]
    return timed(fn, 1)[0]


def cold_times(n: int, d: int, k: int) -> dict:
    out = {}
    for name in COLD:
        cmd = [sys.executable, __file__, "--cold", name, "--n", str(n), "--d", str(d), "--k", str(k)]
        run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
        out[name] = float(run.stdout.strip().splitlines()[-1])
    return out


def scale_part(n: int, d: int, *, k: int, repeats: int) -> dict:
    load_before = os.getloadavg()[0]
    cold = cold_times(n, d, k)
    t0 = time.perf_counter()
    x = lowrank_data(n, d)
    print(f"generated {n:,} x {d} float32 ({x.nbytes / 2**30:.1f} GiB) in {time.perf_counter() - t0:.1f} s")
    variants = scale_variants(x, k)
    out = {name: jax.block_until_ready(fn()) for name, fn in variants.items()}  # warm-up
    times = {name: [] for name in variants}
    for _ in range(repeats):  # round-robin: load changes hit every variant alike
        for name, fn in variants.items():
            times[name].append(timed(fn, 1)[0])
    med = {name: statistics.median(t) for name, t in times.items()}
    floor = floors(x, k, repeats)
    sub = subsample(n, 2000, 0)
    key = jax.random.key(0)
    same = np.array_equal(maxmin_pivots(x, k, key=key, chunk=CHUNK),
                          numpy_maxmin_pivots(x, first=first_pivot(key, n), k=k))
    return {"n": n, "d": d, "k": k, "chunk": CHUNK, "repeats": repeats,
            "pivots": {"jax_default": "maxmin", "jax_random": "random", "numpy_plain": "random",
                       "numpy_random": "random", "numpy_maxmin": "maxmin"},
            "median_s": med, "times_s": times, "cold_s": cold,
            "ratios": {"numpy_plain_over_default": med["numpy_plain"] / med["jax_default"],
                       "numpy_random_over_default": med["numpy_random"] / med["jax_default"],
                       "numpy_maxmin_over_default": med["numpy_maxmin"] / med["jax_default"],
                       "numpy_plain_over_random": med["numpy_plain"] / med["jax_random"],
                       "default_cold_over_numpy_plain": cold["jax_default"] / med["numpy_plain"],
                       "default_over_random": med["jax_default"] / med["jax_random"]},
            "floors": floor,
            "default_pivots_equal_numpy_maxmin": bool(same),
            "pd_default_vs_numpy_maxmin": procrustes_distance(np.asarray(out["jax_default"])[sub],
                                                              np.asarray(out["numpy_maxmin"])[sub]),
            "pd_random_vs_numpy_random": procrustes_distance(np.asarray(out["jax_random"])[sub],
                                                             np.asarray(out["numpy_random"])[sub]),
            "loadavg_1min": {"before": load_before, "after": os.getloadavg()[0]}}


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
                     "metrics_s": time.perf_counter() - t0,
                     **({"pivots": "maxmin"} if name == "pivotmds" else {})})
        print(f"  {name}: {med:.2f} s")
    return rows


def print_scale(scale: dict) -> None:
    med, cold, r = scale["median_s"], scale["cold_s"], scale["ratios"]
    print(f"\nPivotMDS, n={scale['n']:,} d={scale['d']} k={scale['k']}, median of "
          f"{scale['repeats']} (s); load {scale['loadavg_1min']['before']:.1f} -> "
          f"{scale['loadavg_1min']['after']:.1f}")
    for name, t in med.items():
        first = f"   first call {cold[name]:.2f}" if name in cold else ""
        print(f"  {name:14s} {scale['pivots'][name]:7s} {t:8.2f}{first}")
    print(f"  numpy_plain / default {r['numpy_plain_over_default']:.2f}x, numpy_random / default "
          f"{r['numpy_random_over_default']:.2f}x, numpy_maxmin / default "
          f"{r['numpy_maxmin_over_default']:.2f}x; default first call / numpy_plain "
          f"{r['default_cold_over_numpy_plain']:.2f}x")
    f = scale["floors"]
    print(f"  floors: NumPy copy {f['copy_s']:.3f} s ({f['copy_gb_per_s']:.1f} GB/s read+write), "
          f"first max-min pass {f['first_pass_s']:.3f} s, x @ (d, k) {f['gemm_s']:.3f} s "
          f"({f['gemm_gflop_per_s']:.0f} GFLOP/s)")
    print(f"  default pivots equal NumPy's k-pass max-min: {scale['default_pivots_equal_numpy_maxmin']}"
          f"; Procrustes distance to NumPy's layout {scale['pd_default_vs_numpy_maxmin']:.2e}")


def print_quality(rows: list[dict]) -> None:
    cols = ["time_s", "procrustes_distance", "distance_correlation", "mutual_information",
            "trustworthiness", "continuity", "knn_preservation", "label_hit"]
    heads = ["time s", "PD", "DC", "MI", "trust", "contin", "kNN", "label"]
    print("\n" + f"{'method':10s}" + "".join(f"{h:>9s}" for h in heads))
    for r in rows:
        print(f"{r['method']:10s}" + "".join(f"{r[c]:9.3f}" for c in cols))


def stamp(quick: bool) -> dict:
    return {"date": time.strftime("%Y-%m-%d"), "quick": quick,
            "platform": {"python": platform.python_version(), "jax": jax.__version__,
                         "numpy": np.__version__, "backend": jax.default_backend(),
                         "cpus": os.cpu_count(), "machine": platform.machine()}}


def kept_quality(old: dict):
    """The quality part as the file has it; a file from before the parts were stamped keeps its
    rows under the platform it recorded (its PivotMDS row used the default max-min pivots)."""
    q = old.get("quality")
    if not isinstance(q, list):
        return q
    for row in q:
        if row["method"] == "pivotmds":
            row.setdefault("pivots", "maxmin")
    return {"rows": q, "run": {"date": "before 2026-12-02", "quick": old.get("quick"),
                               "platform": old.get("platform")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--part", choices=("all", "scale", "quality"), default="all",
                    help="re-run one part; the file keeps the other part as it was")
    ap.add_argument("--no-peers", action="store_true", help="skip UMAP and openTSNE")
    ap.add_argument("--n", type=int, default=200_000, help="scale part: points")
    ap.add_argument("--d", type=int, default=512, help="scale part: dimensions")
    ap.add_argument("--k", type=int, default=50, help="scale part: pivots")
    ap.add_argument("--repeats", type=int, default=5, help="scale part: timed runs per variant")
    ap.add_argument("--cold", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "projection.json")
    args = ap.parse_args()
    if args.cold:
        print(cold_worker(args.cold, args.n, args.d, args.k))
        return
    (n, d), small, reps = ((20_000, 100), (2000, 100), 3) if args.quick else \
        ((args.n, args.d), (10_000, 1000), args.repeats)
    old = json.loads(args.out.read_text()) if args.out.exists() else {}
    result = {"benchmark": "projection", "scale": old.get("scale"), "quality": kept_quality(old)}
    if args.part in ("all", "scale"):
        result["scale"] = {**scale_part(n, d, k=args.k, repeats=reps), "run": stamp(args.quick)}
        print_scale(result["scale"])
    if args.part in ("all", "quality"):
        rows = quality_part(*small, repeats=3, peers=not args.no_peers)
        result["quality"] = {"rows": rows, "run": stamp(args.quick)}
        print_quality(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
