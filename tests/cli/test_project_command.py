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


def test_project_keeps_one_layer_matrix_at_a_time(tmp_path, monkeypatch):
    """The quality metrics used to keep every layer's full matrix until the end (18 GB for six
    layers of 605k frames); now only the sampled rows of each layer outlive its layout."""
    import gc
    import weakref

    from data.activations_read import ActivationStore

    store = _store(tmp_path / "store", n=80)
    live, seen = [], []
    original = ActivationStore.layer_matrix

    def tracked(self, name):
        gc.collect()
        live.append(sum(r() is not None for r in seen))  # earlier layers' matrices still alive
        x = original(self, name)
        seen.append(weakref.ref(x))
        return x

    monkeypatch.setattr(ActivationStore, "layer_matrix", tracked)
    out = tmp_path / "p.parquet"
    assert main(["project", "--activations", str(store), "--out", str(out), "--quality-n", "40",
                 "--pivots", "10"]) == 0
    assert live == [0, 0]
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["per_layer"]["dense1"]["quality"]["n"] == 40
    assert (side["pivots"], side["pivot_strategy"]) == (10, "maxmin")


@pytest.mark.parametrize("strategy", ["random", "maxmin"])
def test_project_on_a_cluster_equals_project_here(tmp_path, strategy):
    pytest.importorskip("distributed")
    rng = np.random.default_rng(3)
    n = 90
    z = rng.standard_normal((n, 6)).astype(np.float32) * np.float32([4, 2, 1, 1, 0.5, 0.2])
    batches = [BatchActs(item_id=[f"i{j}" for j in range(s, s + 30)],
                         label=["yes"] * 30, speaker=["s"] * 30, prediction=["yes"] * 30,
                         correct=np.ones(30, bool), confidence=np.full(30, 0.9, np.float32),
                         acts={"a": z[s:s + 30], "b": (z[s:s + 30] @ rng.standard_normal((6, 4))
                                                       ).astype(np.float32)})
               for s in (0, 30, 60)]
    root = write_activation_store(tmp_path / "store", batches, level="utterance", meta={},
                                  rows_per_part=20)
    common = ["project", "--activations", str(root), "--pivots", "12", "--pivot-strategy",
              strategy, "--quality-n", "50"]
    assert main([*common, "--out", str(tmp_path / "here.parquet")]) == 0
    assert main([*common, "--out", str(tmp_path / "there.parquet"), "--cluster", "local:2"]) == 0
    here, there = (pd.read_parquet(tmp_path / f) for f in ("here.parquet", "there.parquet"))
    for col in ("x_a", "y_a", "x_b", "y_b"):
        np.testing.assert_allclose(there[col], here[col], atol=1e-4 * np.ptp(here[col]))
    sides = [json.loads((tmp_path / f).read_text()) for f in ("here.json", "there.json")]
    assert sides[1]["cluster"] == "local:2" and sides[0]["cluster"] is None
    for q_here, q_there in zip(*(s["per_layer"]["b"]["quality"].values() for s in sides)):
        assert q_there == pytest.approx(q_here, abs=1e-4)
    assert not list(tmp_path.glob(".project-*"))  # the workers' layout blocks are cleaned up


def test_project_cluster_refuses_other_methods(tmp_path, capsys):
    store = _store(tmp_path / "store")
    assert main(["project", "--activations", str(store), "--method", "pca", "--cluster",
                 "local:1", "--out", str(tmp_path / "p.parquet")]) == 2
    assert "PivotMDS only" in capsys.readouterr().err


def _frame_store(path, *, n=12, seed=0):
    """Frame level: conv1 has 8 frames per clip, conv2 4, and conv2's frame j is the mean of
    conv1's frames 2j and 2j+1 (a layer pooled in time, exactly)."""
    rng = np.random.default_rng(seed)
    fine = rng.standard_normal((n, 8, 5)).astype(np.float32) * [3.0, 1.0, 0.5, 0.2, 0.1]
    fine = fine.astype(np.float32)
    coarse = fine.reshape(n, 4, 2, 5).mean(axis=2)
    batch = BatchActs(item_id=[f"i{j}" for j in range(n)], label=["yes"] * n,
                      speaker=["s"] * n, prediction=["yes"] * n, correct=np.ones(n, bool),
                      confidence=np.full(n, 0.9, np.float32),
                      acts={"conv1": fine, "conv2": coarse})
    return write_activation_store(path, [batch], level="frame", meta={"arch": "fake"})


def test_project_pools_layers_of_different_frame_counts_onto_one_grid(tmp_path, capsys):
    store = _frame_store(tmp_path / "store")
    out = tmp_path / "layout.parquet"
    assert main(["project", "--activations", str(store), "--method", "pca", "--out", str(out),
                 "--quality-n", "40"]) == 0
    assert "averaged onto conv2's 48 frames" in capsys.readouterr().out
    df = pd.read_parquet(out)
    assert len(df) == 48 and df["frame"].tolist() == [0, 1, 2, 3] * 12
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["frames"] == {"aligned": "pool", "grid": "conv2",
                              "rows": {"conv1": 96, "conv2": 48}}
    # conv1 pooled onto conv2's frames is conv2 itself: the two layouts coincide.
    assert side["per_layer"]["conv2"]["residual"] < 1e-6
    np.testing.assert_allclose(df.x_conv1, df.x_conv2, atol=1e-4 * np.ptp(df.x_conv1))
    assert main(["project", "--activations", str(store), "--align-frames", "none",
                 "--out", str(out)]) == 2
    assert "different row counts" in capsys.readouterr().err
    assert main(["project", "--activations", str(store), "--cluster", "local:1",
                 "--out", str(out)]) == 2
    assert "in memory only" in capsys.readouterr().err


def test_project_on_a_cluster_into_a_folder_writes_layout_parts_equal_to_the_file(tmp_path):
    pytest.importorskip("distributed")
    from data.layout_parts import read_manifest

    rng = np.random.default_rng(5)
    z = rng.standard_normal((60, 5)).astype(np.float32) * np.float32([3, 2, 1, 0.5, 0.2])
    batches = [BatchActs(item_id=[f"i{j}" for j in range(s, s + 20)],
                         label=["yes", "no"] * 10, speaker=["s"] * 20, prediction=["yes"] * 20,
                         correct=np.ones(20, bool), confidence=np.full(20, 0.9, np.float32),
                         acts={"a": z[s:s + 20], "b": (z[s:s + 20] * 2).astype(np.float32)})
               for s in (0, 20, 40)]
    root = write_activation_store(tmp_path / "store", batches, level="utterance", meta={},
                                  rows_per_part=20)
    common = ["project", "--activations", str(root), "--pivots", "10", "--pivot-strategy",
              "random", "--quality-n", "30", "--cluster", "local:2"]
    assert main([*common, "--out", str(tmp_path / "one.parquet")]) == 0
    assert main([*common, "--out", str(tmp_path / "parts")]) == 0
    one = pd.read_parquet(tmp_path / "one.parquet")
    parts = pd.concat([pd.read_parquet(p) for p in sorted((tmp_path / "parts").glob("part-*"))],
                      ignore_index=True)
    manifest = read_manifest(tmp_path / "parts")
    assert manifest["parts"] == 3 and manifest["n"] == 60 and manifest["layers"] == ["a", "b"]
    assert list(parts["item_id"]) == list(one["item_id"])
    for col in ("x_a", "y_a", "x_b", "y_b"):
        np.testing.assert_allclose(parts[col], one[col], atol=1e-5 * np.ptp(one[col]))
    assert manifest["per_layer"]["b"]["quality"]["n"] == 30
    assert not list(tmp_path.glob(".project-*"))
