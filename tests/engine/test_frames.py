"""engine.projection.frames: layers with different frame counts on one time grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.projection.frames import frame_groups, pool_rows


def _meta(counts: dict[str, int]) -> pd.DataFrame:
    items = [i for i, n in counts.items() for _ in range(n)]
    frames = [f for n in counts.values() for f in range(n)]
    return pd.DataFrame({"item_id": pd.Categorical(items), "frame": np.int32(frames)})


def test_pairs_of_fine_frames_average_into_each_coarse_frame():
    fine, coarse = _meta({"a": 4, "b": 4}), _meta({"a": 2, "b": 2})
    groups = frame_groups(fine, coarse)
    assert groups.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    x = np.arange(16, dtype=np.float32).reshape(8, 2)
    np.testing.assert_allclose(pool_rows(x, groups, len(coarse)),
                               [[1, 2], [5, 6], [9, 10], [13, 14]])


def test_uneven_ratios_follow_the_share_of_the_clip():
    # 37 -> 18 frames (a conv layer pooled in time, odd length): frame f goes to
    # floor(f * 18 / 37); every coarse frame gets 2 or 3 fine ones (the first 0, 1, 2; the
    # last 35, 36).
    fine, coarse = _meta({"a": 37}), _meta({"a": 18})
    groups = frame_groups(fine, coarse)
    assert groups.tolist() == [f * 18 // 37 for f in range(37)]
    counts = np.bincount(groups)
    assert set(counts) == {2, 3} and counts.sum() == 37 and counts[-1] == 2
    x = np.arange(37, dtype=np.float32)[:, None]
    pooled = pool_rows(x, groups, 18)
    assert pooled[0, 0] == pytest.approx(np.mean([0, 1, 2][:counts[0]]))
    assert pooled[-1, 0] == pytest.approx(np.mean(np.arange(37)[groups == 17]))


def test_clips_of_different_lengths_and_rows_out_of_order():
    fine, coarse = _meta({"long": 6, "short": 3}), _meta({"long": 3, "short": 1})
    groups = frame_groups(fine, coarse)
    assert groups.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 3]
    x = np.random.default_rng(0).normal(size=(9, 5)).astype(np.float32)
    order = np.random.default_rng(1).permutation(9)  # same rows, shuffled: same means
    np.testing.assert_allclose(pool_rows(x[order], groups[order], 4), pool_rows(x, groups, 4),
                               rtol=1e-6)


def test_a_layer_already_on_the_grid_is_unchanged():
    meta = _meta({"a": 5, "b": 3})
    x = np.random.default_rng(2).normal(size=(8, 4)).astype(np.float32)
    assert frame_groups(meta, meta).tolist() == list(range(8))
    np.testing.assert_array_equal(pool_rows(x, np.arange(8), 8), x)


def test_mismatched_layers_are_refused():
    with pytest.raises(ValueError, match="different clips"):
        frame_groups(_meta({"a": 4}), _meta({"b": 2}))
    with pytest.raises(ValueError, match="more frames"):
        frame_groups(_meta({"a": 2}), _meta({"a": 4}))
    with pytest.raises(ValueError, match="at least one"):
        pool_rows(np.zeros((2, 1)), np.array([0, 0]), 2)
