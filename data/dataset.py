"""Corpus split → feature arrays, cached on disk.

Turning a few thousand clips into spectrograms takes seconds; doing it on every start of the
server or every fold of an experiment would not. Arrays are cached as ``.npz`` under the cache
folder, keyed by a hash of the corpus items and the exact :class:`FeatureParams`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.corpora import cache_home
from data.features import FeatureParams, features_batch


@dataclass(frozen=True)
class SplitArrays:
    """Features and labels of one corpus split.

    Attributes:
      x: ``(n, freq, time)`` float32 features.
      y: ``(n,)`` int32 class indices into ``labels``.
      ids, speakers: per-item metadata, length ``n``.
      labels: class names.
      waves: ``(n, samples)`` float32 waveforms when requested, else ``None``.
      skipped: ``(item id, reason)`` of clips that could not be used.
    """

    x: np.ndarray
    y: np.ndarray
    ids: tuple[str, ...]
    speakers: tuple[str, ...]
    labels: tuple[str, ...]
    waves: np.ndarray | None = None
    skipped: tuple[tuple[str, str], ...] = ()


def _key(items, params: FeatureParams, labels) -> str:
    h = hashlib.sha256()
    h.update(params.to_json().encode())
    h.update(json.dumps(list(labels)).encode())
    for it in items:
        h.update(f"{it.id}|{it.path}|{it.label}|{it.speaker}\n".encode())
    return h.hexdigest()[:20]


def load_waves(items, params: FeatureParams, *, progress: bool = False):
    """Waveforms of ``items`` prepared for ``params`` (resampled, fitted, peak-normalised).

    Returns ``(waves (n, samples), kept_items, skipped)``; unusable clips are skipped with
    their reason instead of stopping the whole corpus.
    """
    from data.audio import AudioError, prepare_wave

    waves, kept, skipped = [], [], []
    iterator = items
    if progress:
        from tqdm import tqdm

        iterator = tqdm(items, desc="loading audio", unit="clip", leave=False)
    for it in iterator:
        try:
            waves.append(prepare_wave(it.path, params, name=it.id))
            kept.append(it)
        except AudioError as exc:
            skipped.append((it.id, str(exc)))
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unusable clip(s), first: {skipped[0][1]}",
                      RuntimeWarning, stacklevel=2)
    arr = np.stack(waves) if waves else np.zeros((0, params.n_samples), np.float32)
    return arr.astype(np.float32), kept, skipped


def load_split(corpus, split: str, params: FeatureParams, *, with_waves: bool = False,
               cache: bool = True, progress: bool = False) -> SplitArrays:
    """Features of ``corpus.split(split)`` (``"train"|"valid"|"test"|"all"``), cached."""
    items = corpus.split(split)
    if not items:
        raise ValueError(f"corpus {corpus.spec!r} has no items in split {split!r}")
    labels = tuple(corpus.labels)
    path = cache_home() / "features" / f"{_key(items, params, labels)}.npz"
    if cache and path.exists() and not with_waves:
        try:
            return _read(path, labels)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is rebuilt below
    waves, kept, skipped = load_waves(items, params, progress=progress)
    x = features_batch(waves, params) if len(waves) else np.zeros((0, *params.shape), np.float32)
    index = {name: i for i, name in enumerate(labels)}
    arrays = SplitArrays(
        x=x, y=np.array([index[it.label] for it in kept], np.int32),
        ids=tuple(it.id for it in kept), speakers=tuple(it.speaker for it in kept),
        labels=labels, waves=waves if with_waves else None, skipped=tuple(skipped))
    if cache:
        _write(path, arrays)
    return arrays


def _write(path: Path, a: SplitArrays) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, x=a.x, y=a.y, ids=np.array(a.ids, dtype=str),
                     speakers=np.array(a.speakers, dtype=str))
        os.replace(tmp, path)  # atomic: a reader never sees a half-written file
    except OSError as exc:
        warnings.warn(f"feature cache not written ({exc}); continuing without it",
                      RuntimeWarning, stacklevel=2)


def _read(path: Path, labels) -> SplitArrays:
    with np.load(path, allow_pickle=False) as z:
        return SplitArrays(x=z["x"], y=z["y"], ids=tuple(z["ids"].tolist()),
                           speakers=tuple(z["speakers"].tolist()), labels=tuple(labels))
