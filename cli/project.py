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
    p.add_argument("--out", required=True, help="output .parquet (a .json sidecar is written too)")
    p.add_argument("--pivots", type=int, default=50, help="PivotMDS pivots")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quality-n", type=int, default=2000,
                   help="points sampled for the quality metrics (0: skip them)")
    p.add_argument("--json", action="store_true", help="print the sidecar as JSON")


def run(args):
    import jax

    from data.activations_read import open_activation_store
    from engine.projection import align_layers, layout_of

    store = open_activation_store(args.activations)
    layers = layer_list(args.layers, store.layers) or list(store.layers)
    rows = {name: store.info(name)["rows"] for name in layers}
    if len(set(rows.values())) != 1:
        raise ValueError(f"layers have different row counts {rows} (frame-level stores keep "
                         "each layer's own time resolution); pick layers with --layers")
    keys = jax.random.split(jax.random.key(args.seed), len(layers))
    mats, layouts = [], []
    for name, key in zip(layers, keys):
        x = store.layer_matrix(name)
        mats.append(x if args.quality_n > 0 else None)
        layouts.append(layout_of(x, method=args.method, key=key, pivots=args.pivots))
    fits = align_layers(layouts)
    df = store.meta(layers[0])
    for name, fit in zip(layers, fits):
        aligned = np.asarray(fit.aligned, np.float32)
        df[f"x_{name}"], df[f"y_{name}"] = aligned[:, 0], aligned[:, 1]
    sidecar = _sidecar(args, store, layers, fits, mats, len(df))
    _write_outputs(Path(args.out), df, sidecar)
    if not args.json:
        for name in layers:
            s = sidecar["per_layer"][name]
            print(f"{name:>10s}: residual {s['residual']:.4f}, reflected {s['reflected']}")
        print(f"wrote {args.out} and {Path(args.out).with_suffix('.json')}")
    return sidecar


def _sidecar(args, store, layers, fits, mats, n) -> dict:
    from engine.projection import projection_quality

    per_layer = {}
    for name, fit, x in zip(layers, fits, mats):
        entry = {"reflected": bool(fit.reflected), "residual": float(fit.residual),
                 "scale": float(fit.scale), "dim": store.info(name)["dim"]}
        if x is not None:
            entry["quality"] = projection_quality(x, np.asarray(fit.aligned),
                                                  max_n=args.quality_n, seed=args.seed)
        per_layer[name] = entry
    return {"activations": str(args.activations), "method": args.method, "level": store.level,
            "layers": layers, "n": n, "seed": args.seed, "per_layer": per_layer,
            "store_meta": store.manifest.get("meta", {})}


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
