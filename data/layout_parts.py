"""Partitioned layout stores: aligned 2-D layer layouts too large for one machine's memory.

``hearsight project --cluster ... --out FOLDER`` (an ``--out`` without ``.parquet``) writes one
Parquet part per row group of the activation store, each holding that group's metadata
(item_id, label, speaker, prediction, correct, frame) and its ``x_<layer>``/``y_<layer>``
columns, written by the workers (nothing of size n reaches the client). ``layout.json``,
written last, names the layers, the per-layer extents and the categories found in the same
pass, and marks the folder complete. :func:`open_layout_parts` opens it lazily as a Dask
DataFrame (:class:`LayoutParts`) for the Embeddings page, which aggregates every view on the
cluster with datashader.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

LAYOUT_MANIFEST = "layout.json"
FORMAT = "hearsight-layout-parts"
VERSION = 1
META = ("item_id", "label", "speaker", "prediction", "correct", "frame")
CATEGORIES = ("label", "speaker", "prediction")


def _write_part(out: str, src: str, group: int, blocks: list, layers: list) -> dict:
    """Worker task: one part = the store's row group ``group`` of ``src`` (metadata) + the
    aligned layouts' block of the same rows. Returns its extents and categories."""
    with pq.ParquetFile(src) as f:
        names = [c for c in META if c in f.schema_arrow.names]
        table = f.read_row_group(group, columns=names)
    stats = {"rows": table.num_rows, "ranges": {}}
    for name, block in zip(layers, blocks):
        block = np.asarray(block, np.float32)
        if block.shape != (table.num_rows, 2):
            raise ValueError(f"layout block of {name} has shape {block.shape}, the store's row "
                             f"group {group} of {src} has {table.num_rows} rows")
        table = table.append_column(f"x_{name}", pa.array(block[:, 0]))
        table = table.append_column(f"y_{name}", pa.array(block[:, 1]))
        stats["ranges"][name] = [float(block[:, 0].min()), float(block[:, 0].max()),
                                 float(block[:, 1].min()), float(block[:, 1].max())]
    for col in CATEGORIES:
        if col in names:
            stats[col] = sorted({str(v) for v in pa.compute.unique(table[col]).to_pylist()})
    if "frame" in names and table.num_rows:
        stats["frame_max"] = int(pa.compute.max(table["frame"]).as_py())
    tmp = f"{out}.tmp-{os.getpid()}"
    pq.write_table(table, tmp)
    os.replace(tmp, out)  # a rerun task (dead worker) rewrites the same part: no duplicates
    return stats


def store_row_groups(store, layer: str) -> list[tuple[str, int]]:
    """``(part path, row group)`` of every non-empty row group of ``layer``, in row order —
    the blocks of :meth:`ActivationStore.dask_layer`."""
    out = []
    for path in store.parts(layer):
        meta = pq.read_metadata(path)
        out += [(str(path), g) for g in range(meta.num_row_groups) if meta.row_group(g).num_rows]
    return out


def write_layout_parts(folder, store, layers: list[str], aligned: list, sidecar: dict) -> dict:
    """Write the lazy aligned ``(n, 2)`` dask layouts of ``layers`` as parts of ``folder``
    beside the store's metadata (computed wherever dask's scheduler runs: the cluster's
    workers under a ``distributed.Client``). Returns the manifest written."""
    import dask

    folder = Path(folder)
    if folder.exists():
        if not (folder / LAYOUT_MANIFEST).exists() and any(folder.iterdir()):
            raise ValueError(f"{folder} exists and is not a layout store; choose another --out")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    groups = store_row_groups(store, layers[0])
    chunks = (tuple(pq.read_metadata(p).row_group(g).num_rows for p, g in groups), (2,))
    per_layer = [a.rechunk(chunks).to_delayed().ravel() for a in aligned]
    tasks = [dask.delayed(_write_part)(str(folder / f"part-{i:05d}.parquet"), src, g,
                                       [blocks[i] for blocks in per_layer], list(layers))
             for i, (src, g) in enumerate(groups)]
    stats = dask.compute(*tasks)
    ranges = {}
    for name in layers:
        r = np.array([s["ranges"][name] for s in stats])
        ranges[name] = [float(r[:, 0].min()), float(r[:, 1].max()), float(r[:, 2].min()),
                        float(r[:, 3].max())]
    manifest = {"format": FORMAT, "version": VERSION, "layers": list(layers),
                "n": int(sum(s["rows"] for s in stats)), "parts": len(stats),
                "ranges": ranges,
                "categories": {c: sorted(set().union(*(s.get(c, []) for s in stats)))
                               for c in CATEGORIES},
                **sidecar}
    frame_max = [s["frame_max"] for s in stats if "frame_max" in s]
    if frame_max:  # frame-level: a layer's frames per clip (the page's time column)
        manifest["frames_per_clip"] = max(frame_max) + 1
    tmp = folder / f"{LAYOUT_MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, default=float))
    os.replace(tmp, folder / LAYOUT_MANIFEST)
    return manifest


def is_layout_parts(path) -> bool:
    return (Path(path) / LAYOUT_MANIFEST).is_file()


def read_manifest(folder) -> dict:
    folder = Path(folder)
    if not is_layout_parts(folder):
        raise ValueError(f"{folder} is not a complete layout store (no {LAYOUT_MANIFEST}); "
                         "write it with `hearsight project --cluster ... --out FOLDER`")
    manifest = json.loads((folder / LAYOUT_MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{folder}/{LAYOUT_MANIFEST} is not a {FORMAT} manifest")
    return manifest


def part_files(folder) -> list[str]:
    files = sorted(str(p) for p in Path(folder).glob("part-*.parquet"))
    if not files:
        raise ValueError(f"{folder}: the layout store has no parts")
    return files


def categorical(part: pd.DataFrame, categories: dict) -> pd.DataFrame:
    """A part with its category columns as pandas categoricals of the store's categories
    (datashader's ``count_cat`` on a Dask DataFrame needs them known), plus ``correctness``."""
    part = part.copy()
    for col, cats in categories.items():
        if col in part:
            part[col] = pd.Categorical(part[col].astype(str), categories=cats)
    if "correct" in part:
        part["correctness"] = pd.Categorical(np.where(part["correct"].to_numpy(bool),
                                                      "correct", "wrong"),
                                             categories=["correct", "wrong"])
    return part


def open_manifest_frame(folder):
    """The parts of ``folder`` as a lazy Dask DataFrame (one partition a part), category
    columns known (:func:`categorical`)."""
    import dask.dataframe as dd

    manifest = read_manifest(folder)
    ddf = dd.read_parquet(part_files(folder))
    cats = manifest["categories"]
    return ddf.map_partitions(categorical, cats,
                              meta=categorical(ddf._meta, cats))


# -- opened for the Embeddings page ------------------------------------------------------
PERSIST_BYTES = 2 << 30  # a plot frame up to this size is kept in (the cluster's) memory


class LayoutParts:
    """A partitioned layout store opened lazily: what the Embeddings page needs of a
    :class:`~serve.pages.embeddings_layouts.Layouts`, with no array of size ``n`` here.

    Attributes:
      folder, manifest: the store and its ``layout.json``.
      layers, n, reflected, quality: as :class:`Layouts` (from the manifest).
      frames_per_clip: frames of a clip (frame-level stores), else None.
      partitioned: True (the page branches on it).

    :meth:`plot_frame` is the Dask DataFrame every view aggregates (layout columns and the
    colour columns as known categoricals); :meth:`rows` the full rows (with item ids) that a
    selection reads. Both are lazy: dask's scheduler (a ``distributed.Client`` when one is the
    default) reads the parts where it runs.
    """

    partitioned = True

    def __init__(self, folder, *, persist_bytes: int | None = None):
        import threading

        self.folder = Path(folder)
        self.manifest = read_manifest(folder)
        self.files = part_files(folder)
        m = self.manifest
        self.layers = tuple(m["layers"])
        self.n = int(m["n"])
        per = m.get("per_layer", {})
        self.reflected = tuple(bool(per.get(k, {}).get("reflected", False)) for k in self.layers)
        self.quality = {k: per[k]["quality"] for k in self.layers if per.get(k, {}).get("quality")}
        self.frames_per_clip = m.get("frames_per_clip")
        self.persist_bytes = PERSIST_BYTES if persist_bytes is None else int(persist_bytes)
        self._plot: dict = {}
        self._lock = threading.Lock()
        self.cache: dict = {}  # the page's views of this store (shared by its sessions)
        self.cache_lock = threading.Lock()

    def colour_categories(self, by: str, labels=()) -> tuple[str, ...]:
        """The categories of colour ``by``, in the in-memory page's order
        (:func:`serve.pages.embeddings_cloud.colour_codes`): label and prediction share one
        list (``labels`` first, then the rest sorted), an empty speaker is ``"unknown"``."""
        cats = self.manifest.get("categories", {})
        if by == "correctness":
            return ("correct", "wrong")
        if by == "speaker":
            return tuple(sorted({"unknown" if s == "" else s for s in cats.get("speaker", [])}))
        seen = set(cats.get("label", [])) | set(cats.get("prediction", []))
        return tuple([c for c in labels if c in seen] + sorted(seen - set(labels)))

    def plot_frame(self, labels=()):
        """The Dask DataFrame of the views: every layer's ``x_``/``y_`` and label, speaker,
        prediction, correctness as categoricals in :meth:`colour_categories` order. Built once
        per ``labels``; persisted (held in the workers' or this process's memory) when it fits
        ``persist_bytes``, otherwise every view reads the parts again."""
        import dask.dataframe as dd

        key = tuple(labels)
        with self._lock:
            if key in self._plot:
                return self._plot[key]
            xy = [f"{a}_{k}" for k in self.layers for a in ("x", "y")]
            have = pq.read_schema(self.files[0]).names
            meta_cols = [c for c in ("label", "speaker", "prediction", "correct") if c in have]
            cats = {c: list(self.colour_categories(c, labels)) for c in CATEGORIES if c in have}
            frame = dd.read_parquet(self.files, columns=xy + meta_cols)
            frame = frame.map_partitions(_plot_part, cats, meta=_plot_part(frame._meta, cats))
            if self.n * (8 * len(self.layers) + 16) <= self.persist_bytes:
                frame = frame.persist()
            self._plot[key] = frame
            return frame

    def rows(self):
        """The full rows (metadata with item ids, every layer's ``x_``/``y_``) as a lazy Dask
        DataFrame, one partition a part."""
        import dask.dataframe as dd

        return dd.read_parquet(self.files)


def _plot_part(part: pd.DataFrame, cats: dict) -> pd.DataFrame:
    """A part's plot columns: the layouts, and the colour columns as categoricals of ``cats``
    (codes only: 10M values never become Python strings one by one)."""
    out = part[[c for c in part.columns if c.startswith(("x_", "y_"))]].copy()
    for col, names in cats.items():
        values = part[col].astype(str)
        if col == "speaker":
            values = values.where(values != "", "unknown")
        out[col] = pd.Categorical(values, categories=names)
    if "correct" in part:
        out["correctness"] = pd.Categorical.from_codes(
            (~part["correct"].to_numpy(bool)).astype(np.int8), categories=["correct", "wrong"])
    return out


def open_layout_parts(folder, **kwargs) -> LayoutParts:
    """:class:`LayoutParts` of a complete layout store (``ValueError`` otherwise)."""
    return LayoutParts(folder, **kwargs)
