"""The default decoder prior: trained once on the model's corpus, cached next to the model and
reused; trained deterministically; its progress bar shows the reconstruction loss; and
``--arch`` help text that lists every registered architecture."""

from __future__ import annotations

import argparse
import json

import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf
from flax import nnx

import models.prior as prior_mod
from data.features import FeatureParams
from models.prior import (PriorRecipe, default_prior_dir, ensure_default_prior, load_prior,
                          train_prior)
from models.registry import ARCHITECTURES, arch_help

# 16 mel rows × 16 frames of 0.25 s at 8 kHz: a 16×16 autoencoder trains in seconds.
PARAMS = FeatureParams(kind="logmel", sample_rate=8000, duration_s=0.25, n_fft=128,
                       hop_length=64, window="hann", floor=-5.0, n_freq=65, n_frames=16,
                       n_mels=16, fmin=20.0, fmax=4000.0)
TINY = PriorRecipe(epochs=2, batch_size=8, learning_rate=3e-3, seed=0)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A folder with a hearsight model's metadata whose corpus is a tiny FSDD-layout folder of
    tones (digit 0: 500 Hz, digit 1: 1500 Hz; takes 0-4 test, 5-9 valid, 10-13 train)."""
    tmp_path = tmp_path_factory.mktemp("prior")
    audio = tmp_path / "audio"
    audio.mkdir()
    t = np.arange(2000) / 8000.0
    for digit, hz in ((0, 500.0), (1, 1500.0)):
        for take in range(14):
            wave = 0.5 * np.sin(2 * np.pi * hz * (1 + 0.01 * take) * t) * np.hanning(len(t))
            sf.write(audio / f"{digit}_tone_{take}.wav", wave.astype(np.float32), 8000)
    model = tmp_path / "models" / "default-test"
    model.mkdir(parents=True)
    meta = {"format_version": 1, "arch": "soomro_cnn",
            "arch_kwargs": {"n_classes": 2, "input_shape": list(PARAMS.shape)},
            "labels": ["0", "1"], "features": PARAMS.to_dict(), "corpus": f"fsdd:{audio}"}
    (model / "metadata.json").write_text(json.dumps(meta))
    return model


@pytest.fixture(scope="module")
def first_use(model_dir):
    """The first :func:`ensure_default_prior` call, with its training calls and log lines."""
    calls, lines = [], []
    real = prior_mod.train_prior
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(prior_mod, "train_prior", lambda *a, **k: calls.append(1) or real(*a, **k))
        prior = ensure_default_prior(model_dir, recipe=TINY, progress=False, log=lines.append)
    return prior, calls, list(lines)


def test_arch_help_lists_every_registered_architecture(monkeypatch):
    text = arch_help()
    assert "spectrogram_ae" in text and "package.module:factory" in text
    assert all(name in text for name in ARCHITECTURES)
    # Derived from the registry, not hard-coded: a newly registered name shows up.
    monkeypatch.setitem(ARCHITECTURES, "my_new_arch", ARCHITECTURES["frame_mlp"])
    assert "my_new_arch" in arch_help()
    parser = argparse.ArgumentParser(prog="hearsight train")
    parser.add_argument("--arch", help=arch_help())
    assert "spectrogram_ae" in parser.format_help()


def test_first_use_trains_and_caches_next_to_the_model(model_dir, first_use):
    _, calls, lines = first_use
    out = default_prior_dir(model_dir)
    assert out.parent == model_dir.parent and out.name.startswith("default-test-prior")
    assert len(calls) == 1 and "first use" in lines[0] and str(out) in lines[0]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["arch"] == "spectrogram_ae" and meta["features"] == PARAMS.to_dict()
    assert meta["prior"]["recipe"] == TINY.to_dict() and len(meta["metrics"]["history"]) == 2
    assert meta["split"] == {"train": 8, "valid": 10, "test": 10}
    assert 0 < meta["metrics"]["test"]["mse"] < 25  # (floor -5)² bounds any error


def test_second_call_reuses_the_cache_without_training(model_dir, first_use, monkeypatch):
    first, _, _ = first_use
    out = default_prior_dir(model_dir)
    mtime = (out / "metadata.json").stat().st_mtime_ns
    calls, lines = [], []
    monkeypatch.setattr(prior_mod, "train_prior", lambda *a, **k: calls.append(1))
    second = ensure_default_prior(model_dir, recipe=TINY, progress=False, log=lines.append)
    assert calls == [] and lines == []  # loaded, not trained, and silent
    assert (out / "metadata.json").stat().st_mtime_ns == mtime
    z = jnp.asarray(np.random.default_rng(0).normal(0, 0.1, (3, first.latent)), jnp.float32)
    a, b = np.asarray(first.decode_fn(z)), np.asarray(second.decode_fn(z))
    assert a.shape == (3, *PARAMS.shape) and a.max() < 0 and a.min() > PARAMS.floor
    np.testing.assert_array_equal(a, b)


def test_prior_encode_then_decode_is_the_autoencoder(model_dir, first_use):
    from models.checkpoint import load_checkpoint

    p, _, _ = first_use
    ae, _ = load_checkpoint(default_prior_dir(model_dir))
    x = jnp.asarray(np.random.default_rng(1).uniform(-5, 0, (2, *PARAMS.shape)), jnp.float32)
    np.testing.assert_allclose(np.asarray(p.decode_fn(p.encode_fn(x))), np.asarray(ae(x)),
                               atol=1e-5)
    assert load_prior(default_prior_dir(model_dir), PARAMS).encode_fn is not None


def test_another_recipe_retrains(model_dir, first_use):
    lines = []
    ensure_default_prior(model_dir, recipe=PriorRecipe(epochs=1, batch_size=8), progress=False,
                         log=lines.append)
    assert "first use" in lines[0]
    meta = json.loads((default_prior_dir(model_dir) / "metadata.json").read_text())
    assert meta["prior"]["recipe"]["epochs"] == 1 and len(meta["metrics"]["history"]) == 1


def _rank1(n, seed):
    rng = np.random.default_rng(seed)
    shape = np.linspace(0.1, 1.0, 16)[:, None] * np.ones((1, 16))
    return (-5.0 * rng.uniform(0.2, 1.0, (n, 1, 1)) * shape).astype(np.float32)


def test_tiny_prior_trains_deterministically():
    xtr, xva = _rank1(32, 0), _rank1(16, 1)
    recipe = PriorRecipe(epochs=3, batch_size=8, learning_rate=3e-3, seed=0)
    a, ra = train_prior(xtr, xva, recipe=recipe, progress=False)
    b, rb = train_prior(xtr, xva, recipe=recipe, progress=False)
    c, _ = train_prior(xtr, xva, recipe=PriorRecipe(epochs=3, batch_size=8, learning_rate=3e-3,
                                                    seed=1), progress=False)
    leaves = lambda m: [np.asarray(v) for v in jax_leaves(nnx.state(m, nnx.Param))]
    for u, v in zip(leaves(a), leaves(b)):
        np.testing.assert_array_equal(u, v)
    assert any(not np.array_equal(u, v) for u, v in zip(leaves(a), leaves(c)))
    assert [h["valid_loss"] for h in ra.history] == [h["valid_loss"] for h in rb.history]
    assert len(ra.history) == 3  # every epoch runs: no early stopping, no time budget
    # (that it learns is tests/models/test_train.py's autoencoder test; here: loss falls)
    assert ra.history[-1]["valid_loss"] < ra.history[0]["valid_loss"]


def jax_leaves(state):
    import jax

    return jax.tree_util.tree_leaves(state)


def test_prior_progress_bar_shows_reconstruction_loss_not_accuracy(capsys):
    train_prior(_rank1(16, 0), _rank1(8, 1), recipe=PriorRecipe(epochs=2, batch_size=8),
                progress=True)
    err = capsys.readouterr().err
    assert "decoder prior" in err and "recon_mse=" in err and "2/2" in err
    assert "acc=" not in err
