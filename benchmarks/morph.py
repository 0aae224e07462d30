"""Benchmark: server-side time of one layer-morph frame (interpolate + aggregate + shade, 800×800).

Points: n = 1,000,000 and 10,000,000 in 10 categories; 5 "layers" of 2-D layouts from a seeded
Gaussian mixture whose class clusters separate from layer to layer (like a classifier's layers).
Frames at 12 positions spread over [0, 4] (integer and fractional), medians after one warm-up.

- ``hearsight``: :func:`viz.embeddings.morph_frame` — :func:`morph_points` into reused buffers,
  the numba aggregate (datashader's pixel mapping) into a reused count buffer, then ``tf.shade``
  (eq_hist) on the occupied pixels only and ``tf.dynspread`` (1 px).
- ``fused``: the same with one interpolate+aggregate kernel (``fused=True``, no point buffers).
- ``peer``: the plain approach — interpolate with NumPy, build a new pandas DataFrame per frame,
  ``Canvas.points(df, 'x', 'y', agg=ds.count_cat('c'))``, ``tf.shade`` (eq_hist), ``tf.dynspread``.

The images of the three paths are checked to be identical at one position.

Run from the repository root: ``python3 benchmarks/morph.py [--quick]``; writes
``benchmarks/results/morph.json``. ``--quick``: 200k and 1M points, 5 frames.
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

import datashader as ds  # noqa: E402
import datashader.transfer_functions as tf  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from viz.embeddings import make_morph_cloud, morph_frame  # noqa: E402
from viz.embeddings_shade import default_color_key  # noqa: E402

SIZE = 800
LAYERS = 5
N_CATS = 10


def mixture_layouts(n: int, *, layers: int = LAYERS, cats: int = N_CATS, seed: int = 0):
    """``(layers, n)`` x and y float32 layouts and ``(n,)`` codes; clusters separate with depth."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, cats, n).astype(np.int32)
    centres = rng.standard_normal((cats, 2)).astype(np.float32) * 3
    lx = np.empty((layers, n), np.float32)
    ly = np.empty((layers, n), np.float32)
    for i in range(layers):
        sep = i / max(layers - 1, 1)
        lx[i] = rng.standard_normal(n, dtype=np.float32) + sep * centres[codes, 0]
        ly[i] = rng.standard_normal(n, dtype=np.float32) + sep * centres[codes, 1]
    return lx, ly, codes


def peer_frame(lx, ly, codes_cat, position, color_key, ranges):
    """Plain approach: NumPy interpolation, a new DataFrame, Canvas.points, tf.shade."""
    i = min(int(position), lx.shape[0] - 2)
    t = np.float32(position - i)
    x = lx[i] + t * (lx[i + 1] - lx[i])
    y = ly[i] + t * (ly[i + 1] - ly[i])
    df = pd.DataFrame({"x": x, "y": y, "c": codes_cat})
    canvas = ds.Canvas(plot_width=SIZE, plot_height=SIZE, x_range=ranges[0], y_range=ranges[1])
    agg = canvas.points(df, "x", "y", agg=ds.count_cat("c"))
    return tf.dynspread(tf.shade(agg, color_key=color_key, how="eq_hist"), threshold=0.5,
                        max_px=1)


def timed(fn, positions) -> float:
    fn(positions[0])  # warm-up (numba compile / caches)
    times = []
    for p in positions:
        t0 = time.perf_counter()
        fn(p)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def run_size(n: int, frames: int) -> dict:
    lx, ly, codes = mixture_layouts(n)
    cats = [f"class{k}" for k in range(N_CATS)]
    cloud = make_morph_cloud(lx, ly, codes=codes, categories=cats)
    key = default_color_key(cats)
    codes_cat = pd.Categorical.from_codes(codes, categories=cats)
    positions = list(np.linspace(0.0, LAYERS - 1, frames))
    fused_buf, stage_buf = {}, {}

    def fused(p):
        return morph_frame(cloud, p, color_key=key, fused=True, buffers=fused_buf)

    def stages(p):
        return morph_frame(cloud, p, color_key=key, buffers=stage_buf)

    def peer(p):
        return peer_frame(lx, ly, codes_cat, p, key, (cloud.x_range, cloud.y_range))

    same = all(np.array_equal(stages(2.3).data, f(2.3).data) for f in (fused, peer))
    row = {"n": n, "frames": frames, "images_identical": bool(same)}
    for name, fn in (("hearsight_ms", stages), ("fused_ms", fused), ("peer_ms", peer)):
        row[name] = timed(fn, positions)
    row["speedup"] = row["peer_ms"] / row["hearsight_ms"]
    print(f"  n={n:,}: hearsight {row['hearsight_ms']:.1f} ms, fused {row['fused_ms']:.1f} ms, "
          f"peer {row['peer_ms']:.1f} ms", flush=True)
    return row


def print_table(rows: list[dict]) -> None:
    print(f"\nmorph frame {SIZE}x{SIZE}, {N_CATS} categories, median ms over frames")
    print(f"{'points':>12s} {'hearsight':>10s} {'fused':>9s} {'peer':>9s} {'ratio':>7s} "
          f"{'identical':>10s}")
    for r in rows:
        print(f"{r['n']:>12,d} {r['hearsight_ms']:10.1f} {r['fused_ms']:9.1f} "
              f"{r['peer_ms']:9.1f} {r['speedup']:6.1f}x {str(r['images_identical']):>10s}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200k and 1M points, 5 frames")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "morph.json")
    args = ap.parse_args()
    sizes, frames = ((200_000, 1_000_000), 5) if args.quick else ((1_000_000, 10_000_000), 12)
    rows = [run_size(n, frames) for n in sizes]
    print_table(rows)
    result = {"benchmark": "morph", "quick": args.quick, "width": SIZE, "height": SIZE,
              "layers": LAYERS, "categories": N_CATS, "rows": rows,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "load_avg_1m": os.getloadavg()[0]}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
