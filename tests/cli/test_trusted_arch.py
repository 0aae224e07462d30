"""An entry point named only by a checkpoint file is never imported: the operator's --arch
(``trusted_arch``) must name it; registered architectures load as before."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli.main import main
from data.features import FeatureParams
from engine.predictor import Predictor
from models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from models.registry import build_model

FIXTURES = Path(__file__).resolve().parents[1] / "models"  # byo_fixture.py
SHAPE = (3, 5)


@pytest.fixture()
def marker_entry(tmp_path, monkeypatch):
    """An importable module ``hs_marker_<n>`` whose import writes a marker file."""
    name = f"hs_marker_{tmp_path.name.replace('-', '_')}"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from byo_fixture import make_model\n")
    monkeypatch.syspath_prepend(str(FIXTURES))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield f"{name}:make_model", marker
    sys.modules.pop(name, None)


def _save(entry, out, shape=SHAPE):
    model = build_model(entry, n_classes=2, input_shape=shape, seed=0)
    meta = {"arch": entry, "arch_kwargs": {"n_classes": 2, "input_shape": list(shape)},
            "labels": ["no", "yes"], "features": FeatureParams().to_dict()}
    return save_checkpoint(out, model, meta)


def test_entry_point_from_the_file_alone_is_refused_before_import(marker_entry, tmp_path):
    entry, marker = marker_entry
    path = _save(entry, tmp_path / "ckpt")
    marker.unlink()
    sys.modules.pop(entry.partition(":")[0], None)
    for load in (lambda: load_checkpoint(path), lambda: Predictor.load(path),
                 lambda: load_checkpoint(path, trusted_arch="other.mod:make_model")):
        with pytest.raises(CheckpointError, match=f"pass --arch {entry}"):
            load()
    assert not marker.exists()  # nothing of the module ran


def test_trusted_entry_point_loads(marker_entry, tmp_path):
    entry, _ = marker_entry
    path = _save(entry, tmp_path / "ckpt")
    model, meta = load_checkpoint(path, trusted_arch=entry)
    assert meta["arch"] == entry and type(model).__name__ == "TinyLinear"


def test_registered_architecture_needs_no_trust(tmp_path):
    model = build_model("frame_mlp", n_classes=2, input_shape=(8, 4), seed=0)
    meta = {"arch": "frame_mlp", "arch_kwargs": {"n_classes": 2, "input_shape": [8, 4]},
            "labels": ["a", "b"], "features": FeatureParams().to_dict()}
    _, loaded = load_checkpoint(save_checkpoint(tmp_path / "m", model, meta))
    assert loaded["arch"] == "frame_mlp"


def _byo_predictor_checkpoint(entry, tmp_path):
    """A BYO checkpoint whose input shape fits the default features (predict runs)."""
    return _save(entry, tmp_path / "ckpt", shape=FeatureParams().shape)


def test_predict_refuses_then_accepts_with_arch(marker_entry, tmp_path, capsys):
    entry, marker = marker_entry
    path = _byo_predictor_checkpoint(entry, tmp_path)
    wav = tmp_path / "a.wav"
    sf.write(wav, (0.1 * np.sin(np.arange(8000) / 5)).astype(np.float32), 8000)
    marker.unlink()
    sys.modules.pop(entry.partition(":")[0], None)
    assert main(["predict", "--model", str(path), str(wav)]) == 2
    assert f"pass --arch {entry}" in capsys.readouterr().err
    assert not marker.exists()
    assert main(["predict", "--model", str(path), "--arch", entry, "--json", str(wav)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["top"] in ("no", "yes")


@pytest.mark.parametrize("command", ["serve", "predict", "evaluate"])
def test_arch_flag_is_offered(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--arch ENTRY" in capsys.readouterr().out
