"""Autoencoder projection: a per-layer deep autoencoder whose 2-D code is a fixed, reusable map.

The seed-003 paper trains, for every hidden layer, an autoencoder ``d-100-10-2`` with a
symmetric decoder ``2-10-100-d`` (ReLU hidden layers, linear bottleneck and output, MSE) on the
*training-split* activations, then applies its encoder to any new data. Unlike t-SNE or UMAP the
result is a function: new points land where the training points taught them to, and the same
point always lands in the same place.

Training is deterministic from one ``jax.random`` key (initialisation, the 10 % hold-out and the
minibatch order). Inputs are standardised with the training mean and standard deviation, which
are stored in the result; constant columns (dead ReLU units) get a standard deviation of 1 so
they stay constant instead of dividing by zero.

References:
  Hinton & Salakhutdinov (2006), Reducing the dimensionality of data with neural networks.
  Science 313; the seed autoencoder-projection paper ("Visual interpretation of acoustic models
  with deep autoencoders"); Kingma & Ba (2015), Adam.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx


class _AutoEncoder(nnx.Module):
    """``d → hidden… → dims → reversed(hidden)… → d``; ReLU on hidden layers only."""

    def __init__(self, d: int, hidden: tuple[int, ...], dims: int, *, rngs: nnx.Rngs):
        sizes = (d, *hidden, dims)
        back = sizes[::-1]
        # Parameters are drawn by _init_params (one compiled draw); nnx only gives the shapes.
        self.enc = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes, sizes[1:])])
        self.dec = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(back, back[1:])])

    def __call__(self, x: jax.Array) -> jax.Array:
        return _mlp(self.dec, _mlp(self.enc, x))


def _mlp(layers, x):
    for i, layer in enumerate(layers):
        x = layer(x)
        if i < len(layers) - 1:  # linear bottleneck / output: ReLU only between layers
            x = jax.nn.relu(x)
    return x


def _dense(params, x):
    """Plain-array version of :func:`_mlp`; ``params`` is a tuple of ``(kernel, bias)``."""
    for i, (w, b) in enumerate(params):
        x = x @ w + b
        if i < len(params) - 1:
            x = jax.nn.relu(x)
    return x


@partial(jax.tree_util.register_dataclass,
         data_fields=["encoder", "decoder", "mean", "std", "epochs_run", "valid_mse"],
         meta_fields=[])
@dataclass(frozen=True)
class AEProjection:
    """A trained autoencoder projection (a pytree of plain arrays).

    Attributes:
      encoder: tuple of ``(kernel (in, out), bias (out,))`` from ``d`` to ``dims``.
      decoder: tuple of ``(kernel, bias)`` from ``dims`` back to ``d``.
      mean, std: ``(d,)`` training statistics used to standardise every input.
      epochs_run: scalar, epochs trained (early stopping may end before the maximum).
      valid_mse: scalar, best held-out MSE in standardised units (``inf`` without a hold-out).

    Every field is a pytree leaf (none is static), so jitted maps over it compile once.
    """

    encoder: tuple
    decoder: tuple
    mean: jax.Array
    std: jax.Array
    epochs_run: jax.Array
    valid_mse: jax.Array

    @property
    def dims(self) -> int:
        return int(self.encoder[-1][0].shape[1])

    def transform(self, x, *, chunk: int = 65536) -> jax.Array:
        """Fixed 2-D code ``(n, dims)`` of ``(n, d)`` data (rows encoded independently)."""
        return _chunked(_encode, self, x, chunk)

    def reconstruct(self, x, *, chunk: int = 65536) -> jax.Array:
        """Decoder output ``(n, d)`` in the units of ``x``."""
        return _chunked(_reconstruct, self, x, chunk)


@jax.jit
def _encode(ae: AEProjection, x: jax.Array) -> jax.Array:
    return _dense(ae.encoder, (x - ae.mean) / ae.std)


@jax.jit
def _reconstruct(ae: AEProjection, x: jax.Array) -> jax.Array:
    return _dense(ae.decoder, _dense(ae.encoder, (x - ae.mean) / ae.std)) * ae.std + ae.mean


def _chunked(fn, ae: AEProjection, x, chunk: int) -> jax.Array:
    """Apply jitted ``fn`` to row blocks of ``chunk`` rows.

    Blocks are padded to ``chunk`` (itself cut to the next power of two above ``n``), so any
    number of rows costs at most one compilation per power of two.
    """
    d = int(ae.mean.shape[0])
    if np.ndim(x) != 2 or np.shape(x)[1] != d:
        raise ValueError(f"expected data of shape (n, {d}) (the training width), got {np.shape(x)}")
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of rows, got {chunk}")
    n = int(np.shape(x)[0])
    chunk = min(chunk, 1 << max(0, (n - 1).bit_length()))
    out = []
    for s in range(0, n, chunk):
        xb = jnp.asarray(x[s:s + chunk], jnp.float32)
        m = xb.shape[0]
        if m < chunk:
            xb = jnp.pad(xb, ((0, chunk - m), (0, 0)))
        out.append(fn(ae, xb)[:m])
    return jnp.concatenate(out) if out else jnp.zeros((0, ae.dims if fn is _encode else d))


def _check_fit_args(x, hidden, dims, epochs, batch_size, lr, holdout) -> None:
    if np.ndim(x) != 2 or np.shape(x)[0] < 4 or np.shape(x)[1] < 1:
        raise ValueError(f"x_train must have shape (n, d) with n >= 4, got {np.shape(x)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x_train contains NaN or infinite values")
    if not hidden or min(hidden) < 1 or dims < 1:
        raise ValueError(f"hidden sizes and dims must be >= 1, got {hidden}, {dims}")
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, "
                         f"{batch_size}, {lr}")
    if not 0.0 <= holdout < 0.5:
        raise ValueError(f"holdout must be a fraction in [0, 0.5), got {holdout}")


@lru_cache(maxsize=8)
def _make_trainer(graphdef, lr: float, batch_size: int):
    """Jitted ``(init, epoch, valid_mse)`` for one architecture, learning rate and batch size.

    ``epoch(params, opt_state, z, key, i)`` runs one ``lax.scan`` over the minibatches of the
    permutation drawn from ``fold_in(key, i)``; the incomplete last batch is dropped (the next
    epoch's permutation covers those rows), so shapes never change and one compilation serves
    every epoch. Cached on the (hashable) graph definition, so equal-width layers share it.
    """
    tx = optax.adam(lr)

    def loss_fn(params, zb):
        return jnp.mean((nnx.merge(graphdef, params)(zb) - zb) ** 2)

    def step(carry, idx):
        params, opt_state, z = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, z[idx])
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, z), loss

    @jax.jit
    def epoch(params, opt_state, z, key, i):
        perm = jax.random.permutation(jax.random.fold_in(key, i), z.shape[0])
        n_batches = z.shape[0] // batch_size
        batches = perm[:n_batches * batch_size].reshape(n_batches, batch_size)
        (params, opt_state, _), losses = jax.lax.scan(step, (params, opt_state, z), batches)
        return params, opt_state, jnp.mean(losses)

    return jax.jit(tx.init), epoch, jax.jit(loss_fn)


@partial(jax.jit, static_argnames=("n_val",))
def _standardise_split(x: jax.Array, key: jax.Array, *, n_val: int):
    """Training mean/std, and the standardised rows split into ``n - n_val`` train, ``n_val`` held out."""
    mean = jnp.mean(x, axis=0)
    sd = jnp.std(x, axis=0)
    # Constant columns (dead ReLU units) keep std 1, so they stay constant instead of NaN.
    std = jnp.where(sd > 1e-6 * (jnp.max(sd) + 1e-30), sd, 1.0)
    z = ((x - mean) / std)[jax.random.permutation(key, x.shape[0])]
    return mean, std, z[n_val:], z[:n_val]


@lru_cache(maxsize=8)
def _abstract(d: int, hidden: tuple[int, ...], dims: int):
    """Graph definition and abstract parameter state (shapes only, nothing compiled)."""
    return nnx.split(nnx.eval_shape(lambda: _AutoEncoder(d, hidden, dims, rngs=nnx.Rngs(0))),
                     nnx.Param)


def _init_params(key: jax.Array, abstract_params):
    """LeCun-uniform kernels (``U(±sqrt(3 / fan_in))``, flax's default scale) and zero biases.

    All kernels are cut from ONE uniform draw: eager ``nnx.Linear`` construction compiles a
    random kernel per distinct shape, which costs seconds on a busy CPU.
    """
    leaves, treedef = jax.tree.flatten(abstract_params)
    sizes = [int(np.prod(l.shape)) if len(l.shape) == 2 else 0 for l in leaves]
    u = np.asarray(jax.random.uniform(key, (sum(sizes),), minval=-1.0, maxval=1.0))
    out, at = [], 0
    for leaf, size in zip(leaves, sizes):
        if size == 0:
            out.append(jnp.zeros(leaf.shape, jnp.float32))
            continue
        scale = np.sqrt(3.0 / leaf.shape[0])
        out.append(jnp.asarray(u[at:at + size].reshape(leaf.shape) * scale, jnp.float32))
        at += size
    return jax.tree.unflatten(treedef, out)


def _to_arrays(layers) -> tuple:
    return tuple((jnp.asarray(l.kernel[...]), jnp.asarray(l.bias[...])) for l in layers)


def fit_ae_projection(x_train, *, key: jax.Array, hidden: tuple[int, ...] = (100, 10),
                      dims: int = 2, epochs: int = 50, batch_size: int = 256,
                      lr: float = 1e-3, holdout: float = 0.1,
                      patience: int | None = 8) -> AEProjection:
    """Train the autoencoder ``d-hidden-dims`` (symmetric decoder) on ``(n, d)`` activations.

    Args:
      x_train: ``(n, d)`` training-split activations (any float units).
      key: ``jax.random`` key; the same key and data give the same projection.
      hidden: encoder hidden widths (the paper: ``(100, 10)``); the decoder mirrors them.
      dims: bottleneck width, the projection's output dimension.
      epochs: maximum passes over the training rows.
      batch_size: rows per Adam step (clipped to the number of training rows).
      lr: Adam learning rate.
      holdout: fraction of rows held out for early stopping (0 disables it).
      patience: epochs without a better held-out MSE before stopping (``None``: never stop
        early); the parameters of the best held-out epoch are returned.
    Returns:
      :class:`AEProjection`; ``.transform(x)`` is the fixed map to ``(n, dims)``.

    References:
      Hinton & Salakhutdinov (2006); the seed autoencoder-projection paper (d-100-10-2, MSE).
    """
    hidden = tuple(int(h) for h in hidden)
    _check_fit_args(x_train, hidden, dims, epochs, batch_size, lr, holdout)
    k_init, k_val, k_order = jax.random.split(key, 3)
    n_val = int(round(holdout * np.shape(x_train)[0]))
    mean, std, z_tr, z_val = _standardise_split(jnp.asarray(x_train, jnp.float32), k_val,
                                                n_val=n_val)
    graphdef, abstract_params = _abstract(int(mean.shape[0]), hidden, int(dims))
    trainer = _make_trainer(graphdef, float(lr), min(int(batch_size), int(z_tr.shape[0])))
    params = _init_params(k_init, abstract_params)
    params, run, best = _train(trainer, params, z_tr, z_val if n_val else None, key=k_order,
                               epochs=epochs, patience=patience)
    trained = nnx.merge(graphdef, params)
    return AEProjection(_to_arrays(trained.enc), _to_arrays(trained.dec), mean, std,
                        jnp.asarray(run, jnp.int32), jnp.asarray(best, jnp.float32))


def _train(trainer, params, z_tr, z_val, *, key, epochs: int, patience: int | None):
    """Epoch loop with early stopping; returns ``(best params, epochs run, best valid MSE)``."""
    init, epoch, valid_mse = trainer
    opt_state = init(params)
    best, best_params, since, run = np.inf, params, 0, 0
    for i in range(epochs):
        params, opt_state, _ = epoch(params, opt_state, z_tr, key, i)
        run += 1
        if z_val is None:
            best_params = params
            continue
        v = float(valid_mse(params, z_val))
        if v < best:
            best, best_params, since = v, params, 0
        else:
            since += 1
        if patience is not None and since >= patience:
            break
    return best_params, run, best


def project_ae(x_train, x, *, key: jax.Array, dims: int = 2, chunk: int = 65536,
               **kw) -> jax.Array:
    """Fit :func:`fit_ae_projection` on ``x_train`` and map ``x`` ``(n, d)`` to ``(n, dims)``.

    What :func:`engine.projection.layout_of` runs for ``method="ae"``; ``kw`` are the keyword
    arguments of :func:`fit_ae_projection` (``hidden``, ``epochs``, ``batch_size``, ``lr``, …).
    """
    if np.ndim(x) != 2 or np.ndim(x_train) != 2 or np.shape(x)[1] != np.shape(x_train)[1]:
        raise ValueError(f"x_train and x must be (n, d) with the same d, got {np.shape(x_train)} "
                         f"and {np.shape(x)}")
    return fit_ae_projection(x_train, key=key, dims=dims, **kw).transform(x, chunk=chunk)
