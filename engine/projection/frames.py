"""Frames of layers with different time resolutions, put on one time grid.

A frame-level activation store keeps every layer's own frames: a CNN that pools in time has
150, 75, 37 and 18 frames per clip in its four conv layers, so its layers have different row
counts and no point of one layer is a point of the next. A layer walkthrough needs one set of
points moving from layer to layer. :func:`frame_groups` maps each frame of a finer layer to the
frame of the coarsest layer whose time span holds it (frame ``f`` of ``n`` in a clip goes to
``floor(f * m / n)`` of that clip's ``m`` coarse frames: the same share of the clip), and
:func:`pool_rows` averages the finer frames of each group, so every layer ends up with the
coarsest layer's rows, in its order (average pooling to a common frame rate).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def frame_counts(meta: pd.DataFrame) -> pd.Series:
    """Frames per clip (``item_id`` → count) of a frame-level layer's metadata."""
    return meta.groupby("item_id", sort=False, observed=True)["frame"].size()


def frame_groups(fine: pd.DataFrame, coarse: pd.DataFrame) -> np.ndarray:
    """For every row of ``fine`` (columns ``item_id``, ``frame``), the row of ``coarse``
    whose frame holds it in time.

    Raises:
      ValueError: a clip of one layer is missing from the other, or a clip has more coarse
        frames than fine ones (then ``coarse`` is not the coarser layer).
    """
    n_fine, n_coarse = frame_counts(fine), frame_counts(coarse)
    missing = set(n_fine.index) ^ set(n_coarse.index)
    if missing:
        raise ValueError(f"layers hold different clips ({len(missing)} not in both, e.g. "
                         f"{sorted(map(str, missing))[:3]})")
    n = n_fine.reindex(fine["item_id"]).to_numpy()
    m = n_coarse.reindex(fine["item_id"]).to_numpy()
    if np.any(m > n):
        raise ValueError("the coarse layer has more frames per clip than the fine one")
    coarse_bin = (np.asarray(fine["frame"], np.int64) * m) // n
    index = pd.MultiIndex.from_arrays([coarse["item_id"].astype(str).to_numpy(),
                                       np.asarray(coarse["frame"], np.int64)])
    rows = index.get_indexer(pd.MultiIndex.from_arrays(
        [fine["item_id"].astype(str).to_numpy(), coarse_bin]))
    if np.any(rows < 0):  # a coarse frame number that a clip does not have
        raise ValueError("the coarse layer's frames are not numbered 0..m-1 in every clip")
    return rows


def pool_rows(x: np.ndarray, groups: np.ndarray, n_out: int) -> np.ndarray:
    """Mean of the rows of ``x`` in each group: ``(n_out, d)`` float32 (groups from
    :func:`frame_groups`; every output row must receive at least one input row)."""
    x = np.asarray(x, np.float32)
    groups = np.asarray(groups, np.int64)
    if len(groups) != len(x):
        raise ValueError(f"{len(groups)} group numbers for {len(x)} rows")
    counts = np.bincount(groups, minlength=n_out)
    if len(counts) != n_out or np.any(counts == 0):
        raise ValueError("every coarse frame needs at least one fine frame")
    if np.all(np.diff(groups) >= 0):  # rows in clip and frame order: sums of runs
        starts = np.flatnonzero(np.r_[True, np.diff(groups) > 0])
        sums = np.add.reduceat(x, starts, axis=0, dtype=np.float64)
    else:
        sums = np.zeros((n_out, x.shape[1]), np.float64)
        np.add.at(sums, groups, x)
    return (sums / counts[:, None]).astype(np.float32)


def coarsest_layer(rows: dict[str, int]) -> str:
    """The layer with the fewest rows (frames): the grid the others are pooled onto."""
    return min(rows, key=rows.get)


def layer_on_grid(store, name: str, grid: str | None, grid_meta: pd.DataFrame | None = None
                  ) -> np.ndarray:
    """Layer ``name`` of an activation store as ``(rows, d)``, averaged onto layer ``grid``'s
    frames when it has more of them (``grid`` None or ``name`` itself: the layer as stored).
    ``grid_meta``: ``store.meta(grid)[["item_id", "frame"]]``, when the caller has it."""
    x = store.layer_matrix(name)
    if grid is None or name == grid:
        return x
    if grid_meta is None:
        grid_meta = store.meta(grid)[["item_id", "frame"]]
    groups = frame_groups(store.meta(name)[["item_id", "frame"]], grid_meta)
    return pool_rows(x, groups, len(grid_meta))
