"""Analyses several pages (and the server's warm-up) share: which activations are feature maps,
what kind every layer is and how it is drawn, how a feature map sounds, and how the model
input's picture is drawn with its real frequencies.

No widgets here; one example at a time (a session's current clip).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serve.config import FEATURE_MAP_AUDIO_ITERS

NOT_LAYERS = ("probs", "logits")  # outputs in a forward's intermediates, not layers to browse
_KIND_OF_RANK = {3: "freq_time", 2: "sequence", 1: "vector"}


def conv_layers(acts: dict) -> list[str]:
    """Names of spatial (freq, time, channels) activations of one example, in forward order."""
    return [k for k, v in acts.items() if np.ndim(v) == 3 and k not in NOT_LAYERS]


def layer_kinds(predictor, acts: dict) -> dict[str, str]:
    """``{layer: kind}`` of one example's activations, in forward order: the kinds the model
    declares (:class:`models.contract.LayerInfo`, a ContractPredictor's ``layers``), else by
    rank — ``(freq, time, channels)`` ``"freq_time"``, ``(time, dim)`` ``"sequence"``,
    ``(dim,)`` ``"vector"``. ``probs`` and ``logits`` are left out."""
    declared = {info.name: info.kind for info in getattr(predictor, "layers", ())}
    out = {}
    for name, act in acts.items():
        kind = declared.get(name) or _KIND_OF_RANK.get(np.ndim(act))
        if name not in NOT_LAYERS and kind is not None:
            out[name] = kind
    return out


def layer_image(act: np.ndarray, kind: str, channel: int | None = None) -> np.ndarray:
    """The 2-D, spectrogram-like picture ``(rows low first, time)`` of one layer's
    activations of one example: channel ``channel`` of a ``"freq_time"`` map, the whole
    ``(time, dim)`` activation of a ``"time"`` or ``"sequence"`` layer transposed to
    ``(dim, time)``. A ``"vector"`` layer has none (ValueError)."""
    a = np.asarray(act)
    if kind == "freq_time":
        if channel is None:
            raise ValueError("a freq_time layer needs a channel to draw one map")
        return a[:, :, channel]
    if kind in ("time", "sequence"):
        return a.T
    raise ValueError(f"a {kind!r} layer of shape {a.shape} has no time axis to draw")


# A map whose values differ by less than this fraction of their magnitude carries nothing to
# see or hear: a dead ReLU filter is exactly 0 everywhere, a filter whose weights are all zero
# is its bias everywhere. Relative, so that a model with tiny activations is not called silent.
SILENT_RTOL = 1e-6


def is_silent(image: np.ndarray) -> bool:
    """True when ``image`` (any shape: a filter's ``(freq, time)`` map, a layer's
    ``(dim, time)``) is constant — all zero for a filter that never fires on this clip —
    to :data:`SILENT_RTOL` of its magnitude."""
    a = np.asarray(image, np.float64)
    if a.size == 0:
        return True
    lo, hi = float(np.min(a)), float(np.max(a))
    return hi - lo <= SILENT_RTOL * max(abs(lo), abs(hi))


def channel_activity(act: np.ndarray) -> np.ndarray:
    """Activity ``(channels,)`` of every channel of one ``(freq, time, channels)`` map (or a
    ``(time, channels)`` layer): its mean absolute activation (a ReLU map's mean, its energy
    per cell), with silent channels (:func:`is_silent`) at −1 so that they rank below every
    live one — a constant map is the filter's bias, not a response to the clip."""
    a = np.asarray(act, np.float64)
    if a.ndim < 2:
        raise ValueError(f"channel activity needs (..., channels) activations, got {a.shape}")
    flat = a.reshape(-1, a.shape[-1])
    score = np.abs(flat).mean(axis=0)
    span = flat.max(axis=0) - flat.min(axis=0)
    size = np.maximum(np.abs(flat.max(axis=0)), np.abs(flat.min(axis=0)))
    return np.where(span <= SILENT_RTOL * size, -1.0, score)


def most_active_channel(act: np.ndarray) -> int:
    """The channel of ``act`` ``(freq, time, channels)`` with the largest
    :func:`channel_activity`: a live filter whenever the layer has one (else channel 0)."""
    return int(np.argmax(channel_activity(act)))


def most_changed_channel(act_a: np.ndarray, act_b: np.ndarray) -> int:
    """The channel whose map changed most from ``act_a`` to ``act_b`` (both
    ``(freq, time, channels)``): largest mean ``|b − a|``; when nothing changed (no edits
    yet), the most active channel of ``act_b``."""
    a, b = np.asarray(act_a, np.float64), np.asarray(act_b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"activations to compare differ in shape: {a.shape} vs {b.shape}")
    change = np.abs(b - a).reshape(-1, a.shape[-1]).mean(axis=0)
    return int(np.argmax(change)) if change.max() > 0 else most_active_channel(b)


def silent_note(what: str, image: np.ndarray, *, noun: str = "filter",
                best: int | None = None) -> str:
    """The HTML line shown instead of a blank map: ``what`` (already escaped, e.g.
    ``"<b>conv1 · 0</b>"``) is a silent ``noun`` for this clip, with its constant value and,
    when given, the most active (live) channel ``best`` of its layer to pick instead."""
    value = float(np.asarray(image).flat[0]) if np.size(image) else 0.0
    line = (f"{what}: this {noun} is silent for this clip — every value is {value:.3g}, so "
            "there is no map to draw and nothing to hear.")
    if best is not None:
        line += f" The most active filter of this layer for this clip is <b>{best}</b>."
    return f'<span class="hs-silent">{line}</span>'


def sonify(acts_map: np.ndarray, predictor, *, seed: int = 0) -> np.ndarray:
    """Audio ``(n_samples,)`` of one feature map ``(freq', time')``: the map stretched over the
    predictor's input picture and inverted by Griffin-Lim (``predictor.sonify_map``, see
    :func:`engine.sonify.sonify_feature_map`; ``FEATURE_MAP_AUDIO_ITERS`` iterations, seeded
    phase). ``predictor`` may also be hearsight ``FeatureParams``."""
    from data.features import FeatureParams

    if isinstance(predictor, FeatureParams):
        import jax

        from engine.sonify import sonify_feature_map

        return np.asarray(sonify_feature_map(acts_map, predictor, n_iter=FEATURE_MAP_AUDIO_ITERS,
                                             key=jax.random.PRNGKey(seed)))
    return np.asarray(predictor.sonify_map(acts_map, n_iter=FEATURE_MAP_AUDIO_ITERS, seed=seed))


@dataclass(frozen=True)
class PictureAxes:
    """How a predictor's input picture ``(rows, frames)`` is drawn.

    Attributes:
      row_hz: centre frequency (Hz) of every row (``predictor.picture_frequencies()``).
      linear: rows are hearsight's linear STFT bins, drawn in Hz from 0 to Nyquist.
      sample_rate, hop_length: the STFT's, when ``linear`` (else 0).
      duration_s: seconds the picture's columns span.
      value_range: colour range, or None for the picture's own range.
      value_label, title: what the colours and the picture are.
    """

    row_hz: np.ndarray
    linear: bool
    sample_rate: int
    hop_length: int
    duration_s: float
    value_range: tuple[float, float] | None
    value_label: str
    title: str


def picture_axes(predictor, n_frames: int) -> PictureAxes:
    """The :class:`PictureAxes` of ``predictor``'s pictures of ``n_frames`` columns."""
    pp = predictor.picture_params
    row_hz = np.asarray(predictor.picture_frequencies(), np.float64)
    waveform = predictor.input_kind == "waveform"
    if waveform:
        title = "Log spectrogram of the wave (display; the model takes the waveform)"
    elif pp is not None:
        title = "Log spectrogram (model input)"
    else:
        title = f"Model input: {predictor.arch} features ({len(row_hz)} mel rows)"
    if pp is None:
        return PictureAxes(row_hz, False, 0, 0, predictor.n_samples / predictor.sample_rate,
                           None, "feature value", title)
    return PictureAxes(row_hz, pp.kind == "stft", int(pp.sample_rate), int(pp.hop_length),
                       n_frames * pp.hop_length / pp.sample_rate, (float(pp.floor), 0.0),
                       "log10 magnitude", title)


def picture_range(axes: PictureAxes, picture: np.ndarray) -> tuple[float, float]:
    """The colour range of ``picture``: the axes' fixed one, else the picture's own."""
    if axes.value_range is not None:
        return axes.value_range
    lo, hi = float(np.min(picture)), float(np.max(picture))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def picture_figure(picture: np.ndarray, predictor, *, title: str | None = None,
                   height: int = 220):
    """The model input's picture ``(rows, frames)`` with its real frequencies: linear STFT
    rows in Hz (:func:`viz.plots.spectrogram_plot`), mel rows where they are, ticked at
    round frequencies (:func:`viz.picture.picture_plot`)."""
    from viz.picture import picture_plot
    from viz.plots import spectrogram_plot

    axes = picture_axes(predictor, np.shape(picture)[1])
    title = axes.title if title is None else title
    if axes.linear:
        return spectrogram_plot(picture, sample_rate=axes.sample_rate,
                                hop_length=axes.hop_length, title=title,
                                value_range=axes.value_range, height=height,
                                value_label=axes.value_label)
    return picture_plot(picture, axes.row_hz, duration_s=axes.duration_s, title=title,
                        value_range=picture_range(axes, picture), height=height,
                        value_label=axes.value_label)
