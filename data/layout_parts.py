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
