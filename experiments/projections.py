"""``hearsight experiment projections``: the seed-003 paper's Table 1 on a ``frame_mlp`` model.

Frame-level activations of every hidden layer (``dense1`` … ``denseN``; the logits are left
out) are projected to 2-D by t-SNE, UMAP, the per-layer autoencoder (trained on TRAIN-split
frames, then applied as a fixed map to TEST-split frames), PivotMDS and PCA (fitted on the test
frames themselves), and each layout is scored against its activations by Procrustes distance
(PD, lower better), KSG mutual information (k = 10, nats), distance correlation (DC),
trustworthiness, continuity and k-NN preservation. Writes ``results.json`` and ``table.md`` (the
paper's layout: rows = layers, column groups = PD / MI / DC, columns = methods) and prints the
table. Only ``frame_mlp`` checkpoints are accepted: the paper's acoustic model is a frame
classifier, and CNN activations are not per frame.

Frames whose loudest mel bin lies below ``--min-level`` (log10 units under the clip's peak, so
−3 is −30 dB) are silence or padding; they are left out, since thousands of identical padded
frames make every neighbourhood metric degenerate.

References: the seed autoencoder-projection paper (Table 1); Kraskov et al. 2004 (KSG);
Székely et al. 2007 (dCor); Venna & Kaski 2001 (trustworthiness); Brandes & Pich 2006.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

METHODS = ("tsne", "umap", "ae", "pivotmds", "pca", "random")
DEFAULT_METHODS = "tsne,umap,ae,pivotmds,pca"
NAMES = {"tsne": "t-SNE", "umap": "UMAP", "ae": "AE", "pivotmds": "PivotMDS", "pca": "PCA",
         "random": "random"}
GROUPS = (("PD", "procrustes_distance", min), ("MI", "mutual_information", max),
          ("DC", "distance_correlation", max))
PAPER_TABLE1 = {"procrustes_distance": [0.90, 0.98], "mutual_information": [0.34, 0.59],
                "distance_correlation": [0.43, 0.88], "random_procrustes_distance": 0.99,
                "note": "seed-003 Table 1 ranges over layers and methods (t-SNE, UMAP, AE) on a "
                        "5 x 1000 ReLU phone classifier; AE best on DC in most layers"}


HELP = ("PD / MI / DC of t-SNE, UMAP, AE, PivotMDS and PCA layouts of every hidden layer of a "
        "frame_mlp (seed-003 Table 1)")
OPENS_MODEL_SPECS = True  # a model spec (hf:, torch:, onnx:) is refused by check_model_spec


def add_arguments(p) -> None:
    """The options of ``hearsight experiment projections`` on its parser ``p``."""
    p.add_argument("--model", required=True, help="frame_mlp checkpoint folder")
    p.add_argument("--corpus", required=True, help="corpus spec, e.g. fsdd:PATH")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--frames-per-layer", type=int, default=5000, help="test frames projected")
    p.add_argument("--train-frames", type=int, default=10000, help="train frames for the AE")
    p.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma list of {METHODS}")
    p.add_argument("--min-level", type=float, default=-3.0,
                   help="drop frames whose loudest bin is below this (log10 under the peak)")
    p.add_argument("--quality-n", type=int, default=5000, help="rows the metrics use at most")
    p.add_argument("--k", type=int, default=10, help="neighbours of KSG MI, T&C, kNN")
    p.add_argument("--pivots", type=int, default=50, help="PivotMDS pivots")
    p.add_argument("--pivot-strategy", default="maxmin", choices=["maxmin", "random"],
                   help="how PivotMDS picks its pivots (default maxmin, as the page and "
                        "'hearsight project' do); recorded in results.json and the table")
    p.add_argument("--ae-epochs", type=int, default=50)
    p.add_argument("--ae-batch-size", type=int, default=256)
    p.add_argument("--ae-lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result JSON")


def parse_methods(spec: str) -> tuple[str, ...]:
    """Comma list → validated method names, in the given order."""
    names = tuple(s.strip() for s in spec.split(",") if s.strip())
    bad = [m for m in names if m not in METHODS]
    if bad or not names or len(set(names)) != len(names):
        raise ValueError(f"--methods: bad or repeated {bad or spec!r}; use a comma list of "
                         f"{METHODS}")
    return names


def check_model_spec(spec: str) -> None:
    """Refuse a model of the user's own (``hf:``, ``torch:``, ``onnx:``) before loading it: the
    experiment forwards the context windows of single frames through a ``frame_mlp``, which
    only hearsight's own checkpoints are."""
    from engine.predictor import is_contract_spec

    if is_contract_spec(spec):
        raise ValueError(f"the projections experiment needs a hearsight 'frame_mlp' checkpoint "
                         f"(it forwards each frame's context window on its own), and {spec} is "
                         "a model of your own; for its layer-wise analysis use 'hearsight "
                         "activations --level frame' (or utterance) and 'hearsight project'")


def check_arch(arch: str) -> None:
    """Refuse checkpoints that are not frame classifiers, saying what to do."""
    if arch != "frame_mlp":
        raise ValueError(f"the projections experiment needs frame-level activations of a "
                         f"'frame_mlp' model, but this checkpoint is {arch!r}; train one with "
                         "'hearsight train --arch frame_mlp ...' (for CNNs use 'hearsight "
                         "activations --level utterance' and 'hearsight project')")


def sample_frames(feats: np.ndarray, *, n: int, min_level: float,
                  rng: np.random.Generator) -> np.ndarray:
    """``(m, 2)`` sorted ``(utterance, frame)`` pairs, ``m = min(n, audible frames)``.

    Args:
      feats: ``(N, freq, time)`` features in log10 units under each clip's peak (max 0).
      min_level: a frame counts as audible if its loudest bin is at least this.
    """
    audible = np.argwhere(feats.max(axis=1) >= min_level)
    if len(audible) == 0:
        raise ValueError(f"no frame reaches --min-level {min_level}; lower it")
    pick = np.sort(rng.choice(len(audible), size=min(n, len(audible)), replace=False))
    return audible[pick]


def frame_activations(predictor, feats: np.ndarray, pairs: np.ndarray, *,
                      chunk: int = 4096) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Hidden activations ``{layer: (m, units)}`` and predicted class ``(m,)`` of chosen frames.

    Only the context windows of the ``pairs`` are forwarded (not whole utterances).
    """
    from models.architectures import FRAME_CONTEXT, frame_windows

    win = frame_windows(feats, context=FRAME_CONTEXT, hop=1, floor=predictor.params.floor)
    layers = [n for n in predictor.forward.layer_names if n != "logits"]
    parts, preds = {n: [] for n in layers}, []
    for s in range(0, len(pairs), chunk):
        p = pairs[s:s + chunk]
        logits, acts = predictor.forward(np.ascontiguousarray(win[p[:, 0], p[:, 1]]))
        preds.append(np.argmax(logits, axis=-1))
        for name in layers:
            parts[name].append(np.asarray(acts[name], np.float32).reshape(len(p), -1))
    return {n: np.concatenate(v) for n, v in parts.items()}, np.concatenate(preds)


def layout(method: str, x: np.ndarray, x_train: np.ndarray | None, *, key, args) -> tuple:
    """2-D layout ``(n, 2)`` of test activations ``x`` and extra facts (AE fit time, epochs)."""
    import jax

    from engine.projection import fit_ae_projection, project

    if method == "random":
        return np.asarray(jax.random.normal(key, (len(x), 2))), {}
    if method == "ae":
        t0 = time.perf_counter()
        ae = fit_ae_projection(x_train, key=key, epochs=args.ae_epochs, lr=args.ae_lr,
                               batch_size=args.ae_batch_size)
        info = {"fit_seconds": time.perf_counter() - t0, "epochs_run": int(ae.epochs_run),
                "valid_mse": float(ae.valid_mse)}
        return np.asarray(ae.transform(x)), info
    kw = ({"k": min(args.pivots, len(x)), "pivots": _strategy(args)} if method == "pivotmds"
          else {})
    with warnings.catch_warnings():  # umap-learn / numba warn on import and on every fit
        warnings.simplefilter("ignore")
        return np.asarray(project(x, method=method, key=key, dims=2, **kw)), {}


def evaluate_layer(x: np.ndarray, x_train, methods, *, key, args, bar=None) -> dict:
    """Per method: layout, quality metrics and seconds for one layer's activations."""
    import jax

    from engine.projection import projection_quality

    out = {}
    for method in methods:
        if bar is not None:
            bar.set_postfix_str(method)
        t0 = time.perf_counter()
        y, info = layout(method, x, x_train, key=jax.random.fold_in(key, METHODS.index(method)),
                         args=args)
        seconds = time.perf_counter() - t0
        q = projection_quality(x, y, k=args.k, max_n=args.quality_n, seed=args.seed)
        out[method] = {**q, "seconds": seconds, **info}
        if bar is not None:
            bar.update(1)
    return out


_STRATEGY_WORDS = {"maxmin": "max-min (farthest-point) pivots", "random": "random pivots"}


def _strategy(args) -> str:
    """The PivotMDS pivot choice of ``args`` (max-min when an older caller has no option)."""
    return getattr(args, "pivot_strategy", None) or "maxmin"


def render_table(result: dict) -> str:
    """Markdown: Table 1 layout (PD / MI / DC groups × methods), best per group in bold,
    the paper's ranges, then trustworthiness / kNN preservation / seconds."""
    methods, rows = result["methods"], result["results"]
    head = ["layer"] + [f"{g} {NAMES[m]}" for g, _, _ in GROUPS for m in methods]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for layer, per in rows.items():
        cells = [layer]
        for _, key, best in GROUPS:
            vals = [per[m][key] for m in methods]
            top = best(vals)
            cells += [f"**{v:.3f}**" if v == top else f"{v:.3f}" for v in vals]
        lines.append("| " + " | ".join(cells) + " |")
    ref = PAPER_TABLE1
    lines += ["", f"Paper (seed 003, Table 1) ranges: PD {ref['procrustes_distance'][0]:.2f}–"
              f"{ref['procrustes_distance'][1]:.2f}, MI {ref['mutual_information'][0]:.2f}–"
              f"{ref['mutual_information'][1]:.2f}, DC {ref['distance_correlation'][0]:.2f}–"
              f"{ref['distance_correlation'][1]:.2f}; random PD ≈ "
              f"{ref['random_procrustes_distance']:.2f}. PD lower is better; MI (nats, KSG k = "
              f"{result['settings']['k']}) and DC higher. PivotMDS: "
              f"{result['settings'].get('pivots', '?')} pivots, "
              f"{_STRATEGY_WORDS.get(result['settings'].get('pivot_strategy'), 'pivot choice not recorded')}.",
              ""]
    head2 = ["layer"] + [f"{g} {NAMES[m]}" for g in ("T", "kNN", "s") for m in methods]
    lines += ["| " + " | ".join(head2) + " |", "|" + "---|" * len(head2)]
    for layer, per in rows.items():
        cells = [layer] + [f"{per[m]['trustworthiness']:.3f}" for m in methods]
        cells += [f"{per[m]['knn_preservation']:.3f}" for m in methods]
        cells += [f"{per[m]['seconds']:.1f}" for m in methods]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _check_args(args) -> None:
    for name in ("frames_per_layer", "train_frames", "quality_n", "pivots", "ae_epochs",
                 "ae_batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.k < 1 or 2 * args.k >= min(args.frames_per_layer, args.quality_n):
        raise ValueError(f"--k {args.k} needs 1 <= k < min(--frames-per-layer, --quality-n) / 2")


def _load(args):
    """Predictor, and the sampled test / train frames with their labels."""
    from data.corpora import open_corpus
    from data.dataset import load_split
    from engine.predictor import load_predictor

    check_model_spec(str(args.model))
    predictor = load_predictor(args.model)
    check_arch(predictor.arch)
    corpus = open_corpus(args.corpus, progress=False)
    unknown = sorted(set(corpus.labels) - set(predictor.labels))
    if unknown:
        raise ValueError(f"corpus labels {unknown} are unknown to the model (it knows "
                         f"{predictor.labels})")
    rng = np.random.default_rng(args.seed)
    frames = {}
    for split, n in (("test", args.frames_per_layer), ("train", args.train_frames)):
        data = load_split(corpus, split, predictor.params)
        pairs = sample_frames(data.x, n=n, min_level=args.min_level, rng=rng)
        acts, pred = frame_activations(predictor, data.x, pairs)
        label = np.array([predictor.labels.index(data.labels[i]) for i in data.y[pairs[:, 0]]])
        frames[split] = (acts, float(np.mean(pred == label)))
    return predictor, frames


def run(args) -> dict:
    """Run the experiment for parsed ``args``; write ``results.json`` and ``table.md``."""
    import jax
    from tqdm import tqdm

    t_start = time.perf_counter()
    methods = parse_methods(args.methods)
    _check_args(args)
    predictor, frames = _load(args)
    (test, test_acc), (train, train_acc) = frames["test"], frames["train"]
    layers = list(test)
    key = jax.random.key(args.seed)
    results = {}
    with tqdm(total=len(layers) * len(methods), desc="projections", unit="layout") as bar:
        for i, name in enumerate(layers):
            results[name] = evaluate_layer(test[name], train[name], methods,
                                           key=jax.random.fold_in(key, i), args=args, bar=bar)
    settings = {k: getattr(args, k) for k in ("frames_per_layer", "train_frames", "min_level",
                                               "quality_n", "k", "pivots", "ae_epochs",
                                               "ae_batch_size", "ae_lr", "seed")}
    settings["pivot_strategy"] = _strategy(args)
    result = {
        "experiment": "projections", "model": str(args.model), "arch": predictor.arch,
        "corpus": args.corpus, "layers": layers, "methods": list(methods),
        "dims": {n: int(test[n].shape[1]) for n in layers},
        "n_test_frames": int(len(test[layers[0]])), "n_train_frames": int(len(train[layers[0]])),
        "frame_accuracy": {"test": test_acc, "train": train_acc},
        "settings": {**settings, "ae_hidden": [100, 10]}, "results": results,
        "paper_table1": PAPER_TABLE1, "total_seconds": time.perf_counter() - t_start}
    return write_outputs(result, Path(args.out))


def write_outputs(result: dict, out: Path) -> dict:
    """``results.json`` and ``table.md`` under ``out``; the table is printed too."""
    out.mkdir(parents=True, exist_ok=True)
    table = render_table(result)
    (out / "results.json").write_text(json.dumps(result, indent=2, default=float))
    (out / "table.md").write_text(table)
    print(table)
    return result
