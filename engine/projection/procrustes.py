"""Procrustes analysis: alignment of layouts (with a test for mirroring), morphs between them,
and the Procrustes distance of a layout from its data.

Layer-wise projections are each defined only up to rotation, reflection, scale and translation;
aligning every layer to the previous, already aligned one makes a layer slider morph smoothly
instead of spinning or flipping (Deepling's "Procrustes analysis with additional test for
mirroring").

The alignment functions are jit-compatible (``allow_reflection`` is static).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from engine.projection.pairs import paired

Reflection = bool | Literal["auto"]


@partial(jax.tree_util.register_dataclass,
         data_fields=["aligned", "rotation", "scale", "translation", "reflected", "residual"],
         meta_fields=[])
@dataclass(frozen=True)
class ProcrustesResult:
    """A similarity transform ``aligned = scale * source @ rotation + translation``.

    Attributes:
      aligned: ``(n, m)`` the transformed source.
      rotation: ``(m, m)`` orthogonal matrix (det −1 when ``reflected``).
      scale: scalar, uniform scale.
      translation: ``(m,)`` offset added after rotating and scaling.
      reflected: scalar bool, whether the best fit mirrors the source.
      residual: ``||aligned - target||² / ||target - mean(target)||²`` in [0, 1], the
        Procrustes distance of the fit (equals ``scipy.spatial.procrustes``'s disparity and
        :func:`procrustes_distance` when reflections are allowed).
    """

    aligned: jax.Array
    rotation: jax.Array
    scale: jax.Array
    translation: jax.Array
    reflected: jax.Array
    residual: jax.Array


def _check_pair(source, target) -> None:
    s, t = np.shape(source), np.shape(target)
    if len(s) != 2 or s != t or s[0] < 2:
        raise ValueError(f"source and target must have the same (n, m) shape with n >= 2, got {s} and {t}")


def _relative_residual(a, b, rot, scale):
    """Procrustes distance of the fit ``scale · a @ rot ≈ b`` of centred ``a (n, p)`` onto centred
    ``b (n, q)``: ``||scale · a @ rot − b||² / ||b||²``, in [0, 1] for the least-squares scale.

    The one implementation of the distance: :func:`procrustes_align` runs it on traced float32
    jax arrays, :func:`procrustes_distance` on NumPy float64, so it uses array methods only.
    Summing the squared errors (rather than ``1 − (Σσ)²`` from the singular values) keeps a
    near-perfect fit at ~0 in float32 instead of at the rounding error of a difference of ones.
    """
    e = scale * (a @ rot) - b
    bb = (b * b).sum()
    return (e * e).sum() / (bb + (bb == 0))  # a target without spread is met exactly: 0 / 1


def _fit(a: jax.Array, b: jax.Array, u: jax.Array, sv: jax.Array, vt: jax.Array, det: float):
    """Best rotation of determinant ``det`` (+1 or −1) mapping centred ``a`` onto centred ``b``,
    its least-squares scale and the fit's :func:`_relative_residual`.

    Flipping the sign of the weakest singular direction is the cheapest way to change the
    determinant (Kabsch 1976; Umeyama 1991).
    """
    m = a.shape[1]
    base = jnp.sign(jnp.linalg.det(u @ vt))
    flip = jnp.ones(m).at[-1].set(base * det)
    rot = (u * flip) @ vt
    aa = jnp.sum(a * a)
    scale = jnp.sum(sv * flip) / jnp.where(aa > 0, aa, 1.0)
    return rot, scale, _relative_residual(a, b, rot, scale)


def procrustes_align(source: jax.Array, target: jax.Array, *,
                     allow_reflection: Reflection = "auto") -> ProcrustesResult:
    """Fit rotation, uniform scale and translation of ``source`` onto ``target`` by SVD.

    Args:
      source: ``(n, m)`` layout to move (usually ``m = 2``).
      target: ``(n, m)`` reference layout, row i corresponding to row i of ``source``.
      allow_reflection: ``False`` fits proper rotations only; ``True`` fits any orthogonal
        matrix (one SVD); ``"auto"`` fits both a rotation and a mirroring and keeps the mirror
        only if it lowers the residual (the mirroring test), so near ties never flip.
    Returns:
      :class:`ProcrustesResult`.

    References:
      Schönemann (1966), A generalized solution of the orthogonal Procrustes problem;
      Umeyama (1991), Least-squares estimation of transformation parameters between two
      point patterns. IEEE TPAMI 13(4).
    """
    _check_pair(source, target)
    if allow_reflection not in (True, False, "auto"):
        raise ValueError(f"allow_reflection must be True, False or 'auto', got {allow_reflection!r}")
    src = jnp.asarray(source, jnp.float32)
    tgt = jnp.asarray(target, jnp.float32)
    mu_s, mu_t = src.mean(axis=0), tgt.mean(axis=0)
    a, b = src - mu_s, tgt - mu_t
    u, sv, vt = jnp.linalg.svd(a.T @ b)
    rot_p, scale_p, res_p = _fit(a, b, u, sv, vt, 1.0)
    rot_m, scale_m, res_m = _fit(a, b, u, sv, vt, -1.0)
    if allow_reflection is False:
        use_mirror = jnp.array(False)
    elif allow_reflection is True:
        use_mirror = jnp.linalg.det(u @ vt) < 0
    else:
        use_mirror = res_m < res_p
    rot = jnp.where(use_mirror, rot_m, rot_p)
    scale = jnp.where(use_mirror, scale_m, scale_p)
    translation = mu_t - scale * mu_s @ rot
    aligned = scale * src @ rot + translation
    residual = jnp.where(use_mirror, res_m, res_p)
    return ProcrustesResult(aligned, rot, scale, translation, jnp.linalg.det(rot) < 0, residual)


_align_jit = jax.jit(procrustes_align, static_argnames=("allow_reflection",))


def align_layers(layouts: list, *, allow_reflection: Reflection = "auto",
                 keep_size: bool = True) -> list[ProcrustesResult]:
    """Align every layer's layout to the previous, already aligned one.

    Args:
      layouts: list of ``(n, m)`` layouts of the same n points (one per layer).
      keep_size: scale each layer to the size (root-mean-square distance from the centroid)
        of the one before, so every key frame has layer 0's size. Otherwise the least-squares
        scale is used, which shrinks a layer by how poorly it fits the previous one; along a
        chain of layers the cloud then collapses (a synth-trained Soomro CNN: 4.1 wide at
        conv1, 0.17 at the logits, a dot in a view that fits all layers). The rotation, the
        mirroring test and ``residual`` (the Procrustes distance) are the same either way.
    Returns:
      one :class:`ProcrustesResult` per layer; the first is the identity fit of layer 0 onto
      itself, so ``[r.aligned for r in result]`` are the animation's key frames.
    """
    if len(layouts) == 0:
        raise ValueError("align_layers needs at least one layout")
    shapes = {np.shape(y) for y in layouts}
    if len(shapes) != 1:
        raise ValueError(f"all layouts must have the same (n, m) shape, got {sorted(shapes)}")
    fit = _align_same_size_jit if keep_size else _align_jit
    results = [fit(layouts[0], layouts[0], allow_reflection=allow_reflection)]
    for y in layouts[1:]:
        results.append(fit(y, results[-1].aligned, allow_reflection=allow_reflection))
    return results


def _align_same_size(source, target, *, allow_reflection: Reflection) -> ProcrustesResult:
    """:func:`procrustes_align`, then scaled so the aligned layout has the target's size."""
    r = procrustes_align(source, target, allow_reflection=allow_reflection)
    src = jnp.asarray(source, jnp.float32)
    tgt = jnp.asarray(target, jnp.float32)
    a, b = src - src.mean(axis=0), tgt - tgt.mean(axis=0)
    aa = jnp.sum(a * a)
    scale = jnp.sqrt(jnp.sum(b * b) / jnp.where(aa > 0, aa, 1.0))
    translation = tgt.mean(axis=0) - scale * src.mean(axis=0) @ r.rotation
    return ProcrustesResult(scale * src @ r.rotation + translation, r.rotation, scale,
                            translation, r.reflected, r.residual)


_align_same_size_jit = jax.jit(_align_same_size, static_argnames=("allow_reflection",))


def interpolate_layouts(a: jax.Array, b: jax.Array, t) -> jax.Array:
    """Linear morph frame ``(1 - t) a + t b`` between two aligned ``(n, m)`` layouts.

    ``t`` in [0, 1]: 0 gives ``a``, 1 gives ``b``. A concrete ``t`` outside the range raises.
    """
    if np.shape(a) != np.shape(b):
        raise ValueError(f"layouts must have the same shape, got {np.shape(a)} and {np.shape(b)}")
    try:
        concrete = float(t)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        concrete = 0.0  # traced t (inside jit): the caller's slider keeps it in range
    if not 0.0 <= concrete <= 1.0:
        raise ValueError(f"t must lie in [0, 1], got {t}")
    return (1.0 - t) * jnp.asarray(a) + t * jnp.asarray(b)


def procrustes_distance(x, y) -> float:
    """Procrustes distance (PD) between data ``x (n, D)`` and its layout ``y (n, d)``; lower is better.

    The narrower of the two, centred, is rotated (any orthogonal map, reflections included) and
    scaled onto the wider, centred, as if padded with zero columns (a 2-D layout becomes a plane
    in D-space); PD is the relative squared residual of that fit (:func:`_relative_residual`),
    ``1 − (Σσ)² / (||x||² ||y||²)`` with σ the singular values of ``xᵀy``, symmetric in x and y.
    For 2-D vs 2-D this is ``scipy.spatial.procrustes``'s disparity and the ``residual`` of
    :func:`procrustes_align` with reflections allowed; a random layout scores ≈ 1. NumPy
    float64 host code: the thin SVD of the ``(d, D)`` product, never a ``D x D`` matrix.

    References:
      Kendall (1989), A survey of the statistical theory of shape. Statist. Sci. 4(2);
      used for embeddings by McInnes et al. (2018) and by the seed autoencoder-projection paper.
    """
    x, y = paired(x, y)
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    if np.linalg.norm(x) == 0 or np.linalg.norm(y) == 0:
        raise ValueError("procrustes_distance needs x and y with non-zero spread")
    a, b = (y, x) if y.shape[1] <= x.shape[1] else (x, y)
    u, sv, vt = np.linalg.svd(a.T @ b, full_matrices=False)
    return float(_relative_residual(a, b, u @ vt, sv.sum() / np.sum(a * a)))
