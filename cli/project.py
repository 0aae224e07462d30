"""``hearsight project``: 2-D layouts of every layer of an activation store, aligned.

Every layer of a store (``hearsight activations``) is laid out in 2-D, consecutive layers are
aligned by Procrustes analysis (with the mirroring test), and one Parquet of ``x_<layer>,
y_<layer>`` columns plus metadata is written, with a JSON sidecar of per-layer alignment and
projection-quality numbers — the key frames of the Embeddings page's layer morph.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from cli.inputs import layer_list

PROJECTION_METHODS = ("pivotmds", "pca", "ae", "umap", "tsne")


def add_parser(sub) -> None:
    p = sub.add_parser("project", help="2-D layouts of every layer of a store, aligned")
    p.add_argument("--activations", required=True, help="store folder (hearsight activations)")
    p.add_argument("--method", default="pivotmds", choices=list(PROJECTION_METHODS))
    p.add_argument("--layers", default="all", help="comma-separated layer names or 'all'")
    p.add_argument("--out", required=True, help="output .parquet (a .json sidecar is written too); with --cluster a "
                        "folder instead writes a partitioned layout store, one Parquet part "
                        "per row group, written by the workers")
    p.add_argument("--pivots", type=int, default=50, help="PivotMDS pivots")
    p.add_argument("--pivot-strategy", default="maxmin", choices=["maxmin", "random"],
                   help="how PivotMDS picks its pivots: max-min (spread out, k passes over the "
                        "data) or random rows (one pass)")
    p.add_argument("--cluster", default=None, metavar="ADDRESS",
                   help="PivotMDS and Procrustes on a Dask cluster, reading the store's parts "
                        "where they lie: a scheduler address (tcp://host:8786) or local:N "
                        "(N worker processes here); --method pivotmds only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quality-n", type=int, default=2000,
                   help="points sampled for the quality metrics (0: skip them)")
    p.add_argument("--align-frames", default="pool", choices=["pool", "none"],
                   help="frame-level layers with different frame counts per clip (a CNN "
                        "that pools in time): 'pool' averages each layer's frames onto the "
                        "coarsest layer's frames (the same share of the clip), so one set "
                        "of points walks through every layer; 'none' refuses them")
    p.add_argument("--json", action="store_true", help="print the sidecar as JSON")


def run(args):
    import jax

    from data.activations_read import open_activation_store

    store = open_activation_store(args.activations)
    layers = layer_list(args.layers, store.layers) or list(store.layers)
    rows = {name: store.info(name)["rows"] for name in layers}
    grid = None  # the layer whose frames every layer is pooled onto
    if len(set(rows.values())) != 1:
        grid = _frame_grid(args, store, rows)
    if args.cluster and args.method != "pivotmds":
        raise ValueError(f"--cluster runs PivotMDS only (got --method {args.method})")
    keys = jax.random.split(jax.random.key(args.seed), len(layers))
    n = rows[grid] if grid else next(iter(rows.values()))
    sample = _quality_rows(n, args.quality_n, args.seed)
    if args.cluster and Path(args.out).suffix != ".parquet":
        return _parts_on_cluster(args, store, layers, keys, sample, n)
    if args.cluster:
        aligned, fits, quality = _on_cluster(args, store, layers, keys, sample)
    else:
        aligned, fits, quality = _in_memory(args, store, layers, keys, sample, grid=grid)
    df = store.meta(grid or layers[0])
    for name, xy in zip(layers, aligned):
        df[f"x_{name}"], df[f"y_{name}"] = xy[:, 0], xy[:, 1]
    sidecar = _sidecar(args, store, layers, fits, quality, len(df))
    if grid:
        sidecar["frames"] = {"aligned": "pool", "grid": grid, "rows": rows}
    _write_outputs(Path(args.out), df, sidecar)
    if not args.json:
        for name in layers:
            s = sidecar["per_layer"][name]
            print(f"{name:>10s}: residual {s['residual']:.4f}, reflected {s['reflected']}")
        print(f"wrote {args.out} and {Path(args.out).with_suffix('.json')}")
    return sidecar


def _quality_rows(n: int, quality_n: int, seed: int) -> np.ndarray | None:
    """The rows the quality metrics sample (sorted; ``None`` when ``--quality-n 0``)."""
    if quality_n <= 0:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(quality_n, n), replace=False))


def _qualities(x_rows: list, aligned: list, sample) -> list:
    """Every layer's quality on the sampled rows of its aligned layout; ``x_rows`` holds only
    those rows of each layer (``--quality-n`` × dim), so no layer's full matrix is kept."""
    from engine.projection import projection_quality

    if sample is None:
        return [None] * len(aligned)
    return [projection_quality(x, y[sample], max_n=len(sample)) for x, y in zip(x_rows, aligned)]


def _frame_grid(args, store, rows: dict) -> str:
    """The layer with the fewest frames, onto whose frames ``--align-frames pool`` averages
    the others; layers of different row counts are refused otherwise."""
    if store.level != "frame" or args.align_frames == "none":
        raise ValueError(f"layers have different row counts {rows} (frame-level stores keep "
                         "each layer's own time resolution); pick layers with --layers"
                         + ("" if store.level != "frame" else ", or --align-frames pool"))
    if args.cluster:
        raise ValueError(f"layers have different frame counts {rows}: --align-frames pool "
                         "runs in memory only; drop --cluster, or pick layers of one frame "
                         "count with --layers")
    from engine.projection.frames import coarsest_layer

    grid = coarsest_layer(rows)
    if not args.json:
        print(f"layers have different frame counts {rows}: each is averaged onto {grid}'s "
              f"{rows[grid]} frames (--align-frames pool)")
    return grid


def _in_memory(args, store, layers, keys, sample, *, grid=None):
    """One layer's matrix in memory at a time: laid out, sampled for quality, dropped (each
    pooled onto ``grid``'s frames first, when given)."""
    from engine.projection import align_layers, layout_of
    from engine.projection.frames import layer_on_grid

    grid_meta = store.meta(grid)[["item_id", "frame"]] if grid else None
    layouts, x_rows = [], []
    for name, key in zip(layers, keys):
        x = layer_on_grid(store, name, grid, grid_meta)
        layouts.append(layout_of(x, method=args.method, key=key, pivots=args.pivots,
                                 strategy=args.pivot_strategy))
        x_rows.append(None if sample is None else x[sample])
        del x
    fits = align_layers(layouts)
    aligned = [np.asarray(f.aligned, np.float32) for f in fits]
    return aligned, fits, _qualities(x_rows, aligned, sample)


def _parts_on_cluster(args, store, layers, keys, sample, n):
    """``--cluster`` with a folder as ``--out``: the aligned layouts are written by the workers
    as a partitioned layout store (:mod:`data.layout_parts`), one part per row group of the
    store; only the quality sample's rows reach this process."""
    from data.layout_parts import write_layout_parts

    def write(fits, x_rows):
        from engine.projection import projection_quality

        quality = [None] * len(fits)
        if sample is not None:  # the sampled rows of each aligned layout only
            quality = [projection_quality(x, np.asarray(f.aligned[sample].compute(),
                                                        np.float32), max_n=len(sample))
                       for x, f in zip(x_rows, fits)]
        sidecar = _sidecar(args, store, layers, fits, quality, n)
        return write_layout_parts(args.out, store, layers, [f.aligned for f in fits], sidecar)

    manifest = _on_cluster(args, store, layers, keys, sample, then=write)
    if not args.json:
        for name in layers:
            s = manifest["per_layer"][name]
            print(f"{name:>10s}: residual {s['residual']:.4f}, reflected {s['reflected']}")
        print(f"wrote {manifest['parts']} parts of {manifest['n']:,} points to {args.out}")
    return manifest


def _on_cluster(args, store, layers, keys, sample, then=None):
    """PivotMDS of every layer on the cluster (layout blocks written by the workers beside the
    output), aligned there from reductions; only the ``(n, 2)`` layouts come back."""
    import tempfile

    from engine.cluster import connect
    from engine.projection.distributed import dask_align_layers, dask_pivot_mds

    out_dir = Path(args.out).resolve().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    with connect(args.cluster) as client, \
            tempfile.TemporaryDirectory(prefix=".project-", dir=out_dir) as scratch:
        print(f"cluster: {client}")
        layouts, x_rows = [], []
        for name, key in zip(layers, keys):
            x = store.dask_layer(name)
            layouts.append(dask_pivot_mds(x, k=min(args.pivots, x.shape[0]),
                                          pivots=args.pivot_strategy, key=key,
                                          out=Path(scratch) / name))
            x_rows.append(None if sample is None else np.asarray(x[sample].compute()))
        fits = dask_align_layers(layouts)
        if then is not None:  # while the workers' layout blocks still exist
            return then(fits, x_rows)
        aligned = [np.asarray(f.aligned.compute(), np.float32) for f in fits]
    return aligned, fits, _qualities(x_rows, aligned, sample)


def _sidecar(args, store, layers, fits, quality, n) -> dict:
    per_layer = {}
    for name, fit, q in zip(layers, fits, quality):
        entry = {"reflected": bool(fit.reflected), "residual": float(fit.residual),
                 "scale": float(fit.scale), "dim": store.info(name)["dim"]}
        if q is not None:
            entry["quality"] = q
        per_layer[name] = entry
    return {"activations": str(args.activations), "method": args.method, "level": store.level,
            "layers": layers, "n": n, "seed": args.seed, "per_layer": per_layer,
            "pivots": args.pivots if args.method == "pivotmds" else None,
            "pivot_strategy": args.pivot_strategy if args.method == "pivotmds" else None,
            "cluster": args.cluster, "store_meta": store.manifest.get("meta", {})}


def _write_outputs(out: Path, df, sidecar: dict) -> None:
    """Parquet + JSON sidecar, each written to a temporary name and renamed (atomic)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, out)
    side = out.with_suffix(".json")
    tmp_side = side.with_name(f"{side.name}.tmp-{os.getpid()}")
    tmp_side.write_text(json.dumps(sidecar, indent=2, default=float))
    os.replace(tmp_side, side)
