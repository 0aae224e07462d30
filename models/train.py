"""Training of the classifiers and the spectrogram autoencoder (optax AdamW, one jitted step,
early stopping), batch-norm recalibration, and evaluation.

The model is split once into ``(graphdef, params, rest)`` with ``nnx.split``; the jitted
train step merges inside (flax nnx functional API), so one compilation serves every batch:
the last batch of an epoch is filled up with samples from the start of the permutation, and
validation batches are padded, so shapes never change.

References:
  Loshchilov & Hutter 2019, "Decoupled weight decay regularization" (AdamW);
  Li et al. 2019, "Understanding the disharmony between dropout and batch normalization by
  variance shift" (why :func:`recalibrate_batch_norm`).
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
from tqdm import tqdm

from models.architectures import call_with_intermediates

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


def _make_steps(g_train, g_eval, tx: optax.GradientTransformation, terms: Callable):
    """Jitted ``train_step(params, rest, opt, x, t)`` and ``eval_step(params, rest, x, t)``."""

    @jax.jit
    def train_step(params, rest, opt_state, x, t):
        def loss_fn(p):
            # Fresh copies of the non-trainable state, created at this trace level, so that
            # batch-norm statistics and RNG counters may be updated inside the merged model.
            model = nnx.merge(g_train, p, jax.tree.map(lambda a: a, rest))
            loss, correct = terms(model, x, t)
            # Batch statistics and dropout RNG counters advanced inside the merged model.
            return jnp.mean(loss), (jnp.sum(correct), nnx.split(model, nnx.Param, ...)[2])

        (loss, (correct, rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), rest, opt_state, loss, correct

    @jax.jit
    def eval_step(params, rest, x, t):
        return terms(nnx.merge(g_eval, params, rest), x, t)

    return train_step, eval_step


def _check_arrays(x_train, t_train, x_valid, t_valid) -> None:
    for name, x, t in (("train", x_train, t_train), ("valid", x_valid, t_valid)):
        if x.ndim < 2 or len(x) == 0 or len(t) != len(x):
            raise ValueError(f"{name}: need a non-empty batch of inputs with one target each, "
                             f"got inputs {x.shape} and targets {np.shape(t)}")
    if x_train.shape[1:] != x_valid.shape[1:]:
        raise ValueError(f"train inputs {x_train.shape[1:]} and valid inputs "
                         f"{x_valid.shape[1:]} differ in shape")


def _run_epoch(train_step, carry, x, t, *, batch_size, rng, augment, bar, classifier=True):
    n = len(x)
    n_batches = math.ceil(n / batch_size)
    order = rng.permutation(n)
    order = np.concatenate([order, order[: n_batches * batch_size - n]])  # fill the last batch
    losses, correct = [], 0.0
    for b in range(n_batches):
        idx = order[b * batch_size:(b + 1) * batch_size]
        xb = x[idx] if augment is None else np.asarray(augment(x[idx], rng), dtype=x.dtype)
        *carry, loss, c = train_step(*carry, jnp.asarray(xb), jnp.asarray(t[idx]))
        losses.append(float(loss))
        correct += float(c)
        bar.update(1)
        if classifier:
            bar.set_postfix(loss=f"{losses[-1]:.4f}",
                            acc=f"{correct / ((b + 1) * batch_size):.3f}")
        else:  # an autoencoder has no accuracy: its bar showed acc=0.000
            bar.set_postfix(recon_mse=f"{losses[-1]:.4f}")
    return tuple(carry), float(np.mean(losses)), correct / (n_batches * batch_size)


def _evaluate_arrays(eval_step, params, rest, x, t, batch_size) -> tuple[float, float]:
    losses, correct = [], []
    for start in range(0, len(x), batch_size):
        xb, tb = x[start:start + batch_size], t[start:start + batch_size]
        k = len(xb)
        pad = [(0, batch_size - k)] + [(0, 0)] * (xb.ndim - 1)
        tpad = [(0, batch_size - k)] + [(0, 0)] * (tb.ndim - 1)
        loss, c = eval_step(params, rest, jnp.asarray(np.pad(xb, pad)),
                            jnp.asarray(np.pad(tb, tpad)))
        losses.append(np.asarray(loss)[:k])
        correct.append(np.asarray(c)[:k])
    return float(np.concatenate(losses).mean()), float(np.concatenate(correct).mean())


def _split_for_training(model: nnx.Module):
    """``(train graphdef, eval graphdef, params, rest)``; leaves the model in eval mode."""
    model.train()
    g_train = nnx.split(model)[0]
    model.eval()
    return (g_train, *nnx.split(model, nnx.Param, ...))


def _epoch(steps, carry, epoch, data, *, classifier, batch_size, rng, augment, progress,
           calibrate=None):
    """One epoch of training and validation: ``(carry, eval_rest, metrics)``.

    With ``calibrate = (fn, x_cal)`` validation runs with batch-norm statistics recalibrated
    on ``x_cal`` (``eval_rest``), the statistics the returned model will have; otherwise
    ``eval_rest`` is the training carry's."""
    (train_step, eval_step), (x_train, t_train, x_valid, t_valid) = steps, data
    t0 = time.perf_counter()
    with tqdm(total=math.ceil(len(x_train) / batch_size), desc=f"epoch {epoch}",
              disable=not progress, leave=False) as bar:
        carry, tr_loss, tr_acc = _run_epoch(train_step, carry, x_train, t_train,
                                            batch_size=batch_size, rng=rng, augment=augment,
                                            bar=bar, classifier=classifier)
    eval_rest = carry[1] if calibrate is None else calibrate[0](carry[0], carry[1], calibrate[1])
    va_loss, va_acc = _evaluate_arrays(eval_step, carry[0], eval_rest, x_valid, t_valid,
                                       batch_size)
    metrics = {"epoch": epoch, "train_loss": tr_loss, "train_acc": tr_acc,
               "valid_loss": va_loss, "valid_acc": va_acc,
               "seconds": round(time.perf_counter() - t0, 3)}
    if not classifier:
        metrics = {k: v for k, v in metrics.items() if not k.endswith("_acc")}
    if progress:
        tqdm.write(" ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    return carry, eval_rest, metrics


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
    calibrate = _calibration(model, x_train, seed)
    for epoch in range(1, epochs + 1):
        carry, eval_rest, metrics = _epoch(
            steps, carry, epoch, (x_train, t_train, x_valid, t_valid), classifier=classifier,
            batch_size=min(batch_size, len(x_train)), rng=rng, augment=augment,
            progress=progress, calibrate=calibrate)
        stop = loop.record(metrics, (carry[0], eval_rest))
        if on_epoch is not None:
            nnx.update(model, carry[0], eval_rest)
            on_epoch(epoch, model, metrics)
        if stop:
            break
    nnx.update(model, *loop.best)
    model.eval()
    return loop.result(epochs)


CALIBRATION_CLIPS = 1024  # training inputs the per-epoch batch-norm statistics average over


def _calibration(model: nnx.Module, x_train: np.ndarray, seed: int):
    """``(calibrate, x_cal)`` for models with BatchNorm, else None. ``x_cal``: a fixed subset
    of the (clean) training inputs, drawn from its own generator so the training shuffle and
    augmentation draw exactly what they draw without it."""
    calibrate = _make_calibrator(model)
    if calibrate is None:
        return None
    n = len(x_train)
    pick = np.sort(np.random.default_rng([seed, 1]).permutation(n)[:CALIBRATION_CLIPS])
    return calibrate, x_train[pick]


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


def _batch_norms(model: nnx.Module) -> list:
    walk = nnx.iter_modules(model) if hasattr(nnx, "iter_modules") else model.iter_modules()
    return [m for _, m in walk if isinstance(m, nnx.BatchNorm)]


def _make_calibrator(model: nnx.Module, batch_size: int = 128):
    """``calibrate(params, rest, x) -> rest`` whose BatchNorm running statistics are the mean
    of ``x``'s per-batch statistics, dropout off (None when the model has no BatchNorm).

    The per-batch statistics come from one jitted forward of a graph whose BatchNorms use
    batch statistics with momentum 0 (so each call's running statistics are that batch's);
    their exact mean is what momentum ``(i - 1) / i`` for batch ``i`` would reach. Batches
    are ``x[i*batch_size:(i+1)*batch_size]`` for ``i < max(1, len(x) // batch_size)``.
    ``model`` is left in eval mode; its state is not changed until ``calibrate`` runs, which
    writes ``params``, ``rest`` and the new statistics into it."""
    norms = _batch_norms(model)
    model.eval()
    if not norms:
        return None
    saved = [(m.momentum, m.use_running_average) for m in norms]
    for m in norms:
        m.use_running_average, m.momentum = False, 0.0
    g_cal = nnx.split(model)[0]
    for m, (momentum, use_avg) in zip(norms, saved):
        m.momentum, m.use_running_average = momentum, use_avg
    model.eval()

    @jax.jit
    def batch_stats(params, rest, xb):
        merged = nnx.merge(g_cal, params, jax.tree.map(lambda a: a, rest))
        merged(xb)
        return nnx.state(merged, nnx.BatchStat)

    def calibrate(params, rest, x):
        n_batches = max(1, len(x) // batch_size)
        stats = [batch_stats(params, rest, jnp.asarray(x[i * batch_size:(i + 1) * batch_size]))
                 for i in range(n_batches)]
        mean = jax.tree.map(lambda *a: sum(a) / len(a), *stats)
        nnx.update(model, params, rest)
        nnx.update(model, mean)
        return nnx.split(model, nnx.Param, ...)[2]

    return calibrate


def recalibrate_batch_norm(model: nnx.Module, x: np.ndarray, *, batch_size: int = 128) -> int:
    """Set every BatchNorm's running statistics to their average over ``x`` (clean inputs).

    Dropout placed before batch-norm (the d-DeVIS blocks: ... → pool → dropout → conv → BN)
    makes training-time activations noisier than at inference, so the running variance
    learnt during training does not fit eval mode ("variance shift", Li et al. 2019); on
    FSDD eval-mode accuracy sat 25 points below batch-statistics accuracy. One pass over the
    training inputs with dropout off and batch statistics on, averaging the per-batch
    statistics exactly, removes the mismatch. Training validates every epoch with statistics
    recalibrated this way (on a subset of the training inputs), so the epoch it keeps is
    chosen on the model it returns.

    Returns the number of BatchNorm layers recalibrated; the model is left in eval mode.
    """
    calibrate = _make_calibrator(model, batch_size)
    if calibrate is None or len(x) == 0:
        return 0
    _, params, rest = nnx.split(model, nnx.Param, ...)
    calibrate(params, rest, np.asarray(x, np.float32))
    model.eval()
    return len(_batch_norms(model))


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
