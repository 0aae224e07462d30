"""Faults: broken checkpoints, an unwritable cache folder, training killed part-way, an
activation store interrupted mid-write (issue 7).

Tests run as root, where ``chmod 0500`` does not stop writes; an unwritable cache folder is
therefore simulated by pointing ``HEARSIGHT_HOME`` *below a regular file*
(``.../file.txt/sub``), which makes every ``mkdir``/``open`` fail with ``NotADirectoryError``
(an ``OSError``) for root as for anyone.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli.main import build_parser, main

HERE = Path(__file__).resolve().parent
BYO_DIR = HERE.parent / "models"  # byo_fixture.py: a 2-layer linear model that trains in ms
BYO = "byo_fixture:make_model"


def _tone(freq: float, n: int = 4000, rate: int = 8000) -> np.ndarray:
    t = np.arange(n) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture()
def tiny_fsdd(tmp_path) -> Path:
    """Digits 0 and 1 (two tones), one speaker, takes 0..11: 5 test, 5 valid, 2 train each."""
    root = tmp_path / "fsdd"
    root.mkdir()
    rng = np.random.default_rng(0)
    for digit, freq in ((0, 300.0), (1, 1200.0)):
        for take in range(12):
            wave = _tone(freq * (1 + 0.02 * take)) + rng.normal(0, 0.01, 4000).astype(np.float32)
            sf.write(root / f"{digit}_spk_{take}.wav", wave, 8000, subtype="PCM_16")
    return root


@pytest.fixture()
def wav_file(tmp_path) -> Path:
    path = tmp_path / "tone.wav"
    sf.write(path, _tone(440.0, 8000), 8000, subtype="PCM_16")
    return path


# -- checkpoints -----------------------------------------------------------------------
@pytest.mark.parametrize("damage, problem", [
    (lambda p: shutil.rmtree(p), "no such checkpoint folder"),
    (lambda p: (p / "metadata.json").write_text("{oops"), "metadata.json is corrupt"),
    (lambda p: (p / "metadata.json").unlink(), "metadata.json is missing"),
    (lambda p: [f.write_bytes(b"\0garbage") for f in (p / "state").rglob("*") if f.is_file()],
     "model state is corrupt"),
])
def test_broken_checkpoint_gives_the_retrain_command(tiny_checkpoint, tmp_path, wav_file,
                                                     capsys, damage, problem):
    ck = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, ck)
    damage(ck)
    assert main(["predict", "--model", str(ck), str(wav_file)]) == 2
    out, err = capsys.readouterr()
    assert problem in err and "retrain with: hearsight train" in err and str(ck) in err
    assert "Traceback" not in err and out == ""


def test_checkpoint_arch_naming_a_system_function_is_refused(tiny_checkpoint, tmp_path,
                                                             wav_file, capsys):
    ck = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, ck)
    for arch in ("os:system", "subprocess:run", "builtins:eval"):
        meta = json.loads((ck / "metadata.json").read_text())
        meta["arch"] = arch
        (ck / "metadata.json").write_text(json.dumps(meta))
        assert main(["predict", "--model", str(ck), str(wav_file)]) == 2
        err = capsys.readouterr().err
        assert f"arch {arch!r} names a standard-library function" in err
        assert "Traceback" not in err


# -- an unwritable cache folder --------------------------------------------------------
@pytest.fixture()
def unwritable_home(tmp_path, monkeypatch) -> Path:
    blocker = tmp_path / "file.txt"
    blocker.write_text("a regular file, so nothing can be created below it")
    home = blocker / "sub"
    monkeypatch.setenv("HEARSIGHT_HOME", str(home))
    return home


def test_feature_cache_warns_and_continues(unwritable_home, tiny_fsdd):
    from data.corpora import open_corpus
    from data.dataset import load_split
    from data.features import ddevis_stft

    corpus = open_corpus(f"fsdd:{tiny_fsdd}", progress=False)
    with pytest.warns(RuntimeWarning, match="feature cache not written .*continuing"):
        arrays = load_split(corpus, "train", ddevis_stft())
    assert arrays.x.shape == (4, *ddevis_stft().shape) and sorted(arrays.y) == [0, 0, 1, 1]
    assert unwritable_home.parent.is_file()  # nothing was created


def test_corpus_synthesis_names_the_unwritable_cache(unwritable_home, capsys):
    assert main(["corpus", "synth", "--small"]) == 2
    err = capsys.readouterr().err
    assert "cannot write the corpus into the cache folder" in err
    assert str(unwritable_home) in err and "set HEARSIGHT_HOME to a writable folder" in err
    assert "Traceback" not in err


# -- training killed part-way ----------------------------------------------------------
class Killed(Exception):
    """Stands in for SIGKILL: raised from the per-epoch hook after the checkpoint is saved."""


def _fit(corpus, out, *, epochs, resume=False, on_epoch=None):
    from models.fit import FitConfig, fit

    config = FitConfig(arch=BYO, features="stft", epochs=epochs, batch_size=4, patience=10,
                       learning_rate=1e-2)
    return fit(corpus, out, config, progress=False, log=lambda _: None, resume=resume,
               on_epoch=on_epoch)


def _kill_after_first(epoch, model, metrics):
    if epoch == 1:
        raise Killed


def test_killed_training_resumes_from_its_last_epoch(tiny_fsdd, tmp_path, monkeypatch):
    from data.corpora import open_corpus
    from models.checkpoint import load_checkpoint

    monkeypatch.syspath_prepend(str(BYO_DIR))
    corpus, out = open_corpus(f"fsdd:{tiny_fsdd}", progress=False), tmp_path / "run"
    with pytest.raises(Killed):
        _fit(corpus, out, epochs=3, on_epoch=_kill_after_first)
    assert not (out / "metadata.json").exists()  # the run is visibly incomplete
    _, last = load_checkpoint(out / ".last", trusted_arch=BYO)
    assert [h["epoch"] for h in last["metrics"]["history"]] == [1]
    seen = []
    meta = _fit(corpus, out, epochs=3, resume=True, on_epoch=lambda e, m, x: seen.append(e))
    history = meta["metrics"]["history"]
    assert seen == [2, 3] and [h["epoch"] for h in history] == [1, 2, 3]
    assert history[0] == last["metrics"]["history"][0]  # epoch 1 is kept, not retrained
    assert meta["metrics"]["best_epoch"] == 1 + int(np.argmax([h["valid_acc"] for h in history]))
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "state"]  # .last gone
    load_checkpoint(out, trusted_arch=BYO)


def test_resume_with_no_epochs_left_finalises_the_saved_weights(tiny_fsdd, tmp_path,
                                                               monkeypatch):
    from data.corpora import open_corpus
    from data.features import ddevis_stft
    from models.architectures import call_with_intermediates
    from models.checkpoint import load_checkpoint

    monkeypatch.syspath_prepend(str(BYO_DIR))
    corpus, out = open_corpus(f"fsdd:{tiny_fsdd}", progress=False), tmp_path / "run"
    with pytest.raises(Killed):
        _fit(corpus, out, epochs=1, on_epoch=_kill_after_first)
    saved, _ = load_checkpoint(out / ".last", trusted_arch=BYO)
    meta = _fit(corpus, out, epochs=1, resume=True)  # nothing left to train
    final, _ = load_checkpoint(out, trusted_arch=BYO)
    x = np.random.default_rng(1).uniform(-4, 0, (3, *ddevis_stft().shape)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(call_with_intermediates(final, x)[0]),
                                  np.asarray(call_with_intermediates(saved, x)[0]))
    assert [h["epoch"] for h in meta["metrics"]["history"]] == [1]
    assert meta["metrics"]["test"]["n"] == 10  # takes 0-4 of two digits


def test_resume_refuses_a_run_of_another_model(tiny_fsdd, tmp_path, monkeypatch):
    from data.corpora import open_corpus
    from models.fit import FitConfig, fit

    monkeypatch.syspath_prepend(str(BYO_DIR))
    corpus, out = open_corpus(f"fsdd:{tiny_fsdd}", progress=False), tmp_path / "run"
    with pytest.raises(Killed):
        _fit(corpus, out, epochs=2, on_epoch=_kill_after_first)
    with pytest.raises(ValueError, match="was trained with another (arch_kwargs|features)"):
        fit(corpus, out, FitConfig(arch=BYO, features="logmel", epochs=2), progress=False,
            log=lambda _: None, resume=True)


def test_cli_train_has_resume():
    args = build_parser().parse_args(["train", "--corpus", "synth", "--out", "x", "--resume"])
    assert args.resume is True
    assert build_parser().parse_args(["train", "--corpus", "synth", "--out", "x"]).resume is False


# -- an activation store interrupted mid-write -----------------------------------------
def _batches(n_batches: int, fail_after: int | None = None):
    from data.activations import BatchActs

    rng = np.random.default_rng(0)
    for b in range(n_batches):
        if fail_after is not None and b == fail_after:
            raise Killed
        yield BatchActs(item_id=[f"id{b}_{i}" for i in range(2)], label=["a", "b"],
                        speaker=["s", "s"], prediction=["a", "a"],
                        correct=np.array([True, False]), confidence=np.ones(2, np.float32),
                        acts={"conv1": rng.normal(size=(2, 3)).astype(np.float32)})


def test_interrupted_store_overwrite_keeps_the_complete_store(tmp_path):
    from data.activations import write_activation_store
    from data.activations_read import open_activation_store

    out = tmp_path / "store"
    write_activation_store(out, _batches(2), level="utterance")
    before = open_activation_store(out).layer_matrix("conv1")
    with pytest.raises(Killed):
        write_activation_store(out, _batches(3, fail_after=2), level="utterance", overwrite=True)
    np.testing.assert_array_equal(open_activation_store(out).layer_matrix("conv1"), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="incomplete"):
            (tmp_path / "half").mkdir()
            open_activation_store(tmp_path / "half")


def test_next_write_removes_the_folders_of_killed_writers_only(tmp_path):
    import os

    from data.activations import write_activation_store
    from data.activations_read import open_activation_store

    out = tmp_path / "store"
    dead = tmp_path / "store.tmp-4194305"              # above Linux's pid_max: no such process
    alive = tmp_path / f"store.tmp-{os.getppid()}"     # a running process's folder
    other = tmp_path / "storex.tmp-4194305"            # another store's: not ours to touch
    for d in (dead, alive, other):
        d.mkdir()
        (d / "part-0.parquet").write_bytes(b"half written")
    write_activation_store(out, _batches(2), level="utterance")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["store", alive.name, other.name])
    assert open_activation_store(out).layer_matrix("conv1").shape == (4, 3)
