"""``hf:PATH``: a local Hugging Face audio classifier folder behind the model contract.

The folder holds ``config.json``, the weights and ``preprocessor_config.json`` (what
``save_pretrained`` of the model and its feature extractor writes). It is opened offline
(``local_files_only=True``) with ``AutoModelForAudioClassification`` and
``AutoFeatureExtractor``, then lowered to JAX (:mod:`models.foreign.bridge`).

Families and their input space:

- wav2vec2, HuBERT, WavLM, Data2Vec-audio (and any model with the same layout: a
  ``feature_extractor.conv_layers`` stack and ``encoder.layers``): ``"waveform"``. The
  extractor's zero-mean/unit-variance normalisation runs in JAX inside ``apply``, so
  gradients reach the raw waveform. Length: ``duration_s`` (default 1 s).
- AST: ``"features"``, the Kaldi filter bank ``(n_mels, max_length)`` computed in JAX
  (:mod:`models.foreign.hf_features`); the waveform is as long as ``max_length`` frames.
- Whisper-encoder classifiers (``WhisperForAudioClassification``): ``"features"``, the
  log-mel ``(n_mels, frames)`` in JAX; the waveform is the extractor's chunk (30 s for real
  checkpoints).

Exposed layers: every convolution of the feature encoder (``conv1``, ...; kind ``"time"``,
AST's patch embedding ``"freq_time"``; Whisper's before its GELU), every transformer layer's
output (``layer1``, ...; ``"sequence"``) and the classifier's input (``pooled``,
``"vector"``). Labels from ``config.id2label``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp

from models.contract import InputSpace, LoadedModel
from models.foreign.bridge import Tap, bridge_module
from models.foreign.hf_features import ast_features, whisper_features

_WAVEFORM = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")


@dataclass(frozen=True)
class Family:
    """How one model type is wired: input argument, conv stack, transformer layers."""

    argument: str            # keyword of the model's forward: input_values / input_features
    convs: tuple[str, ...]   # dotted paths of the feature encoder's convolutions
    conv_kind: str           # "time" or "freq_time"
    layers: str              # dotted path of the ModuleList of transformer layers


def _family(model, model_type: str, spec: str) -> Family:
    base = model.base_model_prefix
    if model_type == "audio-spectrogram-transformer":
        return Family("input_values", (f"{base}.embeddings.patch_embeddings.projection",),
                      "freq_time", f"{base}.layers")
    if model_type == "whisper":
        return Family("input_features", ("encoder.conv1", "encoder.conv2"), "time",
                      "encoder.layers")
    inner = getattr(model, base, None)
    convs = getattr(getattr(inner, "feature_extractor", None), "conv_layers", None)
    if convs is not None and hasattr(getattr(inner, "encoder", None), "layers"):
        return Family("input_values",
                      tuple(f"{base}.feature_extractor.conv_layers.{i}" for i in range(len(convs))),
                      "time", f"{base}.encoder.layers")
    raise ValueError(f"{spec}: model type {model_type!r} is not one the hf adapter knows "
                     f"(wav2vec2-like {list(_WAVEFORM)}, audio-spectrogram-transformer, "
                     "whisper); wrap it as torch:package.module:factory with a declared spec")


def _check_folder(path: Path, spec: str) -> dict:
    if not path.is_dir():
        raise ValueError(f"{spec}: no folder {path}; give the path of a folder written by "
                         "save_pretrained (config.json, weights, preprocessor_config.json)")
    config = path / "config.json"
    if not config.is_file():
        raise ValueError(f"{spec}: {path} has no config.json, so it is not a Hugging Face model "
                         "folder; save the model there with model.save_pretrained(path)")
    if not (path / "preprocessor_config.json").is_file():
        raise ValueError(f"{spec}: {path} has no preprocessor_config.json; save the feature "
                         "extractor there too with feature_extractor.save_pretrained(path)")
    return json.loads(config.read_text())


def _open(path: Path, spec: str):
    try:
        import transformers
    except Exception as e:  # noqa: BLE001 - a broken torchvision raises RuntimeError here
        raise ImportError(f"{spec}: Hugging Face models need transformers (pip install "
                          "'hearsight[foreign]'); if torchvision is installed beside a CPU torch, "
                          f"pip uninstall torchvision: {type(e).__name__}: {e}") from e
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar in the server
    try:
        model = transformers.AutoModelForAudioClassification.from_pretrained(
            path, local_files_only=True)
        extractor = transformers.AutoFeatureExtractor.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{spec}: transformers could not open {path} as an audio classifier "
                         f"with its feature extractor: {e}") from e
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    return model, extractor


def _input(model_type: str, extractor, duration_s: float | None):
    """``(InputSpace, to_model)`` of a family: what ``apply`` takes and how it feeds the model."""
    sr = int(extractor.sampling_rate)
    if model_type == "audio-spectrogram-transformer":
        n = round(duration_s * sr) if duration_s else 400 + 160 * (extractor.max_length - 1)
        features, inverse = ast_features(extractor, n)
        shape = (extractor.num_mel_bins, extractor.max_length)
        return (InputSpace("features", sr, n, shape, features=features, inverse=inverse),
                lambda x: jnp.swapaxes(x, 1, 2))  # AST takes (batch, time, mel)
    if model_type == "whisper":
        n = round(duration_s * sr) if duration_s else int(extractor.n_samples)
        features, inverse = whisper_features(extractor, n)
        shape = (extractor.feature_size, extractor.nb_max_frames)
        return InputSpace("features", sr, n, shape, features=features, inverse=inverse), None
    n = round((duration_s or 1.0) * sr)
    space = InputSpace("waveform", sr, n, (n,))
    return space, (_zero_mean_unit_var if getattr(extractor, "do_normalize", False) else None)


def _zero_mean_unit_var(x: jax.Array) -> jax.Array:
    """The wav2vec2 extractor's per-clip normalisation (``zero_mean_unit_var_norm``)."""
    mean = x.mean(axis=-1, keepdims=True)
    return (x - mean) / jnp.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + 1e-7)


def load_hf(path: str, *, duration_s: float | None = None) -> LoadedModel:
    """The Hugging Face folder ``path`` behind the contract (see the module docstring).

    Args:
      path: a local folder written by ``save_pretrained``; nothing is downloaded.
      duration_s: clip length for waveform models (default 1 s); AST and Whisper default
        to the length their position embeddings were made for.
    """
    spec = f"hf:{path}"
    folder = Path(path).expanduser()
    config = _check_folder(folder, spec)
    model, extractor = _open(folder, spec)
    model_type = config.get("model_type", model.config.model_type)
    fam = _family(model, model_type, spec)
    space, to_model = _input(model_type, extractor, duration_s)
    n_layers = len(model.get_submodule(fam.layers))
    taps = [Tap(f"conv{i + 1}", p, fam.conv_kind) for i, p in enumerate(fam.convs)]
    taps += [Tap(f"layer{i + 1}", f"{fam.layers}.{i}", "sequence") for i in range(n_layers)]
    taps.append(Tap("pooled", "classifier", "vector", capture="input"))
    id2label = model.config.id2label
    labels = [id2label[i] for i in sorted(id2label)]
    return bridge_module(model, spec=spec, input_space=space, taps=taps, labels=labels,
                         call=lambda m, x: getattr(m(**{fam.argument: x}), "logits"),
                         to_model=to_model,
                         info={"adapter": "hf", "family": model_type,
                               "architecture": type(model).__name__})
