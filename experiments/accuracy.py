"""``hearsight experiment accuracy``: a model's top-1 accuracy on real and synthetic speech.

The default model is trained on eSpeak NG voices only. This experiment measures what a person
recording their own voice would meet: zero-shot top-1 on real recordings (the Free Spoken Digit
Dataset by default: each digit's spoken word is the truth, and the model predicts over *all* its
classes, so a "three" heard as "tree" is wrong), overall and per speaker, beside the accuracy on
the held-out voices of the synthetic corpus. Writes one JSON file (the evidence behind an
accuracy figure) and returns it.

Nothing is trained here; the real recordings are only ever evaluated.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

HELP = "zero-shot top-1 on real recordings (per speaker) and held-out synthetic accuracy"

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def add_arguments(p) -> None:
    """The options of ``hearsight experiment accuracy`` on its parser ``p``."""
    p.add_argument("--model", default=None,
                   help="checkpoint folder (default: the cached default model)")
    p.add_argument("--real", required=True, metavar="SPEC",
                   help="corpus of real recordings, e.g. fsdd:../shared/data/fsdd (digit "
                        "labels are read as their words: 3 → three); every clip is evaluated")
    p.add_argument("--synth", default="synth", metavar="SPEC",
                   help="synthetic corpus whose test split (held-out voices) is scored; "
                        "'none' skips it (default: synth)")
    p.add_argument("--out", default="docs/experiments/accuracy/accuracy.json",
                   help="JSON file to write")
    p.add_argument("--json", action="store_true", help="print the result JSON")


def label_map(corpus_labels, model_labels) -> dict[str, int]:
    """Corpus label → model class index: the same name, or a digit's word (``"3"`` →
    ``"three"``). Raises ValueError naming the labels the model cannot say."""
    index = {name: i for i, name in enumerate(model_labels)}
    out, missing = {}, []
    for label in corpus_labels:
        word = DIGIT_WORDS[int(label)] if label.isdigit() and len(label) == 1 else label
        if label in index:
            out[label] = index[label]
        elif word in index:
            out[label] = index[word]
        else:
            missing.append(label)
    if missing:
        raise ValueError(f"corpus labels {missing} are not classes of the model "
                         f"(it knows {list(model_labels)[:12]}...)")
    return out


def top1(predictor, corpus, split: str) -> dict:
    """Top-1 of ``predictor`` over ``corpus.split(split)``: overall, per speaker, per label."""
    from data.dataset import load_split

    arrays = load_split(corpus, split, predictor.params, progress=False)
    mapping = label_map(corpus.labels, predictor.labels)
    truth = np.array([mapping[corpus.labels[j]] for j in arrays.y], dtype=int)
    pred = np.concatenate([predictor.run(arrays.x[i:i + 256])[0].argmax(axis=1)
                           for i in range(0, len(arrays.x), 256)])
    hit = pred == truth
    speakers = np.array([s or "?" for s in arrays.speakers])
    labels = np.array([corpus.labels[j] for j in arrays.y])
    group = lambda keys: {str(k): {"top1": float(hit[keys == k].mean()),  # noqa: E731
                                   "n": int((keys == k).sum())} for k in sorted(set(keys))}
    return {"corpus": corpus.spec, "split": split, "n": int(len(hit)),
            "top1": float(hit.mean()), "per_speaker": group(speakers),
            "per_label": group(labels), "skipped": len(arrays.skipped)}


def run(args) -> dict:
    """Evaluate ``args.model`` on ``args.real`` (all clips) and ``args.synth`` (test split)."""
    from data.corpora import open_corpus
    from engine.predictor import Predictor

    t0 = time.perf_counter()
    predictor = Predictor.load(args.model)
    meta = predictor.metadata
    result = {"model": str(args.model), "arch": predictor.arch,
              "trained_on": meta.get("corpus"), "recipe": meta.get("config"),
              "train_seconds": meta.get("metrics", {}).get("train_seconds"),
              "n_classes": len(predictor.labels),
              "real": top1(predictor, open_corpus(args.real, progress=False), "all")}
    if args.synth and args.synth != "none":
        result["synth_heldout"] = top1(predictor, open_corpus(args.synth), "test")
    result["seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    summary = f"real top-1 {result['real']['top1']:.3f} on {result['real']['n']} clips"
    if "synth_heldout" in result:
        summary += f"; synth held-out {result['synth_heldout']['top1']:.3f}"
    print(f"{summary}; wrote {out}", file=sys.stderr, flush=True)
    return result
