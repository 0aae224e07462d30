"""``hearsight experiment faithfulness``: are the attribution maps faithful to the model?

For ``n`` utterances of a corpus split (a deterministic subset drawn with ``--seed``) every
attribution method's map orders the spectrogram's patches; deletion and insertion curves of the
target probability (the predicted class by default) and their AUCs are compared with a random
order of the same patches. Writes ``faithfulness.json`` (per method mean ± std AUCs, whether and
by how much each beats random, n, settings, timings, the mean curves) and ``deletion.png`` /
``insertion.png`` plots of the mean curves.

References: Petsiuk, Das & Saenko 2018, "RISE" (deletion / insertion); seed 004's demand that
interpretations be faithful.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import numpy as np

from engine.attribution import METHODS
from engine.attribution.options import conv_layer_names, method_options, model_fns
from engine.faithfulness import MODES, evaluate, fractions, faithfulness_summary


HELP = "deletion/insertion AUCs of every attribution method against a random order"
OPENS_MODEL_SPECS = True  # --model may be hf:, torch:, onnx: (a (frequency, time) input)


def add_arguments(p) -> None:
    """The options of ``hearsight experiment faithfulness`` on its parser ``p``."""
    p.add_argument("--model", default=None,
                   help="checkpoint folder, or a model of your own with a (frequency, time) input: "
                        "hf:FOLDER, torch:package.module:factory, onnx:FILE (default: the "
                        "default model)")
    p.add_argument("--corpus", required=True, help="corpus spec, e.g. fsdd:PATH")
    p.add_argument("--split", default="test", choices=("train", "valid", "test", "all"))
    p.add_argument("--n", type=int, default=200, help="utterances (a seeded subset)")
    p.add_argument("--methods", default="all", help=f"'all' or a comma list of {METHODS}")
    p.add_argument("--steps", type=int, default=21, help="points of each curve")
    p.add_argument("--ig-steps", type=int, default=32, help="integrated-gradients steps")
    p.add_argument("--patch", default="8x5", help="BINSxFRAMES moved at once")
    p.add_argument("--batch", type=int, default=16, help="utterances per jitted batch")
    p.add_argument("--baseline", default="silence", choices=("zeros", "silence", "blur"))
    p.add_argument("--target", default="predicted", choices=("predicted", "true"))
    p.add_argument("--layer", default=None, help="Grad-CAM layer (default: the last conv)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--json", action="store_true", help="print the result JSON")


def parse_methods(spec: str) -> tuple[str, ...]:
    """``"all"`` or a comma list → method names (validated)."""
    names = METHODS if spec.strip() == "all" else tuple(s.strip() for s in spec.split(",") if s)
    bad = [m for m in names if m not in METHODS]
    if bad or not names:
        raise ValueError(f"--methods: unknown {bad or spec!r}; use 'all' or some of {METHODS}")
    return names


def parse_patch(spec: str) -> tuple[int, int]:
    """``"8x5"`` → ``(8, 5)`` (bins, frames)."""
    try:
        f, t = (int(v) for v in spec.lower().split("x"))
    except ValueError:
        raise ValueError(f"--patch must look like 8x5 (bins x frames), got {spec!r}") from None
    if f < 1 or t < 1:
        raise ValueError(f"--patch sizes must be positive, got {spec!r}")
    return f, t


def subset(n_items: int, n: int, *, seed: int) -> np.ndarray:
    """Sorted indices of ``min(n, n_items)`` items drawn without replacement (seeded)."""
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_items, size=min(n, n_items), replace=False))


def load_predictor(spec):
    """The predictor of a model spec: a checkpoint folder, ``hf:``, ``torch:`` or ``onnx:``
    (:func:`engine.predictor.load_predictor`; tests replace this)."""
    from engine.predictor import load_predictor as load

    return load(spec)


def input_grid(predictor, spec) -> tuple[tuple[int, int], float]:
    """``((freq, time), floor)`` of the model input the patches are moved on.

    Raises:
      ValueError: the model takes a waveform (or any input that is not 2-D): deletion and
        insertion move ``BINSxFRAMES`` patches of a time-frequency input.
    """
    # Both predictors answer input_shape / floor (a foreign model's params are only how its
    # waves are prepared); a bare one that carries FeatureParams alone falls back to them.
    shape = tuple(getattr(predictor, "input_shape", predictor.params.shape))
    if getattr(predictor, "input_kind", "features") != "features" or len(shape) != 2:
        raise ValueError(f"the faithfulness experiment deletes and inserts bins x frames patches "
                         f"of a (frequency, time) model input, but {spec} takes a "
                         f"{getattr(predictor, 'input_kind', 'features')} input of shape {shape}; "
                         "explain it on the Explain page of 'hearsight serve --model ...' instead")
    return shape, float(getattr(predictor, "floor", predictor.params.floor))


def _pad(a: np.ndarray, size: int) -> np.ndarray:
    # The last batch repeats its first row up to ``size`` so every batch compiles once.
    return np.concatenate([a, np.repeat(a[:1], size - len(a), axis=0)]) if len(a) < size else a


def evaluate_batches(acts_fn, logits_fn, x: np.ndarray, target: np.ndarray, *, methods,
                     options: dict, batch: int, seed: int, progress: bool = True,
                     **curve_options) -> tuple[list[dict], dict[str, float]]:
    """Maps and curves of ``x`` ``(n, freq, time)`` for ``target`` ``(n,)``, ``batch`` at a time.

    Returns the per-batch :func:`engine.faithfulness.evaluate` results (padding rows removed)
    and seconds spent per method (``"curves"`` for the curves).
    """
    from tqdm import tqdm

    from engine.attribution import attribute

    seconds = {m: 0.0 for m in (*methods, "curves")}
    parts = []
    with tqdm(total=len(x), desc="faithfulness", unit="utt", disable=not progress) as bar:
        for i, start in enumerate(range(0, len(x), batch)):
            xb, tb = _pad(x[start:start + batch], batch), _pad(target[start:start + batch], batch)
            real = min(batch, len(x) - start)
            maps = {}
            for m in methods:
                opts = dict(options[m])
                if m == "smoothgrad":
                    opts["key"] = jax.random.fold_in(jax.random.PRNGKey(seed), i)
                t0 = time.perf_counter()
                maps[m] = np.asarray(attribute(m, xb, tb, logits_fn=logits_fn, acts_fn=acts_fn,
                                               **opts))
                seconds[m] += time.perf_counter() - t0
            t0 = time.perf_counter()
            key = jax.random.fold_in(jax.random.PRNGKey(seed + 1), i)
            res = evaluate(logits_fn, xb, tb, maps, key=key, **curve_options)
            seconds["curves"] += time.perf_counter() - t0
            parts.append({k: {f: np.asarray(v)[:real] for f, v in r.items()}
                          for k, r in res.items()})
            bar.update(real)
    return parts, seconds


def mean_curves(parts: list[dict]) -> dict[str, dict[str, list[float]]]:
    """Mean deletion and insertion curve over all utterances for each entry."""
    return {name: {mode: np.concatenate([p[name][f"{mode}_curve"] for p in parts]).mean(0)
                   .tolist() for mode in MODES} for name in parts[0]}


def margins(summary: dict) -> dict[str, dict]:
    """Per method: beats-random flags and the margins (positive = better than random)."""
    rnd = summary["random"]
    return {name: {"deletion": s["beats_random_deletion"], "insertion": s["beats_random_insertion"],
                   "both": s["beats_random"],
                   "deletion_margin": rnd["deletion_auc_mean"] - s["deletion_auc_mean"],
                   "insertion_margin": s["insertion_auc_mean"] - rnd["insertion_auc_mean"]}
            for name, s in summary.items() if name != "random"}


def _targets(predictor, x: np.ndarray, kept, mode: str) -> np.ndarray:
    if mode == "predicted":
        probs, _ = predictor.run(x)
        return np.argmax(np.asarray(probs), axis=-1).astype(np.int32)
    index = {lab: i for i, lab in enumerate(predictor.labels)}
    missing = sorted({it.label for it in kept} - set(index))
    if missing:
        raise ValueError(f"corpus labels {missing} are not classes of the model; use --target "
                         "predicted")
    return np.array([index[it.label] for it in kept], np.int32)


def _inputs(args, predictor) -> tuple[np.ndarray, np.ndarray, list, dict]:
    from data.corpora import open_corpus
    from data.dataset import load_waves

    t0 = time.perf_counter()
    items = open_corpus(args.corpus, progress=False).split(args.split)
    if not items:
        raise ValueError(f"corpus {args.corpus!r} has no items in split {args.split!r}")
    chosen = [items[i] for i in subset(len(items), args.n, seed=args.seed)]
    waves, kept, _ = load_waves(chosen, predictor.params, progress=True)
    if not kept:
        raise ValueError("none of the chosen clips could be loaded")
    x = np.asarray(predictor.features(waves), np.float32)
    target = _targets(predictor, x, kept, args.target)
    return x, target, kept, {"load_and_features_s": time.perf_counter() - t0}


def run(args) -> dict:
    """Run the experiment for parsed ``args`` and write JSON and PNGs under ``args.out``.

    ``args.model`` is a checkpoint folder or a model spec (``hf:``, ``torch:``, ``onnx:``)
    whose input is a (frequency, time) grid; the command line puts the default model's folder
    there when ``--model`` is left out.
    """
    t_start = time.perf_counter()
    methods, patch = parse_methods(args.methods), parse_patch(args.patch)
    if args.batch < 1 or args.steps < 2 or args.ig_steps < 1:
        raise ValueError("need --batch >= 1, --steps >= 2 and --ig-steps >= 1")
    if not args.model:
        raise ValueError("--model: name the checkpoint folder or model spec to explain")
    spec = str(args.model)
    predictor = load_predictor(spec)
    acts_fn, logits_fn = model_fns(predictor)
    if acts_fn is None:
        raise ValueError(f"the model {spec} does not expose acts_fn (see "
                         "engine.attribution's protocol)")
    shape, floor = input_grid(predictor, spec)
    layer = args.layer or (conv_layer_names(acts_fn, shape) or [None])[-1]
    if layer is None and "grad_cam" in methods:
        methods = tuple(m for m in methods if m != "grad_cam")  # no conv layer to explain
    options = method_options(shape, steps=args.ig_steps, baseline=args.baseline, layer=layer,
                             floor=floor, seed=args.seed)
    x, target, kept, timings = _inputs(args, predictor)
    curve_options = {"baseline": args.baseline, "floor": floor,
                     "patch": patch, "n_steps": args.steps}
    parts, seconds = evaluate_batches(acts_fn, logits_fn, x, target, methods=methods,
                                      options=options, batch=min(args.batch, len(x)),
                                      seed=args.seed, **curve_options)
    summary = faithfulness_summary(parts)
    result = {
        "experiment": "faithfulness", "model": spec, "corpus": args.corpus,
        "split": args.split, "n": int(len(x)), "n_requested": int(args.n),
        "methods": list(methods), "summary": summary, "beats_random": margins(summary),
        "settings": _settings(args, patch, layer, options),
        "fractions": fractions(args.steps).tolist(), "mean_curves": mean_curves(parts),
        "ids": [it.id for it in kept],
        "timings": {**timings, **{f"{k}_s": v for k, v in seconds.items()}}}
    result["timings"]["total_s"] = time.perf_counter() - t_start
    return write_outputs(result, Path(args.out))


def _settings(args, patch, layer, options) -> dict:
    return {"n_steps": args.steps, "ig_steps": args.ig_steps, "patch": list(patch),
            "batch": args.batch, "baseline": args.baseline, "target": args.target,
            "grad_cam_layer": layer, "seed": args.seed, "smoothgrad_n": options["smoothgrad"]["n"],
            "occlusion": {k: list(options["occlusion"][k]) for k in ("window", "stride")}}


def write_outputs(result: dict, out: Path) -> dict:
    """``faithfulness.json`` and one PNG of the mean curves per mode under ``out``."""
    from experiments.plots import curves_png

    out.mkdir(parents=True, exist_ok=True)
    result["plots"] = []
    for mode in MODES:
        curves = {name: c[mode] for name, c in result["mean_curves"].items()}
        aucs = {name: s[f"{mode}_auc_mean"] for name, s in result["summary"].items()}
        path = out / f"{mode}.png"
        curves_png(curves, aucs, path, title=f"{mode.capitalize()} (mean of "
                   f"{result['n']} utterances)", x=result["fractions"])
        result["plots"].append(path.name)
    (out / "faithfulness.json").write_text(json.dumps(result, indent=2))
    for name, s in result["summary"].items():
        print(f"{name:22s} deletion AUC {s['deletion_auc_mean']:.3f} ± "
              f"{s['deletion_auc_std']:.3f}   insertion AUC {s['insertion_auc_mean']:.3f} ± "
              f"{s['insertion_auc_std']:.3f}")
    return result
