"""Implementations of the CLI sub-commands (kept apart from argument parsing)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from data.dataset import cache_home

DEFAULT_CORPUS = "synth"
DEFAULT_ARCH = "soomro_cnn"  # trains to ~90 % on synth within the first-run budget


def default_model_dir() -> Path:
    """Where the first-run default model (ddevis_cnn on the synth corpus) is cached."""
    return cache_home() / "models" / f"default-{DEFAULT_ARCH}-{DEFAULT_CORPUS}"


def open_corpus_args(spec: str, args=None, *, progress: bool = True):
    from data.corpora import open_corpus

    kwargs = {}
    if args is not None and getattr(args, "split_by", "default") != "default":
        kwargs = {"split_by": args.split_by, "holdout_speaker": args.holdout_speaker}
    return open_corpus(spec, progress=progress, **kwargs)


def ensure_default_model(*, budget_s: float = 90.0, log=print) -> Path:
    """The default model's folder, synthesising the corpus and training it on first use."""
    import json

    from models.checkpoint import CheckpointError, validate_metadata

    out = default_model_dir()
    if (out / "metadata.json").exists():
        # Validate the metadata only: restoring the weights here and again in the server
        # doubled the time of every later start. A damaged state still fails loudly there.
        try:
            validate_metadata(json.loads((out / "metadata.json").read_text()), out)
            if any((out / "state").iterdir()):
                return out
            log("cached default model has no weights; retraining")
        except (CheckpointError, ValueError, OSError) as exc:
            log(f"cached default model unusable ({exc}); retraining")
    from models.fit import FitConfig, fit

    log("first run: synthesising the default corpus and training the default model "
        f"(about {budget_s:.0f} s of training; cached in {out})")
    t0 = time.perf_counter()
    corpus = open_corpus_args(DEFAULT_CORPUS)
    log(f"corpus ready in {time.perf_counter() - t0:.1f} s ({len(corpus.items)} clips)")
    fit(corpus, out, FitConfig(arch=DEFAULT_ARCH, epochs=40, time_budget_s=budget_s), log=log)
    return out


def resolve_model(path: str | None) -> Path:
    return Path(path) if path else ensure_default_model(log=_err)


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def cmd_corpus(args):
    from data.corpora import open_corpus

    if args.corpus_cmd == "synth":
        t0 = time.perf_counter()
        try:
            corpus = open_corpus("synth:small" if args.small else "synth", seed=args.seed)
        except OSError as exc:
            raise OSError(f"cannot write the corpus into the cache folder {cache_home()} "
                          f"({exc.strerror or exc}); set HEARSIGHT_HOME to a writable "
                          "folder") from exc
        print(f"{len(corpus.items)} clips, {len(corpus.labels)} words, "
              f"{len({i.speaker for i in corpus.items})} voices in {time.perf_counter() - t0:.1f} s")
        return None
    summary = open_corpus(args.spec, progress=False).summary()
    if not args.json:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return summary


def cmd_train(args):
    from models.fit import FitConfig, fit

    corpus = open_corpus_args(args.corpus, args)
    config = FitConfig(arch=args.arch, features=args.features, epochs=args.epochs,
                       batch_size=args.batch_size, learning_rate=args.lr,
                       patience=args.patience, seed=args.seed, time_budget_s=args.time_budget,
                       freq_warp=getattr(args, "freq_warp", 0.0))
    meta = fit(corpus, args.out, config, log=_err if args.json else print,
               resume=getattr(args, "resume", False))
    return meta


def cmd_predict(args):
    from engine.predictor import Predictor

    from data.audio import display_name

    predictor = Predictor.load(resolve_model(args.model))
    records = predictor.predict_files(args.files)
    for r in records:  # names may hold undecodable bytes or control characters
        r["file"] = display_name(r["file"], limit=200)
    if not args.json:
        for r in records:
            if "error" in r:
                print(f"hearsight predict: error: {r['error']}", file=sys.stderr)
            else:
                top3 = ", ".join(f"{k} {v:.3f}" for k, v in list(r["probs"].items())[:3])
                print(f"{r['file']}: {r['top']} ({r['probability']:.3f}); {top3}")
    failed = sum("error" in r for r in records)
    if args.json:
        import json

        print(json.dumps(records, indent=2))
    return 2 if failed == len(records) else 0


def cmd_evaluate(args):
    from data.dataset import load_split
    from engine.predictor import Predictor
    predictor = Predictor.load(resolve_model(args.model))
    corpus = open_corpus_args(args.corpus, args)
    if list(corpus.labels) != predictor.labels:
        missing = sorted(set(corpus.labels) - set(predictor.labels))
        if missing:
            raise ValueError(f"corpus labels {missing} are unknown to the model "
                             f"(it knows {predictor.labels})")
    arrays = load_split(corpus, args.split, predictor.params, progress=True)
    probs, _ = predictor.run(arrays.x)
    index = {name: i for i, name in enumerate(predictor.labels)}
    y = [index[corpus.labels[j]] for j in arrays.y]
    result = evaluate_probs(probs, y, predictor.labels, speakers=arrays.speakers)
    if not args.json:
        print(f"accuracy {result['accuracy']:.4f} on {result['n']} clips ({args.split})")
        for label, acc in result["per_class_accuracy"].items():
            print(f"  {label:>10s} {acc:.3f}")
        if len(result["per_speaker_accuracy"]) > 1:
            print("per speaker: " + ", ".join(f"{s} {a:.3f}" for s, a in
                                              result["per_speaker_accuracy"].items()))
    return result


def evaluate_probs(probs, y, labels, *, speakers=None) -> dict:
    """Accuracy, per-class (and per-speaker) accuracy and the confusion matrix (rows true,
    columns predicted)."""
    import numpy as np

    y = np.asarray(y)
    pred = np.asarray(probs).argmax(axis=1)
    k = len(labels)
    conf = np.zeros((k, k), dtype=int)
    np.add.at(conf, (y, pred), 1)
    per = {labels[i]: (float(conf[i, i] / conf[i].sum()) if conf[i].sum() else float("nan"))
           for i in range(k)}
    out = {"accuracy": float((pred == y).mean()), "n": int(len(y)),
           "per_class_accuracy": per, "confusion": conf.tolist(), "labels": list(labels)}
    if speakers is not None:
        spk = np.asarray([s or "?" for s in speakers])
        out["per_speaker_accuracy"] = {str(s): float((pred[spk == s] == y[spk == s]).mean())
                                       for s in sorted(set(spk))}
    return out


def cmd_serve(args):
    from serve.app import serve

    model_dir = Path(args.model) if args.model else ensure_default_model(
        budget_s=args.default_budget)
    procs = getattr(args, "procs", 1)
    if procs > 1:
        from serve.app import _jax_started, restart_clean

        if _jax_started():  # it just trained the default model: start over without JAX
            restart_clean()
    return serve(model_dir, port=args.port, address=args.address,
                 allow_websocket_origin=args.allow_websocket_origin,
                 basic_auth=args.basic_auth, show=args.show, separate=args.separate,
                 prior=args.prior, projection=args.projection,
                 oauth_provider=getattr(args, "oauth_provider", None),
                 oauth_redirect_uri=getattr(args, "oauth_redirect_uri", None), procs=procs)


def add_analysis_parsers(sub) -> None:
    """Analysis commands (activations, projections, experiments) register here."""
    import importlib.util

    if importlib.util.find_spec("serve.analysis_cli") is None:
        return
    from serve import analysis_cli

    analysis_cli.add_parsers(sub)


def cmd_recalibrate(args):
    """Recompute a checkpoint's batch-norm statistics on its training split and re-save it."""
    from data.dataset import load_split
    from engine.predictor import Predictor
    from models.checkpoint import load_checkpoint, save_checkpoint
    from models.fit import to_model_inputs
    from models.train import evaluate, recalibrate_batch_norm

    model, meta = load_checkpoint(args.model)
    predictor = Predictor.load(args.model)
    corpus = open_corpus_args(args.corpus or meta["corpus"], args)
    arch, params = meta["arch"], predictor.params
    train = to_model_inputs(arch, load_split(corpus, "train", params), floor=params.floor)[0]
    n = recalibrate_batch_norm(model, train)
    xte, yte = to_model_inputs(arch, load_split(corpus, "test", params), floor=params.floor)
    before = meta.get("metrics", {}).get("test", {}).get("accuracy")
    test = evaluate(model, xte, yte, list(meta["labels"]))
    meta.setdefault("metrics", {})["test"] = test
    meta["metrics"]["recalibrated_batch_norm"] = {"layers": n, "test_accuracy_before": before}
    save_checkpoint(args.model, model, meta)
    print(f"recalibrated {n} batch-norm layers; test accuracy {before} -> {test['accuracy']:.4f}")
    return meta


COMMANDS = {"recalibrate": cmd_recalibrate, "corpus": cmd_corpus, "train": cmd_train, "predict": cmd_predict,
            "evaluate": cmd_evaluate, "serve": cmd_serve}


def dispatch(args):
    if args.cmd in COMMANDS:
        return COMMANDS[args.cmd](args)
    from serve import analysis_cli

    return analysis_cli.dispatch(args)
