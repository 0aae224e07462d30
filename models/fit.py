"""Train a registered (or bring-your-own) architecture on a corpus and checkpoint it.

This is the glue the CLI and the server's first run share: corpus → cached features →
``train_classifier`` → ``save_checkpoint`` with a complete ``metadata.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.dataset import SplitArrays, load_split
from data.features import PRESETS, FeatureParams

FRAME_CONTEXT = 11


@dataclass(frozen=True)
class FitConfig:
    """Hyperparameters of one training run (stored in the checkpoint metadata)."""

    arch: str = "ddevis_cnn"
    features: str = ""  # "stft" | "logmel"; empty → the architecture's default
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 6
    seed: int = 0
    time_budget_s: float | None = None
    frame_stride: int = 4  # frame_mlp: every n-th frame of each utterance is a training sample


def feature_params_for(arch: str, kind: str = "") -> FeatureParams:
    """Feature preset for an architecture (``kind`` overrides the default)."""
    from models.registry import DEFAULT_FEATURES

    kind = kind or DEFAULT_FEATURES.get(arch, "stft")
    if kind not in PRESETS:
        raise ValueError(f"unknown feature kind {kind!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[kind]()


def model_input_shape(arch: str, params: FeatureParams) -> tuple[int, int]:
    """Input ``(freq, time)`` of an architecture: frame_mlp sees a context window of frames."""
    if arch == "frame_mlp":
        return (params.shape[0], FRAME_CONTEXT)
    return params.shape


def to_model_inputs(arch: str, split: SplitArrays, *, stride: int = 1, floor: float = -4.0):
    """Arrays a model trains on: utterances, or frame windows for ``frame_mlp``."""
    if arch != "frame_mlp":
        return split.x, split.y
    from models.architectures import frame_windows

    w = np.asarray(frame_windows(split.x, context=FRAME_CONTEXT, hop=1, floor=floor))  # (n, T, F, C)
    w = w[:, ::stride]
    y = np.repeat(split.y, w.shape[1])
    return w.reshape(-1, *w.shape[2:]).astype(np.float32), y.astype(np.int32)


def fit(corpus, out_dir: str | Path, config: FitConfig = FitConfig(), *,
        progress: bool = True, log=print) -> dict:
    """Train ``config.arch`` on ``corpus`` (an opened :class:`data.corpora.Corpus`), save to ``out_dir``.

    Returns the metadata written beside the checkpoint (with test metrics).
    """
    from models.checkpoint import save_checkpoint
    from models.registry import build_model
    from models.train import evaluate, train_classifier

    params = feature_params_for(config.arch, config.features)
    t0 = time.perf_counter()
    splits = {s: load_split(corpus, s, params, progress=progress) for s in ("train", "valid", "test")}
    log(f"features ready in {time.perf_counter() - t0:.1f} s: "
        + ", ".join(f"{s} {len(a.y)}" for s, a in splits.items()))
    xtr, ytr = to_model_inputs(config.arch, splits["train"], stride=config.frame_stride, floor=params.floor)
    xva, yva = to_model_inputs(config.arch, splits["valid"], stride=config.frame_stride, floor=params.floor)
    shape = model_input_shape(config.arch, params)
    model = build_model(config.arch, n_classes=len(corpus.labels), input_shape=shape,
                        seed=config.seed)
    result = train_classifier(model, xtr, ytr, xva, yva, epochs=config.epochs,
                              batch_size=config.batch_size, learning_rate=config.learning_rate,
                              patience=config.patience, seed=config.seed, progress=progress,
                              time_budget_s=config.time_budget_s)
    xte, yte = to_model_inputs(config.arch, splits["test"], stride=1, floor=params.floor)
    test = evaluate(model, xte, yte, list(corpus.labels))
    metadata = {
        "arch": config.arch,
        "arch_kwargs": {"n_classes": len(corpus.labels), "input_shape": list(shape)},
        "labels": list(corpus.labels),
        "features": params.to_dict(),
        "corpus": corpus.spec,
        "split": {s: len(a.y) for s, a in splits.items()},
        "metrics": {"test": test, "best_valid_acc": result.best_valid_acc,
                    "best_epoch": result.best_epoch, "history": list(result.history),
                    "train_seconds": round(time.perf_counter() - t0, 1)},
        "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
    }
    save_checkpoint(out_dir, model, metadata)
    log(f"test accuracy {test['accuracy']:.4f} on {test['n']} clips; saved to {out_dir}")
    return metadata
