"""The README's worked examples (``examples/own_model.py``): each adapter opens its model, and
the ONNX export of the PyTorch example computes the same logits as the PyTorch original."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

for _m in ("torch", "torchax", "transformers", "onnx", "onnx2torch"):
    if importlib.util.find_spec(_m) is None:
        pytest.skip(f"the foreign extra ({_m}) is not installed", allow_module_level=True)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def own_model(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import own_model

    return own_model


def test_torch_and_onnx_examples_agree(own_model, tmp_path):
    from engine.predictor import load_predictor

    onnx_path = own_model.write_onnx(tmp_path / "small_cnn.onnx")
    torch_p = load_predictor("torch:own_model:small_cnn")
    onnx_p = load_predictor(f"onnx:{onnx_path}")
    assert torch_p.labels == onnx_p.labels == own_model.LABELS
    t = np.arange(16000) / 16000
    waves = np.stack([0.5 * np.sin(2 * np.pi * f * t) for f in (300.0, 1200.0)]).astype(np.float32)
    p_torch, acts = torch_p.run(torch_p.features(waves))
    p_onnx, _ = onnx_p.run(onnx_p.features(waves))
    np.testing.assert_allclose(p_torch, p_onnx, atol=1e-5)
    np.testing.assert_allclose(p_torch.sum(axis=1), 1.0, atol=1e-5)
    assert acts["conv1"].shape == (2, 996, 16) and acts["pooled"].shape == (2, 32)


def test_hf_example_and_the_predict_command(own_model, tmp_path, capsys):
    import soundfile as sf

    from cli.main import main

    folder = own_model.write_hf(tmp_path / "hf")
    wav = tmp_path / "tone.wav"
    sf.write(wav, (0.4 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype(np.float32), 8000)
    assert main(["predict", "--model", f"hf:{folder}", "--json", str(wav)]) == 0
    import json

    records = json.loads(capsys.readouterr().out)
    assert records[0]["top"] in own_model.LABELS
    assert sum(records[0]["probs"].values()) == pytest.approx(1.0, abs=1e-5)
