"""``hf:PATH``: every family's bridged forward equals PyTorch eager (logits, every exposed
layer, input gradients) and compiles once per batch size; bad folders are refused."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("transformers")
if importlib.util.find_spec("torchax") is None:  # a plain import fails on torch 2.13 (compat.py)
    pytest.skip("torchax is not installed", allow_module_level=True)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from foreign_builders import FAMILIES, LABELS, save_tiny  # noqa: E402

from models.contract import describe, load_model  # noqa: E402
from models.foreign.bridge import prepare_module  # noqa: E402

os.environ["HF_HUB_OFFLINE"] = "1"
FAST = ("wav2vec2", "ast", "whisper")  # one per input path; the rest are slow
TARGET = 1


def _family_params(fast=FAST):
    return [f if f in fast else pytest.param(f, marks=pytest.mark.slow) for f in FAMILIES]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return lambda family: save_tiny(family, tmp_path_factory.mktemp(family))


def _inputs(model, rng, batch: int) -> np.ndarray:
    """Random model inputs: waveforms, or the JAX features of random waveforms."""
    waves = rng.uniform(-0.5, 0.5, (batch, model.input.n_samples)).astype(np.float32)
    if model.input.kind == "waveform":
        return waves
    return np.asarray(jax.vmap(model.input.features)(waves))


def _torch_input(model, x):
    """``(keyword, tensor)`` the PyTorch model takes for the contract input ``x`` (a leaf tensor
    with ``requires_grad``): the extractor's normalisation in torch, or the transpose."""
    if model.info["family"] == "audio-spectrogram-transformer":
        return "input_values", x.transpose(1, 2)
    if model.info["family"] == "whisper":
        return "input_features", x
    mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    return "input_values", (x - mean) / torch.sqrt(var + 1e-7)


def _original(folder: Path):
    return tf.AutoModelForAudioClassification.from_pretrained(folder, local_files_only=True).eval()


def _torch_reference(ref, model, x: np.ndarray):
    """Logits, channels-last layer outputs and the input gradient of the original model."""
    subs, outs = dict(ref.named_modules()), {}
    for layer, path in _paths(model, ref.base_model_prefix).items():
        if layer == "pooled":
            subs[path].register_forward_pre_hook(lambda m, a, n=layer: outs.__setitem__(n, a[0]))
        else:
            subs[path].register_forward_hook(
                lambda m, a, o, n=layer: outs.__setitem__(n, o[0] if isinstance(o, tuple) else o))
    leaf = torch.tensor(x, requires_grad=True)
    key, value = _torch_input(model, leaf)
    logits = ref(**{key: value}).logits
    logits[:, TARGET].sum().backward()
    grad = leaf.grad.numpy()
    acts = {k: _channels_last(model.layer(k).kind, v.detach().numpy()) for k, v in outs.items()}
    return logits.detach().numpy(), acts, grad


def _channels_last(kind: str, a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, 1, -1) if kind in ("time", "freq_time") else a


def _paths(model, base: str) -> dict[str, str]:
    """Layer name -> submodule path in the original model, written out per family."""
    fam = model.info["family"]
    if fam == "audio-spectrogram-transformer":
        convs, layers = [f"{base}.embeddings.patch_embeddings.projection"], f"{base}.layers"
    elif fam == "whisper":
        convs, layers = ["encoder.conv1", "encoder.conv2"], "encoder.layers"
    else:
        convs = [f"{base}.feature_extractor.conv_layers.{i}" for i in range(3)]
        layers = f"{base}.encoder.layers"
    out = {f"conv{i + 1}": p for i, p in enumerate(convs)}
    out.update({f"layer{i + 1}": f"{layers}.{i}" for i in range(2)})
    return {**out, "pooled": "classifier"}


@pytest.mark.parametrize("family", _family_params())
def test_family_matches_pytorch_eager(family, folders):
    folder = folders(family)
    model, ref = load_model(f"hf:{folder}"), _original(folder)
    assert model.labels == LABELS and model.info["adapter"] == "hf"
    assert model.layer_names == tuple(_paths(model, ref.base_model_prefix))
    x = _inputs(model, np.random.default_rng(0), 2)
    logits, acts = jax.jit(model.apply)(model.params, x)
    grad = jax.jit(jax.grad(lambda x: model.apply(model.params, x)[0][:, TARGET].sum()))(x)
    ref_logits, ref_acts, ref_grad = _torch_reference(ref, model, x)
    dev = {"logits": float(np.abs(np.asarray(logits) - ref_logits).max())}
    assert dev["logits"] < 1e-4, dev
    for name, ref in ref_acts.items():
        assert acts[name].shape == ref.shape == (2, *model.layer(name).shape), name
        dev[name] = float(np.abs(np.asarray(acts[name]) - ref).max())
        assert dev[name] < 1e-4, (name, dev)
    rel = float(np.abs(np.asarray(grad) - ref_grad).max() / np.abs(ref_grad).max())
    assert rel < 1e-3, rel
    print(json.dumps({"family": family, "max_abs": dev, "grad_rel": rel}))


@pytest.mark.parametrize("family", _family_params(fast=("wav2vec2",)))
def test_jitted_forward_compiles_once_per_batch_size(family, folders):
    model = load_model(f"hf:{folders(family)}")
    traces = []

    def forward(params, x):
        traces.append(x.shape)
        return model.apply(params, x)

    fwd = jax.jit(forward)
    rng = np.random.default_rng(1)
    for batch in (1, 1, 3, 3, 1):
        jax.block_until_ready(fwd(model.params, _inputs(model, rng, batch)))
    assert traces == [(1, *model.input.shape), (3, *model.input.shape)]


@pytest.mark.parametrize("family", ["whisper", pytest.param("ast", marks=pytest.mark.slow)])
def test_gradient_reaches_the_waveform_through_the_features(family, folders):
    model = load_model(f"hf:{folders(family)}")
    wave = np.random.default_rng(2).uniform(-0.5, 0.5, model.input.n_samples)

    def score(w):
        x = model.input.features(w)[None]
        return model.apply(model.params, x)[0][0, TARGET]

    g = np.asarray(jax.jit(jax.grad(score))(jnp.asarray(wave, jnp.float32)))
    assert np.isfinite(g).all() and np.abs(g).max() > 0


def test_describe_reports_what_was_detected(folders):
    model = load_model(f"hf:{folders('wav2vec2')}")
    d = describe(model)
    assert d["input"] == {"kind": "waveform", "sample_rate": 16000, "n_samples": 16000,
                          "duration_s": 1.0, "shape": [16000]}
    assert d["labels"] == list(LABELS) and d["adapter"] == "hf" and d["family"] == "wav2vec2"
    assert [(lay["name"], lay["kind"]) for lay in d["layers"]] == [
        ("conv1", "time"), ("conv2", "time"), ("conv3", "time"),
        ("layer1", "sequence"), ("layer2", "sequence"), ("pooled", "vector")]
    assert d["layers"][0]["shape"] == [3199, 16]  # (16000 - 10) // 5 + 1 frames, 16 channels
    # the weight-normed positional conv counts once baked (weight_g, weight_v -> weight)
    baked = prepare_module(_original(Path(model.spec[3:])))
    n_torch = sum(p.numel() for p in baked.state_dict().values() if p.is_floating_point())
    assert d["parameters"] == n_torch
    assert "aten.convolution.default" in d["ops"]
    json.dumps(d)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no folder .*save_pretrained"):
        load_model(f"hf:{tmp_path / 'nope'}")


def test_folder_without_config_is_a_clear_error(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="has no config.json"):
        load_model(f"hf:{tmp_path}")


def test_folder_without_feature_extractor_is_a_clear_error(folders, tmp_path):
    src = folders("hubert")
    for f in src.iterdir():
        if f.name != "preprocessor_config.json":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ValueError, match="no preprocessor_config.json"):
        load_model(f"hf:{tmp_path}")
