"""``hearsight experiment faithfulness`` on a tiny FSDD-layout corpus and a hand-built model.

The model's class-0 logit is 4 × the mean of ``relu(pool + 4)`` over the low half of the
(2 × 2 average-pooled) spectrogram, class 1's over the high half: low tones are "0", high
tones "1". The corpus is six sine tones written at the model's 1000 Hz rate.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from data.features import FeatureParams, features_batch
from engine.attribution import METHODS, logits_from_acts, saliency
from engine.faithfulness import evaluate
from experiments import EXPERIMENTS
from experiments import faithfulness as XF
from experiments.plots import SIZE
from models.hooks import intervene

PARAMS = FeatureParams(sample_rate=1000, duration_s=0.2, n_fft=32, hop_length=16,
                       window="hann", n_freq=16, n_frames=12)


def acts_fn(x, *, perturb=None, mask=None, replace=None):
    b = x.shape[0]
    pool = x.reshape(b, 8, 2, 6, 2).mean(axis=(2, 4))[..., None]
    a = jax.nn.relu(jnp.concatenate([pool, 0.5 * pool], axis=-1) + 4.0)
    a = intervene("conv1", a, perturb=perturb, mask=mask, replace=replace)
    logits = 4.0 * jnp.stack([a[:, :4, :, 0].mean((1, 2)), a[:, 4:, :, 1].mean((1, 2))], -1)
    return logits, {"conv1": a}


class FakePredictor:
    labels = ["0", "1"]
    params = PARAMS

    def __init__(self):
        self.acts_fn, self.logits_fn = acts_fn, logits_from_acts(acts_fn)

    def features(self, waves):
        return features_batch(np.atleast_2d(waves), PARAMS)

    def run(self, x):
        logits, acts = acts_fn(jnp.asarray(x))
        return np.asarray(jax.nn.softmax(logits)), acts


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdd")
    t = np.arange(PARAMS.n_samples) / PARAMS.sample_rate
    for digit, hz in ((0, 60.0), (1, 400.0)):
        for take in range(4):  # takes 0–4 are FSDD's test split; take 5+ train
            wave = 0.5 * np.sin(2 * np.pi * (hz + 7 * take) * t)
            sf.write(root / f"{digit}_alice_{take if take < 3 else 7}.wav", wave, PARAMS.sample_rate)
    return root


def _args(corpus, out, *extra):
    parser = argparse.ArgumentParser()
    XF.add_arguments(parser.add_subparsers(dest="experiment").add_parser("faithfulness"))
    return parser.parse_args(["faithfulness", "--model", "fake", "--corpus", f"fsdd:{corpus}",
                              "--out", str(out), *extra])


@pytest.fixture(scope="module")
def result(corpus, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr(XF, "load_predictor", lambda _: FakePredictor())
    out = tmp_path_factory.mktemp("out")
    args = _args(corpus, out, "--n", "5", "--batch", "4", "--steps", "6", "--ig-steps", "8",
                 "--patch", "2x2")
    assert EXPERIMENTS[args.experiment] is XF and EXPERIMENTS[args.experiment].run is XF.run
    try:
        yield XF.run(args), out
    finally:
        mp.undo()


def test_writes_documented_json_and_pngs(result):
    res, out = result
    saved = json.loads((out / "faithfulness.json").read_text())
    for key in ("summary", "beats_random", "n", "settings", "timings", "mean_curves",
                "fractions", "methods", "ids", "plots"):
        assert key in saved, key
    assert saved["n"] == 5 and len(saved["ids"]) == 5  # 5 of the 6 test clips
    assert all(i.split("_")[-1] in "012" for i in saved["ids"])
    assert set(saved["summary"]) == set(METHODS) | {"random"}
    for name, s in saved["summary"].items():
        assert s["n"] == 5 and s["deletion_auc_std"] >= 0, name
    for name, b in saved["beats_random"].items():
        s, r = saved["summary"][name], saved["summary"]["random"]
        assert b["deletion"] == (s["deletion_auc_mean"] < r["deletion_auc_mean"])
        assert b["both"] == (b["deletion"] and b["insertion"])
        assert b["insertion_margin"] == pytest.approx(s["insertion_auc_mean"] -
                                                      r["insertion_auc_mean"])
    assert saved["settings"]["patch"] == [2, 2] and saved["settings"]["grad_cam_layer"] == "conv1"
    assert saved["timings"]["total_s"] > 0
    for name in ("deletion.png", "insertion.png"):
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.size == SIZE


def test_summary_matches_a_direct_computation(result, corpus):
    """Batches of 4 with a padded last batch give the same AUCs as one batch of 5."""
    from data.corpora import open_corpus
    from data.dataset import load_waves

    res, _ = result
    items = {it.id: it for it in open_corpus(f"fsdd:{corpus}", progress=False).split("test")}
    waves, _, _ = load_waves([items[i] for i in res["ids"]], PARAMS)
    x = features_batch(waves, PARAMS)
    logits_fn = logits_from_acts(acts_fn)
    target = np.argmax(np.asarray(logits_fn(jnp.asarray(x))), axis=-1)
    ref = evaluate(logits_fn, x, target, {"saliency": saliency(logits_fn, x, target)},
                   key=jax.random.PRNGKey(9), patch=(2, 2), n_steps=6, floor=PARAMS.floor)
    for mode in ("deletion", "insertion"):
        got = res["summary"]["saliency"][f"{mode}_auc_mean"]
        assert got == pytest.approx(float(ref["saliency"][f"{mode}_auc"].mean()), rel=1e-5)
    p0 = np.asarray(jax.nn.softmax(logits_fn(jnp.asarray(x))))[np.arange(5), target]
    assert res["mean_curves"]["random"]["deletion"][0] == pytest.approx(p0.mean(), rel=1e-5)
    assert res["mean_curves"]["saliency"]["insertion"][-1] == pytest.approx(p0.mean(), rel=1e-5)


def test_subset_is_seeded_and_parsers_validate():
    a = XF.subset(50, 10, seed=3)
    np.testing.assert_array_equal(a, XF.subset(50, 10, seed=3))
    assert len(set(a)) == 10 and np.all(np.diff(a) > 0) and a.max() < 50
    assert not np.array_equal(a, XF.subset(50, 10, seed=4))
    np.testing.assert_array_equal(XF.subset(3, 10, seed=0), [0, 1, 2])
    assert XF.parse_patch("8x5") == (8, 5)
    assert XF.parse_methods("all") == METHODS
    assert XF.parse_methods("saliency, occlusion") == ("saliency", "occlusion")
    for bad in ("8", "0x5", "ax5"):
        with pytest.raises(ValueError, match="patch"):
            XF.parse_patch(bad)
    with pytest.raises(ValueError, match="methods"):
        XF.parse_methods("lime")


def test_true_labels_must_be_model_classes(corpus, tmp_path, monkeypatch):
    class Digits(FakePredictor):
        labels = ["zero", "one"]

    monkeypatch.setattr(XF, "load_predictor", lambda _: Digits())
    with pytest.raises(ValueError, match="not classes of the model"):
        XF.run(_args(corpus, tmp_path, "--n", "2", "--target", "true", "--methods", "saliency"))
