"""``hearsight evaluate``: accuracy, per-class (and per-speaker) accuracy, confusion matrix."""

from __future__ import annotations

from cli.inputs import MODEL_HELP, load_model_arg, open_corpus_args, split_inputs


def add_parser(sub) -> None:
    e = sub.add_parser("evaluate", help="accuracy, per-class accuracy, confusion matrix")
    e.add_argument("--model", default=None, help=MODEL_HELP)
    e.add_argument("--corpus", required=True)
    e.add_argument("--split", default="test", choices=["train", "valid", "test", "all"])
    e.add_argument("--split-by", default="default", choices=["default", "speaker"])
    e.add_argument("--holdout-speaker", default=None)
    e.add_argument("--json", action="store_true")
    e.add_argument("--arch", default=None, metavar="ENTRY",
                   help="trust this bring-your-own entry point 'package.module:factory' "
                        "(a checkpoint naming one is refused without it; registered "
                        "architectures need nothing)")


def run(args):

    predictor = load_model_arg(args.model, getattr(args, "arch", None))
    corpus = open_corpus_args(args.corpus, args)
    if list(corpus.labels) != predictor.labels:
        missing = sorted(set(corpus.labels) - set(predictor.labels))
        if missing:
            raise ValueError(f"corpus labels {missing} are unknown to the model "
                             f"(it knows {predictor.labels})")
    arrays = split_inputs(predictor, corpus, args.split, progress=True)
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
