"""File layouts of the on-disk corpora: scan a folder, return item records (plain dicts).

Used by :mod:`data.corpora`, which turns the records into ``Item`` objects. Every function
raises ``ValueError`` naming the first file that does not fit its layout, so that a wrong
folder is caught at once instead of producing a silently mislabelled corpus.

References: Jackson et al., Free Spoken Digit Dataset (2018); Warden 2018, "Speech
Commands: A Dataset for Limited-Vocabulary Speech Recognition".
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
FSDD_PATTERN = re.compile(r"^(?P<digit>\d)_(?P<speaker>[^_]+)_(?P<take>\d+)\.wav$")
NOHASH_PATTERN = re.compile(r"^(?P<speaker>[^_]+)_nohash_")
NOISE_FOLDER = "_background_noise_"


def _record(kind: str, key: str, path: Path, label: str, speaker: str, split: str) -> dict:
    return {"id": f"{kind}/{key}", "path": str(path), "label": label, "speaker": speaker,
            "split": split}


def fsdd_split(take: int) -> str:
    """FSDD's convention: takes 0–4 test, 5–9 valid, the rest train."""
    if take < 0:
        raise ValueError(f"take must be >= 0, got {take}")
    return "test" if take <= 4 else "valid" if take <= 9 else "train"


def fsdd_items(root: Path) -> list[dict]:
    """``{digit}_{speaker}_{take}.wav`` files directly in ``root`` (other files ignored)."""
    out = []
    for p in sorted(Path(root).iterdir()):
        if not p.is_file() or p.suffix.lower() != ".wav":
            continue
        m = FSDD_PATTERN.match(p.name)
        if m is None:
            raise ValueError(f"{p.name!r} in {root} does not match the FSDD pattern "
                             f"'{{digit}}_{{speaker}}_{{take}}.wav'")
        out.append(_record("fsdd", p.stem, p, m["digit"], m["speaker"],
                           fsdd_split(int(m["take"]))))
    if not out and (Path(root) / "recordings").is_dir():
        raise ValueError(f"no FSDD wavs directly in {root}; point at its 'recordings' folder")
    return out


def _read_list(root: Path, name: str) -> set[str]:
    path = root / name
    if not path.is_file():
        raise ValueError(f"speech-commands folder {root} lacks {name} (the layout needs "
                         f"validation_list.txt and testing_list.txt)")
    return {line.strip().replace("\\", "/") for line in path.read_text().splitlines()
            if line.strip()}


def _label_folders(root: Path) -> list[Path]:
    return sorted(d for d in Path(root).iterdir()
                  if d.is_dir() and not d.name.startswith(("_", ".")))


def speech_commands_items(root: Path) -> list[dict]:
    """Speech Commands: ``{word}/{speaker}_nohash_{n}.wav``; the two lists give valid/test.

    The ``_background_noise_`` folder is not a class (see :func:`background_noise_paths`).
    """
    valid, test = _read_list(root, "validation_list.txt"), _read_list(root, "testing_list.txt")
    out = []
    for folder in _label_folders(root):
        for p in sorted(folder.glob("*.wav")):
            m = NOHASH_PATTERN.match(p.name)
            if m is None:
                raise ValueError(f"{folder.name}/{p.name} in {root} does not match the Speech "
                                 f"Commands pattern '{{word}}/{{speaker}}_nohash_{{n}}.wav'")
            rel = f"{folder.name}/{p.name}"
            split = "test" if rel in test else "valid" if rel in valid else "train"
            out.append(_record("speech-commands", f"{folder.name}/{p.stem}", p, folder.name,
                               m["speaker"], split))
    return out


def background_noise_paths(root: str | Path) -> list[str]:
    """Absolute paths of the wavs in ``root/_background_noise_`` (``[]`` when absent)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ValueError(f"speech-commands folder {str(root)!r} does not exist")
    folder = root / NOISE_FOLDER
    if not folder.is_dir():
        return []
    return [str(p.resolve()) for p in sorted(folder.glob("*.wav"))]


def folder_speaker(stem: str, label: str) -> str:
    """Speaker from ``{speaker}_nohash_...`` or ``{label}_{speaker}_{take}``, else ``""``."""
    m = NOHASH_PATTERN.match(stem)
    if m is not None:
        return m["speaker"]
    m = re.match(rf"^{re.escape(label)}_(?P<speaker>[^_]+)_\d+$", stem)
    return m["speaker"] if m is not None else ""


def hash_split(key: str, *, seed: int = 0) -> str:
    """Stable ~80/10/10 train/valid/test assignment from a SHA-256 of ``seed|key``."""
    bucket = int(hashlib.sha256(f"{seed}|{key}".encode()).hexdigest()[:8], 16) % 100
    return "train" if bucket < 80 else "valid" if bucket < 90 else "test"


MAX_SCANNED = 1_000_000  # entries a folder corpus may hold; past it the spec is a mistake


def _audio_files(folder: Path, root: Path) -> list[Path]:
    """Audio files below ``folder``, sorted; an unreadable sub-folder or a tree of more than
    :data:`MAX_SCANNED` entries (``folder:/``) is a ValueError naming it, not a traceback."""
    found, seen = [], 0

    def unreadable(exc: OSError):
        raise ValueError(f"cannot read {exc.filename} in the folder corpus {root} "
                         f"({exc.strerror}); point folder: at a folder of label sub-folders")

    for here, dirs, files in os.walk(folder, onerror=unreadable):
        seen += len(dirs) + len(files)
        if seen > MAX_SCANNED:
            raise ValueError(f"the folder corpus {root} holds more than {MAX_SCANNED:,} "
                             "entries; point folder: at a folder of label sub-folders")
        found.extend(Path(here) / f for f in files if Path(f).suffix.lower() in AUDIO_SUFFIXES)
    return sorted(p for p in found if p.is_file())


def folder_items(root: Path, *, seed: int = 0) -> list[dict]:
    """Any ``{label}/.../{file}.{wav,flac,ogg,mp3}`` tree, split by a hash of the speaker.

    All clips of one speaker land in one split; clips without a known speaker are split by
    their relative path.
    """
    stray = sorted(p.name for p in Path(root).iterdir()
                   if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if stray:
        raise ValueError(f"audio file {stray[0]!r} sits directly in {root}; the folder layout "
                         f"needs one sub-folder per label: '{{label}}/{{file}}'")
    out = []
    for folder in _label_folders(root):
        for p in _audio_files(folder, root):
            rel = p.relative_to(root).as_posix()
            speaker = folder_speaker(p.stem, folder.name)
            split = hash_split(f"speaker:{speaker}" if speaker else f"file:{rel}", seed=seed)
            out.append(_record("folder", rel, p, folder.name, speaker, split))
    return out
