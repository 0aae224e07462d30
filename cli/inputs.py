"""Inputs the sub-commands share: the model folder (the cached default model, synthesised and
trained on first use), the corpus of a spec, and a ``--layers`` list."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from data.dataset import cache_home

DEFAULT_CORPUS = "synth"
DEFAULT_ARCH = "soomro_cnn"
# Bumped whenever models.fit.DEFAULT_RECIPE changes, so a model cached by an older recipe (or
# by the old time-budgeted first run) is not reused; also when the corpus it trains on changes
# (6: synth corpus version 2, its breathy voices no longer seeded by the clock).
RECIPE_VERSION = 6


def default_model_dir() -> Path:
    """Where the first-run default model (``DEFAULT_ARCH`` on ``DEFAULT_CORPUS``) is cached."""
    return cache_home() / "models" / f"default-{DEFAULT_ARCH}-{DEFAULT_CORPUS}-r{RECIPE_VERSION}"


def open_corpus_args(spec: str, args=None, *, progress: bool = True):
    """The corpus of ``spec``, split as ``args.split_by`` / ``args.holdout_speaker`` ask."""
    from data.corpora import open_corpus

    kwargs = {}
    if args is not None and getattr(args, "split_by", "default") != "default":
        kwargs = {"split_by": args.split_by, "holdout_speaker": args.holdout_speaker}
    return open_corpus(spec, progress=progress, **kwargs)


def ensure_default_model(*, budget_s: float | None = None, log=print) -> Path:
    """The default model's folder, synthesising the corpus and training it on first use.

    Training follows :data:`models.fit.DEFAULT_RECIPE`: fixed epochs and seed, no time
    budget, so every machine gets the same model however long it takes. ``budget_s`` is
    accepted for older callers and ignored (a wall-clock budget made the model depend on the
    machine's load: 6 epochs and 69 % instead of ~89 % on a busy one)."""
    del budget_s
    import json

    from models.checkpoint import CheckpointError, validate_metadata

    out = default_model_dir()
    if (out / "metadata.json").exists():
        # Validate the metadata only: restoring the weights here and again in the server
        # doubled the time of every later start. A damaged state still fails loudly there.
        try:
            meta = json.loads((out / "metadata.json").read_text())
            validate_metadata(meta, out)
            if not _same_recipe(meta.get("config")):
                log("cached default model was trained by another recipe; retraining")
            elif any((out / "state").iterdir()):
                return out
            else:
                log("cached default model has no weights; retraining")
        except (CheckpointError, ValueError, OSError) as exc:
            log(f"cached default model unusable ({exc}); retraining")
    from models.fit import DEFAULT_RECIPE, fit

    log("first run: synthesising the default corpus and training the default model "
        f"({DEFAULT_RECIPE.epochs} epochs, seed {DEFAULT_RECIPE.seed}, the same on every "
        f"machine; a few minutes, longer on a busy one; cached in {out})")
    t0 = time.perf_counter()
    corpus = open_corpus_args(DEFAULT_CORPUS)
    log(f"corpus ready in {time.perf_counter() - t0:.1f} s ({len(corpus.items)} clips)")
    fit(corpus, out, DEFAULT_RECIPE, log=log)
    return out


def _same_recipe(config) -> bool:
    from models.fit import is_default_recipe

    return is_default_recipe(config)


def resolve_model(path: str | None) -> Path | str:
    """``path``, or the default model's folder (made on first use) when it is not given.

    A model spec behind the contract (``hf:PATH``, ``torch:package.module:factory``,
    ``onnx:FILE``) is returned as it is."""
    from engine.predictor import is_contract_spec

    if path and is_contract_spec(path):
        return str(path)
    return Path(path) if path else ensure_default_model(log=err)


def load_model_arg(path: str | None, trusted_arch: str | None = None):
    """The predictor of ``--model`` (:func:`engine.predictor.load_predictor`)."""
    from engine.predictor import load_predictor

    return load_predictor(resolve_model(path), trusted_arch=trusted_arch)


MODEL_HELP = ("checkpoint folder, or your own model: hf:FOLDER, torch:package.module:factory, "
              "onnx:FILE (default: the cached default model)")


def split_inputs(predictor, corpus, split: str, *, progress: bool = False):
    """``SplitArrays`` of a corpus split whose ``x`` are the predictor's model inputs
    (hearsight's cached features for its own checkpoints; waves through the model's own
    input function otherwise)."""
    from dataclasses import replace

    from data.dataset import load_split

    if getattr(predictor, "input_kind", "features") == "features" and \
            getattr(predictor, "picture_params", None) is predictor.params:
        return load_split(corpus, split, predictor.params, progress=progress)
    arrays = load_split(corpus, split, predictor.params, with_waves=True, cache=False,
                        progress=progress)
    import numpy as np

    x = [predictor.features(arrays.waves[i:i + 64]) for i in range(0, len(arrays.waves), 64)]
    x = np.concatenate(x) if x else np.zeros((0, *predictor.input_shape), np.float32)
    return replace(arrays, x=x)


def layer_list(spec: str, available) -> list[str] | None:
    """``--layers``: ``"all"`` (None) or a comma list of names, each one of ``available``."""
    if spec == "all":
        return None
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        raise ValueError(f"unknown layers {unknown}; available: {list(available)}")
    return names


def err(msg: str) -> None:
    """One line of progress on stderr (stdout stays free for ``--json``)."""
    print(msg, file=sys.stderr)
