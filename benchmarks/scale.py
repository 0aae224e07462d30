"""Benchmark: PivotMDS + Procrustes over partitioned activation stores on a Dask LocalCluster.

Frame-level stores of synthetic activations (d = 64, a Gaussian mixture of 10 classes whose
second layer is a rotated, noisier copy of the first) are written partition by partition in
hearsight's store format (:mod:`data.activations`, one row group per ``--rows-per-block``
rows), then read lazily (:meth:`data.activations_read.ActivationStore.dask_layer`) and
projected on a ``distributed.LocalCluster`` with ``1`` and ``2`` single-threaded workers,
each with a memory limit (``--worker-memory``):

- ``project``: :func:`engine.projection.distributed.dask_pivot_mds` (random pivots, k = 50)
  of every layer, each layout written as ``.npy`` blocks by the workers (nothing of size n
  reaches the client; the layout blocks are raw and unsigned on disk, the sign fix is applied
  when they are read back);
- ``align``: :func:`engine.projection.distributed.dask_align_layers` of the layouts and the
  aligned layout written;
- peak resident memory of every worker (``ru_maxrss``) and of the client;
- at the smallest size also the in-memory path (``pivot_mds`` + ``align_layers`` on NumPy) in
  the same run, and the equality of both layouts;
- with ``--views``, at the smallest size: the aligned layouts written as a partitioned layout
  store (:mod:`data.layout_parts`), then the Embeddings page's frames (800 × 800, coloured by
  label: layer 1, halfway, layer 2, and a zoom onto a quarter of the halfway view) timed in
  the same run: the in-memory path (:func:`viz.embeddings.morph_frame`, fused, as the page
  draws a projection file), and the Dask DataFrame on this process's threads and on a
  2-worker ``LocalCluster``, each with hearsight's sparse partition counts (the default of
  :func:`viz.embeddings_dask.dask_morph_frame`, as ``serve --projection FOLDER [--cluster]``
  draws it) and with datashader's own Dask path (the peer); the first frame (persisting the
  store) apart.

Run from the repository root::

    python3 benchmarks/scale.py --points 10000000 --out benchmarks/results/scale_10m.json
    python3 benchmarks/scale.py --points 100000000 --layers 1 --workers 2 \
        --out benchmarks/results/scale_100m.json

Writes ``benchmarks/results/scale.json``; the stores go to ``--work`` (default a temporary
folder beside the repository) and are deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

D, CLASSES, FRAMES, K = 64, 10, 100, 50


def _batches(n: int, rows_per_block: int, layers: int, seed: int):
    """``BatchActs`` of ``rows_per_block`` frames at a time (utterances of FRAMES frames)."""
    from data.activations import BatchActs

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (CLASSES, D)).astype(np.float32)
    q, _ = np.linalg.qr(rng.normal(size=(D, D)))
    per = max(1, rows_per_block // FRAMES)
    for start in range(0, n // FRAMES, per):
        m = min(per, n // FRAMES - start)
        brng = np.random.default_rng([seed, start])
        cls = brng.integers(0, CLASSES, m)
        a = centres[np.repeat(cls, FRAMES)] + brng.normal(0, 1, (m * FRAMES, D)).astype(np.float32)
        acts = {"layer1": a.reshape(m, FRAMES, D)}
        if layers > 1:
            b = a @ q.astype(np.float32) * 1.5 + brng.normal(0, 0.5, a.shape).astype(np.float32)
            acts["layer2"] = b.reshape(m, FRAMES, D)
        labels = [str(c) for c in cls]
        yield BatchActs(item_id=[f"u{start + i}" for i in range(m)], label=labels,
                        speaker=["s"] * m, prediction=labels, correct=np.ones(m, bool),
                        confidence=np.ones(m, np.float32), acts=acts)


def write_store(path: Path, n: int, rows_per_block: int, layers: int, seed: int = 0) -> dict:
    from data.activations import write_activation_store

    t = time.perf_counter()
    write_activation_store(path, _batches(n, rows_per_block, layers, seed), level="frame",
                           overwrite=True)
    size = sum(f.stat().st_size for f in path.rglob("*.parquet"))
    return {"rows": n, "layers": layers, "bytes": size, "write_s": time.perf_counter() - t}


def _worker_peak_mb(client) -> dict:
    """Every worker's peak resident memory: ``VmHWM`` of its address space. Not ``ru_maxrss``:
    Linux carries the spawning process's peak across fork + exec into it, so every worker
    reported at least the client's RSS when the cluster started (7.7 GB at 10M after the
    in-memory step; the figures of runs before this fix are upper bounds of that kind)."""
    def peak():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    return {str(k): round(v, 1) for k, v in client.run(peak).items()}


def run_cluster(store_path: Path, workers: int, memory: str, out: Path, align: bool) -> dict:
    import jax
    from distributed import Client, LocalCluster

    from data.activations_read import open_activation_store
    from engine.projection.distributed import dask_align_layers, dask_pivot_mds, save_blocks

    store = open_activation_store(store_path)
    row = {"workers": workers, "worker_memory": memory, "layers": {}}
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      memory_limit=memory, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        layouts = []
        # A one-layer store is projected twice (other pivots) and the second layout aligned
        # to the first: the same Procrustes work as two layers, at the largest size.
        names = list(store.layers) if len(store.layers) > 1 else [store.layers[0]] * 2
        for i, name in enumerate(names):
            t = time.perf_counter()
            label = name if len(store.layers) > 1 else f"{name}#{i + 1}"
            y = dask_pivot_mds(store.dask_layer(name), k=K, pivots="random",
                               key=jax.random.PRNGKey(i), out=out / f"w{workers}" / label)
            sec = time.perf_counter() - t
            rows = store.info(name)["rows"]
            row["layers"][label] = {"project_s": sec,
                                    "points_per_s_per_worker": rows / sec / workers}
            layouts.append(y)
        if align and len(layouts) > 1:
            t = time.perf_counter()
            fits = dask_align_layers(layouts)
            row["_aligned"], _ = save_blocks(fits[-1].aligned, out / f"w{workers}" / "aligned")
            row["align_s"] = time.perf_counter() - t
            row["residual"] = fits[-1].residual
        row["worker_peak_mb"] = _worker_peak_mb(client)
    row["_layer1"] = layouts[0]  # lazy over the saved blocks (sign fix applied)
    return row


def in_memory(store_path: Path) -> dict:
    import jax

    from data.activations_read import open_activation_store
    from engine.projection.pivot_mds import pivot_mds
    from engine.projection.procrustes import align_layers

    store = open_activation_store(store_path)
    t = time.perf_counter()
    ys = [np.asarray(pivot_mds(store.layer_matrix(n), k=K, pivots="random",
                               key=jax.random.PRNGKey(i))) for i, n in enumerate(store.layers)]
    project = time.perf_counter() - t
    t = time.perf_counter()
    fits = align_layers(ys) if len(ys) > 1 else []
    return {"project_s": project, "align_s": time.perf_counter() - t, "layouts": ys,
            "aligned": np.asarray(fits[-1].aligned) if fits else None}


VIEWS = (("layer 1", 0.0, None), ("halfway", 0.5, None), ("layer 2", 1.0, None),
         ("zoom", 0.5, 0.25))  # (name, position, share of the view's width; None = whole)


def _zoomed(ranges, share):
    if share is None:
        return ranges
    out = []
    for lo, hi in ranges:
        mid, half = (lo + hi) / 2, (hi - lo) * share / 2
        out.append((mid - half, mid + half))
    return tuple(out)


def _time_views(draw, cloud, repeats: int) -> dict:
    from dataclasses import replace

    from viz.embeddings import ranges_at

    out = {}
    for name, pos, share in VIEWS:
        view = _zoomed(ranges_at(cloud, pos), share)
        shown = replace(cloud, x_range=view[0], y_range=view[1])
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            draw(shown, pos)
            times.append(time.perf_counter() - t)
        out[name] = {"median_s": float(np.median(times)), "times_s": times}
    return out


def views(row: dict, store_path: Path, folder: Path, memory: str, repeats: int = 3) -> dict:
    """Frame times of the page's three ways of drawing the same aligned layouts (see the
    module docstring); ``row`` is a 2-layer :func:`run_cluster` result."""
    import dask
    from distributed import Client, LocalCluster

    from data.activations_read import open_activation_store
    from data.layout_parts import open_layout_parts, write_layout_parts
    from serve.pages.embeddings_cloud import colour_codes
    from viz.embeddings import make_morph_cloud, morph_frame
    from viz.embeddings_dask import dask_cloud, dask_morph_frame
    from viz.embeddings_shade import default_color_key

    store = open_activation_store(store_path)
    labels = [str(c) for c in range(CLASSES)]
    t = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        write_layout_parts(folder, store, list(store.layers), [row["_layer1"], row["_aligned"]],
                           {"method": "pivotmds"})
    result = {"write_layout_store_s": time.perf_counter() - t}
    # in memory: the layouts as a projection file gives them to the page
    lay = [np.asarray(a.compute(scheduler="threads"), np.float32)
           for a in (row["_layer1"], row["_aligned"])]
    xy = np.stack(lay)
    codes, cats = colour_codes(store.meta(store.layers[0]), "label", labels=labels)
    key = default_color_key(cats)
    mem = make_morph_cloud(xy[..., 0], xy[..., 1], codes=codes, categories=cats)
    buffers: dict = {}
    result["in_memory"] = _time_views(
        lambda c, p: morph_frame(c, p, color_key=key, fused=True, buffers=buffers), mem,
        repeats)
    del xy, lay, mem, codes

    def dask_views(tag, method):
        parts = open_layout_parts(folder)
        frame = parts.plot_frame(labels)
        cloud = dask_cloud(frame, parts.layers, parts.manifest["ranges"], column="label",
                           categories=parts.colour_categories("label", labels), n=parts.n)
        t = time.perf_counter()
        dask_morph_frame(cloud, 0.0, color_key=key, method=method)  # persists the frame first
        first = time.perf_counter() - t
        out = _time_views(lambda c, p: dask_morph_frame(c, p, color_key=key, method=method),
                          cloud, repeats)
        out["first_frame_s"] = first
        print(f"  views, {tag}, {method}: first {first:.1f} s, "
              + ", ".join(f"{k} {v['median_s']:.2f} s" for k, v in out.items()
                          if isinstance(v, dict)), flush=True)
        return out

    # sparse: hearsight's partition counts; datashader: Canvas.points over the Dask DataFrame
    tags = []
    for method in ("sparse", "datashader"):
        result[f"dask_threads_{method}"] = dask_views("dask on this process's threads", method)
        tags.append(f"dask_threads_{method}")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=memory,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        for method in ("sparse", "datashader"):
            tag = f"dask_cluster_2_workers_{method}"
            result[tag] = dask_views("dask on 2 workers", method)
            tags.append(tag)
        result["cluster_worker_peak_mb"] = _worker_peak_mb(client)
    mem_s = {k: v["median_s"] for k, v in result["in_memory"].items()}
    print("  views, in memory: " + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in mem_s.items()),
          flush=True)
    for tag in tags:
        result[f"{tag}_over_in_memory"] = {k: result[tag][k]["median_s"] / v
                                           for k, v in mem_s.items()}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=float, action="append", default=None,
                        help="frames per store (repeatable; default 10,000,000)")
    parser.add_argument("--layers-at-max", type=int, default=1,
                        help="layers of the largest store when more than one size is given")
    parser.add_argument("--layers", type=int, default=2, help="layers of every other store")
    parser.add_argument("--in-memory-max", type=float, default=2e7,
                        help="compare with the in-memory path at the smallest size up to this")
    parser.add_argument("--rows-per-block", type=int, default=1_000_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--worker-memory", default="4GB")
    parser.add_argument("--work", default=str(ROOT.parent / "hearsight-scale-work"))
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--views", action="store_true",
                        help="at the smallest 2-layer size, also time the Embeddings page's "
                             "frames: in memory vs the Dask DataFrame (threads, 2 workers)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scale.json"))
    args = parser.parse_args(argv)
    sizes = sorted(int(p) for p in (args.points or [1e7]))
    workers = [int(w) for w in args.workers.split(",")]
    work = Path(args.work)
    result = {"benchmark": "scale", "dim": D, "k": K, "pivots": "random",
              "rows_per_block": args.rows_per_block, "machine": platform.machine(),
              "cpus": os.cpu_count(), "load_before": os.getloadavg(), "runs": []}
    try:
        for size in sizes:
            layers = (args.layers_at_max if size == sizes[-1] and len(sizes) > 1
                      else args.layers)
            store = work / f"store-{size}"
            info = write_store(store, size, args.rows_per_block, layers)
            print(f"store {size:,} points x {layers} layers: {info['bytes'] / 1e9:.1f} GB "
                  f"written in {info['write_s']:.0f} s", flush=True)
            entry = {"points": size, "store": info, "cluster": []}
            for w in workers:
                row = run_cluster(store, w, args.worker_memory, work / f"out-{size}",
                                  align=True)
                entry["cluster"].append({k: v for k, v in row.items() if not k.startswith("_")})
                per = ", ".join(f"{k} {v['project_s']:.1f} s" for k, v in row["layers"].items())
                print(f"  {w} worker(s): project {per}; align {row.get('align_s', 0):.1f} s; "
                      f"worker peak MB {row['worker_peak_mb']}", flush=True)
            if len(entry["cluster"]) > 1:
                a, b = entry["cluster"][0], entry["cluster"][-1]
                entry["speedup_project"] = (sum(v["project_s"] for v in a["layers"].values())
                                            / sum(v["project_s"] for v in b["layers"].values()))
                print(f"  {workers[0]} -> {workers[-1]} workers: "
                      f"{entry['speedup_project']:.2f}x on the projection", flush=True)
            if size == sizes[0] and size <= args.in_memory_max and layers > 1:
                mem = in_memory(store)
                dist = np.asarray(row["_layer1"].compute(scheduler="threads"))
                ref = mem["layouts"][0]
                entry["in_memory"] = {"project_s": mem["project_s"], "align_s": mem["align_s"],
                                      "max_rel_diff_layer1": float(np.abs(dist - ref).max()
                                                                   / np.abs(ref).max())}
                if mem["aligned"] is not None:
                    al = np.asarray(row["_aligned"].compute(scheduler="threads"))
                    entry["in_memory"]["max_rel_diff_aligned"] = float(
                        np.abs(al - mem["aligned"]).max() / np.abs(mem["aligned"]).max())
                print(f"  in memory: project {mem['project_s']:.1f} s, align "
                      f"{mem['align_s']:.2f} s; layouts equal to "
                      f"{entry['in_memory']['max_rel_diff_layer1']:.1e}", flush=True)
                del mem
            if args.views and size == sizes[0] and layers > 1:
                entry["views"] = views(row, store, work / f"layouts-{size}",
                                       args.worker_memory)
            result["runs"].append(entry)
            if not args.keep:
                shutil.rmtree(store, ignore_errors=True)
                shutil.rmtree(work / f"out-{size}", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result["load_after"] = os.getloadavg()
    result["client_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
