"""The Embeddings page's data: the cached activation store, aligned layer layouts,
precomputed projection files and the per-layer quality table.

No widgets here. Long work is written as generators that ``yield`` a progress line after each
unit of work and ``return`` their result, so the page's job runner can stop between units and
show progress (the page relays the lines and takes the ``StopIteration`` value).

References:
  Deepling (layer-wise PivotMDS layouts aligned by Procrustes analysis, morphed on a slider);
  Brandes & Pich (2006) for PivotMDS; seed 003 for the projection-quality metrics.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

FILE_METHOD = "file"  # the method name of a precomputed `hearsight project` Parquet
QUALITY_N = 2000  # points the quality metrics are computed on
_STORE_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def available_methods(*, projection_path=None) -> dict[str, str]:
    """Select options ``label -> method``: PivotMDS and PCA always, UMAP/t-SNE when their
    packages import (marked slow), and the precomputed file when ``projection_path`` is set."""
    options = {}
    if projection_path is not None:
        options[f"precomputed: {Path(projection_path).name}"] = FILE_METHOD
    options.update({"PivotMDS": "pivotmds", "PCA": "pca"})
    for label, method, module in (("UMAP (slow)", "umap", "umap"),
                                  ("t-SNE (slow)", "tsne", "openTSNE")):
        if importlib.util.find_spec(module) is not None:
            options[label] = method
    return options


# -- the activation store ---------------------------------------------------------------
def store_key(model_dir, items: Sequence, level: str) -> str:
    """Hex digest naming the store of ``items`` (id, path, label, speaker) forwarded through
    the model in ``model_dir`` at ``level``; any change gives another store."""
    h = hashlib.sha256(json.dumps([str(model_dir), level]).encode())
    for it in items:
        h.update(json.dumps([it.id, str(it.path), it.label, it.speaker]).encode())
    return h.hexdigest()[:24]


def store_path(model_dir, items: Sequence, level: str) -> Path:
    """``cache_home()/stores/<store_key>``."""
    from data.corpora import cache_home

    return cache_home() / "stores" / store_key(model_dir, items, level)


def _lock_for(path: Path) -> threading.Lock:
    # write_activation_store's temporary folder is named by process id only, so two sessions
    # of this server writing the same store at once would collide: serialise them per path.
    with _LOCKS_GUARD:
        return _STORE_LOCKS.setdefault(str(path), threading.Lock())


def ensure_store(predictor, items: Sequence, *, model_dir, level: str = "utterance",
                 batch_size: int = 32, progress: Callable[[int, int], None] | None = None):
    """Open the cached store of ``items``, computing and writing it (atomically) if missing.

    Args:
      predictor: has ``features(waves)``, ``run(x) -> (probs, acts)``, ``params``, ``labels``.
      items: corpus items (``id``, ``path``, ``label``, ``speaker``).
      progress: ``progress(batches_done, batches_total)`` after every batch; it may raise to
        abort (nothing is left on disk then).
    Returns:
      ``(ActivationStore, computed)``; ``computed`` is False when the store was reused.
    """
    from data.activations import compute_activation_batches, write_activation_store
    from data.activations_read import open_activation_store

    if not items:
        raise ValueError("no corpus items to compute activations of; the model's corpus has "
                         "no test split here (pass items= or serve a projection file)")
    path = store_path(model_dir, items, level)
    with _lock_for(path):
        if (path / "store.json").exists():
            return open_activation_store(path), False
        total = -(-len(items) // batch_size)
        batches = compute_activation_batches(
            list(items), lambda w: predictor.run(predictor.features(w)),
            params=predictor.params, labels=predictor.labels, batch_size=batch_size,
            level=level)
        meta = {"model": str(model_dir), "level": level, "items": len(items)}
        write_activation_store(path, _counted(batches, total, progress), level=level,
                               meta=meta, overwrite=path.exists())
        return open_activation_store(path), True


def _counted(batches, total: int, progress):
    for k, batch in enumerate(batches, start=1):
        yield batch
        if progress is not None:
            progress(k, total)


# -- layouts ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Layouts:
    """Aligned 2-D layouts of ``n`` points in every layer (the key frames of the morph).

    Attributes:
      layers: layer names in forward order.
      xy: ``(layers, n, 2)`` float32 aligned layouts (layer i aligned to layer i − 1).
      reflected: per layer, whether the Procrustes fit mirrored it.
      quality: layer -> :func:`engine.projection.projection_quality` dict (may be empty).
      meta: ``n`` rows of item_id, label, speaker, prediction, correct (and more).
    """

    layers: tuple[str, ...]
    xy: np.ndarray
    reflected: tuple[bool, ...]
    meta: pd.DataFrame
    quality: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.xy.shape[1]


def _quality(x_sub: np.ndarray, y_sub: np.ndarray, seed: int) -> dict:
    from engine.projection import projection_quality

    n = x_sub.shape[0]
    if n < 5:  # trustworthiness needs 1 <= k < n / 2
        return {}
    return projection_quality(x_sub, y_sub, k=min(10, (n - 1) // 2), max_n=n, seed=seed)


def layout_steps(store, *, method: str, seed: int = 0, pivots: int = 50,
                 quality_n: int = QUALITY_N):
    """Generator: project every layer of ``store`` (yields one line per layer), align them
    with :func:`engine.projection.align_layers`, compute the quality metrics on a seeded
    ``quality_n`` subsample, and return :class:`Layouts`."""
    import jax

    from engine.projection import align_layers, layout_of, subsample
    from engine.projection.frames import coarsest_layer, layer_on_grid

    layers = list(store.layers)
    rows = {name: store.info(name)["rows"] for name in layers}
    grid = None  # frame-level layers of different frame counts: pooled onto the coarsest
    if len(set(rows.values())) != 1:
        if store.level != "frame":
            raise ValueError(f"layers have different row counts {rows}")
        grid = coarsest_layer(rows)
        yield (f"layers have different frame counts: each is averaged onto {grid}'s "
               f"{rows[grid]} frames")
    idx = subsample(rows[grid or layers[0]], quality_n, seed)
    keys = jax.random.split(jax.random.key(seed), len(layers))
    grid_meta = store.meta(grid)[["item_id", "frame"]] if grid else None
    layouts, subs = [], []
    for i, (name, key) in enumerate(zip(layers, keys)):
        x = layer_on_grid(store, name, grid, grid_meta)
        subs.append(x[idx])
        layouts.append(layout_of(x, method=method, key=key, pivots=pivots))
        yield f"projected {name} with {method} ({i + 1}/{len(layers)})"
    fits = align_layers(layouts)
    xy = np.stack([np.asarray(f.aligned, np.float32) for f in fits])
    quality = {}
    for i, name in enumerate(layers):
        quality[name] = _quality(subs[i], xy[i][idx], seed)
        yield f"quality of {name} ({i + 1}/{len(layers)})"
    return Layouts(tuple(layers), xy, tuple(bool(f.reflected) for f in fits),
                   store.meta(grid or layers[0]), quality)


def load_projection(path):
    """:class:`Layouts` of a ``hearsight project`` Parquet (``x_<layer>``, ``y_<layer>`` and
    metadata columns) with its JSON sidecar (layer order, reflections, quality) if present;
    a partitioned layout store (a folder with ``layout.json``, from ``hearsight project
    --cluster ... --out FOLDER``) opens lazily as :class:`data.layout_parts.LayoutParts`."""
    from data.layout_parts import is_layout_parts, open_layout_parts

    path = Path(path)
    if path.is_dir():
        if not is_layout_parts(path):
            raise ValueError(f"{path} is a folder without layout.json: not a layout store "
                             "(write one with `hearsight project --cluster ... --out FOLDER`)")
        return open_layout_parts(path)
    if not path.is_file():
        raise ValueError(f"projection file {path} does not exist; write it with "
                         "`hearsight project --activations DIR --out FILE`")
    df = pd.read_parquet(path)
    side = path.with_suffix(".json")
    sidecar = json.loads(side.read_text()) if side.is_file() else {}
    layers = sidecar.get("layers") or [c[2:] for c in df.columns if c.startswith("x_")]
    missing = [n for n in layers if f"x_{n}" not in df or f"y_{n}" not in df]
    if not layers or missing:
        raise ValueError(f"{path} has no x_<layer>/y_<layer> columns for {missing or 'any layer'}")
    xy = np.stack([np.stack([df[f"x_{n}"].to_numpy(np.float32),
                             df[f"y_{n}"].to_numpy(np.float32)], axis=1) for n in layers])
    per = sidecar.get("per_layer", {})
    meta = df[[c for c in df.columns if not c.startswith(("x_", "y_"))]].reset_index(drop=True)
    return Layouts(tuple(layers), xy, tuple(bool(per.get(n, {}).get("reflected", False))
                                            for n in layers),
                   meta, {n: per[n]["quality"] for n in layers if "quality" in per.get(n, {})})


QUALITY_NAMES = {  # metric key -> the name the table shows (in this order)
    "trustworthiness": "trustworthiness", "continuity": "continuity",
    "knn_preservation": "k-NN preservation", "distance_correlation": "distance correlation",
    "mutual_information": "mutual information (nats)",
    "procrustes_distance": "Procrustes distance"}


def quality_frame(layouts: Layouts) -> pd.DataFrame:
    """One row per layer of the quality metrics (rounded), as data (see
    :func:`quality_table` for the table the page shows)."""
    rows = [{"layer": n, **{k: round(float(v), 3) for k, v in layouts.quality.get(n, {}).items()
                            if k != "n"}} for n in layouts.layers]
    return pd.DataFrame(rows)


def quality_table(layouts: Layouts) -> pd.DataFrame:
    """The quality metrics (rounded to 3 decimals) for display: one row per metric, named in
    full (:data:`QUALITY_NAMES`), and one column per layer.

    Metrics as rows keep the table narrow: six metric names as column headers (one row per
    layer) made it ~720 px wide in the page's 480 px column, so the names were cut off."""
    present = {k for n in layouts.layers for k in layouts.quality.get(n, {})} - {"n"}
    keys = [k for k in QUALITY_NAMES if k in present] + sorted(present - set(QUALITY_NAMES))
    table = {"metric": [QUALITY_NAMES.get(k, k.replace("_", " ")) for k in keys]}
    for n in layouts.layers:
        q = layouts.quality.get(n, {})
        table[n] = [round(float(q[k]), 3) if k in q else float("nan") for k in keys]
    return pd.DataFrame(table)
