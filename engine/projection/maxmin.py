"""Greedy max-min (farthest-point) pivots for PivotMDS, in about one pass over the data.

The greedy choice (Brandes & Pich 2006, Sect. 4.1; Gonzalez 1985) takes as the next pivot the
point farthest from all pivots chosen so far. Written as k passes, each pass updates every point's
distance to its nearest pivot: k reads of the ``(n, d)`` data, memory-bound (50 reads of 200k x 512
float32 cost ~1.4 s on a 2-core machine). Most of those updates cannot change the choice: a
point's nearest-pivot distance only shrinks, so the value last computed for it is an upper bound,
and only points whose bound reaches the best exact value can be the farthest. Evaluating the
maximum lazily (Minoux 1978, "Accelerated greedy algorithms") needs one pass for the distances to
the first pivot and then, per pivot, only the rows whose bound reaches the new farthest distance.

Which rows those are is known only after they are evaluated, so each pivot first brings the
last pivot's runners-up up to date (one new distance each): the largest of those exact
distances is a lower bound on the new farthest one, and every stale row whose bound reaches it
is brought up to date in one batch (a NumPy GEMM of the gathered rows against the pivots they
have not seen). Rows whose first-pivot distance lies below every threshold so far are kept out of
the bookkeeping. At 200k x 512, k = 50 (``benchmarks/projection.py``) about 80k rows are brought
up to date, most once, in ~2M row-pivot distances (one pass's GEMM at k = 10), against the 10M of
the k-pass loop. The choice is the k-pass loop's: the farthest point, the lowest row index
among equals.

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
BATCH = 1024  # rows per batch once a guess has failed, taken in decreasing bound
FIRST_GUESS = 0.9  # the second pivot's guess: 0.9 x the first's distance (later: the last ratio)
GROUP = 32  # rows per GEMM of a refresh (see _State.refresh)
# rows gathered at once by a refresh: bounds the copy (at d = 1000, 64 MB) where a refresh of
# most rows once gathered them all (1.5 GB over the layer itself at 604,800 x 1000)
REFRESH_ROWS = 16384
# bytes of one block of the first streamed pass: each block is copied to the device (XLA:CPU
# did not alias these host slices), two in flight; 65,536 x 1000 blocks held 0.5 GB
FIRST_BLOCK_BYTES = 1 << 26
PROBE = 32  # the last pivot's runners-up brought up to date first, for the next threshold
WIDEN = 0.9  # rows enter the bookkeeping down to this times the guess, so scans of all n are few


@jax.jit
def _sqdist_to(xb: jax.Array, p: jax.Array) -> jax.Array:
    """``||x_i - p||²`` per row: elementwise then reduce, one fused read of the block."""
    return jnp.sum(jnp.square(xb.astype(jnp.float32) - p), axis=1)


def _rows(x, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of a host or device array: a writable float32 copy on the host."""
    rows = np.asarray(x[jnp.asarray(idx)] if isinstance(x, jax.Array) else x[idx], np.float32)
    return rows if rows.flags.writeable else rows.copy()


def _first_distances(x, p: np.ndarray, chunk: int) -> np.ndarray:
    """``||x_i - p||²`` for every row, ``(n,)`` float32, streamed in blocks of ``chunk`` rows.

    The last block ends at row ``n`` and overlaps the one before, so every block has one shape
    (one compile); padding a short last block instead cost a fresh zeroed block per call.
    At most two blocks are in flight (the next dispatched while the last is read back):
    dispatching them all at once put every block's device copy in memory together, 1 GB over
    the layer itself at 604,800 x 1000 (``benchmarks/project_memory.py``).
    """
    n, pd = x.shape[0], jnp.asarray(p)
    chunk = max(1, min(chunk, n, FIRST_BLOCK_BYTES // (4 * max(1, x.shape[1]))))
    out = np.empty(n, np.float32)
    pending = None
    for s in [*range(0, n - chunk, chunk), n - chunk]:
        part = _sqdist_to(row_block(x, s, chunk), pd)
        if pending is not None:
            out[pending[0]:pending[0] + chunk] = np.asarray(pending[1])
        pending = (s, part)
    out[pending[0]:pending[0] + chunk] = np.asarray(pending[1])
    return out


class _State:
    """Pivots so far and upper bounds on the rows' squared distances to their nearest pivot.

    ``u0``: every row's squared distance to pivot 0 (one streamed pass), the bound of every row
    never evaluated since. Rows with ``u0 >= level`` are *active*: ``act`` (their row indices),
    ``ub`` (their bounds) and ``done`` (``ub`` is exact for pivots ``0..done-1``) describe them;
    every other row's bound is its ``u0 < level``. ``piv[l]`` is pivot ``l`` minus pivot 0.
    """

    def __init__(self, x, k: int, first: int, chunk: int):
        self.x = x
        self.p0 = _rows(x, np.array([first]))[0]
        self.u0 = _first_distances(x, self.p0, chunk)
        self.tol = RESOLUTION * float(self.u0.max())
        self.piv, self.up = np.zeros((k, x.shape[1]), np.float32), np.zeros(k, np.float32)
        self.rows, self.radii = [first], []
        self.probe = np.empty(0, np.int64)  # the last pivot's runners-up (active positions)
        self.level = np.inf
        self.act, self.ub = np.empty(0, np.int64), np.empty(0, np.float32)
        self.done = np.empty(0, np.int32)

    def activate(self, t: float) -> None:
        """Make every row with ``u0 >= t`` active (down to ``WIDEN * t``, fewer scans)."""
        if t >= self.level:
            return
        low = max(WIDEN * t, self.tol)
        new = np.flatnonzero((self.u0 >= low) & (self.u0 < self.level))
        self.act = np.concatenate([self.act, new])
        self.ub = np.concatenate([self.ub, self.u0[new]])
        self.done = np.concatenate([self.done, np.ones(new.size, np.int32)])
        self.level = low

    def stale(self, t: float) -> np.ndarray:
        """Active positions not exact for all pivots whose bound is ``>= t`` and ``> tol``."""
        self.activate(t)
        j = len(self.rows)
        return np.flatnonzero((self.ub >= max(t, self.tol)) & (self.done < j)
                              & (self.ub > self.tol))

    def refresh(self, pos: np.ndarray) -> None:
        """Make the bounds at ``pos`` exact for all pivots so far: one product of the rows.

        Expanded about pivot 0, whose squared distance to every row the first pass holds
        (``u0`` for the rows, ``up`` for the pivots): ``||r - p_l||² = u0_r + up_l - 2 (r - p_0)
        ·piv_l`` with ``piv_l = p_l - p_0``. About a data point the norms are of the size of
        the distances, so float32 loses little to cancellation. Rows are gathered in row order
        and multiplied against the pivots from the oldest one any of them lacks; the few they
        already had change nothing (a minimum taken twice). The product runs as a stack of
        ``GROUP``-row GEMMs, each small enough for OpenBLAS to run on one thread: its threaded
        GEMM waits for the slower thread at every step, 3-5x slower on a machine whose other
        core is busy (measured at load 3.5; idle, one thread loses ~1.5x on two).
        """
        pos = np.sort(pos)  # act is in row order within each activation, so nearly sorted
        for start in range(0, pos.size, REFRESH_ROWS):
            self._refresh_block(pos[start:start + REFRESH_ROWS])

    def _refresh_block(self, pos: np.ndarray) -> None:
        j, lo = len(self.rows), int(self.done[pos].min())
        r = self.act[pos]
        a = _rows(self.x, np.pad(r, (0, -r.size % GROUP), mode="edge"))
        a -= self.p0
        piv = np.ascontiguousarray(self.piv[lo:j].T)
        cross = (a.reshape(-1, GROUP, a.shape[1]) @ piv).reshape(-1, j - lo)[:r.size]
        d2 = self.u0[r][:, None] + self.up[None, lo:j] - 2.0 * cross
        self.ub[pos] = np.minimum(self.ub[pos], np.maximum(d2, 0.0).min(axis=1))
        self.done[pos] = j

    def add(self, row: int) -> None:
        j = len(self.rows)
        self.piv[j] = _rows(self.x, np.array([row]))[0] - self.p0
        self.up[j] = self.u0[row]
        self.rows.append(row)
        hit = np.flatnonzero(self.act == row)
        self.ub[hit], self.done[hit] = 0.0, self.piv.shape[0]  # a pivot is 0 from itself

    def guess(self) -> float:
        """A threshold just below the next pivot's distance: the last radius times the last
        step's ratio (the radii shrink slowly and smoothly after the first few pivots)."""
        r = self.radii
        ratio = FIRST_GUESS if len(r) < 2 or r[-2] <= 0 else min(max(r[-1] / r[-2], 0.5), 0.999)
        return r[-1] * ratio


def _next_pivot(st: _State) -> int:
    """Row index of the point farthest from all pivots so far (the lowest index among equals).

    The last pivot's runners-up are brought up to date first (one new distance each): the
    largest of their exact distances is a lower bound on the new farthest one, so taking it as
    the threshold ``t`` ends the search in one batch. Every stale row with a bound ``>= t`` is
    brought up to date, so the rest lie strictly below ``t``; once the best exact distance
    reaches ``t`` none of them can win or tie. Rows whose bound is within rounding of 0
    (``<= tol``) are never re-evaluated: they cannot be told from a pivot. Where no row is
    farther, every point is (to rounding) a pivot, all distances are 0 and the k-pass loop's
    argmax is row 0; without this, data with fewer distinct points than ``k`` would
    re-evaluate every row at every pivot.
    """
    if len(st.rows) == 1:  # every bound is exact for pivot 0
        best = float(st.u0.max())
        st.radii.append(best)
        return int(np.flatnonzero(st.u0 == best)[0])
    seen, best = [], -np.inf
    probe = st.probe[(st.done[st.probe] < len(st.rows)) & (st.ub[st.probe] > st.tol)]
    if probe.size:
        st.refresh(probe)
        seen.append(probe)
        best = float(st.ub[probe].max())
    t = best if best > st.tol else st.guess()
    pos = st.stale(t)  # every stale row above the threshold, in one batch
    while True:
        if pos.size:
            st.refresh(pos)
            seen.append(pos)
            best = max(best, float(st.ub[pos].max()))
        if best >= t or t <= st.tol:
            break
        if best == -np.inf:  # nothing above the guess: lower it
            t *= min(WIDEN, st.guess() / st.radii[-1]) if st.radii[-1] > 0 else 0.0
            pos = st.stale(t)
            continue
        t, pos = best, st.stale(best)  # the rows that may still beat the best ...
        if pos.size > BATCH:  # ... highest bounds first, ties at the cut included
            t = float(np.partition(st.ub[pos], pos.size - BATCH)[pos.size - BATCH])
            pos = pos[st.ub[pos] >= t]
    st.radii.append(max(best, 0.0))
    if best <= st.tol:
        return 0
    pos = np.concatenate(seen)
    top = pos[np.argpartition(-st.ub[pos], PROBE)[:PROBE + 1]] if pos.size > PROBE + 1 else pos
    st.probe = top  # the winner among them is made a pivot (bound 0) and drops out
    return int(st.act[pos[st.ub[pos] == best]].min())


def first_pivot(key: jax.Array, n: int) -> int:
    """The first max-min pivot: a row index uniform in ``0..n-1``, drawn from ``key``.

    Drawn by NumPy from the key's bits (``jax.random.key_data``): a ``jax.random`` draw
    compiles the threefry hash on its first call, 150 ms of the default PivotMDS's first call.
    """
    return int(np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel()).integers(n))


def maxmin_pivots(x, k: int, *, key: jax.Array, chunk: int = 65536) -> np.ndarray:
    """``k`` greedy max-min pivot rows of ``x`` in the order chosen, from a random first row.

    Args:
      x: ``(n, d)`` points (NumPy on the host or a jax.Array), ``1 <= k <= n``.
      key: ``jax.random`` key drawing the first pivot uniformly from ``0..n-1``
        (:func:`first_pivot`).
      chunk: rows per block of the one streamed pass (device memory ~ ``chunk * d`` floats).
    Returns:
      ``(k,)`` int64 row indices: the first, then each time the row farthest (Euclidean) from
      all chosen, the lowest index among equals.
    """
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    st = _State(x, k, first_pivot(key, n), min(chunk, n))
    while len(st.rows) < k:
        st.add(_next_pivot(st))
    return np.asarray(st.rows, np.int64)
