"""Helpers of the Edit & compare page: schema-driven parameter widgets, chain labels, the
edited clip fitted to the model's window, the prediction summary, one layer's figures and
difference for every layer kind, and layer distances.

Everything here except :func:`param_widgets` is a pure function of NumPy arrays and plain
dicts, so the page class in :mod:`serve.pages.compare` only wires widgets to them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import panel as pn

from data.edits import EDIT_SCHEMAS, apply_chain

SIGNED = ("db", "start_db", "end_db", "snr_db", "semitones")  # shown with an explicit sign
SLIDER_MAX_STEPS = 1000  # wider integer ranges (e.g. a seed) get a number box, not a slider


def _fmt(name: str, value) -> str:
    if isinstance(value, bool):
        return str(value)
    return f"{value:+g}" if name in SIGNED else f"{value:g}"


def edit_label(edit: dict) -> str:
    """A readable one-liner of one validated edit, e.g. ``gain(db=+6)`` or ``reverse()``."""
    params = ", ".join(f"{k}={_fmt(k, v)}" for k, v in edit.get("params", {}).items())
    return f"{edit['op']}({params})"


def download_name(clip_name: str, chain: list[dict], suffix: str = ".wav", *,
                  limit: int = 120) -> str:
    """A file name for a download of the edited clip: the clip's stem and its edits, e.g.
    ``three_theo_0_reverse_gain-db+6.wav`` (``three_theo_0_unedited.wav`` with no edits).

    Only letters, digits and ``._+-`` are kept (a name from an upload is untrusted); past
    ``limit`` characters the last edits are summarised as ``and-N-more``.

    Args:
      clip_name: the clip's display name (an upload's file name, a corpus item, ...).
      chain: the validated edits, oldest first.
      suffix: the file's extension (``".wav"``, ``".chain.json"``).
    """
    import re

    def clean(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-._")

    stem = clean(re.sub(r"\.(wav|flac|ogg|mp3)$", "", str(clip_name), flags=re.I))[:60] or "clip"
    edits = [clean(e["op"] + "".join(f"-{k}{_fmt(k, v)}" for k, v in e.get("params", {}).items()))
             for e in chain] or ["unedited"]
    budget = limit - len(stem) - len(suffix) - 1
    kept: list[str] = []
    for i, part in enumerate(edits):
        rest = len(edits) - i - 1
        tail = f"_and-{rest}-more" if rest else ""
        if len("_".join([*kept, part])) + len(tail) > budget:
            kept.append(f"and-{len(edits) - i}-more")
            break
        kept.append(part)
    return f"{stem}_{'_'.join(kept)}{suffix}"


def chain_markdown(chain: list[dict]) -> str:
    """The chain as a numbered Markdown list (oldest edit first), or a hint when empty."""
    if not chain:
        return "*No edits yet: the edited clip equals the original.*"
    return "\n".join(f"{i}. `{edit_label(e)}`" for i, e in enumerate(chain, start=1))


def _float_step(lo: float, hi: float) -> float:
    # A round step near 1/200 of the range, so slider values print without long decimals.
    raw = (hi - lo) / 200.0
    return float(10.0 ** np.floor(np.log10(raw))) if raw > 0 else 0.1


def param_widgets(op: str) -> dict[str, pn.widgets.Widget]:
    """One widget per parameter of ``EDIT_SCHEMAS[op]`` with its range and default.

    Floats get a FloatSlider, small integer ranges an IntSlider, huge integer ranges (a seed)
    an IntInput, booleans a Checkbox.
    """
    if op not in EDIT_SCHEMAS:
        raise ValueError(f"unknown edit op {op!r}; choose one of {sorted(EDIT_SCHEMAS)}")
    out: dict[str, pn.widgets.Widget] = {}
    for name, (kind, lo, hi, default) in EDIT_SCHEMAS[op].items():
        css = [f"hs-param-{name}"]
        if kind is bool:
            out[name] = pn.widgets.Checkbox(name=name, value=bool(default), css_classes=css)
        elif kind is int and hi - lo > SLIDER_MAX_STEPS:
            out[name] = pn.widgets.IntInput(name=name, start=int(lo), end=int(hi),
                                            value=int(default), css_classes=css)
        elif kind is int:
            out[name] = pn.widgets.IntSlider(name=name, start=int(lo), end=int(hi),
                                             value=int(default), css_classes=css)
        else:
            out[name] = pn.widgets.FloatSlider(name=name, start=float(lo), end=float(hi),
                                               value=float(default), step=_float_step(lo, hi),
                                               css_classes=css)
    return out


@dataclass(frozen=True)
class EditedClip:
    """The edited waveform ready for the model and what fitting it to the window did.

    Attributes:
      wave: ``(n_samples,)`` float32, peak-normalised.
      raw_samples: length in samples of the chain's output before fitting.
      note: a sentence when the length changed (trimmed / padded), else ``""``.
    """

    wave: np.ndarray
    raw_samples: int
    note: str


def edited_clip(wave: np.ndarray, sample_rate: int, chain: list[dict], *,
                n_samples: int) -> EditedClip:
    """``apply_chain``, :func:`data.audio.fit_to_window`, then clipping at full scale.

    No normalisation after the edits, so loudness edits reach the model: samples driven past
    ±1 are clipped, as a recorder would, and the note says how many (the features are
    normalised to the clip's maximum, so a gain that clips nothing changes nothing the model
    hears — the note says that too).

    Args:
      wave: ``(samples,)`` original float32 waveform at ``sample_rate`` Hz.
      chain: edits as accepted by :func:`data.edits.apply_chain`.
      n_samples: the model's window in samples.
    Raises:
      ValueError: from the chain (invalid edit, or an edit impossible on this clip).
    """
    from data.audio import fit_to_window

    raw = apply_chain(wave, sample_rate, chain)
    n = int(raw.shape[0])
    fitted = fit_to_window(raw, n_samples)
    clipped = float(np.mean(np.abs(fitted) > 1.0))
    fitted = np.clip(fitted, -1.0, 1.0)
    if n > n_samples:
        note = (f"The edits made the clip {n / sample_rate:.2f} s long; it was **trimmed** to "
                f"the model's {n_samples / sample_rate:.2f} s window (loudest part kept).")
    elif n < n_samples:
        note = (f"The edits made the clip {n / sample_rate:.2f} s long; it was **padded** with "
                f"silence (centred) to the model's {n_samples / sample_rate:.2f} s window.")
    else:
        note = ""
    if clipped > 0:
        note += (f" The edits drive {100 * clipped:.1f} % of the samples past full scale: they "
                 "are **clipped** (distorted), as a recorder would.")
    elif any(e.get("op") == "gain" for e in chain):
        note += (" A gain that clips nothing leaves the model's input unchanged: its features "
                 "are normalised to the clip's loudest point.")
    return EditedClip(wave=fitted.astype(np.float32), raw_samples=n, note=note.strip())


def top_class(probs: np.ndarray, labels: list[str]) -> tuple[str, float]:
    """``(label, probability)`` of the most likely class of ``probs`` ``(classes,)``."""
    i = int(np.argmax(probs))
    return str(labels[i]), float(probs[i])


def prediction_summary(probs_a: np.ndarray, probs_b: np.ndarray, labels: list[str]) -> str:
    """One line ``original → X (p) · edited → Y (p)`` naming both top classes."""
    (a, pa), (b, pb) = top_class(probs_a, labels), top_class(probs_b, labels)
    verdict = "same class" if a == b else "**prediction changed**"
    return f"original → **{a}** ({pa:.1%}) · edited → **{b}** ({pb:.1%}) — {verdict}"


def prediction_lines(probs_a: np.ndarray, probs_b: np.ndarray,
                     labels: list[str]) -> tuple[str, str, str]:
    """``(summary, original's line, edited's line)`` in Markdown."""
    lines = [f"**{name}:** {label} ({p:.1%})" for name, (label, p) in
             (("Original", top_class(probs_a, labels)), ("Edited", top_class(probs_b, labels)))]
    return prediction_summary(probs_a, probs_b, labels), *lines


def distance_figure(distances: dict[str, dict[str, float]]):
    """The per-layer distance chart of :func:`viz.featuremaps.layer_distances`' result, or
    None when no layer was compared."""
    from viz.compare import activation_distance_chart

    return activation_distance_chart(*distance_arrays(distances)) if distances else None


def filter_players(maps: tuple[np.ndarray, np.ndarray], predictor) -> list:
    """Audio players of the original's and the edited clip's sonified ``(rows, time)`` maps
    (a conv filter, or a time / sequence layer's whole image), at the predictor's rate."""
    from serve.analysis import sonify

    return [pn.pane.Audio(sonify(m, predictor), sample_rate=predictor.sample_rate, name=tag,
                          css_classes=[f"hs-filter-audio-{tag}"])
            for m, tag in zip(maps, ("original", "edited"))]


def layer_figures(act_a: np.ndarray, act_b: np.ndarray, layer: str, kind: str) -> list:
    """The original's and the edited clip's figures of one layer of one example: every filter
    of a ``"freq_time"`` map as a mosaic; a ``"time"`` / ``"sequence"`` layer ``(time, dim)``
    as a dims × time image, both on one colour range; a ``"vector"`` as unit bars."""
    from serve.analysis import layer_image
    from viz.featuremaps import feature_map_mosaic
    from viz.plots import dense_activation_bars, spectrogram_plot

    pairs = (("original", act_a), ("edited", act_b))
    if kind == "freq_time":
        return [feature_map_mosaic(a, title=f"{name}: {layer}", height=300)[0]
                for name, a in pairs]
    if kind == "vector":
        return [dense_activation_bars(a, title=f"{name}: {layer} ({a.shape[0]} units)")
                for name, a in pairs]
    images = [layer_image(a, kind) for a in (act_a, act_b)]
    lo = float(min(np.min(i) for i in images))
    hi = float(max(np.max(i) for i in images))
    unit = "channels" if kind == "time" else "dims"
    figs = []
    for (name, a), image in zip(pairs, images):
        title = f"{name}: {layer} ({a.shape[1]} {unit} × {a.shape[0]} frames)"
        fig = spectrogram_plot(image, sample_rate=None, palette="Viridis256", title=title,
                               value_range=(lo, hi if hi > lo else lo + 1.0), height=300,
                               value_label="activation")
        fig.yaxis.axis_label = "channel" if kind == "time" else "dimension"
        figs.append(fig)
    return figs


def difference_figure(a: np.ndarray, b: np.ndarray, *, title: str):
    """``b − a`` of one layer: a diverging image of two ``(rows, time)`` maps, or bars of two
    ``(units,)`` vectors."""
    from viz.compare import difference_map_plot
    from viz.plots import dense_activation_bars

    if np.ndim(a) == 1:
        return dense_activation_bars(np.asarray(b, np.float64) - np.asarray(a, np.float64),
                                     title=title, height=260)
    return difference_map_plot(a, b, title=title, height=260)


def distance_arrays(distances: dict[str, dict[str, float]]) -> tuple[list[str], list[float],
                                                                      list[float]]:
    """``(layers, cosine, rel_l2)`` lists from :func:`viz.featuremaps.layer_distances`."""
    layers = list(distances)
    return (layers, [distances[k]["cosine"] for k in layers],
            [distances[k]["rel_l2"] for k in layers])


def picture_name(predictor) -> str:
    """What the input's picture is: hearsight's log spectrogram (the model input), a waveform
    model's display spectrogram, or a foreign model's own features."""
    if predictor.input_kind == "waveform":
        return "log spectrogram of the wave"
    if predictor.picture_params is None:
        return f"{predictor.arch} input features"
    return "log spectrogram"


def side_panes(title: str, wave: np.ndarray, picture: np.ndarray, predictor, *,
               tag: str) -> list:
    """Heading, player (samples clipped to ±0.99), waveform and input picture of one clip.

    Args:
      wave: ``(predictor.n_samples,)`` float32 waveform at ``predictor.sample_rate`` Hz.
      picture: ``(freq, time)`` picture of ``wave``'s model input (``predictor.picture``),
        drawn on its real frequency axis (:func:`serve.analysis.picture_figure`).
      tag: ``"original"`` or ``"edited"``; names the player and its css class ``hs-audio-TAG``.
    """
    from serve.analysis import picture_figure
    from viz.plots import waveform_plot

    sr = predictor.sample_rate
    spec = picture_figure(picture, predictor, title=f"{title}: {picture_name(predictor)}",
                          height=220)
    return [pn.pane.Markdown(f"#### {title}"),
            pn.pane.Audio(np.clip(wave, -0.99, 0.99), sample_rate=sr, name=tag,
                          css_classes=[f"hs-audio-{tag}"]),
            pn.pane.Bokeh(waveform_plot(wave, sr, title=f"{title}: waveform", height=180)),
            pn.pane.Bokeh(spec)]


def page_layout(page):
    """The Edit & compare tab's layout: the editor column beside the comparison."""
    editor = pn.Column(
        "#### Edit chain", page.op_select, page.param_box, page.add_button,
        pn.Row(page.undo_button, page.redo_button, page.reset_button), page.chain_view,
        page.chain_upload, page.chain_download, page.wav_download, width=320)
    compare = pn.Column(
        page.header, page.length_note, pn.Row(page.side_a, page.side_b), page.summary,
        pn.Row(page.pred_a, page.pred_b), page.probs, "#### One layer, original and edited",
        pn.Row(page.layer_select, page.channel_select, page.listen_button), page.maps,
        page.diff_view, "#### Per-layer activation distance", page.distance_view,
        sizing_mode="stretch_width")
    return pn.Row(editor, compare, sizing_mode="stretch_width")
