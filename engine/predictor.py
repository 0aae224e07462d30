"""A loaded model ready for interaction: features, forward with every intermediate, probabilities.

The server keeps one :class:`Predictor` per model for its whole life (d-DeVIS reloaded the
model from disk on every request); every call goes through one jitted, shape-bucketed forward.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data.features import FeatureParams, features_batch


@dataclass
class Predictor:
    """A checkpointed classifier with its feature parameters and a compiled forward.

    Attributes:
      model: the flax nnx module (eval mode).
      metadata: the checkpoint's ``metadata.json``.
      params: feature parameters the model was trained with.
      forward: :class:`engine.forward.Forward` returning logits, probs and intermediates.
    """

    model: Any
    metadata: dict
    params: FeatureParams
    forward: Any
    directory: str = ""
    _extra: dict = field(default_factory=dict)

    @classmethod
    def load(cls, directory: str | Path, trusted_arch: str | None = None) -> "Predictor":
        """Load a checkpoint folder (raises ``CheckpointError`` with the remedy when broken).

        ``trusted_arch``: the entry point the operator passed (``--arch``); see
        :func:`models.checkpoint.load_checkpoint`."""
        from engine.forward import make_forward
        from models.checkpoint import load_checkpoint

        model, metadata = load_checkpoint(directory, trusted_arch=trusted_arch)
        params = FeatureParams.from_dict(metadata["features"])
        model.eval()
        fwd = make_forward(model, floor=params.floor)
        return cls(model=model, metadata=metadata, params=params, forward=fwd,
                   directory=str(directory))

    @property
    def labels(self) -> list[str]:
        return list(self.metadata["labels"])

    @property
    def arch(self) -> str:
        return str(self.metadata["arch"])

    @property
    def acts_fn(self):
        """Pure ``acts_fn(x, *, perturb=None, mask=None, replace=None) -> (logits, acts)``.

        Eval mode, differentiable, the same object on every access (it is a static argument
        of the engine's jitted analyses, so a new object would recompile them). Interventions
        follow :func:`models.hooks.intervene`.
        """
        if "acts_fn" not in self._extra:
            self._extra["acts_fn"] = make_acts_fn(self.forward.graphdef, self.forward.state)
        return self._extra["acts_fn"]

    @property
    def logits_fn(self):
        """Pure ``logits_fn(x) -> logits`` (stable object, see :attr:`acts_fn`)."""
        if "logits_fn" not in self._extra:
            acts_fn = self.acts_fn
            self._extra["logits_fn"] = lambda x: acts_fn(x)[0]
        return self._extra["logits_fn"]

    def features(self, waves: np.ndarray) -> np.ndarray:
        """``(n, samples)`` prepared waveforms → ``(n, freq, time)`` features."""
        return features_batch(np.atleast_2d(waves), self.params)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Forward features ``(n, freq, time)``: ``(probs (n, classes), intermediates)``."""
        if self.arch == "frame_mlp":
            return self._run_frames(x)
        logits, acts = self.forward(x)
        return np.asarray(acts.get("probs", _softmax(logits))), acts

    def _run_frames(self, x: np.ndarray):
        # A frame model classifies every context window; the utterance's probabilities are
        # the mean of its frames' probabilities (frame-level activations are kept per frame).
        from models.architectures import FRAME_CONTEXT, frame_windows

        w = np.asarray(frame_windows(x, context=FRAME_CONTEXT, hop=1, floor=self.params.floor))
        n, t = w.shape[:2]
        logits, acts = self.forward(w.reshape(n * t, *w.shape[2:]))
        probs = _softmax(np.asarray(logits)).reshape(n, t, -1)
        acts = {k: np.asarray(v).reshape(n, t, *np.asarray(v).shape[1:]) for k, v in acts.items()}
        return probs.mean(axis=1), acts

    def predict_waves(self, waves: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, classes)`` of prepared waveforms."""
        probs, _ = self.run(self.features(waves))
        return probs

    def predict_files(self, paths: list[str]) -> list[dict]:
        """One record per file: probabilities of every class, or the reason it failed."""
        from engine.predictions import predict_files

        return predict_files(self, paths)

    # -- the questions every predictor answers (see engine.contract_predictor) ----------
    input_kind = "features"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.params.shape)

    @property
    def sample_rate(self) -> int:
        return int(self.params.sample_rate)

    @property
    def n_samples(self) -> int:
        return int(self.params.n_samples)

    @property
    def floor(self) -> float:
        return float(self.params.floor)

    @property
    def picture_params(self) -> FeatureParams:
        return self.params

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(getattr(self.forward, "layer_names", ()))

    def baseline_input(self) -> np.ndarray:
        return np.full(self.params.shape, self.params.floor, np.float32)

    def picture(self, x: np.ndarray) -> np.ndarray:
        """The inputs themselves: hearsight's features are already a time-frequency picture."""
        x = np.asarray(x, np.float32)
        return x if x.ndim == 3 else x[None]

    def picture_frequencies(self) -> np.ndarray:
        from engine.contract_predictor import row_frequencies

        return row_frequencies(self.params)

    def hear(self, x: np.ndarray, *, n_iter: int = 32, seed: int = 0) -> np.ndarray:
        """``(n, n_samples)`` audio of feature inputs (Griffin-Lim, peak 0.9)."""
        import jax

        from engine.inversion import spectrogram_to_audio

        key = jax.random.PRNGKey(seed)
        return np.stack([np.asarray(spectrogram_to_audio(xi, self.params, n_iter=n_iter, key=key))
                         for xi in self.picture(x)])

    def sonify_map(self, fmap: np.ndarray, *, n_iter: int = 32, seed: int = 0) -> np.ndarray:
        import jax

        from engine.sonify import sonify_feature_map

        return np.asarray(sonify_feature_map(np.asarray(fmap, np.float32), self.params,
                                             n_iter=n_iter, key=jax.random.PRNGKey(seed)))

    def layer_parameters(self) -> dict[str, np.ndarray]:
        return layer_parameters(self.model)


def is_contract_spec(spec) -> bool:
    """Whether ``spec`` names a model behind the contract (``hf:``, ``torch:``, ``onnx:``)."""
    from models.contract import ADAPTERS

    prefix, sep, rest = str(spec).partition(":")
    return bool(sep and rest) and prefix in ADAPTERS


def load_predictor(spec, *, trusted_arch: str | None = None):
    """The predictor of a model spec: ``hf:PATH``, ``torch:package.module:factory`` and
    ``onnx:FILE`` through :func:`models.contract.load_model`, anything else a hearsight
    checkpoint folder (:meth:`Predictor.load`)."""
    if is_contract_spec(spec):
        from engine.contract_predictor import ContractPredictor
        from models.contract import load_model

        return ContractPredictor(load_model(str(spec)))
    return Predictor.load(spec, trusted_arch=trusted_arch)


def make_acts_fn(graphdef, state):
    """A pure forward over a split nnx model returning logits and every sown intermediate."""
    from flax import nnx

    from models.architectures import call_with_intermediates
    from models.hooks import intervening, make_intervention

    def acts_fn(x, *, perturb=None, mask=None, replace=None):
        fn = make_intervention(perturb=perturb, mask=mask, replace=replace)
        with intervening(fn):
            return call_with_intermediates(nnx.merge(graphdef, state), x)

    return acts_fn


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def named_weights(model) -> dict[str, np.ndarray]:
    """Trainable arrays of a flax nnx module by dotted path, e.g. ``convs.0.kernel``."""
    from flax import nnx

    from models.architectures import variable_value

    state = nnx.state(model, nnx.Param)
    flat = state.flat_state() if hasattr(state, "flat_state") else nnx.to_flat_state(state)
    out = {}
    for path, leaf in flat:
        value = variable_value(leaf) if hasattr(leaf, "get_value") or hasattr(leaf, "value") else leaf
        out[".".join(str(p) for p in path)] = np.asarray(value)
    return out


def layer_parameters(model) -> dict[str, np.ndarray]:
    """Weights grouped per layer (kernels only, biases and norms left out) for histograms."""
    return {name.rsplit(".", 1)[0]: w for name, w in named_weights(model).items()
            if name.endswith("kernel")}
