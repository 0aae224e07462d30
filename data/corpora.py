"""Speech corpora as lists of labelled, speaker-tagged audio files with speaker-aware splits.

``open_corpus(spec)`` understands four layouts:

- ``"synth"`` / ``"synth:small"`` / ``"synth:large"`` (4 takes): words spoken by eSpeak NG, built once and cached
  (:mod:`data.synth_corpus`); whole voices are held out for valid and test.
- ``"fsdd:PATH"``: Free Spoken Digit Dataset files ``{digit}_{speaker}_{take}.wav``; takes
  0–4 test, 5–9 valid, the rest train (the dataset's own convention).
- ``"speech-commands:PATH"``: a folder per word plus ``validation_list.txt`` and
  ``testing_list.txt`` (Warden 2018); everything not listed is train.
- ``"folder:PATH"``: any folder-per-label tree of audio files; split ~80/10/10 by a stable
  hash of the speaker (of the file name when the speaker is unknown).

References: Jackson et al., Free Spoken Digit Dataset (2018); Warden 2018, "Speech
Commands: A Dataset for Limited-Vocabulary Speech Recognition".
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from data.corpus_layouts import (fsdd_items, folder_items, speech_commands_items,
                                 background_noise_paths)

__all__ = ["Item", "Corpus", "open_corpus", "background_noise_paths", "cache_home", "KINDS"]

KINDS = ("synth", "fsdd", "speech-commands", "folder")
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Item:
    """One audio clip: ``id`` is unique and stable (e.g. ``"fsdd/0_george_3"``), ``path``
    absolute, ``speaker`` ``""`` when unknown, ``split`` one of train/valid/test."""

    id: str
    path: str
    label: str
    speaker: str
    split: str


@dataclass(frozen=True)
class Corpus:
    """An opened corpus: sorted class ``labels`` and its ``items`` in a stable order.

    ``sample_rate`` is the native rate in Hz when known (fsdd 8000, synth 16000).
    """

    name: str
    spec: str
    labels: tuple[str, ...]
    items: tuple[Item, ...]
    sample_rate: int | None

    def split(self, name: str) -> list[Item]:
        """Items of ``"train"``, ``"valid"``, ``"test"`` or ``"all"``."""
        if name == "all":
            return list(self.items)
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS + ('all',)}, got {name!r}")
        return [it for it in self.items if it.split == name]

    def summary(self) -> dict:
        """Counts per split, per label (per split) and per speaker, JSON-friendly."""
        return {
            "name": self.name, "spec": self.spec, "n_items": len(self.items),
            "sample_rate": self.sample_rate, "labels": list(self.labels),
            "splits": {s: sum(it.split == s for it in self.items) for s in SPLITS},
            "per_label": {lab: {s: n for s, n in sorted(Counter(
                it.split for it in self.items if it.label == lab).items())}
                for lab in self.labels},
            "speakers": dict(sorted(Counter(it.speaker for it in self.items).items())),
        }


def cache_home() -> Path:
    """The cache folder: ``$HEARSIGHT_HOME`` or ``~/.cache/hearsight``."""
    return Path(os.environ.get("HEARSIGHT_HOME") or Path.home() / ".cache" / "hearsight")


def _parse_spec(spec: str) -> tuple[str, str]:
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"corpus spec must be a non-empty string like 'synth' or "
                         f"'fsdd:PATH', got {spec!r}")
    kind, _, arg = spec.strip().partition(":")
    if kind not in KINDS:
        raise ValueError(f"unknown corpus kind {kind!r} in {spec!r}; use one of "
                         f"'synth', 'synth:small', 'synth:large', 'fsdd:PATH', 'speech-commands:PATH', "
                         f"'folder:PATH'")
    if kind != "synth":
        if not arg:
            raise ValueError(f"corpus spec {spec!r} needs a path: '{kind}:PATH'")
        if not Path(arg).expanduser().is_dir():
            raise ValueError(f"corpus folder {arg!r} (from {spec!r}) does not exist or is "
                             f"not a folder")
    return kind, arg


def _open_synth(arg: str, *, cache_dir: Path, seed: int, progress: bool):
    from data import synth_corpus

    cfg = synth_corpus.config_for(arg or "default")
    folder = synth_corpus.build(cfg, seed=seed, cache_dir=cache_dir, progress=progress)
    rows = synth_corpus.read_manifest(folder)["items"]
    items = [Item(id=r["id"], path=r["path"], label=r["label"], speaker=r["speaker"],
                  split=r["split"]) for r in rows]
    return items, cfg.sample_rate


def _apply_holdout(kind: str, items: list[Item], speaker: str) -> list[Item]:
    """Leave-one-speaker-out: ``speaker`` → test. For fsdd the others' takes 0–4 → valid,
    the rest train; elsewhere the others keep their split, their test items become valid."""
    speakers = sorted({it.speaker for it in items if it.speaker})
    if speaker not in speakers:
        raise ValueError(f"holdout_speaker {speaker!r} is not in this corpus; its speakers "
                         f"are {speakers[:20]}{' ...' if len(speakers) > 20 else ''}")
    out = []
    for it in items:
        if it.speaker == speaker:
            split = "test"
        elif kind == "fsdd":
            split = "valid" if int(it.id.rsplit("_", 1)[1]) <= 4 else "train"
        else:
            split = "valid" if it.split == "test" else it.split
        out.append(replace(it, split=split))
    return out


def open_corpus(spec: str, *, cache_dir: str | Path | None = None, seed: int = 0,
                split_by: str = "default", holdout_speaker: str | None = None,
                progress: bool = True) -> Corpus:
    """Open a corpus from its spec string (see the module docstring for the layouts).

    Args:
      spec: ``"synth"``, ``"synth:small"``, ``"fsdd:PATH"``, ``"speech-commands:PATH"`` or
        ``"folder:PATH"``.
      cache_dir: where the synth corpus is built; default ``$HEARSIGHT_HOME`` or
        ``~/.cache/hearsight``.
      seed: synth corpus seed; for ``folder`` it salts the split hash.
      split_by: ``"default"`` (the layout's own rule) or ``"speaker"`` (leave
        ``holdout_speaker`` out as the test set).
      progress: show a progress bar while synthesising.
    Raises:
      ValueError: unknown kind, missing folder, empty corpus, files not in the layout.
    """
    kind, arg = _parse_spec(spec)
    if split_by not in ("default", "speaker"):
        raise ValueError(f"split_by must be 'default' or 'speaker', got {split_by!r}")
    if (split_by == "speaker") != (holdout_speaker is not None):
        raise ValueError("split_by='speaker' and holdout_speaker=NAME go together")
    root = Path(arg).expanduser().resolve() if arg and kind != "synth" else None
    try:
        items, rate = _layout_items(kind, arg, root, cache_dir=cache_dir, seed=seed,
                                    progress=progress)
    except PermissionError as exc:
        raise ValueError(f"corpus {spec!r}: cannot read {exc.filename} ({exc.strerror})") from exc
    items = [Item(**it) if isinstance(it, dict) else it for it in items]
    if not items:
        raise ValueError(f"corpus {spec!r} holds no audio files")
    if holdout_speaker is not None:
        items = _apply_holdout(kind, items, holdout_speaker)
    items.sort(key=lambda it: it.id)
    return Corpus(name=kind, spec=spec, labels=tuple(sorted({it.label for it in items})),
                  items=tuple(items), sample_rate=rate)


def _layout_items(kind: str, arg: str, root: Path | None, *, cache_dir, seed: int,
                  progress: bool) -> tuple[list, int | None]:
    """``(items, sample rate)`` read by the layout ``kind``."""
    if kind == "synth":
        cache = Path(cache_dir) if cache_dir is not None else cache_home()
        items, rate = _open_synth(arg, cache_dir=cache, seed=seed, progress=progress)
    elif kind == "fsdd":
        items, rate = fsdd_items(root), 8000
    elif kind == "speech-commands":
        items, rate = speech_commands_items(root), 16000
    else:
        items, rate = folder_items(root, seed=seed), None
    return items, rate
