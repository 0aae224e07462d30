"""Partitioned layout stores (data.layout_parts): the parts hold exactly the aligned layouts
and the store's metadata, row for row; the manifest's extents and categories are the data's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dask.array")

from data.activations import BatchActs, write_activation_store  # noqa: E402
from data.activations_read import open_activation_store  # noqa: E402
from data.layout_parts import (categorical, open_manifest_frame, read_manifest,  # noqa: E402
                               write_layout_parts)


def _store(tmp_path, sizes=(7, 3, 11)):
    rng, start, batches = np.random.default_rng(0), 0, []
    for n in sizes:
        labels = [("a", "b", "c")[(start + i) % 3] for i in range(n)]
        batches.append(BatchActs(
            item_id=[f"u{start + i}" for i in range(n)], label=labels,
            speaker=["s1" if i % 2 else "s2" for i in range(n)], prediction=labels[::-1],
            correct=np.arange(n) % 4 != 0, confidence=np.ones(n, np.float32),
            acts={"h1": rng.normal(size=(n, 4)).astype(np.float32),
                  "h2": rng.normal(size=(n, 6)).astype(np.float32)}))
        start += n
    return open_activation_store(write_activation_store(tmp_path / "s", iter(batches),
                                                        level="utterance"))


def test_parts_hold_the_layouts_and_metadata_row_for_row(tmp_path):
    import dask
    import dask.array as da

    store = _store(tmp_path)
    rng = np.random.default_rng(1)
    full = {name: rng.normal(size=(21, 2)).astype(np.float32) for name in store.layers}
    # chunks unlike the store's row groups (7, 3, 11): the writer must rechunk to them
    aligned = [da.from_array(full[name], chunks=(5, 2)) for name in store.layers]
    with dask.config.set(scheduler="sync"):
        manifest = write_layout_parts(tmp_path / "lay", store, list(store.layers), aligned,
                                      {"method": "pivotmds"})
    assert manifest["n"] == 21 and manifest["parts"] == 3 and manifest["method"] == "pivotmds"
    assert read_manifest(tmp_path / "lay")["layers"] == ["h1", "h2"]
    df = pd.concat([pd.read_parquet(p) for p in sorted((tmp_path / "lay").glob("part-*"))],
                   ignore_index=True)
    meta = store.meta()
    assert list(df["item_id"]) == list(meta["item_id"])
    assert list(df["label"]) == list(meta["label"].astype(str))
    for name in store.layers:
        np.testing.assert_array_equal(df[f"x_{name}"], full[name][:, 0])
        np.testing.assert_array_equal(df[f"y_{name}"], full[name][:, 1])
        x, y = full[name][:, 0], full[name][:, 1]
        assert manifest["ranges"][name] == pytest.approx([x.min(), x.max(), y.min(), y.max()])
    assert manifest["categories"]["label"] == ["a", "b", "c"]
    assert manifest["categories"]["speaker"] == ["s1", "s2"]
    cat = categorical(df, manifest["categories"])
    assert list(cat["label"].cat.categories) == ["a", "b", "c"]
    assert (cat["correctness"] == "wrong").sum() == (~meta["correct"]).sum()
    lazy = open_manifest_frame(tmp_path / "lay")
    assert lazy.npartitions == 3 and len(lazy) == 21


def test_a_folder_that_is_not_a_layout_store_is_refused_and_kept(tmp_path):
    import dask.array as da

    store = _store(tmp_path, sizes=(4,))
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a layout store"):
        write_layout_parts(other, store, ["h1"], [da.zeros((4, 2), chunks=4)], {})
    assert (other / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="not a complete layout store"):
        read_manifest(other)
