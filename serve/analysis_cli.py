"""Analysis sub-commands: ``hearsight activations`` and ``hearsight project``.

``activations`` forwards a corpus split through a model and writes an activation store
(:mod:`data.activations`); ``project`` lays out every layer of a store in 2-D, aligns
consecutive layers by Procrustes analysis (with the mirroring test) and writes one Parquet of
``x_<layer>, y_<layer>`` columns plus metadata, with a JSON sidecar of per-layer alignment and
projection-quality numbers — the key frames of the Embeddings page's layer morph.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

PROJECTION_METHODS = ("pivotmds", "pca", "ae", "umap", "tsne")


def add_parsers(sub) -> None:
    """Register ``activations`` and ``project`` on the CLI's sub-parser object."""
    a = sub.add_parser("activations", help="store every layer's activations of a corpus split")
    a.add_argument("--model", default=None, help="checkpoint folder (default: the cached default)")
    a.add_argument("--corpus", required=True, help="corpus spec, e.g. synth or fsdd:PATH")
    a.add_argument("--split", default="test", choices=["train", "valid", "test", "all"])
    a.add_argument("--level", default="utterance", choices=["utterance", "frame"])
    a.add_argument("--layers", default="all", help="comma-separated layer names or 'all'")
    a.add_argument("--out", required=True, help="store folder to create")
    a.add_argument("--batch-size", type=int, default=64)
    a.add_argument("--overwrite", action="store_true", help="replace an existing store")
    a.add_argument("--json", action="store_true", help="print the manifest as JSON")
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
    _experiment_parsers(sub)


def _experiment_parsers(sub) -> None:
    """``hearsight experiment NAME`` for every experiment of :data:`experiments.EXPERIMENTS`."""
    from experiments import EXPERIMENTS

    e = sub.add_parser("experiment", help="reproduce a paper's experiment (actmax, "
                                          "faithfulness, projections)")
    esub = e.add_subparsers(dest="experiment", required=True)
    for name, experiment in EXPERIMENTS.items():
        experiment.add_arguments(esub.add_parser(name, help=experiment.HELP))


def dispatch(args):
    if args.cmd == "experiment":
        from experiments import EXPERIMENTS
        from serve.commands import resolve_model

        if getattr(args, "model", "") is None:
            args.model = str(resolve_model(None))
        return EXPERIMENTS[args.experiment].run(args)
    commands = {"activations": cmd_activations, "project": cmd_project}
    if args.cmd not in commands:
        raise ValueError(f"unknown command {args.cmd!r}")
    return commands[args.cmd](args)


def _layer_list(spec: str, available) -> list[str] | None:
    if spec == "all":
        return None
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        raise ValueError(f"unknown layers {unknown}; available: {list(available)}")
    return names


def cmd_activations(args):
    from tqdm import tqdm

    from data.activations import compute_activation_batches, write_activation_store
    from engine.predictor import Predictor
    from serve.commands import open_corpus_args, resolve_model

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    predictor = Predictor.load(resolve_model(args.model))
    corpus = open_corpus_args(args.corpus)
    unknown = sorted(set(corpus.labels) - set(predictor.labels))
    if unknown:
        raise ValueError(f"corpus labels {unknown} are unknown to the model "
                         f"(it knows {predictor.labels})")
    items = corpus.split(args.split)
    if not items:
        raise ValueError(f"corpus {args.corpus!r} has no items in split {args.split!r}")
    available = tuple(getattr(predictor.forward, "layer_names", ()))
    layers = _layer_list(args.layers, available) if available else None
    batches = compute_activation_batches(
        items, lambda w: predictor.run(predictor.features(w)), params=predictor.params,
        labels=predictor.labels, batch_size=args.batch_size, level=args.level, layers=layers)
    bar = tqdm(batches, total=math.ceil(len(items) / args.batch_size), unit="batch",
               desc=f"activations ({len(items)} clips)")
    meta = {"model": str(predictor.directory), "arch": predictor.arch, "corpus": args.corpus,
            "split": args.split, "labels": predictor.labels,
            "features": predictor.params.to_dict()}
    out = write_activation_store(args.out, bar, level=args.level, meta=meta,
                                 overwrite=args.overwrite)
    manifest = json.loads((out / "store.json").read_text())
    if not args.json:
        for layer in manifest["layers"]:
            print(f"{layer['name']:>10s}: {layer['rows']} rows x {layer['dim']}")
        print(f"wrote {out}")
    return manifest


def layout_of(x: np.ndarray, *, method: str, key, pivots: int) -> np.ndarray:
    """``(n, 2)`` float32 layout of ``(n, d)`` activations with the named method."""
    from engine.projection import project

    if method == "ae":
        # The store holds one split; the autoencoder is fitted on it and applied as a fixed
        # map (`hearsight experiment projections` fits on train frames, applies to test).
        from engine.ae_projection import project_ae

        return np.asarray(project_ae(x, x, key=key, dims=2), np.float32)
    kw = {"k": min(pivots, x.shape[0])} if method == "pivotmds" else {}
    try:
        return np.asarray(project(x, method=method, key=key, dims=2, **kw), np.float32)
    except ImportError as exc:  # optional peers (umap-learn, openTSNE) missing
        raise ValueError(str(exc)) from exc


def cmd_project(args):
    import jax

    from data.activations import open_activation_store
    from engine.procrustes import align_layers

    store = open_activation_store(args.activations)
    layers = _layer_list(args.layers, store.layers) or list(store.layers)
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
    from engine.metrics import projection_quality

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
