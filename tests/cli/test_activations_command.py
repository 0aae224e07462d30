"""``hearsight activations`` on a fake model and five tiny wavs."""

from types import SimpleNamespace

import numpy as np

from cli.main import build_parser, main
from data.activations_read import open_activation_store


def test_parser_accepts_documented_arguments():
    parser = build_parser()
    args = parser.parse_args(["activations", "--model", "m", "--corpus", "synth", "--split",
                              "all", "--level", "frame", "--out", "o", "--batch-size", "8"])
    assert (args.cmd, args.model, args.split, args.level, args.batch_size) == (
        "activations", "m", "all", "frame", 8)
    assert parser.parse_args(["activations", "--corpus", "c", "--out", "o"]).level == "utterance"


def test_activations_command_with_fake_model(tmp_path, monkeypatch):
    import soundfile as sf

    from data.features import FeatureParams
    from cli import activations
    from engine import predictor as predictor_mod

    params = FeatureParams(sample_rate=8000, duration_s=0.25, n_frames=38)
    items = []
    for i in range(5):
        path = tmp_path / f"{i}.wav"
        sf.write(path, 0.3 * np.sin(np.arange(2000) * (0.1 + 0.05 * i)), 8000)
        items.append(SimpleNamespace(id=f"w{i}", path=str(path), label=("a", "b")[i % 2],
                                     speaker="s", split="test"))
    corpus = SimpleNamespace(labels=("a", "b"), split=lambda name: items)

    def run(x):  # conv1: (n, freq, time, 2); dense1: (n, 3)
        n = len(x)
        conv = np.stack([x, -x], axis=-1)
        return np.tile([[0.3, 0.7]], (n, 1)), {"conv1": conv, "dense1": x[:, :3, 0],
                                               "probs": np.zeros((n, 2))}

    fake = SimpleNamespace(params=params, labels=["a", "b"], arch="fake", directory="fake",
                           features=lambda w: np.asarray(w)[:, None, :38].repeat(4, axis=1),
                           run=run, layer_names=("conv1", "dense1"))
    monkeypatch.setattr(predictor_mod.Predictor, "load", classmethod(lambda cls, d, **kw: fake))
    monkeypatch.setattr(activations, "open_corpus_args", lambda spec, *a, **k: corpus)
    out = tmp_path / "acts"
    assert main(["activations", "--model", "m", "--corpus", "x", "--level", "frame",
                 "--out", str(out), "--batch-size", "2"]) == 0
    store = open_activation_store(out)
    assert store.layers == ("conv1",) and store.info("conv1") == {
        "name": "conv1", "dim": 2, "rows": 5 * 38, "parts": 1}
    meta = store.meta()
    assert meta.frame.tolist() == list(range(38)) * 5
    assert meta.prediction.tolist() == ["b"] * 190 and meta.correct.sum() == 2 * 38
    assert store.manifest["meta"]["split"] == "test"
