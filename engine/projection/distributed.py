"""PivotMDS and the chained Procrustes alignment as map–reduce over row partitions (Dask).

The in-memory path (:func:`engine.projection.pivot_mds.pivot_mds`,
:func:`engine.projection.procrustes.align_layers`) keeps all ``n`` rows of a layer in one
process. Here the rows are a ``dask.array`` chunked along the rows only (one block per
partition of an activation store) and nothing of size ``n`` ever meets in one place:

- pivots: ``k`` rows gathered to the client (random: a uniform subset of the row indices,
  drawn as in-memory; max-min: ``k`` map–reduce passes, each updating every block's
  nearest-pivot distances and reducing to the farthest row, the lowest index among equals);
- the layout: with ``D`` the ``(n, k)`` squared pivot distances up to terms constant along a
  row or a column (the cross term ``-2 x·b``, as in-memory), let ``E = D - rowmean(D)`` (a
  per-block map). The double-centred ``C = -½ (D - r1ᵀ - 1mᵀ + g)`` equals ``-½ (E - 1μᵀ)``
  with ``μ = colmean(E)``, so ``CᵀC = ¼ (EᵀE - n μμᵀ)``: one reduction of the per-block
  ``EᵀE`` and ``Σ E`` (k × k and k numbers); the ``k × k`` eigenproblem runs on the client;
  the layout ``C v / √σ`` is one more map, and the sign fix one reduction of per-block extremes;
- Procrustes between consecutive layers: the centroids, the ``m × m`` cross-covariance and the
  sums of squares, each a reduction over blocks of the two layouts side by side.

Every block function is a pure NumPy function of arrays (float32 products as in-memory,
float64 sums across blocks), so the
Dask graph only calls them; the results equal the in-memory path (same pivots) to float32
rounding (``tests/engine/test_distributed_projection.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# -- block functions (pure, NumPy) ----------------------------------------------------------


def cross_block(xb: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``-2 x·b`` of a block against the centred pivots ``b (k, d)``: ``(rows, k)`` float32,
    as the in-memory path (float64 took 2.3x as long on this machine's 2 cores)."""
    return -2.0 * (np.asarray(xb, np.float32) @ np.asarray(b, np.float32).T)


def row_centred(db: np.ndarray) -> np.ndarray:
    """``E = D - rowmean(D)`` of a block."""
    return db - db.mean(axis=1, keepdims=True)


def gram_stats(xb: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[EᵀE | Σ E | rows]`` of a block, packed as one ``(1, k, k + 2)`` array (a reduction
    term: summing the blocks' arrays gives the whole data's)."""
    e = row_centred(cross_block(xb, b))
    k = e.shape[1]
    out = np.empty((1, k, k + 2))
    out[0, :, :k] = e.T @ e  # a float32 GEMM per block; blocks are summed in float64
    out[0, :, k] = e.sum(axis=0, dtype=np.float64)
    out[0, :, k + 1] = e.shape[0]
    return out


def layout_block(xb: np.ndarray, b: np.ndarray, mu: np.ndarray, proj: np.ndarray) -> np.ndarray:
    """The block's layout rows ``C v / √σ`` (``proj = v / √σ``), float32."""
    c = -0.5 * (row_centred(cross_block(xb, b)) - mu.astype(np.float32))
    return (c @ proj.astype(np.float32)).astype(np.float32)


def extremes_block(yb: np.ndarray) -> np.ndarray:
    """``(1, 2, m)``: the block's largest and smallest value per axis (for the sign fix)."""
    return np.stack([yb.max(axis=0), yb.min(axis=0)])[None].astype(np.float64)


def sqdist_block(xb: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``||x_i - p||²`` per row of a block, float32 (as the in-memory max-min)."""
    return np.sum(np.square(np.asarray(xb, np.float32) - np.asarray(p, np.float32)), axis=1)


def farthest_block(near: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``(1, 2)``: the block's largest nearest-pivot distance and its global row (lowest first)."""
    i = int(np.argmax(near))
    return np.array([[float(near[i]), float(offset[0] + i)]])


def pair_stats(sb: np.ndarray, tb: np.ndarray) -> np.ndarray:
    """``(1, 2m + 2m² + 3)`` reduction terms of a source/target block pair: Σ s, Σ t, Σ sᵀt,
    Σ sᵀs, Σ |s|², Σ |t|², rows (float64)."""
    s, t = np.asarray(sb, np.float64), np.asarray(tb, np.float64)
    return np.concatenate([s.sum(0), t.sum(0), (s.T @ t).ravel(), (s.T @ s).ravel(),
                           [np.sum(s * s), np.sum(t * t), s.shape[0]]])[None]


def affine_block(yb: np.ndarray, rot: np.ndarray, scale: float, shift: np.ndarray) -> np.ndarray:
    """``scale · y @ rot + shift`` of a block, float32."""
    return (scale * (np.asarray(yb, np.float64) @ rot) + shift).astype(np.float32)


# -- orchestration (Dask) ----------------------------------------------------------------


def _check(x):
    import dask.array as da

    if not isinstance(x, da.Array) or x.ndim != 2:
        raise ValueError(f"need a 2-d dask array (n, d), got {type(x).__name__}")
    if len(x.chunks[1]) != 1:
        x = x.rechunk({1: -1})  # partitions are row blocks; every block holds whole rows
    n, d = x.shape
    if n < 2 or d < 1:
        raise ValueError(f"x must have shape (n, d) with n >= 2 and d >= 1, got {x.shape}")
    return x


def _reduce(blocks, shape) -> np.ndarray:
    """Sum of the per-block reduction terms (a tree reduction in Dask), on the client."""
    return np.asarray(blocks.sum(axis=0).compute()).reshape(shape)


def dask_random_pivots(key, n: int, k: int) -> np.ndarray:
    """The in-memory random pivots (:func:`engine.projection.pivot_mds.random_pivots`)."""
    from engine.projection.pivot_mds import random_pivots

    return random_pivots(key, n, k)


def _row_offsets(x):
    import dask.array as da

    starts = np.cumsum((0,) + x.chunks[0][:-1])
    return da.from_array(starts.astype(np.int64), chunks=1)


def dask_maxmin_pivots(x, k: int, *, key) -> np.ndarray:
    """Greedy max-min pivots (the first drawn as in-memory from ``key``), ``k`` map–reduce
    passes; each block keeps its nearest-pivot distances between passes (``persist``), so a
    pass reads the data once and returns one number and one row index per block."""
    import dask.array as da

    from engine.projection.maxmin import first_pivot

    x = _check(x)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    rows = [first_pivot(key, n)]
    offsets = _row_offsets(x)
    near = None
    while len(rows) < k:
        p = np.asarray(x[rows[-1]].compute(), np.float32)
        d2 = x.map_blocks(sqdist_block, p, drop_axis=1, dtype=np.float32)
        near = d2 if near is None else da.minimum(near, d2)
        near = near.persist()
        best = near.map_blocks(farthest_block, offsets, chunks=((1,) * near.numblocks[0], (2,)),
                               new_axis=1, dtype=np.float64).compute()
        top = best[:, 0].max()
        if top <= 0:  # every point is a pivot already: the k-pass loop's argmax is row 0
            rows.append(0)
            continue
        rows.append(int(best[best[:, 0] == top, 1].min()))
    return np.asarray(rows, np.int64)


def dask_pivot_mds(x, *, k: int = 50, dims: int = 2, pivots: str = "maxmin", key,
                   idx: np.ndarray | None = None, out=None):
    """PivotMDS of a row-partitioned ``dask.array`` ``x (n, d)``: a lazy ``(n, dims)``
    float32 dask array (one block per row block of ``x``), equal to
    :func:`engine.projection.pivot_mds.pivot_mds` with the same pivots.

    ``idx``: the pivot rows, when already chosen (else ``pivots`` and ``key`` choose them as
    in-memory). ``out``: a folder; the layout's blocks are written there by the workers
    (``block-NNNNN.npy``) in the same pass that finds the axes' extremes, and the result reads
    them back — so ``x`` is read three times in all (pivots, the reduction, the layout; plus
    the max-min passes) and later uses of the layout (alignment, drawing) never recompute it.
    Without ``out`` the result stays a graph over ``x`` (every use recomputes it).
    """
    x = _check(x)
    n = x.shape[0]
    if not dims <= k <= n:
        raise ValueError(f"need dims <= k <= n, got dims={dims}, k={k}, n={n}")
    if idx is None:
        if pivots not in ("maxmin", "random"):
            raise ValueError(f"pivots must be 'maxmin' or 'random', got {pivots!r}")
        idx = (dask_maxmin_pivots(x, k, key=key) if pivots == "maxmin"
               else dask_random_pivots(key, n, k))
    idx = np.sort(np.asarray(idx, np.int64))
    p = np.asarray(x[idx].compute(), np.float64)
    b = p - p.mean(axis=0)  # any centre: the double centring removes it
    k = len(idx)
    stats = x.map_blocks(gram_stats, b, chunks=((1,) * x.numblocks[0], (k,), (k + 2,)),
                         new_axis=2, dtype=np.float64)
    total = _reduce(stats, (k, k + 2))
    ete, esum, rows = total[:, :k], total[:, k], total[0, k + 1]
    mu = esum / rows
    ctc = 0.25 * (ete - rows * np.outer(mu, mu))
    evals, evecs = np.linalg.eigh(ctc)
    order = np.argsort(evals)[::-1][:dims]
    sigma = np.sqrt(np.maximum(evals[order], 0.0))
    proj = evecs[:, order] / np.sqrt(np.where(sigma > 0, sigma, 1.0))
    y = x.map_blocks(layout_block, b, mu, proj, chunks=(x.chunks[0], (dims,)),
                     dtype=np.float32)
    if out is not None:
        y, ext = save_blocks(y, out)
    else:
        ext = _reduce_extremes(y)
    signs = np.where(ext[0] >= -ext[1], 1.0, -1.0)  # the largest |entry| of each axis > 0
    return y * signs.astype(np.float32)


def _reduce_extremes(y) -> np.ndarray:
    m = y.shape[1]
    blocks = y.map_blocks(extremes_block, chunks=((1,) * y.numblocks[0], (2,), (m,)),
                          new_axis=2, dtype=np.float64).compute()
    return np.stack([blocks[:, 0].max(axis=0), blocks[:, 1].min(axis=0)])


def _save_block(block: np.ndarray, path: str) -> np.ndarray:
    np.save(path, block)
    return extremes_block(block)


def save_blocks(y, folder) -> tuple[object, np.ndarray]:
    """Write every block of the lazy ``(n, m)`` array ``y`` to ``folder/block-NNNNN.npy`` (on
    the workers, one pass) and read it back lazily. Returns ``(array, extremes)``: the new
    array over the files, and ``(2, m)`` per-axis maxima and minima found in the same pass."""
    import dask
    import dask.array as da
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [str(folder / f"block-{i:05d}.npy") for i in range(y.numblocks[0])]
    blocks = y.to_delayed().ravel()
    ext = np.concatenate(dask.compute(*[dask.delayed(_save_block)(b, p)
                                        for b, p in zip(blocks, paths)]))
    m = y.shape[1]
    back = da.concatenate([da.from_delayed(dask.delayed(np.load)(p), shape=(rows, m),
                                           dtype=y.dtype) for p, rows in zip(paths, y.chunks[0])])
    return back, np.stack([ext[:, 0].max(axis=0), ext[:, 1].min(axis=0)])


@dataclass(frozen=True)
class DaskFit:
    """One layer's fit onto the previous aligned layer: ``aligned = scale · y @ rotation +
    translation`` (lazy), with its Procrustes ``residual`` and whether it ``reflected``."""

    aligned: object
    rotation: np.ndarray
    scale: float
    translation: np.ndarray
    reflected: bool
    residual: float


def _fit_stats(src, tgt) -> dict:
    import dask.array as da

    m = src.shape[1]
    tgt = tgt.rechunk({0: src.chunks[0]})
    terms = da.map_blocks(pair_stats, src, tgt, chunks=((1,) * src.numblocks[0],
                                                        (2 * m + 2 * m * m + 3,)),
                          dtype=np.float64)
    v = _reduce(terms, (-1,))
    n = v[-1]
    ss, st = v[:m], v[m:2 * m]
    mu_s, mu_t = ss / n, st / n
    cross = v[2 * m:2 * m + m * m].reshape(m, m) - n * np.outer(mu_s, mu_t)
    self_s = v[2 * m + m * m:2 * m + 2 * m * m].reshape(m, m) - n * np.outer(mu_s, mu_s)
    aa = v[-3] - n * mu_s @ mu_s
    bb = v[-2] - n * mu_t @ mu_t
    return dict(mu_s=mu_s, mu_t=mu_t, cross=cross, self_s=self_s, aa=aa, bb=bb)


def _residual(rot, scale, s) -> float:
    # ||scale a rot - b||² = scale² tr(rotᵀ aᵀa rot) - 2 scale tr(rotᵀ aᵀb) + ||b||²
    e = scale ** 2 * np.trace(rot.T @ s["self_s"] @ rot) - 2 * scale * np.trace(
        rot.T @ s["cross"]) + s["bb"]
    return float(max(e, 0.0) / (s["bb"] + (s["bb"] == 0)))


def _rotation(s, allow_reflection) -> tuple[np.ndarray, float, bool]:
    u, sv, vt = np.linalg.svd(s["cross"])
    m = u.shape[0]
    base = np.sign(np.linalg.det(u @ vt))
    fits = []
    for det in (1.0, -1.0):
        flip = np.ones(m)
        flip[-1] = base * det
        rot = (u * flip) @ vt
        scale = np.sum(sv * flip) / (s["aa"] if s["aa"] > 0 else 1.0)
        fits.append((rot, scale, _residual(rot, scale, s)))
    if allow_reflection is False:
        use = fits[0]
    elif allow_reflection is True:
        use = fits[1] if np.linalg.det(u @ vt) < 0 else fits[0]
    else:
        use = fits[1] if fits[1][2] < fits[0][2] else fits[0]
    return use[0], use[2], bool(np.linalg.det(use[0]) < 0)


def dask_align_layers(layouts: list, *, allow_reflection="auto",
                      keep_size: bool = True) -> list[DaskFit]:
    """:func:`engine.projection.procrustes.align_layers` of lazy ``(n, m)`` layouts: every
    layer fitted onto the previous aligned one from reductions only (one pass over the two
    layouts per layer); the aligned layouts stay lazy (affine maps of the inputs: give
    layouts that read saved blocks, :func:`save_blocks`, not graphs over the data)."""
    if not layouts:
        raise ValueError("align_layers needs at least one layout")
    shapes = {tuple(y.shape) for y in layouts}
    if len(shapes) != 1:
        raise ValueError(f"all layouts must have the same (n, m) shape, got {sorted(shapes)}")
    m = layouts[0].shape[1]
    out = [DaskFit(layouts[0], np.eye(m), 1.0, np.zeros(m), False, 0.0)]
    for y in layouts[1:]:
        s = _fit_stats(y, out[-1].aligned)
        rot, residual, reflected = _rotation(s, allow_reflection)
        if keep_size:
            scale = float(np.sqrt(s["bb"] / (s["aa"] if s["aa"] > 0 else 1.0)))
        else:
            scale = float(np.trace(rot.T @ s["cross"]) / (s["aa"] if s["aa"] > 0 else 1.0))
        shift = s["mu_t"] - scale * s["mu_s"] @ rot
        aligned = y.map_blocks(affine_block, rot, scale, shift, dtype=np.float32)
        out.append(DaskFit(aligned, rot, scale, shift, reflected, residual))
    return out
