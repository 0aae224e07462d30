"""The Embeddings page on a partitioned layout store (issue #22): every view aggregated by
dask over the store's parts, selection tested part by part.

Known answers: the page drawing a layout store shows, pixel for pixel, the image it draws
from the same layouts in memory (every colouring, at layers and between them); a box selects
the same rows, listed in the same order, with the total when only the first rows are kept;
frame-level rows get their time from the manifest's frames per clip; the same holds with the
store's views computed by a 2-worker ``distributed.LocalCluster``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dask.dataframe")

import dask  # noqa: E402
import dask.array as da  # noqa: E402

from data.activations import BatchActs, write_activation_store  # noqa: E402
from data.activations_read import open_activation_store  # noqa: E402
from data.layout_parts import write_layout_parts  # noqa: E402
from serve.pages import embeddings as E  # noqa: E402
from serve.pages import embeddings_cloud as EC  # noqa: E402
from serve.session import Session  # noqa: E402
from tests.serve.test_embeddings_scale_page import LABELS, FakeShared, _page  # noqa: E402

LAYERS = ("h1", "h2")
BOX = {"type": "rect", "x0": -0.5, "x1": 1.0, "y0": -1.0, "y1": 0.5}


def _layout_store(tmp_path, sizes=(700, 300, 1100), *, frames=None):
    """An activation store (one row group per batch of ``sizes`` clips, ``frames`` rows a clip
    at frame level) and a layout store of random layouts of it; returns
    ``(xy (2, rows, 2), store meta, layout folder)``."""
    rng, start, batches = np.random.default_rng(0), 0, []
    for n in sizes:
        labels = [LABELS[(start + i) % 3] for i in range(n)]
        shape = (n, frames, 4) if frames else (n, 4)
        batches.append(BatchActs(
            item_id=[f"u{start + i}" for i in range(n)], label=labels,
            speaker=["" if i % 2 else "bob" for i in range(n)], prediction=labels[::-1],
            correct=np.arange(n) % 4 != 0, confidence=np.ones(n, np.float32),
            acts={k: rng.normal(size=shape).astype(np.float32) for k in LAYERS}))
        start += n
    level = "frame" if frames else "utterance"
    store = open_activation_store(write_activation_store(tmp_path / "s", iter(batches),
                                                         level=level))
    n = store.info(LAYERS[0])["rows"]
    xy = np.stack([rng.normal(size=(n, 2)), 2 * rng.normal(size=(n, 2)) + 1]).astype(np.float32)
    with dask.config.set(scheduler="sync"):
        write_layout_parts(tmp_path / "lay", store, list(LAYERS),
                           [da.from_array(xy[i], chunks=(500, 2)) for i in range(2)],
                           {"method": "pivotmds",
                            "per_layer": {"h1": {"reflected": False}, "h2": {"reflected": True}}})
    return xy, store.meta(LAYERS[0]), tmp_path / "lay"


def _parts_page(folder):
    page = E.EmbeddingsPage(Session(FakeShared(folder)), items=[])
    assert page.wait(60)
    return page


def _same_views(mem, page):
    for colour in EC.COLOURS:
        mem.colour.value = page.colour.value = colour
        for pos in (0.0, 0.35, 1.0):
            mem.slider.value = page.slider.value = pos
            a, b = mem.cloud_view.render(), page.cloud_view.render()
            assert ((a >> 24) > 0).sum() > 1000  # a real cloud, not two empty images
            np.testing.assert_array_equal(a, b, err_msg=f"{colour} at {pos}")


def test_a_layout_store_draws_and_selects_what_its_layouts_in_memory_do(tmp_path):
    xy, meta, folder = _layout_store(tmp_path)
    page, mem = _parts_page(folder), _page(xy, meta, layers=LAYERS)
    assert page.layouts[E.EL.FILE_METHOD].partitioned
    assert page.progress.object.startswith("2,100 points · 2 layers")
    _same_views(mem, page)
    assert "mirrored" in page.cloud_view.caption.object  # h2's reflection, from the manifest
    assert "drawn on this machine" in page.cloud_view.caption.object
    for pos in (1.0, 0.5):
        mem.slider.value = page.slider.value = pos
        a, b = mem.cloud_view.select_geometry(BOX), page.cloud_view.select_geometry(BOX)
        assert a.size == b.size > 50
        assert list(page.list.table.value["item_id"]) == list(mem.list.table.value["item_id"])
        assert page.list.note.object == mem.list.note.object == f"{a.size} selected; click a " \
                                                               "row to play it"
        # the kept rows' positions are the selected points' positions, at any position
        for other in (0.0, 0.8):
            mem.slider.value = page.slider.value = other
            np.testing.assert_array_equal(page.cloud_view.points_at(b),
                                          mem.cloud_view.points_at(a))


def test_sparse_partition_counts_equal_datashaders_dask_aggregation(tmp_path):
    from viz.embeddings_dask import aggregate_dask

    _, _, folder = _layout_store(tmp_path)
    page = _parts_page(folder)
    for colour in ("label", "speaker"):
        cloud, _ = EC.partitioned_cloud(page.layouts[E.EL.FILE_METHOD], colour, LABELS)
        for pos in (0.0, 0.6, 1.0):
            sparse = aggregate_dask(cloud, pos)
            dense = aggregate_dask(cloud, pos, method="datashader")
            assert sparse.shape == dense.shape and sparse.data.sum() > 1000
            np.testing.assert_array_equal(sparse.data, dense.data)
            assert list(sparse.coords[sparse.dims[2]].values) == list(cloud.categories)


def test_a_large_selection_keeps_its_first_rows_and_says_how_many_in_all(tmp_path,
                                                                         monkeypatch):
    xy, meta, folder = _layout_store(tmp_path)
    page = _parts_page(folder)
    monkeypatch.setattr(EC, "KEEP_SELECTED", 40)
    page.list.max_rows = 25
    page.slider.value = 0.0
    idx = page.cloud_view.select_geometry({"type": "rect", "x0": -9, "x1": 9, "y0": -9,
                                           "y1": 9})
    assert idx.size == 40  # kept here; all 2,100 selected on the parts
    assert page.list.note.object.startswith("2,100 selected (first 25 listed)")
    assert list(page.list.table.value["item_id"]) == [f"u{i}" for i in range(25)]
    assert "2,100 selected on this machine" in page.cloud_view.caption.object
    assert "the first 40 kept" in page.cloud_view.caption.object


def test_frame_rows_get_their_time_from_the_manifest(tmp_path):
    _, _, folder = _layout_store(tmp_path, sizes=(10, 10), frames=13)
    page = _parts_page(folder)
    assert page.layouts[E.EL.FILE_METHOD].frames_per_clip == 13
    page.slider.value = 0.0
    # every point: the times are frame × 0.1 s / 13 (the model's clip length / frames a clip)
    page.cloud_view.select_geometry({"type": "rect", "x0": -9, "x1": 9, "y0": -9, "y1": 9})
    shown = page.list.table.value
    assert len(shown) == 260
    np.testing.assert_allclose(shown["time_s"], np.round(shown["frame"] * 0.1 / 13, 3))
    assert shown["frame"].max() == 12


def test_a_folder_without_a_manifest_is_refused_with_a_message(tmp_path):
    (tmp_path / "junk").mkdir()
    page = E.EmbeddingsPage(Session(FakeShared(tmp_path / "junk")), items=[])
    page.wait(60)
    assert E.EL.FILE_METHOD not in page.layouts
    assert "not a layout store" in page.session.alert.object


@pytest.mark.slow
def test_on_a_local_cluster_the_views_and_selection_are_the_same(tmp_path):
    from distributed import Client, LocalCluster

    xy, meta, folder = _layout_store(tmp_path)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster):
        page, mem = _parts_page(folder), _page(xy, meta, layers=LAYERS)
        _same_views(mem, page)
        assert "drawn on 2 workers of tcp://" in page.cloud_view.caption.object
        a, b = mem.cloud_view.select_geometry(BOX), page.cloud_view.select_geometry(BOX)
        assert a.size == b.size > 50
        assert list(page.list.table.value["item_id"]) == list(mem.list.table.value["item_id"])
