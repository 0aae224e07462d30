"""An activation store read lazily as a dask array equals the store read whole."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dask.array")

from data.activations import BatchActs, write_activation_store  # noqa: E402
from data.activations_read import open_activation_store  # noqa: E402


def _batches(rng, sizes, d=5):
    start = 0
    for n in sizes:
        ids = [f"u{start + i}" for i in range(n)]
        yield BatchActs(item_id=ids, label=["a"] * n, speaker=["s"] * n, prediction=["a"] * n,
                        correct=np.ones(n, bool), confidence=np.ones(n, np.float32),
                        acts={"h": rng.normal(size=(n, d)).astype(np.float32)})
        start += n


def test_dask_layer_has_one_block_per_row_group_and_equals_the_matrix(tmp_path):
    store = open_activation_store(write_activation_store(
        tmp_path / "s", _batches(np.random.default_rng(0), (7, 3, 11)), level="utterance"))
    x = store.dask_layer("h")
    assert x.shape == (21, 5) and x.chunks[0] == (7, 3, 11)
    np.testing.assert_array_equal(x.compute(), store.layer_matrix("h"))
    np.testing.assert_array_equal(x[8:12].compute(), store.layer_matrix("h")[8:12])


def test_rows_per_part_splits_every_layer_and_reads_back_whole(tmp_path):
    rng = np.random.default_rng(1)
    one = open_activation_store(write_activation_store(
        tmp_path / "one", _batches(np.random.default_rng(1), (4, 4, 4, 4, 3)), level="utterance"))
    many = open_activation_store(write_activation_store(
        tmp_path / "many", _batches(rng, (4, 4, 4, 4, 3)), level="utterance", rows_per_part=8))
    assert [p.name for p in many.parts("h")] == ["part-00000.parquet", "part-00001.parquet",
                                                 "part-00002.parquet"]
    assert many.info("h")["parts"] == 3 and many.info("h")["rows"] == 19
    np.testing.assert_array_equal(many.layer_matrix("h"), one.layer_matrix("h"))
    np.testing.assert_array_equal(many.dask_layer("h").compute(), one.layer_matrix("h"))
    assert list(many.meta("h")["item_id"]) == [f"u{i}" for i in range(19)]
    np.testing.assert_array_equal(many.layer_matrix("h", rows=[18, 0, 9]),
                                  one.layer_matrix("h")[[18, 0, 9]])
    with pytest.raises(ValueError, match="rows_per_part"):
        write_activation_store(tmp_path / "bad", _batches(rng, (2,)), level="utterance",
                               rows_per_part=0)
