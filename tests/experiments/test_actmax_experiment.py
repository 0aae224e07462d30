"""``hearsight experiment actmax`` on tiny linear classifiers with known answers.

The own classifier's logits are ``<W_c, x>``; the "separate" one's are ``-<W_c, x>``, so it
predicts the *least* likely class of the own one: every start that fools the own classifier is
rejected by the separate one (separate = both = 0 %), while a copy of the own classifier agrees
on every start (separate = own).
"""

from __future__ import annotations

import argparse
import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from experiments import EXPERIMENTS
from experiments.actmax import (PAPER, Setup, add_arguments, heatmap_matrix, parse_classes,
                                run_experiment, table, write_results)
from models.prior import Prior

SHAPE = (6, 5)
LABELS = ["a", "b", "c"]
W = jnp.asarray(np.random.default_rng(0).normal(0, 1, (3, *SHAPE)), jnp.float32)
D = jnp.asarray(np.random.default_rng(1).normal(0, 1, (4, SHAPE[0] * SHAPE[1])), jnp.float32)


def own_fn(x):
    logits = jnp.einsum("bft,cft->bc", x, W)
    return logits, {"logits": logits}


def anti_fn(x):
    logits = -jnp.einsum("bft,cft->bc", x, W)
    return logits, {"logits": logits}


PRIOR = Prior(lambda z: (-4.0 * jax.nn.sigmoid(z @ D)).reshape(-1, *SHAPE), 4)
SETUP = Setup(shape=SHAPE, floor=-4.0, per_class=5, steps=10, chunk=2, batch=3,
              lr_input=0.3, lr_latent=1.0, start_mean=-2.0)


@pytest.fixture(scope="module")
def results():
    return run_experiment(own_fn, anti_fn, LABELS, [0, 2], setup=SETUP, prior=PRIOR,
                          key=jax.random.PRNGKey(0), progress=False)


def test_known_success_rates_with_an_anti_correlated_separate_classifier(results):
    assert results["labels"] == ["a", "c"]
    for lab in ("a", "c"):
        for space in ("input", "latent"):
            cell = results["per_class"][lab][space]
            assert cell["own"] == 100.0
            assert cell["separate"] == 0.0 and cell["both"] == 0.0
    assert results["overall"]["input"] == {"own": 100.0, "separate": 0.0, "both": 0.0}
    assert results["paper"] == PAPER
    assert PAPER["own"] == {"input": 96.8, "latent": 92.1}
    assert PAPER["separate"] == {"input": 7.6, "latent": 67.5}


def test_a_copy_of_the_classifier_agrees_and_no_prior_leaves_latent_empty():
    r = run_experiment(own_fn, own_fn, LABELS, [1], setup=SETUP, key=jax.random.PRNGKey(1),
                       progress=False)
    cell = r["per_class"]["b"]
    assert cell["latent"] is None and r["overall"]["latent"] is None
    assert cell["input"]["own"] == cell["input"]["separate"] == cell["input"]["both"] == 100.0
    assert r["config"]["prior"] is False and r["config"]["per_class"] == 5


def test_results_json_and_heatmap_are_written(results, tmp_path):
    paths = write_results(results, tmp_path / "out")
    data = json.loads(paths[0].read_text())
    assert set(data) == {"units", "labels", "per_class", "overall", "paper", "config", "seconds"}
    assert set(data["seconds"]) == {"input", "latent"}
    assert set(data["per_class"]["a"]) == {"input", "latent"}
    assert set(data["overall"]["latent"]) == {"own", "separate", "both"}
    m, rows, cols = heatmap_matrix(data)
    assert m.shape == (2, 4) and rows == ["a", "c"]
    assert cols == ["own · input", "separate · input", "own · latent", "separate · latent"]
    np.testing.assert_array_equal(m, [[100, 0, 100, 0], [100, 0, 100, 0]])
    img = Image.open(io.BytesIO(paths[1].read_bytes()))
    assert img.format == "PNG" and img.size[1] > 2 * 18
    rows = [line.split() for line in table(data).splitlines()]
    assert ["own", "input", "100.0", "96.8"] in rows
    assert ["separate", "latent", "0.0", "67.5"] in rows


def test_parser_and_class_lists():
    parser = argparse.ArgumentParser()
    add_arguments(parser.add_subparsers(dest="experiment").add_parser("actmax"))
    args = parser.parse_args(["actmax", "--model", "A", "--separate", "B", "--per-class", "3",
                              "--classes", "b,0", "--out", "D"])
    assert (args.per_class, args.steps, args.chunk, args.prior) == (3, 20, 16, None)
    assert parse_classes(args.classes, LABELS) == [1, 0]
    assert parse_classes("all", LABELS) == [0, 1, 2]
    with pytest.raises(ValueError, match="neither a label nor an index"):
        parse_classes("zebra", LABELS)
    with pytest.raises(ValueError, match="per_class, steps and batch >= 1"):
        Setup(shape=SHAPE, floor=-4.0, per_class=0)


@pytest.mark.slow  # ~70 s on the shared CPU: builds, saves and loads three checkpoints
def test_run_end_to_end_on_tiny_untrained_checkpoints(tmp_path, capsys):
    from data.features import FeatureParams
    from models.checkpoint import save_checkpoint
    from models.registry import build_model
    from experiments.actmax import run

    feats = FeatureParams(kind="logmel", sample_rate=16000, n_fft=512, hop_length=178,
                          window="hann", floor=-5.0, n_frames=8, n_mels=8, fmax=8000.0)
    for name, arch, seed, n in (("A", "soomro_cnn", 0, 3), ("B", "soomro_cnn", 1, 3),
                                ("AE", "spectrogram_ae", 0, 1)):
        model = build_model(arch, n_classes=n, input_shape=(8, 8), seed=seed)
        save_checkpoint(tmp_path / name, model, {
            "arch": arch, "arch_kwargs": {"n_classes": n, "input_shape": [8, 8]},
            "labels": LABELS[:n], "features": feats, "corpus": {"kind": "synthetic"}})
    parser = argparse.ArgumentParser()
    add_arguments(parser.add_subparsers(dest="experiment").add_parser("actmax"))
    args = parser.parse_args(["actmax", "--model", str(tmp_path / "A"), "--separate",
                              str(tmp_path / "B"), "--prior", str(tmp_path / "AE"),
                              "--per-class", "2", "--steps", "2", "--classes", "c",
                              "--out", str(tmp_path / "out")])
    assert EXPERIMENTS[args.experiment].run is run
    assert EXPERIMENTS[args.experiment].run(args) == 0
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["labels"] == ["c"] and data["config"]["prior"] is True
    for space in ("input", "latent"):
        cell = data["per_class"]["c"][space]
        assert all(v in (0.0, 50.0, 100.0) for v in cell.values())  # 2 starts each
        assert cell["both"] <= min(cell["own"], cell["separate"])
    assert "wrote" in capsys.readouterr().out
