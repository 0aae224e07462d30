"""Benchmark: first image and memory of the Embeddings page for a first and a second session.

A ``hearsight project``-style Parquet of n frame-level points (default 1,000,000; 6 layers of
seeded Gaussian-mixture layouts, 100 frames per clip, 10 labels, 40 speakers) is served as the
precomputed projection. Each session is an in-process :class:`EmbeddingsPage` (no browser):
Compute (read the file, pack the cloud, colour codes, first 800×800 frame) is timed until the
first image exists (after a warm-up session on a tiny file: imports and compiles not counted); the process's RSS is read before and after. Then one slider move (a
fractional position) is timed.

Two modes, in separate processes so that their RSS does not mix:
- ``shared`` (the page as it is): the second session gets the process-wide cached layouts and
  packed cloud (:func:`serve.pages.embeddings.shared_projection`), so it adds no copy;
- ``per_session`` (what the page did before): every session reads its own copy
  (``load_projection`` per session), emulated by bypassing the cache.

Run from the repository root: ``python3 benchmarks/embeddings_sessions.py [--n N]``; prints a
table and writes ``benchmarks/results/embeddings_sessions.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

LAYERS, FRAMES, LABELS, SPEAKERS = 6, 100, 10, 40


def rss_mb() -> float:
    """Resident set size of this process (MiB), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_projection(path: Path, n: int, *, seed: int = 0) -> None:
    """``x_<layer>, y_<layer>`` float32 columns and frame-level metadata, like ``project``."""
    rng = np.random.default_rng(seed)
    labels = [f"w{i}" for i in range(LABELS)]
    clip = np.arange(n) // FRAMES
    lab = (clip % LABELS).astype(np.int8)
    pred = np.where(rng.random(n) < 0.8, lab, rng.integers(0, LABELS, n)).astype(np.int8)
    df = pd.DataFrame({
        "item_id": pd.Series(clip).map(lambda c: f"corpus/clip{c:06d}").astype(object),
        "label": pd.Categorical.from_codes(lab, labels),
        "speaker": pd.Categorical.from_codes(clip % SPEAKERS, [f"s{i}" for i in range(SPEAKERS)]),
        "prediction": pd.Categorical.from_codes(pred, labels),
        "correct": lab == pred,
        "confidence": rng.random(n, dtype=np.float32),
        "frame": (np.arange(n) % FRAMES).astype(np.int32)})
    centres = rng.standard_normal((LABELS, 2)).astype(np.float32) * 3
    for i in range(LAYERS):
        sep = i / (LAYERS - 1)
        df[f"x_l{i}"] = rng.standard_normal(n, dtype=np.float32) + sep * centres[lab, 0]
        df[f"y_l{i}"] = rng.standard_normal(n, dtype=np.float32) + sep * centres[lab, 1]
    df.to_parquet(path)


class Shared:
    def __init__(self, projection_path):
        from data.features import FeatureParams
        from serve.config import Limits

        params = FeatureParams()
        self.predictor = SimpleNamespace(labels=[f"w{i}" for i in range(LABELS)],
                                         params=params, arch="fake", model=None)
        self.limits = Limits(jobs_per_session=1, job_seconds=600.0)
        self.model_dir, self.projection_path = "/models/none", str(projection_path)

    def corpus_items(self):
        return []


def one_session(path: Path) -> dict:
    from serve.pages.embeddings import EmbeddingsPage
    from serve.session import Session

    before = rss_mb()
    t0 = time.perf_counter()
    page = EmbeddingsPage(Session(Shared(path)), items=[])
    page.compute()
    if not page.wait(600) or page.job.status != "done":
        raise RuntimeError(f"compute failed: {page.job.error}")
    if not page.cloud_view.image_source.data["image"]:
        page.cloud_view.render()
    first = time.perf_counter() - t0
    after = rss_mb()
    t1 = time.perf_counter()
    page.slider.value = 2.5  # one layer move (renders one frame)
    move = time.perf_counter() - t1
    return {"first_image_s": round(first, 3), "rss_before_mb": round(before, 1),
            "rss_after_mb": round(after, 1), "rss_growth_mb": round(after - before, 1),
            "layer_move_s": round(move, 3), "page": page}


def run_mode(path: Path, mode: str) -> list[dict]:
    """Two sessions in this process; ``per_session`` bypasses the process-wide cache."""
    from serve.pages import embeddings as E
    from serve.pages import embeddings_layouts as EL

    if mode == "per_session":
        E.shared_projection = EL.load_projection
    warm = path.with_name("warm.parquet")  # imports and numba compiles, not timed
    write_projection(warm, 2 * FRAMES, seed=1)
    one_session(warm)
    rows, pages = [], []
    for k in (1, 2):
        r = one_session(path)
        pages.append(r.pop("page"))  # keep the session alive, like an open tab
        rows.append({"mode": mode, "session": k, **r})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "embeddings_sessions.json")
    ap.add_argument("--child", nargs=2, metavar=("PATH", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_mode(Path(args.child[0]), args.child[1])))
        return
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "projection.parquet"
        t0 = time.perf_counter()
        write_projection(path, args.n)
        print(f"wrote {args.n:,} points × {LAYERS} layers ({path.stat().st_size / 2**20:.0f} MiB)"
              f" in {time.perf_counter() - t0:.1f} s")
        rows = []
        for mode in ("shared", "per_session"):
            out = subprocess.run([sys.executable, __file__, "--child", str(path), mode],
                                 check=True, capture_output=True, text=True, cwd=ROOT)
            rows += json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{'mode':>12s} {'session':>7s} {'first image s':>13s} {'RSS growth MiB':>14s} "
          f"{'RSS after MiB':>13s} {'layer move s':>12s}")
    for r in rows:
        print(f"{r['mode']:>12s} {r['session']:>7d} {r['first_image_s']:>13.2f} "
              f"{r['rss_growth_mb']:>14.0f} {r['rss_after_mb']:>13.0f} {r['layer_move_s']:>12.3f}")
    result = {"n": args.n, "layers": LAYERS, "frames_per_clip": FRAMES, "rows": rows,
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "loadavg_before": load_before, "loadavg_after": os.getloadavg()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
