"""A model behind the contract (:class:`models.contract.LoadedModel`) as the pages see a model.

The pages, the engine's analyses and the CLI talk to a *predictor*: labels, how waves are
prepared, the model input of a batch of waves, a forward with every intermediate, a pure
``acts_fn`` for the analyses, and — because the input may be a raw waveform or features that
are not hearsight's own — a picture of any input, a way to hear it, and a silent baseline.
:class:`engine.predictor.Predictor` (hearsight's flax checkpoints) and
:class:`ContractPredictor` (any :class:`LoadedModel`: Hugging Face folders, PyTorch modules,
ONNX files) both answer the same questions, so a page asks ``predictor.input_kind`` only where
a waveform really is handled differently (a waveform is heard as it is; a feature input is
inverted by Griffin-Lim).

Pictures of a waveform model's input are hearsight's own log-magnitude STFT at the model's
sample rate (25 ms Hann windows every 10 ms, max-normalised log10, floor −4), so feature maps
resized to that grid can be played back like any spectrogram (:func:`engine.sonify`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from data.features import FeatureParams, features_batch, n_stft_frames

PICTURE_FLOOR = -4.0


def picture_params(sample_rate: int, n_samples: int) -> FeatureParams:
    """The display STFT of a waveform model: 25 ms Hann windows every 10 ms at its rate."""
    n_fft = max(16, int(round(0.025 * sample_rate)))
    n_fft += n_fft % 2
    hop = max(1, int(round(0.010 * sample_rate)))
    return FeatureParams(kind="stft", sample_rate=int(sample_rate),
                         duration_s=n_samples / sample_rate, n_fft=n_fft, hop_length=hop,
                         window="hann", floor=PICTURE_FLOOR, n_freq=n_fft // 2,
                         n_frames=n_stft_frames(n_samples, hop))


def row_frequencies(params: FeatureParams) -> np.ndarray:
    """Centre frequency in Hz of every row of ``params``' features (mel rows on the mel scale)."""
    if params.kind == "logmel":
        import librosa

        return np.asarray(librosa.mel_frequencies(
            params.n_mels + 2, fmin=params.fmin, fmax=params.fmax or params.sample_rate / 2)[1:-1])
    return np.arange(params.n_freq) * params.sample_rate / params.n_fft


def _softmax(z) -> np.ndarray:
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _bucket(n: int, max_batch: int) -> int:
    b = 1
    while b < n and b < max_batch:
        b *= 2
    return b


@dataclass(eq=False)
class ContractPredictor:
    """Any :class:`models.contract.LoadedModel` with the predictor interface of the pages.

    Attributes:
      loaded: the model behind the contract.
      max_batch: largest batch bucket of :meth:`run` (one compile per power of two up to it).
    """

    loaded: Any
    max_batch: int = 16
    _fns: dict = field(default_factory=dict, repr=False)

    # -- what the model is -------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        return list(self.loaded.labels)

    @property
    def arch(self) -> str:
        info = self.loaded.info
        return str(info.get("family") or info.get("architecture") or info.get("adapter", "model"))

    @property
    def directory(self) -> str:
        return self.loaded.spec

    @property
    def metadata(self) -> dict:
        return {"arch": self.arch, "labels": self.labels, "spec": self.loaded.spec,
                "corpus": "", "features": self.params.to_dict()}

    @property
    def model(self):
        """No flax module: weight histograms come from :meth:`layer_parameters`."""
        return None

    @property
    def layers(self):
        return tuple(self.loaded.layers)

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(self.loaded.layer_names)

    def layer_kind(self, name: str) -> str:
        return self.loaded.layer(name).kind

    @property
    def input_kind(self) -> str:
        return self.loaded.input.kind

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.loaded.input.shape)

    @property
    def sample_rate(self) -> int:
        return int(self.loaded.input.sample_rate)

    @property
    def n_samples(self) -> int:
        return int(self.loaded.input.n_samples)

    @cached_property
    def params(self) -> FeatureParams:
        """How waves are prepared (rate, length) and waveform inputs are pictured."""
        return picture_params(self.sample_rate, self.n_samples)

    @cached_property
    def floor(self) -> float:
        """The input value of silence (deletion baselines, occlusion fill, padding)."""
        return float(np.min(self.baseline_input()))

    def baseline_input(self) -> np.ndarray:
        """The model input of one silent clip, ``input_shape``."""
        return np.asarray(self.features(np.zeros((1, self.n_samples), np.float32))[0])

    # -- inputs ------------------------------------------------------------------------
    def features(self, waves: np.ndarray) -> np.ndarray:
        """``(n, n_samples)`` prepared waves → ``(n, *input_shape)`` model inputs."""
        waves = np.atleast_2d(np.asarray(waves, np.float32))
        if waves.shape[1] != self.n_samples:
            raise ValueError(f"{self.loaded.spec} takes {self.n_samples} samples "
                             f"({self.n_samples / self.sample_rate:g} s at {self.sample_rate} Hz), "
                             f"got {waves.shape[1]}")
        if self.input_kind == "waveform":
            return waves
        if "features" not in self._fns:
            self._fns["features"] = jax.jit(jax.vmap(self.loaded.input.features))
        return np.asarray(self._fns["features"](jnp.asarray(waves)))

    def picture(self, x: np.ndarray) -> np.ndarray:
        """``(n, freq, time)`` pictures of model inputs ``(n, *input_shape)``: feature inputs
        as they are, waveforms as the display STFT (:attr:`params`)."""
        x = np.asarray(x, np.float32)
        if self.input_kind == "waveform":
            return np.asarray(features_batch(np.atleast_2d(x), self.params))
        return x if x.ndim == 3 else x[None]

    @cached_property
    def picture_params(self) -> FeatureParams | None:
        """The FeatureParams of :meth:`picture` when they are hearsight's own, else None."""
        if self.input_kind == "waveform":
            return self.params
        return self.loaded.input.feature_params

    def picture_frequencies(self) -> np.ndarray:
        """Centre frequency (Hz) of every picture row, low first."""
        if self.picture_params is not None:
            return row_frequencies(self.picture_params)
        import librosa

        rows, family = self.input_shape[0], self.arch
        fmin = 20.0 if "spectrogram" in family or family == "ast" else 0.0
        return np.asarray(librosa.mel_frequencies(rows + 2, fmin=fmin, fmax=self.sample_rate / 2,
                                                  htk=fmin > 0)[1:-1])

    def hear(self, x: np.ndarray, *, n_iter: int = 32, seed: int = 0) -> np.ndarray:
        """``(n, n_samples)`` float32 audio of model inputs: a waveform as it is (clipped to
        [-1, 1]), features through their inverse and Griffin-Lim (peak 0.9)."""
        x = np.asarray(x, np.float32)
        if self.input_kind == "waveform":
            return np.clip(np.atleast_2d(x), -1.0, 1.0)
        from engine.inversion import griffin_lim, spectrogram_to_audio

        x = x if x.ndim == 3 else x[None]
        key = jax.random.PRNGKey(seed)
        space = self.loaded.input
        out = []
        for xi in x:
            if space.feature_params is not None:
                out.append(np.asarray(spectrogram_to_audio(xi, space.feature_params,
                                                           n_iter=n_iter, key=key)))
                continue
            inv = space.inverse
            mag = inv.to_magnitude(jnp.asarray(xi))
            wave = np.asarray(griffin_lim(mag, n_fft=inv.n_fft, hop_length=inv.hop_length,
                                          window=inv.window, length=self.n_samples,
                                          n_iter=n_iter, key=key))
            peak = float(np.max(np.abs(wave))) if wave.size else 0.0
            out.append((wave * (0.9 / peak) if peak > 0 else wave).astype(np.float32))
        return np.stack(out)

    def sonify_map(self, fmap: np.ndarray, *, n_iter: int = 32, seed: int = 0) -> np.ndarray:
        """One ``(h, w)`` activation map (rows low first, columns time) as sound: resized to
        the picture grid and inverted (d-DeVIS feature-map audio)."""
        from engine.sonify import sonify_feature_map

        target = self.picture_params or FeatureParams(
            kind="stft", sample_rate=self.sample_rate, duration_s=self.n_samples / self.sample_rate,
            n_fft=self.params.n_fft, hop_length=self.params.hop_length, window="hann",
            floor=PICTURE_FLOOR, n_freq=self.params.n_freq, n_frames=self.params.n_frames)
        return np.asarray(sonify_feature_map(np.asarray(fmap, np.float32), target,
                                             n_iter=n_iter, key=jax.random.PRNGKey(seed)))

    # -- forward -----------------------------------------------------------------------
    @property
    def _sharder(self):
        """Batches split over the local devices when there are several (engine.devices)."""
        if "sharder" not in self._fns:
            from engine.devices import Sharder

            self._fns["sharder"] = Sharder()
        return self._fns["sharder"]

    def _forward_jit(self):
        if "forward" not in self._fns:
            self._fns["forward"] = jax.jit(self.loaded.apply)
        return self._fns["forward"]

    def run(self, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Forward inputs ``(n, *input_shape)``: ``(probs (n, classes), intermediates)``.

        Batches are padded to a power-of-two bucket (with silence) and cut back, so the
        forward compiles once per bucket."""
        x = np.asarray(x, np.float32)
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"{self.loaded.spec} takes inputs of shape {self.input_shape}, "
                             f"got {x.shape[1:]}")
        fwd, logits, acts = self._forward_jit(), [], {}
        for start in range(0, len(x), self.max_batch):
            chunk = x[start:start + self.max_batch]
            n, b = len(chunk), _bucket(len(chunk), self.max_batch)
            if b > n:
                pad = np.broadcast_to(self.baseline_input(), (b - n, *self.input_shape))
                chunk = np.concatenate([chunk, pad])
            z, a = fwd(self._sharder.weights(self.loaded.params), self._sharder.batch(chunk))
            logits.append(np.asarray(z)[:n])
            for k, v in a.items():
                acts.setdefault(k, []).append(np.asarray(v)[:n])
        probs = _softmax(np.concatenate(logits))
        return probs, {k: np.concatenate(v) for k, v in acts.items()}

    @property
    def acts_fn(self):
        """Pure ``acts_fn(x, *, perturb=None, mask=None, replace=None) -> (logits, acts)``
        (stable object: the engine's jitted analyses take it as a static argument);
        interventions follow :func:`models.hooks.intervene`."""
        if "acts_fn" not in self._fns:
            self._fns["acts_fn"] = partial(_acts, self.loaded.apply, self.loaded.params)
        return self._fns["acts_fn"]

    @property
    def logits_fn(self):
        if "logits_fn" not in self._fns:
            acts_fn = self.acts_fn
            self._fns["logits_fn"] = lambda x: acts_fn(x)[0]
        return self._fns["logits_fn"]

    def predict_waves(self, waves: np.ndarray) -> np.ndarray:
        probs, _ = self.run(self.features(waves))
        return probs

    def predict_files(self, paths: list[str]) -> list[dict]:
        from engine.predictions import predict_files

        return predict_files(self, paths)

    def layer_parameters(self) -> dict[str, np.ndarray]:
        """Weight matrices (rank ≥ 2) by name, for the weight histograms."""
        flat = jax.tree_util.tree_flatten_with_path(self.loaded.params)[0]
        return {jax.tree_util.keystr(path).strip("[]'\"").replace("']['", "."): np.asarray(v)
                for path, v in flat if np.ndim(v) >= 2}


def _acts(apply, params, x, *, perturb=None, mask=None, replace=None):
    from models.hooks import intervening, make_intervention

    with intervening(make_intervention(perturb=perturb, mask=mask, replace=replace)):
        return apply(params, x)
