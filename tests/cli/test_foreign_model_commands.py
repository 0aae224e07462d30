"""``predict``, ``evaluate``, ``activations``, ``project`` and ``experiment`` on a tiny random
Hugging Face wav2vec2 classifier (``hf:FOLDER``, labels yes / no / maybe).

Known answers: the probabilities printed sum to 1 and equal the predictor's on the same wave;
evaluate's accuracy is the fraction of clips whose argmax of ``predictor.run`` is their label;
an utterance-level store has one row per clip and each layer's own width (conv 16, layer 32,
pooled 8), its rows the time means of the forward's activations; a frame-level store has
clips × that layer's frames rows (3199 / 799 / 399), and the vector layer is left out;
experiments tied to hearsight's own checkpoints refuse in one line naming why.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from cli.main import main
from data.activations_read import open_activation_store

LABELS = ("yes", "no", "maybe")
RATE = 16000
FRAMES = {"conv1": 3199, "conv2": 799, "conv3": 399, "layer1": 399, "layer2": 399}
DIMS = {"conv1": 16, "conv2": 16, "conv3": 16, "layer1": 32, "layer2": 32, "pooled": 8}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """``folder:`` corpus of 9 synthesised 1 s clips, three per label (tones and noise)."""
    root = tmp_path_factory.mktemp("yes-no-maybe")
    rng = np.random.default_rng(3)
    t = np.arange(RATE) / RATE
    for j, label in enumerate(LABELS):
        (root / label).mkdir()
        for k in range(3):
            wave = 0.3 * np.sin(2 * np.pi * (150 + 400 * j + 60 * k) * t) + rng.normal(0, 0.02, RATE)
            sf.write(root / label / f"spk{k}_{j}.wav", wave.astype(np.float32), RATE)
    return root


@pytest.fixture(scope="module")
def w2v(tiny_hf, tiny_hf_predictor):
    """``(spec, predictor)`` of the tiny wav2vec2 folder."""
    return f"hf:{tiny_hf('wav2vec2')}", tiny_hf_predictor("wav2vec2")


def _serve_cached(monkeypatch, spec, predictor):
    """Commands get the session's ``predictor`` for ``spec`` (one load and compile per test
    run; :func:`test_predict_prints_a_label_and_probabilities_summing_to_one` loads for real)."""
    import engine.predictor as EP

    real = EP.load_predictor

    def load(s, **kw):
        return predictor if str(s) == spec else real(s, **kw)
    monkeypatch.setattr(EP, "load_predictor", load)
    return spec, predictor


@pytest.fixture()
def cached(w2v, monkeypatch):
    return _serve_cached(monkeypatch, *w2v)


@pytest.fixture()
def cached_ast(tiny_hf, tiny_hf_predictor, monkeypatch):
    """The tiny AST (log-mel filter-bank input (24, 64)) served like :func:`cached`."""
    return _serve_cached(monkeypatch, f"hf:{tiny_hf('ast')}", tiny_hf_predictor("ast"))


def _direct(predictor, corpus):
    """Items of the corpus, and ``predictor.run`` of their waves (the answers to compare)."""
    from data.corpora import open_corpus
    from data.dataset import load_waves

    items = open_corpus(f"folder:{corpus}", progress=False).split("all")
    waves, kept, _ = load_waves(items, predictor.params)
    probs, acts = predictor.run(predictor.features(waves))
    return kept, waves, probs, acts


def test_predict_prints_a_label_and_probabilities_summing_to_one(w2v, corpus, capsys):
    spec, predictor = w2v
    wav = corpus / "no" / "spk1_1.wav"
    assert main(["predict", "--model", spec, "--json", str(wav)]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["top"] in LABELS and set(record["probs"]) == set(LABELS)
    assert sum(record["probs"].values()) == pytest.approx(1.0, abs=1e-5)
    from data.audio import prepare_wave

    want = predictor.predict_waves(prepare_wave(str(wav), predictor.params)[None])[0]
    got = np.array([record["probs"][label] for label in predictor.labels])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert record["top"] == LABELS[int(np.argmax(want))]


def test_evaluate_accuracy_is_the_fraction_predictor_run_gets_right(cached, corpus, capsys):
    spec, predictor = cached
    kept, _, probs, _ = _direct(predictor, corpus)
    truth = np.array([predictor.labels.index(it.label) for it in kept])
    want = float(np.mean(np.argmax(probs, axis=1) == truth))
    assert main(["evaluate", "--model", spec, "--corpus", f"folder:{corpus}", "--split", "all",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 9 and result["labels"] == list(LABELS)
    assert result["accuracy"] == pytest.approx(want)
    assert np.sum(result["confusion"]) == 9 and np.trace(result["confusion"]) == round(9 * want)


def test_utterance_store_has_a_row_per_clip_and_each_layers_width(cached, corpus, tmp_path,
                                                                   capsys):
    spec, predictor = cached
    out = tmp_path / "utt"
    assert main(["activations", "--model", spec, "--corpus", f"folder:{corpus}", "--split",
                 "all", "--out", str(out), "--batch-size", "4"]) == 0
    store = open_activation_store(out)
    assert store.level == "utterance" and store.layers == tuple(DIMS)
    assert {n: store.info(n)["dim"] for n in store.layers} == DIMS
    assert all(store.info(n)["rows"] == 9 for n in store.layers)
    kept, _, probs, acts = _direct(predictor, corpus)
    meta = store.meta("layer1")
    order = [[it.id for it in kept].index(i) for i in meta["item_id"]]
    np.testing.assert_allclose(store.layer_matrix("layer1"), acts["layer1"].mean(axis=1)[order],
                               atol=1e-4)
    np.testing.assert_allclose(store.layer_matrix("pooled"), acts["pooled"][order], atol=1e-4)
    assert list(meta["prediction"]) == [LABELS[i] for i in np.argmax(probs, axis=1)[order]]
    assert store.manifest["meta"]["labels"] == list(LABELS)
    assert store.manifest["meta"]["model"] == spec
    assert "layer2: 9 rows x 32" in capsys.readouterr().out

    sidecar = tmp_path / "proj.parquet"  # every layer of the store laid out, aligned
    assert main(["project", "--activations", str(out), "--method", "pca", "--out", str(sidecar),
                 "--quality-n", "0", "--json"]) == 0
    side = json.loads(capsys.readouterr().out)
    assert side["layers"] == list(DIMS) and side["n"] == 9
    assert {n: s["dim"] for n, s in side["per_layer"].items()} == DIMS


def test_frame_store_keeps_each_layers_own_frame_count(cached, corpus, tmp_path, capsys):
    spec, predictor = cached
    out = tmp_path / "frames"
    assert main(["activations", "--model", spec, "--corpus", f"folder:{corpus}", "--split",
                 "all", "--level", "frame", "--out", str(out)]) == 0
    store = open_activation_store(out)
    assert store.layers == tuple(FRAMES)  # pooled has no time axis
    assert {n: store.info(n)["rows"] for n in store.layers} == {n: 9 * f for n, f in
                                                                FRAMES.items()}
    conv1 = store.meta("conv1")
    assert conv1["frame"].max() == FRAMES["conv1"] - 1 and conv1["item_id"].nunique() == 9
    kept, _, _, acts = _direct(predictor, corpus)
    first = conv1["item_id"].iloc[0]
    rows = store.layer_matrix("conv1")[:FRAMES["conv1"]]
    np.testing.assert_allclose(rows, acts["conv1"][[it.id for it in kept].index(first)], atol=1e-4)
    text = capsys.readouterr().out
    assert "conv1: 28791 rows x 16 (3199 frames per clip)" in text
    assert "layer1: 3591 rows x 32 (399 frames per clip)" in text
    assert "left out at frame level (no time axis): pooled" in text


def test_frame_store_naming_a_vector_layer_says_it_has_no_time_axis(cached, corpus, tmp_path,
                                                                     capsys):
    spec, _ = cached
    out = tmp_path / "bad"
    assert main(["activations", "--model", spec, "--corpus", f"folder:{corpus}", "--split",
                 "all", "--level", "frame", "--layers", "layer2,pooled", "--out", str(out)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert last.startswith("hearsight activations: error: ") and "['pooled'] have no time axis" in last
    assert not out.exists()


@pytest.mark.parametrize("name, extra, reason", [
    ("projections", [], "needs a hearsight 'frame_mlp' checkpoint"),
    ("faithfulness", ["--n", "2"], "of a (frequency, time) model input"),
    ("actmax", ["--separate", "SPEC"], "runs on hearsight checkpoint folders only"),
], ids=["projections", "faithfulness", "actmax"])
def test_experiments_tied_to_a_2d_or_own_model_refuse_in_one_line(cached, corpus, tmp_path,
                                                                 capsys, name, extra, reason):
    spec, _ = cached
    extra = [spec if e == "SPEC" else e for e in extra]
    argv = ["experiment", name, "--model", spec, "--out", str(tmp_path / name), *extra]
    if name != "actmax":
        argv += ["--corpus", f"folder:{corpus}"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert reason in err and spec in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / name).exists()


@pytest.mark.slow  # ~50 s: two attribution methods and the curves compile on a bridged model
def test_faithfulness_runs_on_a_feature_input_model(cached_ast, corpus, tmp_path, capsys):
    """AST takes (24, 64) filter banks: patches move on them; each deletion curve starts at
    the target's probability of the untouched input and each insertion curve ends there."""
    from data.corpora import open_corpus
    from data.dataset import load_waves

    spec, predictor = cached_ast
    out = tmp_path / "faith"
    assert main(["experiment", "faithfulness", "--model", spec, "--corpus", f"folder:{corpus}",
                 "--split", "all", "--n", "3", "--batch", "3", "--methods",
                 "saliency,grad_cam", "--steps", "4", "--patch", "4x8", "--json"]
                + ["--out", str(out)]) == 0
    saved = json.loads((out / "faithfulness.json").read_text())
    assert saved["model"] == spec and saved["n"] == 3
    assert saved["settings"]["grad_cam_layer"] == "conv1"  # the patch embedding, freq x time
    items = {it.id: it for it in open_corpus(f"folder:{corpus}", progress=False).split("all")}
    waves, _, _ = load_waves([items[i] for i in saved["ids"]], predictor.params)
    probs, _ = predictor.run(predictor.features(waves))
    p_target = float(np.mean(np.max(probs, axis=1)))  # --target predicted
    for name in ("saliency", "grad_cam", "random"):
        curves = saved["mean_curves"][name]
        assert curves["deletion"][0] == pytest.approx(p_target, abs=1e-4), name
        assert curves["insertion"][-1] == pytest.approx(p_target, abs=1e-4), name
