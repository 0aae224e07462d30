"""The epoch machinery behind :mod:`models.train`: jitted train/eval steps over a split nnx
model, input checks, one shuffled training epoch with a filled-up last batch, padded validation,
and one epoch of training plus validation with its metrics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm


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


def _run_epoch(train_step, carry, x, t, *, batch_size, rng, augment, bar):
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
        bar.set_postfix(loss=f"{losses[-1]:.4f}", acc=f"{correct / ((b + 1) * batch_size):.3f}")
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


def _epoch(steps, carry, epoch, data, *, classifier, batch_size, rng, augment, progress):
    """One epoch of training and validation: ``(carry, metrics)``."""
    (train_step, eval_step), (x_train, t_train, x_valid, t_valid) = steps, data
    t0 = time.perf_counter()
    with tqdm(total=math.ceil(len(x_train) / batch_size), desc=f"epoch {epoch}",
              disable=not progress, leave=False) as bar:
        carry, tr_loss, tr_acc = _run_epoch(train_step, carry, x_train, t_train,
                                            batch_size=batch_size, rng=rng, augment=augment,
                                            bar=bar)
    va_loss, va_acc = _evaluate_arrays(eval_step, carry[0], carry[1], x_valid, t_valid,
                                       batch_size)
    metrics = {"epoch": epoch, "train_loss": tr_loss, "train_acc": tr_acc,
               "valid_loss": va_loss, "valid_acc": va_acc,
               "seconds": round(time.perf_counter() - t0, 3)}
    if not classifier:
        metrics = {k: v for k, v in metrics.items() if not k.endswith("_acc")}
    if progress:
        tqdm.write(" ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    return carry, metrics
