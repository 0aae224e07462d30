"""Benchmark: peak memory and wall time of ``hearsight project`` on a large multi-layer store.

Issue 22 measured ``hearsight project`` on 604,800 rows × 1000 dims × 6 layers at 18 GB peak
(every layer's full matrix kept until the quality metrics ran at the end). This writes a store
of that shape (synthetic: 10 class centres in a 20-dimensional subspace, rotated into ``--dim``
dimensions differently for every layer, plus noise; one Parquet part per 65,536 rows), then
runs ``hearsight project`` on it in a fresh Python process per setting and reads that process's
own peak resident memory (``VmHWM``; ``ru_maxrss`` would carry over the writer's peak), next to two reference sizes: one layer's matrix
(the floor for an in-memory layout) and all layers' matrices (what the old path held).

    python3 benchmarks/project_memory.py [--rows 604800 --dim 1000 --layers 6]
                                         [--strategy random --strategy maxmin] [--cluster local:1]

Prints a table and writes ``benchmarks/results/project_memory.json``. The store goes to
``--work`` (default: a temporary folder beside the repository) and is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHUNK = 65_536
RANK, CLASSES = 20, 10

_CHILD = """
import json, re, sys, time
sys.path.insert(0, {root!r})
from cli.main import main
t = time.perf_counter()
rc = main({argv!r})
# VmHWM: this process's own peak (ru_maxrss would carry the parent's peak across exec)
hwm = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
print(json.dumps({{"rc": rc, "wall_s": time.perf_counter() - t, "peak_mb": hwm / 1024}}))
"""


def _batches(rows: int, dim: int, layers: int, seed: int):
    from data.activations import BatchActs

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (CLASSES, RANK)).astype(np.float32)
    bases = [np.linalg.qr(rng.normal(size=(dim, RANK)))[0].T.astype(np.float32)
             for _ in range(layers)]
    for start in range(0, rows, CHUNK):
        m = min(CHUNK, rows - start)
        brng = np.random.default_rng([seed, start])
        cls = brng.integers(0, CLASSES, m)
        z = centres[cls] + brng.normal(0, 1, (m, RANK)).astype(np.float32)
        acts = {f"layer{i + 1}": z @ basis + brng.normal(0, 0.1, (m, dim)).astype(np.float32)
                for i, basis in enumerate(bases)}
        labels = [str(c) for c in cls]
        yield BatchActs(item_id=[f"u{start + i}" for i in range(m)], label=labels,
                        speaker=["s"] * m, prediction=labels, correct=np.ones(m, bool),
                        confidence=np.ones(m, np.float32), acts=acts)


def write_store(path: Path, rows: int, dim: int, layers: int) -> dict:
    from data.activations import write_activation_store

    t = time.perf_counter()
    write_activation_store(path, _batches(rows, dim, layers, 0), level="utterance",
                           overwrite=True, rows_per_part=CHUNK)
    size = sum(f.stat().st_size for f in path.rglob("*.parquet"))
    return {"bytes_on_disk": size, "write_s": round(time.perf_counter() - t, 1)}


def run_project(store: Path, out: Path, strategy: str, cluster: str | None,
                quality_n: int) -> dict:
    argv = ["project", "--activations", str(store), "--out", str(out), "--pivots", "50",
            "--pivot-strategy", strategy, "--quality-n", str(quality_n), "--json"]
    if cluster:
        argv += ["--cluster", cluster]
    done = subprocess.run([sys.executable, "-c", _CHILD.format(root=str(ROOT), argv=argv)],
                          capture_output=True, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith('{"rc"')]
    if done.returncode or not lines:
        return {"strategy": strategy, "cluster": cluster, "error": done.stderr[-800:]}
    res = json.loads(lines[-1])
    side = json.loads(out.with_suffix(".json").read_text())
    trust = [v["quality"]["trustworthiness"] for v in side["per_layer"].values()
             if "quality" in v]
    return {"strategy": strategy, "cluster": cluster, "quality_n": quality_n,
            "rc": res["rc"], "wall_s": round(res["wall_s"], 1),
            "peak_mb": round(res["peak_mb"], 1),
            "trustworthiness_min": round(min(trust), 4) if trust else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=604_800)
    ap.add_argument("--dim", type=int, default=1000)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--strategy", action="append", choices=["random", "maxmin"])
    ap.add_argument("--cluster", action="append", default=[],
                    help="also run on this cluster (e.g. local:1); repeatable")
    ap.add_argument("--quality-n", type=int, default=2000)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/project_memory.json")
    args = ap.parse_args(argv)
    strategies = args.strategy or ["random"]
    work = Path(tempfile.mkdtemp(prefix="project-memory-", dir=args.work or ROOT.parent))
    try:
        store = work / "store"
        written = write_store(store, args.rows, args.dim, args.layers)
        layer_mb = args.rows * args.dim * 4 / 2**20
        runs = []
        for strategy in strategies:
            for cluster in [None, *args.cluster]:
                runs.append(run_project(store, work / "layout.parquet", strategy, cluster,
                                        args.quality_n))
                print(json.dumps(runs[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"rows": args.rows, "dim": args.dim, "layers": args.layers, **written,
              "one_layer_mb": round(layer_mb, 1), "all_layers_mb": round(layer_mb * args.layers, 1),
              "runs": runs, "loadavg": os.getloadavg(), "cpus": os.cpu_count(),
              "machine": platform.machine(), "python": platform.python_version()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\n{args.rows:,} rows × {args.dim} dims × {args.layers} layers "
          f"(one layer {layer_mb:,.0f} MB, all {layer_mb * args.layers:,.0f} MB; "
          f"store written in {written['write_s']} s)")
    print(f"{'strategy':>9s} {'where':>9s} {'wall s':>8s} {'peak MB':>9s} {'peak/layer':>11s} "
          f"{'trust min':>10s}")
    for r in runs:
        if "error" in r:
            print(f"{r['strategy']:>9s} {r['cluster'] or 'here':>9s}  FAILED: {r['error'][-200:]}")
            continue
        print(f"{r['strategy']:>9s} {r['cluster'] or 'here':>9s} {r['wall_s']:8.1f} "
              f"{r['peak_mb']:9.0f} {r['peak_mb'] / layer_mb:11.2f} "
              f"{r['trustworthiness_min'] if r['trustworthiness_min'] is not None else '-':>10}")
    print(f"load average {os.getloadavg()[0]:.2f}; wrote {args.out}")
    return 0 if all("error" not in r for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
