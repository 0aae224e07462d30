"""Training loops (optax AdamW, one jitted step) with early stopping, and evaluation.

The model is split once into ``(graphdef, params, rest)`` with ``nnx.split``; the jitted
train step merges inside (flax nnx functional API), so one compilation serves every batch:
the last batch of an epoch is filled up with samples from the start of the permutation, and
validation batches are padded, so shapes never change.

The epoch machinery lives in :mod:`models.train_loop`, batch-norm recalibration in
:mod:`models.batchnorm` (``recalibrate_batch_norm`` is re-exported here).

References:
  Loshchilov & Hutter 2019, "Decoupled weight decay regularization" (AdamW).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from models.architectures import call_with_intermediates
from models.batchnorm import recalibrate_batch_norm
from models.train_loop import _check_arrays, _epoch, _make_steps, _split_for_training

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class TrainResult:
    """Outcome of a training run.

    Attributes:
      history: per-epoch dicts ``{epoch, train_loss, train_acc, valid_loss, valid_acc,
        seconds}`` (the autoencoder's have no ``*_acc``); epochs count from 1.
      best_epoch: epoch whose weights were restored into the model.
      best_valid_acc: validation accuracy of that epoch (``None`` for autoencoders).
      stopped_early: True when patience or the time budget ended training.
      reason: why training ended, in words.
      best_valid_loss: validation loss of the best epoch.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_valid_acc: float | None = None
    stopped_early: bool = False
    reason: str = ""
    best_valid_loss: float | None = None


def _classifier_terms(model: nnx.Module, x: jax.Array, y: jax.Array):
    logits, _ = call_with_intermediates(model, x)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return loss, (jnp.argmax(logits, axis=-1) == y).astype(jnp.float32)


def _autoencoder_terms(model: nnx.Module, x: jax.Array, target: jax.Array):
    recon, _ = call_with_intermediates(model, x)
    loss = jnp.mean((recon - target) ** 2, axis=tuple(range(1, x.ndim)))
    return loss, jnp.zeros_like(loss)


def _fit(model, terms, x_train, t_train, x_valid, t_valid, *, classifier: bool, epochs,
         batch_size, learning_rate, weight_decay, patience, seed, progress, augment,
         time_budget_s, on_epoch) -> TrainResult:
    _check_arrays(x_train, t_train, x_valid, t_valid)
    if epochs < 1 or batch_size < 1 or patience < 1:
        raise ValueError(f"need epochs, batch_size, patience >= 1, got {epochs}, "
                         f"{batch_size}, {patience}")
    g_train, g_eval, params, rest = _split_for_training(model)
    # Cosine decay to 5 % over the planned epochs: a constant rate kept validation accuracy
    # swinging by ±10 points late in training on FSDD.
    total = epochs * -(-len(x_train) // min(batch_size, len(x_train)))
    schedule = optax.cosine_decay_schedule(learning_rate, decay_steps=max(1, total), alpha=0.05)
    tx = optax.adamw(schedule, weight_decay=weight_decay)
    steps = _make_steps(g_train, g_eval, tx, terms)
    loop = _Loop(patience=patience, classifier=classifier, t0=time.perf_counter(),
                 budget=time_budget_s, best=(params, rest))
    carry, rng = (params, rest, tx.init(params)), np.random.default_rng(seed)
    for epoch in range(1, epochs + 1):
        carry, metrics = _epoch(steps, carry, epoch, (x_train, t_train, x_valid, t_valid),
                                classifier=classifier, batch_size=min(batch_size, len(x_train)),
                                rng=rng, augment=augment, progress=progress)
        stop = loop.record(metrics, (carry[0], carry[1]))
        if on_epoch is not None:
            nnx.update(model, carry[0], carry[1])
            on_epoch(epoch, model, metrics)
        if stop:
            break
    nnx.update(model, *loop.best)
    model.eval()
    return loop.result(epochs)


@dataclass
class _Loop:
    """Early-stopping bookkeeping (mutable, private to one :func:`_fit` call)."""

    patience: int
    classifier: bool
    t0: float
    budget: float | None
    best: tuple
    history: list = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = -math.inf
    reason: str = ""

    def record(self, metrics: dict, weights: tuple) -> bool:
        """Store an epoch; True when training should stop after it."""
        self.history.append(metrics)
        score = metrics["valid_acc"] if self.classifier else -metrics["valid_loss"]
        if score > self.best_score:
            self.best_score, self.best_epoch, self.best = score, metrics["epoch"], weights
        if metrics["epoch"] - self.best_epoch >= self.patience:
            self.reason = (f"early stopping: no validation improvement for {self.patience} "
                           f"epochs")
        elif self.budget is not None and time.perf_counter() - self.t0 > self.budget:
            self.reason = f"time budget of {self.budget:g} s exceeded"
        return bool(self.reason)

    def result(self, epochs: int) -> TrainResult:
        best = self.history[self.best_epoch - 1]
        return TrainResult(history=list(self.history), best_epoch=self.best_epoch,
                           best_valid_acc=best.get("valid_acc"),
                           stopped_early=bool(self.reason),
                           reason=self.reason or f"completed {epochs} epochs",
                           best_valid_loss=best["valid_loss"])


def train_classifier(model: nnx.Module, x_train, y_train, x_valid, y_valid, *,
                     epochs: int = 30, batch_size: int = 64, learning_rate: float = 1e-3,
                     weight_decay: float = 1e-4, patience: int = 5, seed: int = 0,
                     progress: bool = True, augment: Augment | None = None,
                     time_budget_s: float | None = None,
                     on_epoch: Callable[[int, nnx.Module, dict], Any] | None = None
                     ) -> TrainResult:
    """Train a classifier with softmax cross-entropy; the model is updated in place.

    Args:
      model: ``nnx.Module`` mapping ``(batch, freq, time)`` to logits ``(batch, n_classes)``.
      x_train, x_valid: features ``(n, freq, time)`` float32.
      y_train, y_valid: integer class indices ``(n,)``.
      epochs, batch_size, learning_rate, weight_decay: AdamW schedule (constant rate).
      patience: stop after this many epochs without a better validation accuracy.
      seed: seed of the shuffling ``np.random.default_rng``.
      augment: ``augment(x_batch, rng) -> x_batch`` applied to every training batch.
      time_budget_s: stop after the epoch during which this many seconds have passed.
      on_epoch: ``on_epoch(epoch, model, metrics)`` after every epoch (e.g. to checkpoint);
        ``model`` then holds that epoch's weights.
    Returns:
      :class:`TrainResult`; the model holds the best epoch's weights, in eval mode.
    """
    x_tr, x_va = np.asarray(x_train, np.float32), np.asarray(x_valid, np.float32)
    y_tr, y_va = np.asarray(y_train, np.int32), np.asarray(y_valid, np.int32)
    result = _fit(model, _classifier_terms, x_tr, y_tr, x_va, y_va, classifier=True,
                epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                weight_decay=weight_decay, patience=patience, seed=seed, progress=progress,
                augment=augment, time_budget_s=time_budget_s, on_epoch=on_epoch)
    recalibrate_batch_norm(model, x_tr)
    return result


def train_autoencoder(ae: nnx.Module, x_train, x_valid, *, epochs: int = 30,
                      batch_size: int = 64, learning_rate: float = 1e-3,
                      weight_decay: float = 0.0, patience: int = 5, seed: int = 0,
                      progress: bool = True, augment: Augment | None = None,
                      time_budget_s: float | None = None,
                      on_epoch: Callable[[int, nnx.Module, dict], Any] | None = None
                      ) -> TrainResult:
    """Train an autoencoder to reconstruct its input (MSE); early stopping on valid loss.

    ``augment`` corrupts the *input* only (denoising autoencoder); the target stays clean.
    Other arguments as in :func:`train_classifier`.
    """
    x_tr, x_va = np.asarray(x_train, np.float32), np.asarray(x_valid, np.float32)
    return _fit(ae, _autoencoder_terms, x_train=x_tr, t_train=x_tr, x_valid=x_va,
                t_valid=x_va, classifier=False, epochs=epochs, batch_size=batch_size,
                learning_rate=learning_rate, weight_decay=weight_decay, patience=patience,
                seed=seed, progress=progress, augment=augment, time_budget_s=time_budget_s,
                on_epoch=on_epoch)


def _predict_logits(model_or_forward, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    if not isinstance(model_or_forward, nnx.Module):
        out = model_or_forward(x)
        return np.asarray(out[0] if isinstance(out, tuple) else out)
    model_or_forward.eval()
    graphdef, state = nnx.split(model_or_forward)
    fn = jax.jit(lambda s, xb: call_with_intermediates(nnx.merge(graphdef, s), xb)[0])
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        pad = [(0, batch_size - len(xb))] + [(0, 0)] * (x.ndim - 1)
        out.append(np.asarray(fn(state, jnp.asarray(np.pad(xb, pad))))[: len(xb)])
    return np.concatenate(out)


def evaluate(model_or_forward, x, y, labels) -> dict[str, Any]:
    """Accuracy, per-class accuracy and confusion matrix of a classifier.

    Args:
      model_or_forward: an ``nnx.Module`` (run in eval mode) or a callable ``f(x)`` returning
        logits or ``(logits, ...)`` such as ``engine.forward.Forward``.
      x: features ``(n, freq, time)``; y: class indices ``(n,)``; labels: class names.
    Returns:
      ``{"accuracy": float, "per_class_accuracy": {label: float | None (no examples)},
      "confusion": [[count]] (rows true class, columns predicted), "n": int}``.
    """
    x, y, labels = np.asarray(x, np.float32), np.asarray(y, np.int64), [str(s) for s in labels]
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"need one label per input, got {len(x)} inputs, {len(y)} labels")
    if y.min() < 0 or y.max() >= len(labels):
        raise ValueError(f"class indices must lie in [0, {len(labels)}), got {y.min()}..{y.max()}")
    logits = _predict_logits(model_or_forward, x)
    if logits.shape != (len(x), len(labels)):
        raise ValueError(f"model gave logits {logits.shape}, expected ({len(x)}, {len(labels)})")
    pred = logits.argmax(axis=-1)
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    rows = confusion.sum(axis=1)
    per_class = {lab: (float(confusion[i, i] / rows[i]) if rows[i] else None)
                 for i, lab in enumerate(labels)}
    return {"accuracy": float(np.mean(pred == y)), "per_class_accuracy": per_class,
            "confusion": confusion.tolist(), "n": int(len(y))}
