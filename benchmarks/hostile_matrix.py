"""The hostile-input matrix (issue 7): every case through the CLI and the server's upload path.

    python3 benchmarks/hostile_matrix.py [--model CKPT]

prints ``case → outcome and message`` for both paths, and writes
``benchmarks/results/hostile_matrix.json`` and ``docs/hostile_matrix.md``. Without ``--model``
a randomly initialised ``ddevis_cnn`` checkpoint is built in a temporary folder (predictions
are then arbitrary; only acceptance and messages matter here). ``tests/serve/test_hostile_matrix.py``
imports :func:`hostile_cases`, :func:`run_cli` and :func:`run_upload` from this file.

Each case is ``Case(name, filename, data, valid, keywords, cli_valid, cli_keywords)``: the
bytes of the file, the name it arrives under (``str``, or ``bytes`` for a non-UTF-8 name),
whether it must be accepted, and the words its refusal message must contain.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
RATE = 8000


@dataclass(frozen=True)
class Case:
    name: str
    filename: str | bytes
    data: bytes
    valid: bool
    keywords: tuple[str, ...] = ()
    cli_valid: bool | None = None  # None: as ``valid``
    cli_keywords: tuple[str, ...] | None = None  # None: as ``keywords``
    note: str = ""


def _tone(seconds: float = 1.0, rate: int = RATE, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1100 * t)).astype(np.float32)
    return np.tile(x[:, None], (1, channels)) if channels > 1 else x


def encode(x: np.ndarray, *, rate: int = RATE, subtype: str = "PCM_16",
           fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, subtype=subtype, format=fmt)
    return buf.getvalue()


def _with_sample(subtype: str, value: float) -> bytes:
    x = _tone()
    x[1234] = value
    return encode(x, subtype=subtype)


def gigabyte_header(payload: int = 1000) -> bytes:
    """A 16-bit WAV header whose data chunk claims 4,294,967,040 bytes, then ``payload`` bytes."""
    head = bytearray(encode(_tone(0.01))[:44])
    struct.pack_into("<I", head, 4, 0xFFFFFF08)
    struct.pack_into("<I", head, 40, 0xFFFFFF00)
    return bytes(head) + bytes(payload)


def _format_cases() -> list[Case]:
    wav = encode(_tone())
    return [
        Case("zero bytes", "empty.wav", b"", False, ("empty", "0 bytes")),
        Case("header only (44 bytes)", "header.wav", wav[:44], False, ("truncated", "header")),
        Case("truncated at half", "half.wav", wav[: len(wav) // 2], False, ("truncated",)),
        Case("truncated inside the header", "cut.wav", wav[:30], False,
             ("cannot be decoded", "data")),
        Case("random bytes", "noise.wav", np.random.default_rng(0).bytes(4096), False,
             ("cannot be decoded",)),
        Case("text file", "notes.txt", b"just some notes\n" * 40, False,
             ("cannot be decoded", "format")),
        Case("flac named .wav", "flac.wav", encode(_tone(), fmt="FLAC"), True),
        Case("wav named .mp3", "wav.mp3", wav, True),
        Case("mp3 named .wav", "mp3.wav", encode(_tone(), fmt="MP3", subtype="MPEG_LAYER_III"), True),
        Case("ogg vorbis", "clip.ogg", encode(_tone(), fmt="OGG", subtype="VORBIS"), True),
        Case("zero-frame wav", "noframes.wav", encode(np.zeros(0, np.float32)), False,
             ("empty", "0 samples")),
        Case("silent wav", "silent.wav", encode(np.zeros(RATE, np.float32)), False, ("silent",)),
    ]


def _sample_cases() -> list[Case]:
    out = [Case(f"{label} wav", f"{sub.lower()}.wav", encode(_tone(), subtype=sub), True)
           for label, sub in (("8-bit unsigned int", "PCM_U8"), ("16-bit int", "PCM_16"),
                              ("24-bit int", "PCM_24"), ("32-bit int", "PCM_32"),
                              ("32-bit float", "FLOAT"), ("64-bit float", "DOUBLE"))]
    out += [Case("NaN sample (float32)", "nan.wav", _with_sample("FLOAT", np.nan), False,
                 ("NaN or infinite",)),
            Case("+inf sample (float64)", "posinf.wav", _with_sample("DOUBLE", np.inf), False,
                 ("NaN or infinite",)),
            Case("-inf sample (float32)", "neginf.wav", _with_sample("FLOAT", -np.inf), False,
                 ("NaN or infinite",))]
    return out


def _shape_cases() -> list[Case]:
    return [
        Case("1 kHz rate (lowest accepted)", "1k.wav", encode(_tone(rate=1000), rate=1000), True,
             note="valid: 1000 Hz is MIN_RATE; resampled up to the model's rate"),
        Case("192 kHz rate", "192k.wav", encode(_tone(rate=192000), rate=192000), True,
             note="valid: resampled down (soxr)"),
        Case("500 Hz rate", "500.wav", encode(_tone(rate=500), rate=500), False,
             ("sample rate 500 Hz", "outside")),
        Case("6 channels", "six.wav", encode(_tone(channels=6)), True, note="mixed to mono"),
        Case("10 minutes long", "long.wav", encode(_tone(600.0)), False,
             ("too long", "600.0 s", "limit")),
        Case("header claims gigabytes", "huge.wav", gigabyte_header(), False,
             ("truncated", "4,294,967,040 bytes")),
        Case("over the upload limit (21 MB)", "big.wav",
             encode(np.zeros(10_500_000, np.float32)), False, ("21,000,044 bytes", "limit"),
             cli_keywords=("too long", "limit"),
             note="CLI: no byte cap for local files; refused by the duration cap instead"),
    ]


def _name_cases() -> list[Case]:
    wav = encode(_tone())
    return [
        Case("path separators and ..", "../../etc/passwd.wav", wav, True,
             note="upload: shown as passwd.wav, nothing written; CLI: a real relative path"),
        Case("backslash path", "..\\..\\windows\\win.wav", wav, True),
        Case("very long name (5000 chars)", "a" * 5000 + ".wav", wav, True,
             cli_valid=False, cli_keywords=("cannot be read", "File name too long"),
             note="CLI: the OS refuses names over 255 bytes (ENAMETOOLONG)"),
        Case("non-UTF-8 name", b"\xff\xfe bad \xc3(.wav", wav, True),
        Case("control characters in name", "a\x1b[31mred\nline.wav", wav, True),
        Case("HTML in name", "<img src=x onerror=alert(1)>.wav", b"garbage" * 10, False,
             ("cannot be decoded",)),
        Case("empty name", "", wav, True, cli_valid=False,
             cli_keywords=("not a regular file",), note="CLI: '' is the current folder"),
    ]


def hostile_cases() -> list[Case]:
    """All cases (≥ 30), deterministic."""
    return _format_cases() + _sample_cases() + _shape_cases() + _name_cases()


# -- runners ---------------------------------------------------------------------------
class FakeShared:
    """The part of ``serve.app.Shared`` a :class:`serve.session.Session` uses."""

    def __init__(self, predictor, limits=None):
        from serve.config import Limits

        self.predictor = predictor
        self.limits = limits or Limits()


def run_upload(session, case: Case) -> dict:
    """``session.load_bytes`` on the case; ``{ok, message, clip_name}``."""
    name = case.filename
    ok = session.load_bytes(case.data, name)
    return {"ok": bool(ok), "message": "" if ok else str(session.alert.object),
            "clip_name": session.clip.name if ok and session.clip else None}


def write_case_file(folder: Path, case: Case) -> str | bytes:
    """Write the case under ``folder`` (the CLI's view: a file on disk); return its path."""
    if case.filename == "":
        return ""
    if isinstance(case.filename, bytes):
        path = os.fsencode(folder) + b"/" + case.filename
        with open(path, "wb") as fh:
            fh.write(case.data)
        return os.fsdecode(path)
    name = case.filename.replace("\\", "_")
    if ".." in Path(name).parts:  # keep the file inside ``folder`` while the path climbs
        deep = folder / "x" / "y"
        deep.mkdir(parents=True, exist_ok=True)
        target = (deep / name).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(case.data)
        return str(deep / name)
    try:
        (folder / name).write_bytes(case.data)
    except OSError:  # a name the OS refuses (too long): the CLI must say so
        pass
    return str(folder / name)


def run_cli(model_dir: str, path: str) -> dict:
    """``cli.main.main(["predict", ...])`` in-process; ``{rc, stdout, stderr}``."""
    from cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["predict", "--model", str(model_dir), path])
    return {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}


def tiny_checkpoint(folder: Path) -> Path:
    """A randomly initialised ``ddevis_cnn`` over 10 labels at the d-DeVIS features."""
    from data.features import ddevis_stft
    from models.checkpoint import save_checkpoint
    from models.registry import build_model

    params = ddevis_stft()
    model = build_model("ddevis_cnn", n_classes=10, input_shape=params.shape, seed=0)
    model.eval()
    meta = {"arch": "ddevis_cnn", "arch_kwargs": {"n_classes": 10, "input_shape": list(params.shape)},
            "labels": [str(d) for d in range(10)], "features": params.to_dict(),
            "corpus": "none", "split": {}, "metrics": {"note": "untrained"}}
    return save_checkpoint(Path(folder) / "ck", model, meta)


def cached_predictor_load(monkeypatch_setattr=None):
    """Make ``Predictor.load`` reuse one compiled predictor per folder (in-process CLI runs)."""
    from engine.predictor import Predictor

    original, cache = Predictor.load.__func__, {}

    def load(cls, directory, trusted_arch=None):
        key = (str(Path(directory).absolute()), trusted_arch)
        if key not in cache:
            cache[key] = original(cls, directory, trusted_arch=trusted_arch)
        return cache[key]

    return classmethod(load), original


def run_matrix(model_dir: Path, work: Path) -> list[dict]:
    """Every case through both paths; one row per case."""
    from engine.predictor import Predictor
    from serve.session import Session

    predictor = Predictor.load(model_dir)
    session = Session(FakeShared(predictor))
    patched, _ = cached_predictor_load()
    Predictor.load = patched
    rows = []
    for i, case in enumerate(hostile_cases()):
        folder = work / f"case{i:02d}"
        folder.mkdir(parents=True)
        up = run_upload(session, case)
        cli = run_cli(str(model_dir), write_case_file(folder, case))
        cli_msg = (cli["stderr"].strip() or cli["stdout"].strip()).splitlines()
        rows.append({"case": case.name, "expect_valid": case.valid, "upload_ok": up["ok"],
                     "upload_message": up["message"] or f"accepted as {up['clip_name']!r}",
                     "cli_rc": cli["rc"], "cli_message": cli_msg[-1] if cli_msg else "",
                     "note": case.note})
    return rows


def _markdown(rows: list[dict]) -> str:
    lines = ["# Hostile-input matrix", "",
             "Produced by `python3 benchmarks/hostile_matrix.py`; each case goes through the server's "
             "upload path (`Session.load_bytes`) and the CLI (`hearsight predict`, exit 0 = "
             "accepted, 2 = refused).", "",
             "| case | upload | CLI rc | CLI message | note |", "|---|---|---|---|---|"]
    for r in rows:
        cells = [r["case"], r["upload_message"], str(r["cli_rc"]), r["cli_message"], r["note"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("HEARSIGHT_HOME", str(Path(tmp) / "home"))
        model = Path(args.model) if args.model else tiny_checkpoint(Path(tmp))
        rows = run_matrix(model, Path(tmp) / "work")
    for r in rows:
        print(f"{r['case']:32s} upload: {r['upload_message'][:70]:70s} cli[{r['cli_rc']}]: "
              f"{r['cli_message'][:90]}")
    out = ROOT / "benchmarks" / "results" / "hostile_matrix.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cases": rows}, indent=1))
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "hostile_matrix.md").write_text(_markdown(rows))
    print(f"{len(rows)} cases; wrote {out} and docs/hostile_matrix.md")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
