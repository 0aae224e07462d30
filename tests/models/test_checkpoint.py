"""models.checkpoint: a trained model survives a save and load; damaged checkpoints name the
problem; an interrupted save keeps the previous checkpoint."""

import json
from datetime import datetime

import jax
import numpy as np
import pytest
from flax import nnx

import models.checkpoint as ckpt_mod
from data.features import FeatureParams
from models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def _metadata(toy, model_arch="ddevis_cnn"):
    return {"arch": model_arch, "arch_kwargs": {"n_classes": 2, "input_shape": toy.shape},
            "labels": toy.labels, "features": FeatureParams(n_frames=toy.shape[1]),
            "corpus": {"kind": "synthetic"}, "split": {"train": 96, "valid": 48},
            "metrics": {"valid_acc": np.float32(1.0)}}


def _logits(model, x):
    return np.asarray(nnx.jit(lambda m, v: m(v))(model, x))


def test_save_load_round_trip(trained, toy_problem, tmp_path):
    model, _, _, (xva, _) = trained
    path = save_checkpoint(tmp_path / "ck", model, _metadata(toy_problem))
    save_checkpoint(tmp_path / "ck", model, _metadata(toy_problem))  # overwriting works
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temp folders left
    loaded, meta = load_checkpoint(path)
    np.testing.assert_array_equal(_logits(loaded, xva[:4]), _logits(model, xva[:4]))
    np.testing.assert_array_equal(np.asarray(loaded.bn1.mean[...]), np.asarray(model.bn1.mean[...]))
    assert meta["labels"] == toy_problem.labels
    assert meta["arch_kwargs"]["input_shape"] == list(toy_problem.shape)
    assert FeatureParams.from_dict(meta["features"]) == FeatureParams(n_frames=toy_problem.shape[1])
    assert meta["format_version"] == 1 and meta["metrics"]["valid_acc"] == 1.0
    assert meta["versions"]["jax"] == jax.__version__
    assert set(meta["versions"]) >= {"flax", "optax", "orbax", "numpy", "hearsight"}
    assert datetime.fromisoformat(meta["created"]).utcoffset().total_seconds() == 0


@pytest.fixture()
def saved(trained, toy_problem, tmp_path):
    return save_checkpoint(tmp_path / "ck", trained[0], _metadata(toy_problem))


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


def test_interrupted_save_keeps_the_previous_checkpoint(trained, toy_problem, saved, monkeypatch):
    class Broken:
        def __init__(self):
            raise OSError("disk full")

    before = (saved / "metadata.json").read_text()
    monkeypatch.setattr(ckpt_mod.ocp, "StandardCheckpointer", Broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(saved, trained[0], _metadata(toy_problem))
    assert (saved / "metadata.json").read_text() == before
    assert sorted(p.name for p in saved.parent.iterdir()) == ["ck"]
