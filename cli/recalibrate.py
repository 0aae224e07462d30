"""``hearsight recalibrate``: recompute a checkpoint's batch-norm statistics (older checkpoints)."""

from __future__ import annotations

from cli.inputs import open_corpus_args


def add_parser(sub) -> None:
    r = sub.add_parser("recalibrate", help="recompute batch-norm statistics of a checkpoint "
                                          "on its training split (older checkpoints)")
    r.add_argument("--model", required=True)
    r.add_argument("--corpus", default=None, help="default: the checkpoint's own corpus")
    r.add_argument("--split-by", default="default", choices=["default", "speaker"])
    r.add_argument("--holdout-speaker", default=None)
    r.add_argument("--json", action="store_true")


def run(args):
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
