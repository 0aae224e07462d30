"""Training (separable toy problem, early stopping, budget), evaluation and checkpoints."""

import json
from datetime import datetime

import jax
import numpy as np
import pytest
from flax import nnx

import models.checkpoint as ckpt_mod
from data.features import FeatureParams
from models.architectures import FrameMLP
from models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from models.registry import build_model
from models.train import evaluate, train_autoencoder, train_classifier

SHAPE = (16, 16)
LABELS = ["low", "high"]


def _bright_row_data(n, seed):
    """Class 0: a bright row near the bottom; class 1: near the top (noise floor elsewhere)."""
    rng = np.random.default_rng(seed)
    x = (-4.0 + rng.uniform(0.0, 1.0, (n, *SHAPE))).astype(np.float32)
    y = rng.integers(0, 2, n).astype(np.int32)
    rows = np.where(y == 0, 3, 12) + rng.integers(-1, 2, n)
    x[np.arange(n), rows, :] = -0.2
    return x, y


def _metadata(model_arch="ddevis_cnn"):
    return {"arch": model_arch, "arch_kwargs": {"n_classes": 2, "input_shape": SHAPE},
            "labels": LABELS, "features": FeatureParams(n_frames=SHAPE[1]),
            "corpus": {"kind": "synthetic"}, "split": {"train": 96, "valid": 48},
            "metrics": {"valid_acc": np.float32(1.0)}}


@pytest.fixture(scope="module")
def trained():
    """A tiny d-DeVIS CNN trained on the toy problem (shared: training is the slow part)."""
    xtr, ytr = _bright_row_data(96, 0)
    xva, yva = _bright_row_data(48, 1)
    model = build_model("ddevis_cnn", n_classes=2, input_shape=SHAPE, seed=0)
    seen = []
    result = train_classifier(model, xtr, ytr, xva, yva, epochs=30, batch_size=32,
                              learning_rate=3e-3, patience=3, seed=0, progress=False,
                              on_epoch=lambda e, m, metrics: seen.append((e, metrics)))
    return model, result, seen, (xva, yva)


def test_training_separates_the_toy_problem_and_stops_on_the_plateau(trained):
    model, result, seen, (xva, yva) = trained
    assert result.best_valid_acc >= 0.95
    assert result.stopped_early and "no validation improvement for 3" in result.reason
    # Stops exactly `patience` epochs after the best one.
    assert len(result.history) == result.best_epoch + 3 < 30
    assert [e for e, _ in seen] == list(range(1, len(result.history) + 1))
    assert set(result.history[0]) == {"epoch", "train_loss", "train_acc", "valid_loss",
                                      "valid_acc", "seconds"}
    # The best weights are restored, and their batch-norm statistics recalibrated on clean
    # training inputs (dropout sits before batch-norm): eval accuracy is at least the best seen.
    assert evaluate(model, xva, yva, LABELS)["accuracy"] >= result.best_valid_acc


def test_time_budget_stops_after_the_first_epoch():
    xtr, ytr = _bright_row_data(8, 2)
    model = FrameMLP(2, SHAPE, hidden=8, depth=1, rngs=nnx.Rngs(0))
    result = train_classifier(model, xtr, ytr, xtr, ytr, epochs=5, batch_size=8,
                              time_budget_s=0.0, progress=False)
    assert len(result.history) == 1 and result.stopped_early and "time budget" in result.reason


def test_evaluate_known_confusion():
    logits = np.array([[5, 0, 0], [0, 5, 0], [0, 5, 0], [1, 2, 0]], dtype=np.float32)
    out = evaluate(lambda x: (logits[: len(x)], {}), np.zeros((4, 2, 2)), [0, 0, 1, 2],
                   ["a", "b", "c"])
    assert out["accuracy"] == 0.5 and out["n"] == 4
    assert out["per_class_accuracy"] == {"a": 0.5, "b": 1.0, "c": 0.0}
    assert out["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    with pytest.raises(ValueError, match="class indices"):
        evaluate(lambda x: logits, np.zeros((4, 2, 2)), [0, 0, 1, 3], ["a", "b", "c"])


def test_autoencoder_beats_the_best_constant_predictor():
    rng = np.random.default_rng(3)
    # Rank-1 spectrograms: a random level times a fixed spectral shape.
    shape = np.linspace(0.1, 1.0, 8)[:, None] * np.ones((1, 8))
    x = (-4.0 * rng.uniform(0.2, 1.0, (64, 1, 1)) * shape).astype(np.float32)
    ae = build_model("spectrogram_ae", n_classes=1, input_shape=(8, 8), seed=0)
    result = train_autoencoder(ae, x[:48], x[48:], epochs=40, batch_size=16,
                               learning_rate=1e-2, patience=40, progress=False)
    baseline = float(np.mean((x[48:] - x[:48].mean(axis=0)) ** 2))
    assert result.best_valid_acc is None and "valid_acc" not in result.history[0]
    assert result.best_valid_loss < 0.1 * baseline


def _logits(model, x):
    return np.asarray(nnx.jit(lambda m, v: m(v))(model, x))


def test_save_load_round_trip(trained, tmp_path):
    model, _, _, (xva, _) = trained
    path = save_checkpoint(tmp_path / "ck", model, _metadata())
    save_checkpoint(tmp_path / "ck", model, _metadata())  # overwriting works
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temp folders left
    loaded, meta = load_checkpoint(path)
    np.testing.assert_array_equal(_logits(loaded, xva[:4]), _logits(model, xva[:4]))
    np.testing.assert_array_equal(np.asarray(loaded.bn1.mean[...]), np.asarray(model.bn1.mean[...]))
    assert meta["labels"] == LABELS and meta["arch_kwargs"]["input_shape"] == list(SHAPE)
    assert FeatureParams.from_dict(meta["features"]) == FeatureParams(n_frames=SHAPE[1])
    assert meta["format_version"] == 1 and meta["metrics"]["valid_acc"] == 1.0
    assert meta["versions"]["jax"] == jax.__version__
    assert set(meta["versions"]) >= {"flax", "optax", "orbax", "numpy", "hearsight"}
    assert datetime.fromisoformat(meta["created"]).utcoffset().total_seconds() == 0


@pytest.fixture()
def saved(trained, tmp_path):
    return save_checkpoint(tmp_path / "ck", trained[0], _metadata())


def _edit_metadata(path, **changes):
    meta = json.loads((path / "metadata.json").read_text())
    meta.update(changes)
    (path / "metadata.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "metadata.json").write_text("{not json"), "metadata.json is corrupt"),
    (lambda p: (p / "metadata.json").unlink(), "metadata.json is missing"),
    (lambda p: _edit_metadata(p, format_version=99), "unknown format_version 99"),
    (lambda p: _edit_metadata(p, labels=["low", 2]), "labels must be a list of 2 strings"),
    (lambda p: _edit_metadata(p, features={"kind": "wavelet"}), "invalid feature parameters"),
    (lambda p: _edit_metadata(p, arch_kwargs={"n_classes": 2, "input_shape": [32, 32]}),
     "shape mismatch at dense1/kernel"),
    (lambda p: __import__("shutil").rmtree(p / "state"), "'state' is missing"),
    (lambda p: [f.write_bytes(b"garbage") for f in (p / "state").rglob("*") if f.is_file()],
     "model state is corrupt"),
])
def test_damaged_checkpoints_name_the_problem(saved, damage, message):
    damage(saved)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(saved)
    assert "retrain with: hearsight train" in str(info.value)


def test_missing_folder_and_missing_key(tmp_path, saved):
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        load_checkpoint(tmp_path / "nothing")
    meta = json.loads((saved / "metadata.json").read_text())
    del meta["arch"]
    (saved / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="required key 'arch'"):
        load_checkpoint(saved)


def test_interrupted_save_keeps_the_previous_checkpoint(trained, saved, monkeypatch):
    class Broken:
        def __init__(self):
            raise OSError("disk full")

    before = (saved / "metadata.json").read_text()
    monkeypatch.setattr(ckpt_mod.ocp, "StandardCheckpointer", Broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(saved, trained[0], _metadata())
    assert (saved / "metadata.json").read_text() == before
    assert sorted(p.name for p in saved.parent.iterdir()) == ["ck"]


def test_on_the_trained_model_saliency_deletes_faster_than_random(trained):
    """Faithfulness on a trained model: removing the pixels saliency ranks first lowers the
    target probability sooner than removing pixels in a random order (lower deletion AUC)."""
    from engine.attribution import saliency
    from engine.faithfulness import evaluate as faithfulness

    model, _, _, (xva, yva) = trained
    model.eval()
    graphdef, state = nnx.split(model)
    logits_fn = lambda v: nnx.merge(graphdef, state)(v)
    x, y = xva[:24], yva[:24]
    attr = {"saliency": saliency(logits_fn, x, y, absolute=True)}
    res = faithfulness(logits_fn, x, y, attr, key=jax.random.key(0), patch=(2, 2), n_steps=17,
                       floor=-4.0)
    sal, rnd = res["saliency"]["deletion_auc"], res["random"]["deletion_auc"]
    assert sal.mean() < rnd.mean() - 0.03, (sal.mean(), rnd.mean())   # measured 0.75 vs 0.82
    assert np.mean(sal < rnd) > 0.5
