"""The model's own input as the Maximise and Strips pages change it, picture it and play it.

Both pages optimise ``x`` of shape ``predictor.input_shape`` directly, whatever the model
takes:

* a **waveform** (wav2vec2, HuBERT, ...): ``x`` is the wave, kept in ``[-1, 1]`` by projection
  (clipped after every step), not by a ``tanh`` parametrisation: the current clip, which may
  touch full scale, is then a valid start as it is (``atanh(±1)`` is infinite), a step keeps
  its length ``lr`` in amplitude units (RMS-normalised gradients), and it is the same box
  projection the feature path has always used. It is shown as the predictor's display STFT
  (``predictor.picture``) and heard as it is (``predictor.hear``).
* **hearsight's own features**: max-normalised log10, kept in ``[floor, 0]`` as before; heard
  by Griffin-Lim; the only space a decoder prior exists for.
* **another model's features** (AST's filter bank, Whisper's log-mel): kept in
  ``[predictor.floor, ceiling]``, the floor being the features of silence and the ceiling the
  largest feature value of full-scale references (white noise and a sine at full scale), so
  no optimised value is louder than a real clip can be; heard through the features' inverse.

A predictor that does not answer the input-space questions (an older duck-typed one with
only ``params``) is taken to be hearsight's features, as it always was.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

WAVE_BOX = (-1.0, 1.0)
# Noise-to-class starts N(mean, sigma²) and the spread added to the clip's other starts
# (class-to-class). Features: Soomro et al.'s N(0, 0.1) centred in the box, 0.05 around the
# clip, as before. A waveform: 0.05 (-26 dBFS RMS) of white noise and 0.01 around the clip,
# audible but far from full scale, so the box rarely binds at the start.
FEATURE_SIGMAS = (0.1, 0.05)
WAVE_SIGMAS = (0.05, 0.01)
# L∞ strip budgets: 0.3 log10 units of a [-4, 0] box (the Strips page's default); the same
# share of another model's feature range; 0.01 of full scale for a waveform (-40 dBFS).
FEATURE_BUDGET, WAVE_BUDGET = 0.3, 0.01


@dataclass(frozen=True, eq=False)
class InputSpace:
    """What the optimising pages need to know about one model's input.

    Attributes:
      kind: ``"waveform"`` or ``"features"``.
      shape: one input's shape (``predictor.input_shape``).
      box: ``(low, high)`` every optimised input value stays in.
      own_features: hearsight's own max-normalised features (a decoder prior's space).
      sample_rate, n_samples: of the audio the inputs are heard as.
      picture_range: ``(low, high)`` colour range of the input's picture.
      picture_axis: ``(sample_rate, hop_length)`` of a linear-Hz STFT picture, else
        ``(None, None)`` (rows labelled by index, or by ``row_hz``).
      row_hz: ``(rows,)`` centre frequencies of a picture whose rows are not linear in Hz
        (another model's mel rows), else ``None``.
      samples_per_frame: input steps of one picture column (jitter is given in columns).
      sigmas: ``(noise start, spread around the clip)``.
      budget: the Strips page's default L∞ budget; budget_unit: its unit in words.
    """

    kind: str
    shape: tuple[int, ...]
    box: tuple[float, float]
    own_features: bool
    sample_rate: int
    n_samples: int
    picture_range: tuple[float, float]
    picture_axis: tuple[int | None, int | None]
    row_hz: np.ndarray | None
    samples_per_frame: int
    sigmas: tuple[float, float]
    budget: float
    budget_unit: str

    @property
    def noise_mean(self) -> float:
        """Centre of the box: ``floor / 2`` of hearsight's ``[floor, 0]``, 0 for a waveform."""
        return (self.box[0] + self.box[1]) / 2


_SPACES: dict = {}
_SPACES_LOCK = threading.Lock()


def input_space(predictor) -> InputSpace:
    """The :class:`InputSpace` of ``predictor`` (computed once per predictor)."""
    with _SPACES_LOCK:
        hit = _SPACES.get(id(predictor))
        if hit is not None and hit[0] is predictor:
            return hit[1]
    space = _make_space(predictor)
    with _SPACES_LOCK:
        _SPACES[id(predictor)] = (predictor, space)  # the predictor kept: its id stays its own
    return space


def _make_space(predictor) -> InputSpace:
    params = predictor.params
    kind = getattr(predictor, "input_kind", "features")
    shape = tuple(int(d) for d in getattr(predictor, "input_shape", params.shape))
    sr = int(getattr(predictor, "sample_rate", params.sample_rate))
    n = int(getattr(predictor, "n_samples", params.n_samples))
    pp = getattr(predictor, "picture_params", params)
    axis = (pp.sample_rate, pp.hop_length) if pp is not None and pp.kind == "stft" else (None, None)
    if kind == "waveform":
        return InputSpace(kind, shape, WAVE_BOX, False, sr, n, (float(pp.floor), 0.0), axis,
                          None, int(pp.hop_length), WAVE_SIGMAS, WAVE_BUDGET, "sample amplitude")
    if pp is not None:  # hearsight's own features: max-normalised log10 in [floor, 0]
        box = (float(pp.floor), 0.0)
        return InputSpace(kind, shape, box, True, sr, n, box, axis, None, 1, FEATURE_SIGMAS,
                          FEATURE_BUDGET, "log10 units")
    box = (float(predictor.floor), feature_ceiling(predictor))
    budget = float(f"{FEATURE_BUDGET * (box[1] - box[0]) / 4.0:.2g}")
    return InputSpace(kind, shape, box, False, sr, n, box, (None, None),
                      np.asarray(predictor.picture_frequencies(), np.float64), 1, FEATURE_SIGMAS,
                      budget, "feature units")


def feature_ceiling(predictor) -> float:
    """The largest feature value of full-scale references: uniform white noise in [-1, 1]
    (seeded) and a sine at a sixteenth of the sample rate (1 kHz at 16 kHz), peak 1.
    At least ``floor + 1`` (a model whose features do not grow with level)."""
    n, sr = predictor.n_samples, predictor.sample_rate
    noise = np.random.default_rng(0).uniform(-1.0, 1.0, n)
    tone = np.sin(2 * np.pi * (sr / 16) * np.arange(n) / sr)
    top = float(np.max(predictor.features(np.stack([noise, tone]).astype(np.float32))))
    return max(top, float(predictor.floor) + 1.0)


def picture_of(predictor, x: np.ndarray) -> np.ndarray:
    """The ``(freq, time)`` picture of one model input (``predictor.picture``; a predictor
    without one takes feature inputs, which are their own picture)."""
    x = np.asarray(x, np.float32)
    picture = getattr(predictor, "picture", None)
    return np.asarray(picture(x[None])[0]) if picture is not None else x


def hear(predictor, x: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """``(n_samples,)`` audio of one model input (``predictor.hear``: the wave itself, or
    Griffin-Lim of features with phase from ``seed``)."""
    x = np.asarray(x, np.float32)
    if hasattr(predictor, "hear"):
        return np.asarray(predictor.hear(x[None], seed=seed)[0])
    import jax

    from engine.inversion import spectrogram_to_audio

    return np.asarray(spectrogram_to_audio(x, predictor.params, key=jax.random.PRNGKey(seed)))


def same_input(space: InputSpace, other) -> bool:
    """Whether a second predictor (the separate classifier) takes inputs of ``space``."""
    return other is not None and input_space(other).shape == space.shape and \
        input_space(other).kind == space.kind


def picture_figure(space: InputSpace, picture: np.ndarray, *, title: str, height: int,
                   value_label: str = "log10", frame_axis: bool = False):
    """A figure of one input's picture in the space's colour range. Linear-Hz STFT pictures
    get seconds and Hz (unless ``frame_axis``: frames and bins, the narrow cards' axes);
    another model's mel rows are placed at their real frequencies (:mod:`viz.picture`)."""
    from viz.plots import spectrogram_plot

    if space.row_hz is not None and space.row_hz.size == picture.shape[0] > 1:
        from viz.picture import picture_plot

        return picture_plot(picture, space.row_hz, duration_s=space.n_samples / space.sample_rate,
                            title=title, value_range=space.picture_range, height=height,
                            value_label=value_label)
    sr, hop = (None, None) if frame_axis else space.picture_axis
    return spectrogram_plot(picture, sample_rate=sr, hop_length=hop, title=title,
                            value_range=space.picture_range, height=height,
                            value_label=value_label)
