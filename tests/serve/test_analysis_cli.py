"""``hearsight activations`` / ``hearsight project`` on synthetic stores and a fake model."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from data.activations import BatchActs, open_activation_store, write_activation_store
from serve.cli import build_parser, main


def _store(path, *, n=60, seed=0):
    """Two layers; layer 2 is layer 1 mirrored (x → −x), so aligned layouts coincide."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 2)) * [3.0, 1.0]
    a = np.hstack([z, 0.01 * rng.standard_normal((n, 3))]).astype(np.float32)
    b = a.copy()
    b[:, 0] *= -1
    half = n // 2
    batches = [BatchActs(item_id=[f"i{j}" for j in range(s, e)],
                         label=[("yes", "no")[j % 2] for j in range(s, e)],
                         speaker=["s"] * (e - s), prediction=["yes"] * (e - s),
                         correct=np.array([j % 2 == 0 for j in range(s, e)]),
                         confidence=np.full(e - s, 0.9, np.float32),
                         acts={"conv1": a[s:e], "dense1": b[s:e]})
               for s, e in ((0, half), (half, n))]
    return write_activation_store(path, batches, level="utterance", meta={"arch": "fake"})


def test_parsers_accept_documented_arguments():
    parser = build_parser()
    args = parser.parse_args(["activations", "--model", "m", "--corpus", "synth", "--split",
                              "all", "--level", "frame", "--out", "o", "--batch-size", "8"])
    assert (args.cmd, args.model, args.split, args.level, args.batch_size) == (
        "activations", "m", "all", "frame", 8)
    assert parser.parse_args(["activations", "--corpus", "c", "--out", "o"]).level == "utterance"
    args = parser.parse_args(["project", "--activations", "s", "--method", "pca", "--layers",
                              "conv1,dense1", "--out", "p.parquet"])
    assert (args.cmd, args.method, args.layers) == ("project", "pca", "conv1,dense1")
    for method in ("pivotmds", "pca", "ae", "umap", "tsne"):
        assert parser.parse_args(["project", "--activations", "s", "--method", method,
                                  "--out", "p"]).method == method
    with pytest.raises(SystemExit):
        parser.parse_args(["project", "--activations", "s", "--method", "lda", "--out", "p"])


@pytest.mark.parametrize("method", ["pca", "pivotmds"])
def test_project_writes_parquet_and_sidecar(tmp_path, method):
    store = _store(tmp_path / "store")
    out = tmp_path / "proj" / "layout.parquet"
    assert main(["project", "--activations", str(store), "--method", method, "--out", str(out),
                 "--quality-n", "60", "--pivots", "20"]) == 0
    df = pd.read_parquet(out)
    assert len(df) == 60 and list(df.item_id) == [f"i{j}" for j in range(60)]
    assert {"label", "speaker", "prediction", "correct", "x_conv1", "y_conv1", "x_dense1",
            "y_dense1"} <= set(df.columns)
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["layers"] == ["conv1", "dense1"] and side["method"] == method
    # dense1 is a mirror image of conv1: after alignment the layouts coincide
    assert side["per_layer"]["dense1"]["residual"] < 1e-3  # PivotMDS pivots differ per layer
    np.testing.assert_allclose(df.x_dense1, df.x_conv1, atol=3e-2 * np.ptp(df.x_conv1))
    q = side["per_layer"]["conv1"]["quality"]
    assert q["n"] == 60 and q["trustworthiness"] > 0.9


def test_project_with_the_autoencoder_keeps_neighbourhoods(tmp_path):
    store = _store(tmp_path / "store")
    out = tmp_path / "ae.parquet"
    assert main(["project", "--activations", str(store), "--method", "ae", "--out", str(out),
                 "--quality-n", "60"]) == 0
    df = pd.read_parquet(out)
    assert len(df) == 60 and np.isfinite(df[["x_conv1", "y_conv1"]].to_numpy()).all()
    side = json.loads(out.with_suffix(".json").read_text())
    # a random 2-D layout of these points scores about 0.5; the fitted map keeps neighbours
    assert side["per_layer"]["conv1"]["quality"]["trustworthiness"] > 0.65


def test_project_reports_bad_requests(tmp_path, capsys):
    store = _store(tmp_path / "store")
    out = str(tmp_path / "p.parquet")
    assert main(["project", "--activations", str(store), "--layers", "conv9", "--out", out]) == 2
    assert "unknown layers" in capsys.readouterr().err
    (store / "store.json").unlink()
    assert main(["project", "--activations", str(store), "--out", out]) == 2
    assert "incomplete" in capsys.readouterr().err


def test_activations_command_with_fake_model(tmp_path, monkeypatch):
    import soundfile as sf

    from data.features import FeatureParams
    from engine import predictor as predictor_mod
    from serve import commands

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
                           run=run, forward=SimpleNamespace(layer_names=("conv1", "dense1")))
    monkeypatch.setattr(predictor_mod.Predictor, "load", classmethod(lambda cls, d: fake))
    monkeypatch.setattr(commands, "open_corpus_args", lambda spec, *a, **k: corpus)
    out = tmp_path / "acts"
    assert main(["activations", "--model", "m", "--corpus", "x", "--level", "frame",
                 "--out", str(out), "--batch-size", "2"]) == 0
    store = open_activation_store(out)
    assert store.layers == ("conv1",) and store.info("conv1") == {
        "name": "conv1", "dim": 2, "rows": 5 * 38}
    meta = store.meta()
    assert meta.frame.tolist() == list(range(38)) * 5
    assert meta.prediction.tolist() == ["b"] * 190 and meta.correct.sum() == 2 * 38
    assert store.manifest["meta"]["split"] == "test"
