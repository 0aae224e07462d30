"""Greedy max-min (farthest-point) pivots for PivotMDS, in about one pass over the data.

The greedy choice (Brandes & Pich 2006, Sect. 4.1; Gonzalez 1985) takes as the next pivot the
point farthest from all pivots chosen so far. Written as k passes, each pass updates every point's
distance to its nearest pivot: k reads of the ``(n, d)`` data, memory-bound (50 reads of 200k x 512
float32 cost ~1-2 s on a 2-core machine). Most of those updates cannot change the choice: a
point's nearest-pivot distance only shrinks, so the value last computed for it is an upper bound,
and only points whose bound reaches the best exact value can be the farthest. Evaluating the
maximum lazily (Minoux 1978, "Accelerated greedy algorithms") needs one pass for the distances to
the first pivot and then, per pivot, the few hundred rows at the top of the bounds (0.1-0.3 % of
200k points in ``benchmarks/projection.py``). The choice is the k-pass loop's: the farthest point,
the lowest row index among equals.

References:
  Brandes & Pich (2006), Eigensolver methods for progressive multidimensional scaling of large
  data. Graph Drawing, LNCS 4372. Gonzalez (1985), Clustering to minimize the maximum
  intercluster distance. Theor. Comput. Sci. 38. Minoux (1978), Accelerated greedy algorithms
  for maximizing submodular set functions. LNCIS 7.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from engine.projection.streaming import row_block

RESOLUTION = 1e-5  # squared distances below this times the largest to pivot 0 are rounding
BATCH = 256  # rows re-evaluated in a pivot's first round (~ what one pivot needs at 200k)
TOP = 8192   # bounds sorted at a time: sorting all 200k costs 30 ms, the top few 1 ms
LATER_BATCH = 4 * BATCH  # rows per later round: those still above the best, highest first


@jax.jit
def _sqdist_to(xb: jax.Array, p: jax.Array) -> jax.Array:
    """``||x_i - p||²`` per row: elementwise then reduce, one fused read of the block."""
    return jnp.sum(jnp.square(xb.astype(jnp.float32) - p), axis=1)


@jax.jit
def _nearest(r: jax.Array, p0: jax.Array, piv: jax.Array, ur: jax.Array, up: jax.Array,
             live: jax.Array) -> jax.Array:
    """Squared distance ``(m,)`` of each row of ``r`` to its nearest ``live`` pivot.

    Expanded about pivot 0, whose squared distance to every row the first pass holds (``ur``
    for the rows, ``up`` for the pivots): ``||r - p_l||² = ur + up_l - 2 (r - p_0)·piv_l`` with
    ``piv_l = p_l - p_0``, one GEMM. About a data point the norms are of the size of the
    distances, so float32 loses little to cancellation (why the layout centres too). All ``k``
    pivot slots are computed and the dead ones masked: one compile per batch size, and XLA's
    GEMM keeps its speed on a busy machine where OpenBLAS's threaded small GEMMs lose 10x.
    """
    d2 = ur[:, None] + up[None, :] - 2.0 * ((r - p0) @ piv.T)
    return jnp.min(jnp.where(live[None, :], jnp.maximum(d2, 0.0), jnp.inf), axis=1)


def _rows(x, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of a host or device array, float32 on the host."""
    rows = x[jnp.asarray(idx)] if isinstance(x, jax.Array) else x[idx]
    return np.asarray(rows, dtype=np.float32)


def _first_distances(x, p: np.ndarray, chunk: int) -> np.ndarray:
    """``||x_i - p||²`` for every row, ``(n,)`` float32, streamed in blocks of ``chunk`` rows.

    The last block ends at row ``n`` and overlaps the one before, so every block has one shape
    (one compile); padding a short last block instead cost a fresh zeroed block per call.
    """
    n, pd = x.shape[0], jnp.asarray(p)
    starts = [*range(0, n - chunk, chunk), n - chunk]
    parts = [_sqdist_to(row_block(x, s, chunk), pd) for s in starts]
    out = np.empty(n, np.float32)
    for s, part in zip(starts, parts):
        out[s:s + chunk] = np.asarray(part)
    return out


class _State:
    """Pivots so far and upper bounds on every row's squared distance to its nearest pivot.

    ``u0``: each row's squared distance to pivot 0 (one streamed pass). Rows are visited in
    decreasing ``u0`` (``order``, sorted ``TOP`` at a time); positions below ``ptr`` have been
    re-evaluated, the rest still hold ``u0``, so those above any threshold form a prefix.
    ``value[pos]`` is exact for the first ``done[pos]`` pivots and bounds the rest from above.
    ``piv[l]`` is pivot ``l`` minus pivot 0, ``rows[l]`` its row index.
    """

    def __init__(self, x, k: int, first: int, chunk: int):
        self.p0 = _rows(x, np.array([first]))[0]
        self.u0 = _first_distances(x, self.p0, chunk)
        self.tol = RESOLUTION * float(self.u0.max())
        self.piv, self.rows = np.zeros((k, x.shape[1]), np.float32), [first]
        self.taken = np.zeros(self.u0.size, bool)
        self.order, self.value = np.empty(0, np.int64), np.empty(0, np.float32)
        self.done, self.ptr = np.empty(0, np.int32), 0
        self.extend()

    def extend(self) -> None:
        """Sort the next largest ``u0`` (ties by row index) onto ``order``, doubling it."""
        rest = np.flatnonzero(~self.taken)
        m = min(max(TOP, self.order.size), rest.size)
        top = rest if m == rest.size else rest[np.argpartition(-self.u0[rest], m - 1)[:m]]
        top = top[np.lexsort((top, -self.u0[top]))]
        self.taken[top] = True
        self.order = np.concatenate([self.order, top])
        self.value = np.concatenate([self.value, self.u0[top]])
        self.done = np.concatenate([self.done, np.ones(m, np.int32)])

    def add(self, x, row: int) -> None:
        self.piv[len(self.rows)] = _rows(x, np.array([row]))[0] - self.p0
        self.rows.append(row)

    def candidates(self, best: float, limit: int) -> np.ndarray:
        """Up to ``limit`` positions not exact for all pivots whose bound is ``>= best`` and
        above rounding (``> tol``), the highest bounds first."""
        j = len(self.rows)
        head = slice(0, self.ptr)
        old = np.flatnonzero((self.done[head] < j) & (self.value[head] >= best)
                             & (self.value[head] > self.tol))
        while True:  # the untouched prefix above best, sorting more of u0 if it runs out
            tail = -self.value[self.ptr:]
            new = min(limit, int(np.searchsorted(tail, -best, side="right")),
                      int(np.searchsorted(tail, -self.tol, side="left")))
            if new < tail.size or self.order.size == self.u0.size:
                break
            self.extend()
        vals = np.concatenate([self.value[old], -tail[:new]])
        if vals.size > limit:  # tail is sorted, so the new ones kept are a prefix of it
            keep = np.argpartition(-vals, limit - 1)[:limit]
            old, new = old[keep[keep < old.size]], int(np.sum(keep >= old.size))
        self.ptr += new
        return np.concatenate([old, np.arange(self.ptr - new, self.ptr)])

    def refresh(self, x, pos: np.ndarray) -> None:
        """Make the bounds at ``pos`` exact for all pivots so far, ``BATCH`` rows a call."""
        j, lo, k = len(self.rows), int(self.done[pos].min()), self.piv.shape[0]
        pos = pos[np.argsort(self.order[pos])]  # gather in row order
        up = np.zeros(k, np.float32)
        up[:j] = self.u0[self.rows]
        live = (np.arange(k) >= lo) & (np.arange(k) < j)
        near = []
        for s in range(0, pos.size, BATCH):  # one shape, so one compile per (d, k)
            r = self.order[np.pad(pos[s:s + BATCH], (0, max(0, s + BATCH - pos.size)), "edge")]
            near.append(_nearest(_rows(x, r), self.p0, self.piv, self.u0[r], up, live))
        near = np.concatenate([np.asarray(m) for m in near])[:pos.size]
        self.value[pos] = np.minimum(self.value[pos], near)
        self.done[pos] = j


def _next_pivot(x, st: _State) -> int:
    """Row index of the point farthest from all pivots so far (the lowest index among equals).

    Rows whose bound is within rounding of 0 (``<= tol``) are never re-evaluated: they cannot be
    told from a pivot. Where no row is farther, every point is (to rounding) a pivot, all
    distances are 0 and the k-pass loop's argmax is row 0; without this, data with fewer
    distinct points than ``k`` would re-evaluate every row at every pivot.
    """
    if len(st.rows) == 1:  # every bound is exact for pivot 0
        return int(np.flatnonzero(st.u0 == st.u0.max())[0])
    best, seen, limit = -np.inf, [], BATCH
    while (pos := st.candidates(best, limit)).size:
        st.refresh(x, pos)
        seen.append(pos)
        best = max(best, float(st.value[pos].max()))
        limit = LATER_BATCH
    if best <= st.tol:
        return 0
    pos = np.concatenate(seen)
    return int(st.order[pos[st.value[pos] == best]].min())


def maxmin_pivots(x, k: int, *, key: jax.Array, chunk: int = 65536) -> np.ndarray:
    """``k`` greedy max-min pivot rows of ``x`` in the order chosen, from a random first row.

    Args:
      x: ``(n, d)`` points (NumPy on the host or a jax.Array), ``1 <= k <= n``.
      key: ``jax.random`` key drawing the first pivot uniformly from ``0..n-1``.
      chunk: rows per block of the one streamed pass (device memory ~ ``chunk * d`` floats).
    Returns:
      ``(k,)`` int64 row indices: the first, then each time the row farthest (Euclidean) from
      all chosen, the lowest index among equals.
    """
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    st = _State(x, k, int(jax.random.randint(key, (), 0, n)), min(chunk, n))
    while len(st.rows) < k:
        st.add(x, _next_pivot(x, st))
    return np.asarray(st.rows, np.int64)
