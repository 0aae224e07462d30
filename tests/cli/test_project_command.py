"""``hearsight project`` on synthetic activation stores."""

import json

import numpy as np
import pandas as pd
import pytest

from cli.main import build_parser, main
from data.activations import BatchActs, write_activation_store


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


def test_parser_accepts_documented_arguments():
    parser = build_parser()
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
