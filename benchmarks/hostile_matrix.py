"""The hostile-input matrix (issues 7 and 20): three families of hostile input.

    python3 benchmarks/hostile_matrix.py [--model CKPT]

* **audio** (:func:`hostile_cases`): every file through the server's upload path
  (``Session.load_bytes``) and the CLI (``hearsight predict``), including the decoded-size
  classes of issue 20 (many channels at a high rate, FLAC of unknown length, a cut-short mp3,
  cancelling channels, clips just over the duration limit);
* **edit chains** (:func:`chain_cases`): a chain file through the server's chain path
  (``data.edits.chain_from_json`` then ``data.edits.apply_chain`` on the session's 1 s clip,
  as ``serve/pages/compare.py`` does);
* **checkpoints and folders** (:func:`folder_cases`): ``hearsight predict --model DIR`` on
  copies of a valid checkpoint with hostile ``metadata.json``, and ``hearsight train --out DIR``
  on folders that are not hearsight's to replace.

Every row records wall time and memory (:func:`measured`): the process's current RSS before
and after (``/proc/self/statm``) and how far its peak RSS rose during the case
(``VmHWM``, reset per case through ``/proc/self/clear_refs``; ``ru_maxrss`` too). It prints
one line per case and writes ``benchmarks/results/hostile_matrix.json`` and
``docs/hostile_matrix.md``. Without ``--model`` a randomly initialised ``ddevis_cnn``
checkpoint is built in a temporary folder (predictions are then arbitrary; only acceptance,
messages and memory matter here). ``tests/serve/test_hostile_matrix.py`` imports the case
lists and the runners from this file.

Each audio case is ``Case(name, filename, data, valid, keywords, cli_valid, cli_keywords)``:
the bytes of the file, the name it arrives under (``str``, or ``bytes`` for a non-UTF-8 name),
whether it must be accepted, and the words its refusal message must contain.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or loaded by a test
from hostile_cases import (  # noqa: E402  (the case lists; this file runs them)
    Case, ChainCase, FolderCase, RATE, ROOT, _tone, chain_cases, encode, folder_cases,
    hostile_cases)


def rss_mb() -> float:
    """The process's current resident set size, MB (``/proc/self/statm``)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _hwm_mb() -> float | None:
    """Peak RSS of the address space, MB (``VmHWM``; resettable, unlike ``ru_maxrss`` once a
    thread has exited)."""
    try:
        with open("/proc/self/status") as fh:
            line = next(ln for ln in fh if ln.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return None


def _reset_peak() -> bool:
    """Reset the peak-RSS mark (Linux >= 4.0: ``5`` to ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@contextlib.contextmanager
def measured(row: dict):
    """Fill ``row`` with ``wall_s``, ``rss_before_mb``, ``rss_after_mb``, ``rss_growth_mb``
    (current RSS after minus before, after a ``gc.collect``), ``peak_rise_mb`` (how far the
    peak RSS rose during the block: ``VmHWM`` after a reset, else ``ru_maxrss``),
    ``maxrss_rise_mb`` (``ru_maxrss``, which a reset cannot lower once a thread has exited,
    so it under-reports after an earlier larger peak) and ``peak_over_100mb``."""
    gc.collect()
    reset = _reset_peak()
    before, hwm0, max0 = rss_mb(), _hwm_mb(), _maxrss_mb()
    t0 = time.perf_counter()
    try:
        yield row
    finally:
        wall = time.perf_counter() - t0
        gc.collect()
        after, hwm, maxrss = rss_mb(), _hwm_mb(), _maxrss_mb()
        peak = hwm - hwm0 if reset and hwm is not None and hwm0 is not None else maxrss - max0
        row.update(wall_s=round(wall, 3), rss_before_mb=round(before, 1),
                   rss_after_mb=round(after, 1), rss_growth_mb=round(after - before, 1),
                   peak_rise_mb=round(peak, 1), maxrss_rise_mb=round(maxrss - max0, 1),
                   peak_over_100mb=bool(max(peak, maxrss - max0) > 100))


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


def run_argv(argv: list[str]) -> dict:
    """``cli.main.main(argv)`` in-process; ``{rc, stdout, stderr}``."""
    from cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}


def run_cli(model_dir: str, path: str, args: tuple[str, ...] = ()) -> dict:
    """``hearsight predict --model MODEL_DIR [ARGS] PATH`` in-process; ``{rc, stdout, stderr}``."""
    return run_argv(["predict", "--model", str(model_dir), *args, path])


def last_line(result: dict) -> str:
    lines = (result["stderr"].strip() or result["stdout"].strip()).splitlines()
    return lines[-1] if lines else ""


def session_clip(seconds: float = 1.0) -> np.ndarray:
    """What the compare page edits: the session's clip, fitted to the window, peak 0.99."""
    from data.audio import peak_normalise

    return peak_normalise(_tone(seconds))


def run_chain(case: ChainCase, wave: np.ndarray | None = None, rate: int = RATE) -> dict:
    """The server's chain path (``ComparePage.load_chain``): UTF-8, ``chain_from_json``,
    ``apply_chain`` on ``wave`` (default :func:`session_clip`); ``{ok, message, seconds}``."""
    from data.edits import apply_chain, chain_from_json

    wave = session_clip() if wave is None else wave
    try:
        text = case.text.decode("utf-8") if isinstance(case.text, bytes) else case.text
        out = apply_chain(wave, rate, chain_from_json(text))
    except ValueError as exc:  # UnicodeDecodeError too
        return {"ok": False, "message": f"Edit chain not loaded: {exc}", "seconds": None}
    return {"ok": True, "message": f"accepted: the edited clip is {out.shape[0] / rate:.2f} s",
            "seconds": out.shape[0] / rate}


def tone_corpus(root: Path) -> Path:
    """The smallest corpus ``train`` takes: FSDD layout, words "0" (300 Hz) and "1" (2 kHz),
    3 speakers x 16 takes of 1 s at 8 kHz (takes 0-4 test, 5-9 valid, 10-15 train)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(RATE) / RATE
    for digit, freq in (("0", 300.0), ("1", 2000.0)):
        for speaker in ("ann", "bob", "cid"):
            for take in range(16):
                wave = 0.5 * np.sin(2 * np.pi * freq * (1 + 0.02 * rng.standard_normal()) * t)
                sf.write(root / f"{digit}_{speaker}_{take}.wav", wave.astype(np.float32), RATE)
    return root


THESIS = "four years of work\n"


def snapshot(path: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file at or under ``path`` (``{}`` if missing)."""
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _train_target(case: FolderCase, base: Path, folder: Path) -> Path:
    """Set up ``train --out``'s target as ``case.out`` says; return its path."""
    import shutil

    if case.out == "file":
        (folder / "thesis.txt").write_text(THESIS)
        return folder / "thesis.txt"
    out = folder / "out"
    if case.out == "notes":
        shutil.copytree(base, out)
        (out / "notes.txt").write_text(THESIS)
        return out
    out.mkdir()
    if case.out == "thesis":
        (out / "thesis.txt").write_text(THESIS)
    elif case.out == "no-arch":
        (out / "metadata.json").write_text('{"labels": ["a"]}')
    return out


@contextlib.contextmanager
def _fit_calls():
    """Count calls of ``models.fit.fit`` (``cli/train.py`` imports it at run time)."""
    import models.fit as fit_module

    calls, original = [], fit_module.fit

    def fit(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    fit_module.fit = fit
    try:
        yield calls
    finally:
        fit_module.fit = original


def run_folder_case(case: FolderCase, base: Path, folder: Path, *, wav: Path,
                    corpus: Path) -> dict:
    """One checkpoint/folder case in ``folder`` (made here) against checkpoint ``base``.

    Returns ``{rc, message, stderr, stdout, target, files_intact, training_started,
    arch_imported}``: ``files_intact`` (train) is whether every file at ``--out`` is still
    there, byte for byte; ``arch_imported`` (predict) whether the module a hostile ``arch``
    names was imported by the run.
    """
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    if case.command == "train":
        target = _train_target(case, base, folder)
        before = snapshot(target)
        argv = ["train", "--corpus", f"fsdd:{corpus}", "--out", str(target), "--epochs", "1",
                "--batch-size", "16", "--patience", "1", *case.args]
        with _fit_calls() as calls:
            res = run_argv(argv)
        intact = snapshot(target) == before
        return {**res, "message": last_line(res), "target": target, "files_intact": intact,
                "training_started": bool(calls), "arch_imported": None}
    target = folder / "ck"
    shutil.copytree(base, target)
    meta = json.loads((base / "metadata.json").read_text())
    made = case.corrupt(meta)
    (target / "metadata.json").write_text(made if isinstance(made, str) else json.dumps(made))
    arch = made.get("arch", "") if isinstance(made, dict) else ""
    module = arch.partition(":")[0] if ":" in arch else None
    was = module in sys.modules if module else False
    res = run_cli(str(target), str(wav), case.args)
    imported = bool(module and not was and module in sys.modules)
    return {**res, "message": last_line(res), "target": target, "files_intact": None,
            "training_started": None, "arch_imported": imported}


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


WARM_UPS: dict[str, dict] = {}  # one-time costs (imports, compiles) paid before the cases


def run_audio(model_dir: Path, work: Path) -> list[dict]:
    """Every audio case through the upload path and the CLI; one measured row per case,
    after a warm-up (an 8 kHz and a 16 kHz clip: the model's compile, the resampler)."""
    from engine.predictor import Predictor
    from serve.session import Session

    patched, original = cached_predictor_load()
    Predictor.load = patched
    try:
        with measured(WARM_UPS.setdefault("audio", {})):
            session = Session(FakeShared(Predictor.load(model_dir)))
            (work / "warm").mkdir(parents=True)
            for rate in (RATE, 16000):
                warm = Case("warm-up", f"warm{rate}.wav", encode(_tone(rate=rate), rate=rate),
                            True)
                run_upload(session, warm)
                run_cli(str(model_dir), write_case_file(work / "warm", warm))
        rows = []
        for i, case in enumerate(hostile_cases()):
            folder = work / f"case{i:02d}"
            folder.mkdir(parents=True)
            row = {"case": case.name, "expect_valid": case.valid}
            with measured(row):
                up = run_upload(session, case)
                cli = run_cli(str(model_dir), write_case_file(folder, case))
            cli_valid = case.valid if case.cli_valid is None else case.cli_valid
            rows.append({**row, "accepted": up["ok"], "upload_ok": up["ok"],
                         "upload_message": up["message"] or f"accepted as {up['clip_name']!r}",
                         "cli_rc": cli["rc"], "cli_expect_valid": cli_valid,
                         "cli_message": last_line(cli), "note": case.note})
    finally:
        Predictor.load = classmethod(original)
    return rows


def run_chains() -> list[dict]:
    """Every chain case through the server's chain path on the 1 s session clip, after a
    warm-up (librosa's phase vocoder compiles on its first call)."""
    from data.edits import apply_chain

    wave, rows = session_clip(), []
    with measured(WARM_UPS.setdefault("edit chains", {})):
        apply_chain(wave, RATE, [{"op": "time_stretch", "params": {"rate": 0.5}},
                                 {"op": "pitch_shift", "params": {"semitones": 2}}])
    for case in chain_cases():
        row = {"case": case.name, "expect_valid": case.valid}
        with measured(row):
            res = run_chain(case, wave)
        rows.append({**row, "accepted": res["ok"], "message": res["message"],
                     "note": case.note})
    return rows


def _command(case: FolderCase) -> str:
    if case.command == "train":
        return f"train --out <{case.out}>"
    return " ".join(["predict --model <ck>", *case.args])


def run_folders(model_dir: Path, work: Path) -> list[dict]:
    """Every checkpoint/folder case through the CLI; one measured row per case."""
    corpus, wav = tone_corpus(work / "tones"), work / "clip.wav"
    wav.write_bytes(encode(_tone()))
    rows = []
    for i, case in enumerate(folder_cases()):
        row = {"case": case.name, "command": _command(case), "expect_valid": case.valid}
        with measured(row):
            res = run_folder_case(case, Path(model_dir), work / f"folder{i:02d}", wav=wav,
                                  corpus=corpus)
        rows.append({**row, "accepted": res["rc"] == 0, "rc": res["rc"],
                     "message": res["message"], "files_intact": res["files_intact"],
                     "training_started": res["training_started"],
                     "arch_imported": res["arch_imported"], "note": case.note})
    return rows


FAMILIES = ("audio", "edit chains", "checkpoints and folders")


def run_matrix(model_dir: Path, work: Path) -> dict[str, list[dict]]:
    """All three families; ``{family: rows}``."""
    return {"audio": run_audio(model_dir, work / "audio"), "edit chains": run_chains(),
            "checkpoints and folders": run_folders(model_dir, work / "folders")}


def _unexpected(family: str, row: dict) -> bool:
    if row["accepted"] != row["expect_valid"]:
        return True
    return family == "audio" and (row["cli_rc"] == 0) != row["cli_expect_valid"]


def summary(families: dict[str, list[dict]]) -> dict:
    rows = [(f, r) for f, rs in families.items() for r in rs]
    grow = max(rows, key=lambda fr: fr[1]["rss_growth_mb"])[1]
    peak = max(rows, key=lambda fr: fr[1]["peak_rise_mb"])[1]
    return {"cases": len(rows), "by_family": {f: len(rs) for f, rs in families.items()},
            "accepted": sum(r["accepted"] for _, r in rows),
            "refused": sum(not r["accepted"] for _, r in rows),
            "unexpected": [r["case"] for f, r in rows if _unexpected(f, r)],
            "largest_rss_growth_mb": grow["rss_growth_mb"], "largest_rss_growth_case": grow["case"],
            "largest_peak_rise_mb": peak["peak_rise_mb"], "largest_peak_rise_case": peak["case"],
            "peak_over_100mb": [r["case"] for _, r in rows if r["peak_over_100mb"]],
            "peak_reset_per_case": _reset_peak(), "warm_ups": WARM_UPS}


def summary_line(s: dict) -> str:
    fams = ", ".join(f"{n} {f}" for f, n in s["by_family"].items())
    return (f"{s['cases']} cases ({fams}): {s['accepted']} accepted, {s['refused']} refused, "
            f"{len(s['unexpected'])} unexpected; largest RSS growth "
            f"{s['largest_rss_growth_mb']:+.1f} MB ({s['largest_rss_growth_case']}); largest "
            f"peak rise {s['largest_peak_rise_mb']:.1f} MB ({s['largest_peak_rise_case']}); "
            f"{len(s['peak_over_100mb'])} cases with a peak rise over 100 MB")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _memory(r: dict) -> list[str]:
    flag = " **> 100**" if r["peak_over_100mb"] else ""
    return [f"{r['rss_growth_mb']:+.1f}", f"{r['peak_rise_mb']:.1f}{flag}", f"{r['wall_s']:.2f}"]


_HEADS = {
    "audio": ("Each file goes through the server's upload path (`Session.load_bytes`) and the "
              "CLI (`hearsight predict`, exit 0 = accepted, 2 = refused).",
              ["case", "upload", "CLI rc", "CLI message"], ["note"]),
    "edit chains": ("Each chain file goes through the server's chain path (UTF-8, "
                    "`data.edits.chain_from_json`, `data.edits.apply_chain` on the session's "
                    "1 s clip at 8 kHz, peak 0.99), as `serve/pages/compare.py` loads it.",
                    ["case", "outcome", "message"], ["note"]),
    "checkpoints and folders": (
        "`hearsight predict --model <ck>` on a copy of a valid checkpoint with a hostile "
        "`metadata.json`, and `hearsight train --out <folder>` (1 epoch on a tiny tone corpus) "
        "on folders that are not hearsight's; *files intact*: every file at `--out` is still "
        "there byte for byte; *imported*: the module a hostile `arch` names was imported.",
        ["case", "command", "rc", "message", "files intact", "training started", "imported"],
        ["note"]),
}


def _cells(family: str, r: dict) -> list:
    if family == "audio":
        return [r["case"], r["upload_message"], r["cli_rc"], r["cli_message"]]
    if family == "edit chains":
        return [r["case"], "accepted" if r["accepted"] else "refused", r["message"]]
    return [r["case"], r["command"], r["rc"], r["message"], r["files_intact"],
            r["training_started"], r["arch_imported"]]


def _warm_text() -> str:
    return "; ".join(f"{f}: RSS {w['rss_growth_mb']:+.1f} MB, peak +{w['peak_rise_mb']:.1f} MB, "
                     f"{w['wall_s']:.1f} s" for f, w in WARM_UPS.items())


def _markdown(families: dict[str, list[dict]], s: dict) -> str:
    lines = ["# Hostile-input matrix", "",
             "Produced by `python3 benchmarks/hostile_matrix.py` (issues 7 and 20), in one "
             "process. Memory per case: *RSS +MB* is the process's current RSS after the case "
             "minus before (`/proc/self/statm`, after a garbage collection); *peak +MB* is how "
             "far its peak RSS rose during the case (`VmHWM`, reset before each case through "
             "`/proc/self/clear_refs`; marked **> 100** when over 100 MB; `ru_maxrss` is in "
             "the JSON too). Both are what the process grows by: a case that reuses memory "
             "an earlier one freed (Python and glibc keep it) shows less than it allocates. "
             "One-time costs are paid in a warm-up before the cases "
             f"({_warm_text()}).", "", f"**Summary:** {summary_line(s)}.", ""]
    for family, rows in families.items():
        intro, left, right = _HEADS[family]
        head = left + ["RSS +MB", "peak +MB", "wall s"] + right
        lines += [f"## {family.capitalize()} ({len(rows)} cases)", "", intro, "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = [_cell(c) for c in _cells(family, r)] + _memory(r) + [_cell(r["note"])]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _print_rows(families: dict[str, list[dict]]) -> None:
    for family, rows in families.items():
        print(f"== {family}")
        for r in rows:
            msg = r.get("upload_message") or r.get("message", "")
            tail = f" cli[{r['cli_rc']}]: {r['cli_message'][:60]}" if family == "audio" else ""
            print(f"{r['case'][:44]:44s} {msg[:80]:80s}{tail} | rss {r['rss_growth_mb']:+.1f} "
                  f"peak {r['peak_rise_mb']:.1f} MB {r['wall_s']:.2f} s")


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("HEARSIGHT_HOME", str(Path(tmp) / "home"))
        model = Path(args.model) if args.model else tiny_checkpoint(Path(tmp))
        families = run_matrix(model, Path(tmp) / "work")
    _print_rows(families)
    s = summary(families)
    out = ROOT / "benchmarks" / "results" / "hostile_matrix.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": s, "families": families}, indent=1, default=str))
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "hostile_matrix.md").write_text(_markdown(families, s))
    print(summary_line(s))
    print(f"wrote {out} and docs/hostile_matrix.md")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
