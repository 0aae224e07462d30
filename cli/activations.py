"""``hearsight activations``: forward a corpus split through a model and write every layer's
activations to an activation store (:mod:`data.activations`)."""

from __future__ import annotations

import json
import math

from cli.inputs import MODEL_HELP, layer_list, load_model_arg, open_corpus_args, resolve_model


def add_parser(sub) -> None:
    a = sub.add_parser("activations", help="store every layer's activations of a corpus split")
    a.add_argument("--model", default=None, help=MODEL_HELP)
    a.add_argument("--corpus", required=True, help="corpus spec, e.g. synth or fsdd:PATH")
    a.add_argument("--split", default="test", choices=["train", "valid", "test", "all"])
    a.add_argument("--level", default="utterance", choices=["utterance", "frame"])
    a.add_argument("--layers", default="all", help="comma-separated layer names or 'all'")
    a.add_argument("--out", required=True, help="store folder to create")
    a.add_argument("--batch-size", type=int, default=64)
    a.add_argument("--overwrite", action="store_true", help="replace an existing store")
    a.add_argument("--json", action="store_true", help="print the manifest as JSON")
    a.add_argument("--rows-per-part", type=int, default=None, metavar="N",
                   help="start a new Parquet part of a layer every N rows (default: one part)")
    a.add_argument("--cluster", default=None, metavar="ADDRESS",
                   help="compute on a Dask cluster: a scheduler address (tcp://host:8786) or "
                        "local:N for N worker processes here; each worker loads the model once")
    a.add_argument("--arch", default=None, metavar="ENTRY",
                   help="trust this bring-your-own entry point 'package.module:factory' "
                        "(a checkpoint naming one is refused without it)")


def run(args):
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if getattr(args, "cluster", None):
        from engine.cluster import local_workers

        local_workers(args.cluster)  # a bad address fails before the model loads
    predictor = load_model_arg(args.model, getattr(args, "arch", None))
    corpus = open_corpus_args(args.corpus)
    unknown = sorted(set(corpus.labels) - set(predictor.labels))
    if unknown:
        raise ValueError(f"corpus labels {unknown} are unknown to the model "
                         f"(it knows {predictor.labels})")
    items = corpus.split(args.split)
    if not items:
        raise ValueError(f"corpus {args.corpus!r} has no items in split {args.split!r}")
    available = tuple(n for n in predictor.layer_names if n not in ("logits", "probs"))
    layers = layer_list(args.layers, available) if available else None
    with _batches(args, predictor, items, layers) as batches:
        return _write(args, predictor, items, layers, available, batches)


def _batches(args, predictor, items, layers):
    """The batches of the store, computed here or (``--cluster``) by a Dask cluster."""
    import contextlib

    from data.activations import compute_activation_batches

    if not getattr(args, "cluster", None):
        return contextlib.nullcontext(compute_activation_batches(
            items, lambda w: predictor.run(predictor.features(w)), params=predictor.params,
            labels=predictor.labels, batch_size=args.batch_size, level=args.level,
            layers=layers))

    @contextlib.contextmanager
    def on_cluster():
        from engine.cluster import cluster_activation_batches, connect

        with connect(args.cluster) as client:
            yield cluster_activation_batches(
                client, str(resolve_model(args.model)), items, batch_size=args.batch_size,
                level=args.level, layers=layers, trusted_arch=getattr(args, "arch", None))

    return on_cluster()


def _write(args, predictor, items, layers, available, batches):
    from tqdm import tqdm

    from data.activations import write_activation_store

    seen = {"clips": 0, "left_out": []}
    bar = tqdm(_checked(batches, layers or available, args.level, seen,
                        named=layers is not None),
               total=math.ceil(len(items) / args.batch_size), unit="batch",
               desc=f"activations ({len(items)} clips)")
    meta = {"model": str(predictor.directory), "arch": predictor.arch, "corpus": args.corpus,
            "split": args.split, "labels": predictor.labels,
            "features": predictor.params.to_dict()}
    out = write_activation_store(args.out, bar, level=args.level, meta=meta,
                                 overwrite=args.overwrite,
                                 rows_per_part=getattr(args, "rows_per_part", None))
    manifest = json.loads((out / "store.json").read_text())
    if not args.json:
        for layer in manifest["layers"]:
            frames = ""
            if args.level == "frame" and seen["clips"]:
                frames = f" ({layer['rows'] // seen['clips']} frames per clip)"
            print(f"{layer['name']:>10s}: {layer['rows']} rows x {layer['dim']}{frames}")
        if seen["left_out"]:
            print(f"left out at frame level (no time axis): {', '.join(seen['left_out'])}")
        print(f"wrote {out}")
    return manifest


def _checked(batches, layers, level: str, seen: dict, *, named: bool = False):
    """The batches, counting clips in ``seen["clips"]``; at frame level the ``layers`` without
    a time axis (vectors, which :func:`data.activations.pool_activation` drops there) are
    listed in ``seen["left_out"]``, or, when ``named`` by ``--layers``, an error says so.

    Every layer keeps its own frame count (a wav2vec2 feature encoder's first convolution
    has ~8x the frames of its transformer layers), so a frame-level store's layers differ in
    rows."""
    for k, batch in enumerate(batches):
        if k == 0 and level == "frame":
            missing = [n for n in layers if n not in batch.acts]
            if missing and named:
                raise ValueError(f"--level frame stores layers over time; {missing} have no "
                                 "time axis (leave them out of --layers or use --level utterance)")
            seen["left_out"] = missing
        seen["clips"] += batch.n
        yield batch
