"""Faults, observed with real processes (issue 7): what a user sees after each one.

    python3 benchmarks/faults.py

Every case runs ``python3 -m cli.main`` (the ``hearsight`` command) or a writer in a child
process and reports its exit status and last line of output:

- a checkpoint damaged four ways, and one whose metadata names a system function;
- a cache folder nothing can be written to (``HEARSIGHT_HOME`` below a regular file, which
  stops root as well as anyone);
- training killed with SIGKILL after its first saved epoch, then ``--resume``;
- an activation store killed with SIGKILL while overwriting a complete one, and a folder
  left by a writer killed before its first rename.

Prints a table and writes ``benchmarks/results/faults.json``. Uses a random ``ddevis_cnn``
checkpoint and a two-tone corpus made in a temporary folder; nothing is written elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
OUT = ROOT / "benchmarks" / "results" / "faults.json"

STORE_WRITER = """
import sys, time
import numpy as np
from data.activations import BatchActs, write_activation_store

def batches(n, pause):
    rng = np.random.default_rng(int(sys.argv[3]))
    for b in range(n):
        time.sleep(pause)
        yield BatchActs(item_id=[f"id{b}_{i}" for i in range(2)], label=["a", "b"],
                        speaker=["s", "s"], prediction=["a", "a"],
                        correct=np.array([True, False]), confidence=np.ones(2, np.float32),
                        acts={"conv1": rng.normal(size=(2, 3)).astype(np.float32)})
write_activation_store(sys.argv[1], batches(int(sys.argv[2]), float(sys.argv[4])),
                       level="utterance", overwrite=True)
print("written", flush=True)
"""


def cli(*args: str, env: dict | None = None, timeout: float = 300) -> tuple[int, str]:
    """Exit status and last non-empty line of ``hearsight ARGS`` (stderr, else stdout)."""
    run = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, text=True,
                         capture_output=True, timeout=timeout, env={**os.environ, **(env or {})})
    lines = [x for x in (run.stderr.strip() or run.stdout.strip()).splitlines() if x.strip()]
    return run.returncode, lines[-1] if lines else ""


def tone_corpus(root: Path) -> Path:
    """Digits 0 and 1 as two tones, one speaker, takes 0..11 (FSDD layout)."""
    root.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 8000
    for digit, freq in ((0, 300.0), (1, 1200.0)):
        for take in range(12):
            wave = 0.5 * np.sin(2 * np.pi * freq * (1 + 0.02 * take) * t)
            sf.write(root / f"{digit}_spk_{take}.wav",
                     (wave + rng.normal(0, 0.01, t.size)).astype(np.float32), 8000)
    return root


def checkpoint_cases(tmp: Path, wav: Path) -> list[dict]:
    from load_server import tiny_checkpoint

    good = tiny_checkpoint(tmp / "good", "fsdd:unused")
    damages = {
        "checkpoint folder missing": lambda p: shutil.rmtree(p),
        "metadata.json corrupt": lambda p: (p / "metadata.json").write_text("{oops"),
        "metadata.json missing": lambda p: (p / "metadata.json").unlink(),
        "model state files overwritten": lambda p: [
            f.write_bytes(b"\0garbage") for f in (p / "state").rglob("*") if f.is_file()],
        "metadata arch names os:system": lambda p: (p / "metadata.json").write_text(json.dumps(
            {**json.loads((p / "metadata.json").read_text()), "arch": "os:system"})),
    }
    rows = []
    for i, (name, damage) in enumerate(damages.items()):
        ck = tmp / f"ck{i}"
        shutil.copytree(good, ck)
        damage(ck)
        rc, msg = cli("predict", "--model", str(ck), str(wav))
        rows.append({"fault": name, "command": "hearsight predict --model CK tone.wav",
                     "rc": rc, "observed": msg})
    return rows


def unwritable_cache(tmp: Path) -> dict:
    blocker = tmp / "file.txt"
    blocker.write_text("a regular file: nothing can be created below it")
    rc, msg = cli("corpus", "synth", "--small", env={"HEARSIGHT_HOME": str(blocker / "sub")})
    return {"fault": "cache folder not writable", "command": "hearsight corpus synth --small",
            "rc": rc, "observed": msg, "nothing_created": blocker.is_file()}


def killed_training(tmp: Path, corpus: Path) -> dict:
    from models.checkpoint import read_metadata

    run, epochs = tmp / "run", 40
    args = ["train", "--corpus", f"fsdd:{corpus}", "--arch", "soomro_cnn", "--out", str(run),
            "--epochs", str(epochs), "--patience", str(epochs), "--batch-size", "4"]
    child = subprocess.Popen([sys.executable, "-m", "cli.main", *args], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (run / ".last" / "metadata.json").exists() and child.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    saved = [h["epoch"] for h in read_metadata(run / ".last")["metrics"]["history"]]
    rc, msg = cli(*args, "--resume")
    history = [h["epoch"] for h in read_metadata(run)["metrics"]["history"]]
    return {"fault": "training killed (SIGKILL) after a saved epoch",
            "command": "hearsight train ... ; kill -9 ; hearsight train ... --resume", "rc": rc,
            "observed": f"killed with epochs {saved[0]}-{saved[-1]} saved in .last; --resume "
                        f"ran epochs {saved[-1] + 1}-{history[-1]}, history {history[0]}-"
                        f"{history[-1]} ({len(history)} epochs, none twice); "
                        f".last removed: {not (run / '.last').exists()}"}


def killed_store(tmp: Path) -> list[dict]:
    from data.activations_read import open_activation_store

    store = tmp / "store"
    writer = [sys.executable, "-c", STORE_WRITER]
    subprocess.run([*writer, str(store), "2", "0", "0.0"], cwd=ROOT, check=True,
                   capture_output=True)
    before = open_activation_store(store).layer_matrix("conv1")
    child = subprocess.Popen([*writer, str(store), "400", "1", "0.05"], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any(p.name != "store" for p in tmp.iterdir() if "store" in p.name) \
            and time.monotonic() < deadline:  # the writer's temporary folder
        time.sleep(0.01)
    time.sleep(1.0)  # mid-write: ~20 of 400 batches written
    child.send_signal(signal.SIGKILL)
    child.wait()
    after = open_activation_store(store).layer_matrix("conv1")
    left = sorted(p.name for p in tmp.iterdir() if "store" in p.name and p.name != "store")
    subprocess.run([*writer, str(store), "2", "2", "0.0"], cwd=ROOT, check=True,
                   capture_output=True)  # the next write there
    after_next = sorted(p.name for p in tmp.iterdir() if "store" in p.name and p.name != "store")
    rows = [{"fault": "store overwrite killed (SIGKILL) mid-write",
             "command": "write_activation_store(..., overwrite=True); kill -9",
             "rc": child.returncode,
             "observed": f"the complete store is read unchanged ({after.shape[0]} rows, equal: "
                         f"{bool(np.array_equal(before, after))}); the killed writer's "
                         f"temporary folder {left}, never read, is removed by the next write "
                         f"(left then: {after_next})"}]
    half = tmp / "half"
    half.mkdir()
    try:
        open_activation_store(half)
        seen = "opened (wrong)"
    except ValueError as exc:
        seen = str(exc)
    rows.append({"fault": "store folder without a finished manifest", "command":
                 "open_activation_store(folder)", "rc": None, "observed": seen})
    return rows


def main() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        wav = tmp / "tone.wav"
        sf.write(wav, (0.5 * np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440)).astype(np.float32),
                 8000)
        rows = checkpoint_cases(tmp, wav)
        rows.append(unwritable_cache(tmp))
        rows.append(killed_training(tmp, tone_corpus(tmp / "tones")))
        rows.extend(killed_store(tmp))
    for r in rows:
        print(f"{r['fault']:48s} rc={r['rc']}  {r['observed']}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"cases": rows}, indent=1))
    print(f"{len(rows)} faults; wrote {OUT}")
    return rows


if __name__ == "__main__":
    main()
