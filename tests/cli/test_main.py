"""The command line end to end on tiny data: corpus info, train, predict, evaluate."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli.evaluate import evaluate_probs
from cli.main import main

FSDD = Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd"


def _write_tone_corpus(root: Path) -> Path:
    """FSDD layout, two 'digits': 0 is a 300 Hz tone, 1 a 2 kHz tone; 3 speakers × 16 takes."""
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 8000
    for digit, freq in (("0", 300.0), ("1", 2000.0)):
        for speaker in ("ann", "bob", "cid"):
            for take in range(16):
                wave = 0.5 * np.sin(2 * np.pi * freq * (1 + 0.02 * rng.standard_normal()) * t)
                wave += 0.01 * rng.standard_normal(t.size)
                sf.write(root / f"{digit}_{speaker}_{take}.wav", wave.astype(np.float32), 8000)
    return root


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return _write_tone_corpus(tmp_path_factory.mktemp("tones"))


@pytest.fixture(scope="module")
def trained(tones, tmp_path_factory):
    root = tones
    out = tmp_path_factory.mktemp("ckpt") / "model"
    code = main(["train", "--corpus", f"fsdd:{root}", "--arch", "ddevis_cnn", "--out", str(out),
                 "--epochs", "4", "--batch-size", "16", "--patience", "4"])
    assert code == 0
    return root, out


def test_corpus_info_counts_the_real_fsdd(capsys):
    assert main(["corpus", "info", f"fsdd:{FSDD}", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_items"] == 2500
    assert info["splits"]["test"] == 250  # takes 0–4 of 10 digits × 5 speakers


def test_train_writes_complete_metadata(trained):
    _, out = trained
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["arch"] == "ddevis_cnn" and meta["labels"] == ["0", "1"]
    assert meta["features"]["n_fft"] == 320 and meta["features"]["hop_length"] == 53
    # FSDD's usual split: takes 0–4 test, 5–9 valid, 10–15 train; 2 digits × 3 speakers.
    assert meta["split"] == {"train": 6 * 6, "valid": 6 * 5, "test": 6 * 5}
    assert {"jax", "flax", "numpy"} <= set(meta["versions"])


def test_predict_json_gives_every_class_and_the_argmax(trained, capsys):
    root, out = trained
    files = [str(root / "0_ann_0.wav"), str(root / "1_bob_3.wav")]
    assert main(["predict", "--model", str(out), "--json", *files]) == 0
    records = json.loads(capsys.readouterr().out)
    for rec in records:
        probs = rec["probs"]
        assert set(probs) == {"0", "1"}
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert rec["top"] == max(probs, key=probs.get)
        assert rec["probability"] == pytest.approx(probs[rec["top"]])


def test_evaluate_agrees_with_the_training_run(trained, capsys):
    root, out = trained
    assert main(["evaluate", "--model", str(out), "--corpus", f"fsdd:{root}", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    meta = json.loads((out / "metadata.json").read_text())
    conf = np.array(result["confusion"])
    assert conf.sum() == result["n"] == meta["metrics"]["test"]["n"]
    assert result["accuracy"] == pytest.approx(np.trace(conf) / conf.sum())
    assert result["accuracy"] == pytest.approx(meta["metrics"]["test"]["accuracy"], abs=1e-6)


def test_evaluate_reports_each_speaker_and_they_average_to_the_total():
    probs = np.eye(3)[[0, 1, 2, 0, 0, 1]]          # predictions 0 1 2 0 0 1
    y = [0, 1, 1, 0, 2, 1]                            # right: T T F T F T
    r = evaluate_probs(probs, y, ["a", "b", "c"], speakers=["x", "x", "x", "y", "y", ""])
    assert r["per_speaker_accuracy"] == {"?": 1.0, "x": pytest.approx(2 / 3), "y": 0.5}
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["per_class_accuracy"]["c"] == 0.0 and r["confusion"][1] == [0, 2, 1]


def test_bad_input_is_one_clear_line_not_a_traceback(trained, tmp_path, capsys):
    _, out = trained
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF1234WAVEjunk")
    assert main(["predict", "--model", str(out), str(tmp_path / "missing.wav"), str(bad)]) == 2
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "missing.wav" in text and "bad.wav" in text and "Traceback" not in text
    assert main(["predict", "--model", str(tmp_path / "nope"), str(bad)]) == 2
    assert "retrain" in capsys.readouterr().err


def test_train_autoencoder_prior_reconstructs_better_than_the_mean(tones, tmp_path):
    from data.dataset import load_split
    from data.corpora import open_corpus
    from models.checkpoint import load_checkpoint

    out = tmp_path / "ae"
    assert main(["train", "--corpus", f"fsdd:{tones}", "--arch", "spectrogram_ae",
                 "--out", str(out), "--epochs", "25", "--batch-size", "8", "--patience", "25",
                 "--lr", "0.003"]) == 0
    meta = json.loads((out / "metadata.json").read_text())
    ae, _ = load_checkpoint(out)
    params_test = load_split(open_corpus(f"fsdd:{tones}"), "test", ae_params(meta))
    mean_mse = float(np.mean((params_test.x - params_test.x.mean(axis=0)) ** 2))
    assert meta["metrics"]["test"]["mse"] < mean_mse  # learnt something beyond the average
    z = np.zeros((2, 256), np.float32)
    assert np.asarray(ae.decode(z)).shape == (2, *meta["arch_kwargs"]["input_shape"])


def ae_params(meta):
    from data.features import FeatureParams

    return FeatureParams.from_dict(meta["features"])
