"""Faithfulness of attribution maps: deletion and insertion curves against a random order.

Cells of the spectrogram (or ``patch``-sized blocks of cells) are ordered by attribution, most
important first. *Deletion* replaces them, in that order, by the baseline; *insertion* starts
from the baseline and puts them back. The target-class probability is recorded at ``n_steps``
evenly spaced fractions ``0 … 1`` of the patches, and the area under the curve is taken by the
trapezoid rule over the fraction. A faithful map gives a lower deletion AUC and a higher
insertion AUC than a random order of the same patches (seeded ``key``).

All curve points of a batch run as masked copies of the inputs, ``internal_batch_size`` at a
time (``lax.map`` over chunks) inside one jitted function. Model protocol: ``logits_fn`` as in
:mod:`engine.attribution`.

References: Petsiuk, Das & Saenko 2018, "RISE: randomized input sampling for explanation of
black-box models" (deletion / insertion metrics).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from engine.attribution import check_batch, make_baseline, map_in_chunks, target_prob

Array = jax.Array
MODES = ("deletion", "insertion")


def patch_ids(shape: tuple[int, int], patch: tuple[int, int]) -> np.ndarray:
    """``(freq, time)`` int map of each cell's patch; edge patches may be smaller."""
    f, t = shape
    n_t = -(-t // patch[1])
    return (np.arange(f)[:, None] // patch[0]) * n_t + np.arange(t)[None, :] // patch[1]


def patch_ranks(attribution: Array, *, patch: tuple[int, int] = (1, 1)) -> Array:
    """Rank of each patch, 0 = most important (highest mean attribution): ``(batch, n_patches)``."""
    b, f, t = attribution.shape
    pid = jnp.asarray(patch_ids((f, t), patch)).reshape(-1)
    n = int(pid.max()) + 1
    sums = jnp.zeros((b, n)).at[:, pid].add(attribution.reshape(b, -1))
    scores = sums / jnp.zeros(n).at[pid].add(1.0)
    order = jnp.argsort(-scores, axis=1)
    return jnp.argsort(order, axis=1)


def random_ranks(key: Array, batch: int, n_patches: int) -> Array:
    """A uniformly random order of the patches per example, ``(batch, n_patches)``."""
    keys = jax.random.split(key, batch)
    return jax.vmap(lambda k: jax.random.permutation(k, n_patches))(keys)


def fractions(n_steps: int) -> np.ndarray:
    """The fractions of patches removed / inserted at each curve point, ``(n_steps,)``."""
    return np.linspace(0.0, 1.0, n_steps)


@partial(jax.jit, static_argnames=("logits_fn", "patch", "n_steps", "insertion", "chunk"))
def _curve(logits_fn, x, base, target, ranks, patch, n_steps, insertion, chunk):
    b, f, t = x.shape
    pid = jnp.asarray(patch_ids((f, t), patch))
    k = np.round(fractions(n_steps) * ranks.shape[1]).astype(np.int32)
    rows = (np.repeat(np.arange(b), n_steps), np.tile(k, b))
    first, second = (x, base) if insertion else (base, x)

    def probs(r):
        e, kk = r
        chosen = ranks[e][:, pid] < kk[:, None, None]
        return target_prob(logits_fn, jnp.where(chosen, first[e], second[e]), target[e])

    return map_in_chunks(probs, rows, chunk=chunk).reshape(b, n_steps)


def curve(logits_fn: Callable, x, target, attribution=None, *, mode: str = "deletion",
          key: Array | None = None, baseline="silence", floor: float = -4.0,
          patch: tuple[int, int] = (1, 1), n_steps: int = 21,
          internal_batch_size: int = 64) -> Array:
    """Target probability along a deletion or insertion curve, ``(batch, n_steps)``.

    Args:
      attribution: ``(batch, freq, time)`` map giving the order; ``None`` → a random order
        drawn from ``key``.
      mode: ``"deletion"`` or ``"insertion"``.
      baseline: what removed cells become (see ``engine.attribution.make_baseline``).
      patch: (bins, frames) block moved at once.
    Point ``s`` has ``round(fractions(n_steps)[s] · n_patches)`` patches removed / inserted.
    """
    x, target = check_batch(x, target)
    ranks = _ranks(x, attribution, key, patch)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if n_steps < 2 or internal_batch_size < 1:
        raise ValueError(f"need n_steps >= 2 and internal_batch_size >= 1, got {n_steps}, "
                         f"{internal_batch_size}")
    base = make_baseline(x, baseline, floor=floor)
    return _curve(logits_fn, x, base, target, ranks, tuple(int(p) for p in patch), int(n_steps),
                  mode == "insertion", int(internal_batch_size))


def _ranks(x: Array, attribution, key, patch) -> Array:
    if len(patch) != 2 or min(patch) < 1:
        raise ValueError(f"patch must be two positive ints (bins, frames), got {patch}")
    if attribution is None:
        if key is None:
            raise ValueError("pass an attribution map, or a key for the random order")
        return random_ranks(key, x.shape[0], int(patch_ids(x.shape[1:], patch).max()) + 1)
    attribution = jnp.asarray(attribution, jnp.float32)
    if attribution.shape != x.shape:
        raise ValueError(f"attribution shape {attribution.shape} must equal x shape {x.shape}")
    return patch_ranks(attribution, patch=tuple(patch))


def auc(curves: Array, *, n_steps: int | None = None) -> Array:
    """Trapezoid-rule area under ``(batch, n_steps)`` curves over the fraction axis 0 … 1."""
    curves = jnp.asarray(curves)
    fr = jnp.asarray(fractions(n_steps or curves.shape[-1]))
    return jnp.sum(0.5 * (curves[..., 1:] + curves[..., :-1]) * jnp.diff(fr), axis=-1)


def evaluate(logits_fn: Callable, x, target, attributions: Mapping[str, Array], *, key: Array,
             **options) -> dict[str, dict[str, np.ndarray]]:
    """Deletion and insertion curves and AUCs for every map and for a random order.

    Returns ``{name: {"deletion_curve", "insertion_curve": (batch, n_steps),
    "deletion_auc", "insertion_auc": (batch,)}}`` with an extra entry ``"random"``.
    ``options`` go to :func:`curve` (baseline, floor, patch, n_steps, internal_batch_size).
    """
    if "random" in attributions:
        raise ValueError("'random' is reserved for the random-order baseline; rename that map")
    orders = {**{k: (v, None) for k, v in attributions.items()}, "random": (None, key)}
    out = {}
    for name, (attr, k) in orders.items():
        res = {}
        for mode in MODES:
            c = curve(logits_fn, x, target, attr, mode=mode, key=k, **options)
            res[f"{mode}_curve"], res[f"{mode}_auc"] = np.asarray(c), np.asarray(auc(c))
        out[name] = res
    return out


def faithfulness_summary(per_example_results: Mapping | Sequence[Mapping]) -> dict:
    """Mean ± std of the AUCs per method and whether each beats the random order.

    Args:
      per_example_results: the output of :func:`evaluate`, or a list of them (batches), which
        are concatenated.
    Returns ``{name: {"deletion_auc_mean", "deletion_auc_std", "insertion_auc_mean",
    "insertion_auc_std", "n"}}``; non-random entries add ``"beats_random_deletion"`` (lower mean
    deletion AUC), ``"beats_random_insertion"`` (higher insertion AUC) and ``"beats_random"``
    (both).
    """
    parts = [per_example_results] if isinstance(per_example_results, Mapping) \
        else list(per_example_results)
    if not parts or "random" not in parts[0]:
        raise ValueError("results need a 'random' entry; compute them with engine.faithfulness"
                         ".evaluate")
    summary = {}
    for name in parts[0]:
        s = {}
        for mode in MODES:
            v = np.concatenate([np.asarray(p[name][f"{mode}_auc"]).ravel() for p in parts])
            s[f"{mode}_auc_mean"], s[f"{mode}_auc_std"] = float(v.mean()), float(v.std())
        s["n"] = int(v.size)
        summary[name] = s
    rnd = summary["random"]
    for name, s in summary.items():
        if name != "random":
            s["beats_random_deletion"] = s["deletion_auc_mean"] < rnd["deletion_auc_mean"]
            s["beats_random_insertion"] = s["insertion_auc_mean"] > rnd["insertion_auc_mean"]
            s["beats_random"] = s["beats_random_deletion"] and s["beats_random_insertion"]
    return summary
