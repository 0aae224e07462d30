"""The decoder prior: a spectrogram autoencoder's decoder, used as the input space of
activation maximisation (the Maximise page, ``hearsight experiment actmax``).

The default model has its own prior: :func:`ensure_default_prior` trains one on the default
model's corpus and features (fixed seed, fixed epochs — the same prior on every machine) the
first time it is needed and caches it next to the model, so later calls only load it.

References:
  Soomro et al., "Generating speech utterances by activation maximisation" (maximising in the
  latent space of a spectrogram autoencoder).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

PRIOR_ARCH = "spectrogram_ae"
# Bumped whenever PRIOR_RECIPE or the autoencoder changes, so a prior cached by an older
# recipe is retrained rather than reused.
PRIOR_VERSION = 1


@dataclass(frozen=True)
class Prior:
    """A decoder prior: ``decode_fn`` maps codes ``(b, latent)`` to features ``(b, freq, time)``;
    ``encode_fn`` (when known) maps features ``(b, freq, time)`` to codes ``(b, latent)``, which
    class-to-class maximisation in latent space starts from."""

    decode_fn: Callable
    latent: int
    encode_fn: Callable | None = None


@dataclass(frozen=True)
class PriorRecipe:
    """How the default decoder prior is trained (recorded in its checkpoint's metadata).

    Attributes:
      epochs: epochs trained, all of them (no early stopping, no time budget: the prior must
        not depend on how busy the machine is); the best validation epoch is kept.
      batch_size, learning_rate: AdamW with cosine decay (:func:`models.train.train_autoencoder`).
      seed: seed of the weights and of the batch order.
    """

    epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 2e-3
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRIOR_RECIPE = PriorRecipe()


def load_prior(directory: str | Path, params) -> Prior:
    """A :class:`Prior` from a ``spectrogram_ae`` checkpoint trained on the same features.

    Args:
      directory: the autoencoder's checkpoint folder.
      params: the classifier's :class:`data.features.FeatureParams`; the autoencoder must have
        been trained on exactly these features.
    """
    from flax import nnx

    from models.checkpoint import load_checkpoint

    model, meta = load_checkpoint(directory)
    if not hasattr(model, "decode") or meta.get("features") != params.to_dict():
        raise ValueError(f"{directory} is not a spectrogram autoencoder trained on the "
                         "classifier's features; train one with: hearsight train --arch "
                         "spectrogram_ae --features <same> ...")
    graphdef, state = nnx.split(model)
    return Prior(lambda z: nnx.merge(graphdef, state).decode(z), int(model.latent_dim),
                 lambda x: nnx.merge(graphdef, state).encode(x))


def default_prior_dir(model_dir: str | Path) -> Path:
    """Where the decoder prior of the model in ``model_dir`` is cached: a sibling folder,
    ``<model_dir>-prior-r<PRIOR_VERSION>`` (next to the default model under the cache home)."""
    model_dir = Path(model_dir).absolute()
    return model_dir.parent / f"{model_dir.name}-prior-r{PRIOR_VERSION}"


def train_prior(x_train, x_valid, *, n_classes: int = 1, recipe: PriorRecipe = PRIOR_RECIPE,
                progress: bool = True, desc: str = "decoder prior"):
    """Train a :class:`models.autoencoder.SpectrogramAE` on features ``(n, freq, time)``.

    One progress bar counts the epochs and shows the reconstruction MSE (log10 units²) of the
    last epoch on the training and validation features.

    Returns:
      ``(autoencoder, models.train.TrainResult)``; the autoencoder holds the best validation
      epoch's weights, in eval mode.
    """
    from tqdm import tqdm

    from models.registry import build_model
    from models.train import train_autoencoder

    x_train = np.asarray(x_train, np.float32)
    ae = build_model(PRIOR_ARCH, n_classes=n_classes, input_shape=x_train.shape[1:],
                     seed=recipe.seed)
    with tqdm(total=recipe.epochs, desc=desc, unit="epoch", disable=not progress) as bar:
        def on_epoch(epoch, model, metrics):
            bar.update(1)
            bar.set_postfix(recon_mse=f"{metrics['train_loss']:.4f}",
                            valid_mse=f"{metrics['valid_loss']:.4f}")

        # patience > epochs: every epoch runs, whatever the machine (as the default model).
        result = train_autoencoder(ae, x_train, x_valid, epochs=recipe.epochs,
                                   batch_size=recipe.batch_size,
                                   learning_rate=recipe.learning_rate,
                                   patience=recipe.epochs + 1, seed=recipe.seed,
                                   progress=False, on_epoch=on_epoch)
    return ae, result


def _cached(out: Path, params, model_meta: dict, recipe: PriorRecipe) -> bool:
    """Whether ``out`` holds a prior of this recipe for these features and this corpus."""
    try:
        meta = json.loads((out / "metadata.json").read_text())
        return (meta.get("features") == params.to_dict() and meta.get("arch") == PRIOR_ARCH
                and meta.get("prior", {}).get("recipe") == recipe.to_dict()
                and meta.get("corpus") == model_meta.get("corpus")
                and (out / "state").is_dir() and any((out / "state").iterdir()))
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive lock on ``path`` (so that two server processes starting at once train the
    prior once: the second waits, then finds it cached)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_default_prior(model_dir: str | Path, *, recipe: PriorRecipe = PRIOR_RECIPE,
                         progress: bool = True, log: Callable[[str], None] = print) -> Prior:
    """The decoder prior of the hearsight model in ``model_dir``, trained on first use.

    The prior is a ``spectrogram_ae`` trained by ``recipe`` on the train split of the model's
    own corpus (``metadata.json``'s ``corpus``, for the default model the synthetic default
    corpus) in the model's own features, and cached in :func:`default_prior_dir`; a later
    call (or another process) finds it there and only loads it. The first call says what it
    is doing and shows a progress bar.

    Raises:
      ValueError: ``model_dir`` is not a hearsight checkpoint with a corpus to train on.
    """
    from models.checkpoint import read_metadata, validate_metadata

    model_dir = Path(model_dir).absolute()
    meta = read_metadata(model_dir)
    params = validate_metadata(meta, model_dir)
    if not meta.get("corpus"):
        raise ValueError(f"{model_dir} records no corpus to train its decoder prior on; train "
                         "one with: hearsight train --arch spectrogram_ae --corpus SPEC ...")
    out = default_prior_dir(model_dir)
    with _lock(out.parent / f".{out.name}.lock"):
        if not _cached(out, params, meta, recipe):
            _train_and_save(out, meta, params, recipe, progress=progress, log=log)
    return load_prior(out, params)


def _train_and_save(out: Path, meta: dict, params, recipe: PriorRecipe, *, progress: bool,
                    log) -> dict:
    from data.corpora import open_corpus
    from data.dataset import load_split
    from models.autoencoder import reconstruction_error
    from models.checkpoint import save_checkpoint

    log(f"first use of the decoder prior: training a spectrogram autoencoder on the features "
        f"of {meta['corpus']!r} ({recipe.epochs} epochs, seed {recipe.seed}; a few minutes "
        f"on an idle 2-core machine, once; cached in {out})")
    t0 = time.perf_counter()
    corpus = open_corpus(meta["corpus"], progress=progress)
    splits = {s: load_split(corpus, s, params, progress=progress)
              for s in ("train", "valid", "test")}
    labels = list(meta["labels"])
    ae, result = train_prior(splits["train"].x, splits["valid"].x, n_classes=len(labels),
                             recipe=recipe, progress=progress)
    mse = float(np.mean(np.asarray(reconstruction_error(ae, splits["test"].x))))
    prior_meta = {
        "arch": PRIOR_ARCH, "arch_kwargs": {"n_classes": len(labels),
                                            "input_shape": list(params.shape)},
        "labels": labels, "features": params.to_dict(), "corpus": meta["corpus"],
        "split": {s: len(a.x) for s, a in splits.items()},
        "prior": {"recipe": recipe.to_dict(), "version": PRIOR_VERSION,
                  "model": str(meta.get("arch"))},
        "metrics": {"test": {"mse": mse, "n": int(len(splits["test"].x))},
                    "best_valid_loss": result.best_valid_loss, "best_epoch": result.best_epoch,
                    "history": list(result.history),
                    "train_seconds": round(time.perf_counter() - t0, 1)}}
    save_checkpoint(out, ae, prior_meta)
    log(f"decoder prior ready: test reconstruction MSE {mse:.4f} on "
        f"{len(splits['test'].x)} clips ({time.perf_counter() - t0:.0f} s); saved to {out}")
    return prior_meta
