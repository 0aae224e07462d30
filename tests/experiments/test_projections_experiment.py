"""``hearsight experiment projections`` on a tiny random frame_mlp and a tiny FSDD-layout corpus."""

import argparse
import json

import numpy as np
import pytest
import soundfile as sf

from experiments import EXPERIMENTS
from experiments import projections as EX

LABELS = ["0", "1", "2"]


def _parser():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    exp = sub.add_parser("experiment").add_subparsers(dest="experiment", required=True)
    EX.add_arguments(exp.add_parser("projections", help=EX.HELP))
    return parser


def _corpus(root):
    """Digits 0-2 as sines (0.5 s at 8 kHz, a pitch per digit); takes 0-1 test, 10-11 train,
    5 valid (FSDD's own split rule)."""
    root.mkdir()
    t = np.arange(4000) / 8000.0
    for d in range(3):
        for take in (0, 1, 5, 10, 11):
            f = 300.0 * (d + 1) + 40.0 * take
            wave = 0.5 * np.sin(2 * np.pi * f * t) * np.hanning(t.size)
            sf.write(root / f"{d}_spk_{take}.wav", wave.astype(np.float32), 8000)
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from flax import nnx

    from data.features import soomro_logmel
    from models import registry
    from models.architectures import FrameMLP
    from models.checkpoint import save_checkpoint

    tmp = tmp_path_factory.mktemp("proj")
    mp = pytest.MonkeyPatch()
    mp.setenv("HEARSIGHT_HOME", str(tmp / "home"))

    def tiny(*, n_classes, input_shape, rngs):
        return FrameMLP(n_classes, input_shape, hidden=12, depth=2, rngs=rngs)

    # The registered factory builds 5 x 1000 units; a checkpoint is rebuilt through the
    # registry, so the tiny factory must stay registered while the experiment loads it.
    mp.setitem(registry.ARCHITECTURES, "frame_mlp", tiny)
    model = tiny(n_classes=3, input_shape=(80, 11), rngs=nnx.Rngs(0))
    save_checkpoint(tmp / "model", model, {
        "arch": "frame_mlp", "arch_kwargs": {"n_classes": 3, "input_shape": [80, 11]},
        "labels": LABELS, "features": soomro_logmel().to_dict()})
    corpus = _corpus(tmp / "fsdd")
    args = _parser().parse_args([
        "experiment", "projections", "--model", str(tmp / "model"), "--corpus",
        f"fsdd:{corpus}", "--out", str(tmp / "out"), "--frames-per-layer", "120",
        "--train-frames", "150", "--methods", "pca,pivotmds,ae", "--quality-n", "120",
        "--pivots", "20", "--ae-epochs", "3", "--ae-batch-size", "32"])
    assert EXPERIMENTS[args.experiment] is EX
    result = EXPERIMENTS[args.experiment].run(args)
    yield tmp, args, result
    mp.undo()


def test_writes_every_layer_and_method(setup, capsys):
    tmp, args, result = setup
    saved = json.loads((tmp / "out" / "results.json").read_text())
    assert saved["layers"] == ["dense1", "dense2"] and saved["methods"] == ["pca", "pivotmds", "ae"]
    assert saved["n_test_frames"] == 120 and saved["n_train_frames"] == 150
    assert saved["dims"] == {"dense1": 12, "dense2": 12}
    for layer in ("dense1", "dense2"):
        for method in ("pca", "pivotmds", "ae"):
            r = saved["results"][layer][method]
            assert r["n"] == 120 and r["seconds"] >= 0
            for key in ("procrustes_distance", "distance_correlation", "trustworthiness",
                        "continuity", "knn_preservation"):
                assert 0.0 <= r[key] <= 1.0, (layer, method, key, r[key])
            assert np.isfinite(r["mutual_information"])
        assert saved["results"][layer]["ae"]["epochs_run"] == 3
    assert saved["paper_table1"]["procrustes_distance"] == [0.90, 0.98]
    table = (tmp / "out" / "table.md").read_text()
    assert table == EX.render_table(saved)
    assert "| layer | PD PCA | PD PivotMDS | PD AE | MI PCA |" in table
    assert table.count("| dense1 |") == 2 and "PD 0.90–0.98" in table
    # Which pivots a PivotMDS figure used is recorded and said (the default: max-min).
    assert saved["settings"]["pivot_strategy"] == "maxmin" and saved["settings"]["pivots"] == 20
    assert "PivotMDS: 20 pivots, max-min (farthest-point) pivots." in table
    older = {**saved, "settings": {k: v for k, v in saved["settings"].items()
                                   if k != "pivot_strategy"}}
    assert "pivot choice not recorded" in EX.render_table(older)


def test_pca_row_has_the_known_procrustes_distance(setup):
    """For PCA scores y = X V₂, PD(X, y) = 1 − (λ₁ + λ₂) / Σλ (the explained-variance ratio),
    and by Eckart–Young no 2-D layout can score lower. Recomputed here from the same frames
    with scikit-learn's PCA."""
    from sklearn.decomposition import PCA

    from data.corpora import open_corpus
    from data.dataset import load_split
    from engine.predictor import Predictor

    tmp, args, result = setup
    predictor = Predictor.load(args.model)
    test = load_split(open_corpus(args.corpus), "test", predictor.params)
    pairs = EX.sample_frames(test.x, n=120, min_level=-3.0, rng=np.random.default_rng(0))
    acts, _ = EX.frame_activations(predictor, test.x, pairs)
    for layer, x in acts.items():
        evr = PCA(n_components=2).fit(x.astype(np.float64)).explained_variance_ratio_.sum()
        per = result["results"][layer]
        assert per["pca"]["procrustes_distance"] == pytest.approx(1.0 - evr, abs=2e-3)
        for method in ("pivotmds", "ae"):
            assert per[method]["procrustes_distance"] >= per["pca"]["procrustes_distance"] - 2e-3


def test_sample_frames_keeps_only_audible_frames():
    feats = np.full((2, 4, 6), -5.0, np.float32)
    feats[0, 1, 2] = -1.0
    feats[1, 0, [0, 5]] = -2.5
    pairs = EX.sample_frames(feats, n=10, min_level=-3.0, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(pairs, [[0, 2], [1, 0], [1, 5]])
    two = EX.sample_frames(feats, n=2, min_level=-3.0, rng=np.random.default_rng(0))
    assert len(two) == 2 and {tuple(p) for p in two} <= {(0, 2), (1, 0), (1, 5)}
    with pytest.raises(ValueError, match="min-level"):
        EX.sample_frames(feats, n=2, min_level=0.5, rng=np.random.default_rng(0))


def test_rejects_bad_requests():
    assert EX.parse_methods("umap, ae") == ("umap", "ae")
    for bad in ("lda", "", "pca,pca"):
        with pytest.raises(ValueError, match="--methods"):
            EX.parse_methods(bad)
    with pytest.raises(ValueError, match="frame_mlp"):
        EX.check_arch("ddevis_cnn")
    EX.check_arch("frame_mlp")
    args = _parser().parse_args(["experiment", "projections", "--model", "m", "--corpus", "c",
                                 "--out", "o"])
    assert (args.frames_per_layer, args.methods, args.seed) == (5000, EX.DEFAULT_METHODS, 0)
    args.k = 3000
    with pytest.raises(ValueError, match="--k"):
        EX.run(args)
