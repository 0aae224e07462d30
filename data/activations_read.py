"""Reading activation stores back (written by :mod:`data.activations`, which re-exports this).

Holds the on-disk format (folder layout, manifest name, format tag and version, column names),
the lazily-reading :class:`ActivationStore` and :func:`open_activation_store`, which refuses an
incomplete (interrupted) store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "store.json"
FORMAT = "hearsight-activations"
VERSION = 1
PART = "part-00000.parquet"  # the first part; a layer may have more (part-00001.parquet, ...)
PART_GLOB = "part-*.parquet"
ACTS = "acts"
META_COLUMNS = ("item_id", "label", "speaker", "prediction", "correct", "confidence")
CATEGORICAL = ("label", "speaker", "prediction")
# Reading a layer streams its pages in blocks of at most this many bytes. A list column's
# batch costs about five times its bytes while it is decoded (levels, offsets, the growing
# builder), and pyarrow's default (each row group pre-buffered, 65,536-row batches) kept it
# all in its allocator: a 572 MB layer in 250 MB row groups peaked at 1.76 GB over the
# process's base; in 8 MB blocks, pool released after the layer, 0.67 GB.
READ_BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class ActivationStore:
    """A complete store opened by :func:`open_activation_store` (reads lazily)."""

    path: Path
    manifest: dict

    @property
    def level(self) -> str:
        return self.manifest["level"]

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(layer["name"] for layer in self.manifest["layers"])

    def info(self, name: str) -> dict:
        """``{"name", "dim", "rows"}`` of one layer."""
        for layer in self.manifest["layers"]:
            if layer["name"] == name:
                return layer
        raise ValueError(f"no layer {name!r} in {self.path}; layers: {list(self.layers)}")

    def _file(self, name: str) -> Path:
        """The layer's first part (holds the schema every part shares)."""
        return self.parts(name)[0]

    def parts(self, name: str) -> list[Path]:
        """The layer's Parquet parts in row order (``part-00000.parquet``, ...)."""
        self.info(name)
        found = sorted((self.path / f"layer={name}").glob(PART_GLOB))
        if not found:
            raise ValueError(f"{self.path}: layer {name!r} has no parts; write the store again")
        return found

    def dask_layer(self, name: str):
        """``name``'s activations as a lazy ``(n, d)`` float32 ``dask.array``, one block per
        row group of every part (shapes from the Parquet footers; nothing is read until a
        block is computed), for :mod:`engine.projection.distributed`."""
        import dask
        import dask.array as da

        d = self.info(name)["dim"]
        blocks = []
        for path in self.parts(name):
            meta = pq.read_metadata(path)
            for g in range(meta.num_row_groups):
                rows = meta.row_group(g).num_rows
                if rows:
                    blocks.append(da.from_delayed(dask.delayed(read_row_group)(str(path), g, d),
                                                  shape=(rows, d), dtype=np.float32))
        if not blocks:
            raise ValueError(f"{self.path}: layer {name!r} holds no rows")
        return da.concatenate(blocks, axis=0)

    def meta(self, layer: str | None = None) -> pd.DataFrame:
        """Metadata columns of ``layer``'s rows (default: the first layer), in row order.

        Columns: item_id, label, speaker, prediction (categoricals except item_id), correct,
        confidence, and frame (frame level).
        """
        paths = self.parts(layer or self.layers[0])
        names = [c for c in pq.read_schema(paths[0]).names if c != ACTS]
        df = pd.concat([pq.read_table(p, columns=names).to_pandas() for p in paths],
                       ignore_index=True)
        for col in CATEGORICAL:
            df[col] = df[col].astype("category")
        return df

    def iter_layer(self, name: str, chunk_rows: int = 65536) -> Iterator[np.ndarray]:
        """Yield ``(<= chunk_rows, d)`` float32 blocks of ``name`` in row order, each at most
        :data:`READ_BLOCK_BYTES` (pages are streamed, not the whole row group buffered)."""
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        d = self.info(name)["dim"]
        rows = max(1, min(chunk_rows, READ_BLOCK_BYTES // (4 * max(d, 1))))
        for path in self.parts(name):
            with pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20) as f:
                for rb in f.iter_batches(batch_size=rows, columns=[ACTS]):
                    yield _fsl_to_numpy(rb.column(0), d)
        pa.default_memory_pool().release_unused()  # the decoded blocks, back to the system

    def layer_matrix(self, name: str, *, rows=None) -> np.ndarray:
        """Activations of ``name`` as ``(n, d)`` float32 (``rows``: indices or a bool mask)."""
        info = self.info(name)
        if rows is None:  # filled block by block: the Parquet side never holds the whole layer
            out = np.empty((info["rows"], info["dim"]), np.float32)
            start = 0
            for block in self.iter_layer(name):
                out[start:start + len(block)] = block
                start += len(block)
            if start != info["rows"]:
                raise ValueError(f"{self.path}: layer {name!r} has {start} rows, its manifest "
                                 f"says {info['rows']}; write the store again")
            return out
        idx = np.arange(info["rows"])[rows] if np.asarray(rows).dtype == bool else np.asarray(rows)
        if idx.size and (idx.min() < 0 or idx.max() >= info["rows"]):
            raise ValueError(f"rows must lie in [0, {info['rows']}), got {idx.min()}..{idx.max()}")
        order = np.argsort(idx, kind="stable")
        out = np.empty((idx.size, info["dim"]), np.float32)
        start, k = 0, 0
        for block in self.iter_layer(name):
            stop = start + len(block)
            while k < idx.size and idx[order[k]] < stop:
                out[order[k]] = block[idx[order[k]] - start]
                k += 1
            start = stop
        return out


def read_row_group(path: str, group: int, d: int) -> np.ndarray:
    """Row group ``group`` of a part's ``acts`` column as ``(rows, d)`` float32."""
    with pq.ParquetFile(path) as f:
        col = f.read_row_group(group, columns=[ACTS]).column(ACTS)
    return _chunks_to_numpy(col.chunks, len(col), d)


def _fsl_to_numpy(arr: pa.Array, d: int) -> np.ndarray:
    # flatten() honours the slice offset of the list array; values are contiguous float32.
    return arr.flatten().to_numpy(zero_copy_only=False).reshape(-1, d)


def _chunks_to_numpy(chunks, n: int, d: int) -> np.ndarray:
    out = np.empty((n, d), np.float32)
    start = 0
    for chunk in chunks:
        out[start:start + len(chunk)] = _fsl_to_numpy(chunk, d)
        start += len(chunk)
    return out


def open_activation_store(path) -> ActivationStore:
    """Open a complete store; a folder without ``store.json`` (interrupted) is refused."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path} is not an activation store folder (it does not exist)")
    manifest_path = path / MANIFEST
    if not manifest_path.exists():
        raise ValueError(f"{path} has no {MANIFEST}: the store is incomplete (its writing was "
                         "interrupted?); write it again with `hearsight activations`")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError(f"{manifest_path} is not a version-{VERSION} {FORMAT} manifest")
    return ActivationStore(path=path, manifest=manifest)
