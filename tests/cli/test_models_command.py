"""`hearsight models inspect SPEC` describes a foreign model (a tiny torch CNN, local)."""

import importlib.util
import json
from pathlib import Path

import pytest

from cli.main import main

pytest.importorskip("torch")
if importlib.util.find_spec("torchax") is None:  # a plain import fails on torch 2.13
    pytest.skip("torchax is not installed (pip install -e '.[foreign]')", allow_module_level=True)

BUILDERS = Path(__file__).resolve().parents[1] / "models" / "foreign"


def test_inspect_a_torch_module_as_json_and_text(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BUILDERS))
    from foreign_builders import LABELS

    assert main(["models", "inspect", "torch:foreign_builders:make_cnn", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input"] == {"kind": "waveform", "sample_rate": 4000, "n_samples": 4000,
                             "duration_s": 1.0, "shape": [4000]}
    assert info["labels"] == list(LABELS) and info["parameters"] > 0
    assert info["layers"] and all(layer["kind"] in ("freq_time", "time", "sequence", "vector")
                                  for layer in info["layers"])
    assert main(["models", "inspect", "torch:foreign_builders:make_cnn"]) == 0
    text = capsys.readouterr().out
    assert "waveform in, 4000 Hz x 1 s" in text and f"{len(LABELS)} classes" in text


def test_a_bad_spec_is_one_line(capsys):
    assert main(["models", "inspect", "hf:/no/such/folder"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hearsight models: error:") and err.count("\n") == 1
