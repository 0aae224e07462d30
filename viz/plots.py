"""Bokeh builders for the Inspect page: waveform, spectrogram, class probabilities, dense units.

NumPy arrays in, Bokeh figures out; no server state. Shapes follow the project convention:
a waveform is ``(samples,)``, a spectrogram ``(freq, time)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Range1d
from bokeh.plotting import figure

from viz.figstyle import (BLUE, ORANGE, VERMILION, Palette, add_colour_bar, as_finite_array,
                          colour_mapper, new_figure)


def minmax_envelope(wave: np.ndarray, *, max_points: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Decimate a waveform to at most ``max_points`` points keeping every chunk's extremes.

    Each chunk of samples contributes its minimum and maximum in time order, so the line
    through them traces the same envelope as the full signal (no peak is lost, unlike
    plain subsampling).

    Args:
      wave: ``(samples,)`` waveform.
      max_points: upper bound on the returned length (>= 2).
    Returns:
      ``(index, value)``: sample indices (int64) and values, both ``(points,)``.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2, got {max_points}")
    n = wave.shape[0]
    if n <= max_points:
        return np.arange(n), wave
    # Equal chunks of ceil(n / (max_points // 2)) samples (the last one padded with its own
    # final sample), so one argmin/argmax over a reshaped view replaces a Python loop.
    size = -(-n // (max_points // 2))
    n_chunks = -(-n // size)
    blocks = np.pad(wave, (0, n_chunks * size - n), mode="edge").reshape(n_chunks, size)
    starts = np.arange(n_chunks) * size
    lo = np.minimum(blocks.argmin(axis=1) + starts, n - 1)
    hi = np.minimum(blocks.argmax(axis=1) + starts, n - 1)
    idx = np.sort(np.stack([lo, hi], axis=1), axis=1).reshape(-1)
    return idx, wave[idx]


def waveform_data(wave: np.ndarray, sample_rate: int, *,
                  max_points: int = 4000) -> tuple[dict, float, float]:
    """The waveform figure's source ``{t, amp}``, its duration (s) and y half-range."""
    w = as_finite_array(wave, name="wave", ndim=1, shape_doc="(samples,)")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    idx, values = minmax_envelope(w, max_points=max_points)
    return ({"t": idx / float(sample_rate), "amp": values},
            max(w.shape[0] / float(sample_rate), 1e-9), 1.05 * max(1.0, float(np.max(np.abs(w)))))


def waveform_plot(wave: np.ndarray, sample_rate: int, *, title: str = "Waveform",
                  max_points: int = 4000, height: int = 180) -> figure:
    """Amplitude against time, min/max-decimated to ``max_points`` for long clips.

    Args:
      wave: ``(samples,)`` float waveform, nominally in [-1, 1].
      sample_rate: Hz; the x axis is in seconds.
    """
    data, duration, lim = waveform_data(wave, sample_rate, max_points=max_points)
    fig = new_figure(title=title, height=height, x_axis_label="time (s)",
                     y_axis_label="amplitude")
    line = fig.line("t", "amp", source=ColumnDataSource(data), color=BLUE, line_width=1)
    fig.y_range = Range1d(-lim, lim)
    fig.x_range = Range1d(0.0, duration)
    fig.add_tools(HoverTool(renderers=[line], tooltips=[("time", "@t{0.0000} s"),
                                                       ("amplitude", "@amp{0.000}")]))
    return fig


def spectrogram_plot(spec: np.ndarray, *, sample_rate: int | None, hop_length: int | None = None,
                     fmax: float | None = None, title: str = "Spectrogram",
                     palette: Palette = "Inferno256",
                     value_range: tuple[float, float] | None = None, height: int = 300,
                     value_label: str = "value", x_ticks: int | None = None) -> figure:
    """A spectrogram-shaped array as an image with colour bar, zoom and hover.

    Rows are assumed linearly spaced from 0 Hz to ``fmax`` (default: Nyquist), as for an
    STFT; for log-mel rows pass ``sample_rate=None`` to label bins by index.

    Args:
      spec: ``(freq, time)``; row 0 is the lowest frequency (drawn at the bottom).
      sample_rate: Hz, or None for frame / bin indices on the axes.
      hop_length: samples between frames (needed with ``sample_rate``).
      fmax: Hz at the top of the last row (default ``sample_rate / 2``).
      value_range: ``(low, high)`` of the colour map (default: the data's range).
      x_ticks: about how many time ticks (default: bokeh's 6); fewer keep the labels of a
        narrow plot apart.
    """
    s = as_finite_array(spec, name="spec", ndim=2, shape_doc="(freq, time)")
    dw, dh, x_label, y_label = _spectrogram_extent(s.shape, sample_rate, hop_length, fmax)
    low, high = value_range if value_range is not None else (float(s.min()), float(s.max()))
    mapper = colour_mapper(palette, low, high)
    fig = new_figure(title=title, height=height, x_axis_label=x_label, y_axis_label=y_label,
                     x_range=Range1d(0.0, dw, bounds=(0.0, dw)),
                     y_range=Range1d(0.0, dh, bounds=(0.0, dh)))
    img = fig.image(image=[s.astype(np.float32)], x=0.0, y=0.0, dw=dw, dh=dh,
                    color_mapper=mapper)
    x_unit = "s" if sample_rate else "frame"
    y_unit = "Hz" if sample_rate else "bin"
    fig.add_tools(HoverTool(renderers=[img], tooltips=[
        ("time", f"$x{{0.000}} {x_unit}"), ("frequency", f"$y{{0}} {y_unit}"),
        (value_label, "@image{0.000}")]))
    add_colour_bar(fig, mapper, title=value_label)
    if x_ticks is not None:
        fig.xaxis.ticker.desired_num_ticks = int(x_ticks)
    return fig


def _spectrogram_extent(shape: tuple[int, int], sample_rate: int | None, hop_length: int | None,
                        fmax: float | None) -> tuple[float, float, str, str]:
    n_freq, n_time = shape
    if sample_rate is None:
        return float(n_time), float(n_freq), "time (frames)", "frequency (bins)"
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if hop_length is None or hop_length <= 0:
        raise ValueError(f"hop_length must be a positive number of samples, got {hop_length}")
    top = sample_rate / 2.0 if fmax is None else float(fmax)
    if top <= 0:
        raise ValueError(f"fmax must be positive, got {fmax}")
    return n_time * hop_length / float(sample_rate), top, "time (s)", "frequency (Hz)"


def _check_probs(probs: np.ndarray, labels: Sequence[str], name: str) -> np.ndarray:
    p = as_finite_array(probs, name=name, ndim=1, shape_doc="(n_classes,)")
    if len(labels) != p.shape[0]:
        raise ValueError(f"{name} has shape {p.shape} but {len(labels)} labels were given")
    if len(set(labels)) != len(labels):
        raise ValueError("labels must be unique")
    if np.any(p < 0):
        raise ValueError(f"{name} must be non-negative probabilities, min is {p.min():.3g}")
    return p


def _top_order(p: np.ndarray, top: int | None) -> np.ndarray:
    if top is not None and top < 1:
        raise ValueError(f"top must be >= 1 or None, got {top}")
    # Stable sort so ties keep the label order, which makes the ranking reproducible.
    return np.argsort(-p, kind="stable")[: top or p.shape[0]]


def probability_data(probs: np.ndarray, labels: Sequence[str], *, top: int | None = None,
                     highlight: str | None = None) -> tuple[dict, list[str], float]:
    """The probability bars' source, y factors (bottom-up) and x-range end."""
    labels = [str(lab) for lab in labels]
    p = _check_probs(probs, labels, "probs")
    if highlight is not None and highlight not in labels:
        raise ValueError(f"highlight {highlight!r} is not one of the labels")
    order = _top_order(p, top)
    names = [labels[i] for i in order]
    data = {"label": names, "prob": p[order], "pct": [f"{100 * v:.1f} %" for v in p[order]],
            "color": [ORANGE if n == highlight else BLUE for n in names]}
    # Categorical axes list factors bottom-up, so reverse to put the most likely on top.
    return data, names[::-1], max(1.0, float(p.max())) * 1.18


def probability_bars(probs: np.ndarray, labels: Sequence[str], *, top: int | None = None,
                     highlight: str | None = None, title: str = "Class probabilities",
                     height: int | None = None) -> figure:
    """Horizontal bars, most likely class on top, each labelled with its percentage.

    Args:
      probs: ``(n_classes,)`` probabilities (softmax output).
      labels: ``n_classes`` unique class names.
      top: show only the ``top`` most likely classes.
      highlight: a label drawn in a contrasting colour (e.g. the true class).
    """
    data, factors, x_end = probability_data(probs, labels, top=top, highlight=highlight)
    src = ColumnDataSource(data)
    fig = new_figure(title=title, height=height or 60 + 22 * len(factors),
                     x_axis_label="probability", y_range=FactorRange(factors=factors),
                     x_range=Range1d(0.0, x_end), tools="reset,save")
    bars = fig.hbar(y="label", right="prob", height=0.8, color="color", source=src)
    fig.text(x="prob", y="label", text="pct", source=src, x_offset=4, text_font_size="9pt",
             text_baseline="middle")
    fig.add_tools(HoverTool(renderers=[bars], tooltips=[("class", "@label"), ("p", "@pct")]))
    fig.ygrid.grid_line_color = None
    return fig


def compare_probability_bars(probs_a: np.ndarray, probs_b: np.ndarray, labels: Sequence[str], *,
                             names: tuple[str, str] = ("original", "edited"),
                             top: int | None = None, title: str = "Class probabilities",
                             height: int | None = None) -> figure:
    """Grouped horizontal bars of two predictions, classes sorted by ``probs_a`` (top first).

    Args:
      probs_a, probs_b: ``(n_classes,)`` probabilities of the two inputs.
      names: legend names of a and b.
    """
    labels = [str(lab) for lab in labels]
    pa, pb = _check_probs(probs_a, labels, "probs_a"), _check_probs(probs_b, labels, "probs_b")
    if len(names) != 2 or names[0] == names[1]:
        raise ValueError(f"names must be two different strings, got {names!r}")
    order = _top_order(pa, top)
    factors = [(labels[i], n) for i in order[::-1] for n in names[::-1]]
    values = {names[0]: pa, names[1]: pb}
    src = ColumnDataSource({
        "factor": factors, "label": [f[0] for f in factors], "name": [f[1] for f in factors],
        "prob": [values[n][labels.index(c)] for c, n in factors],
        "color": [BLUE if n == names[0] else VERMILION for _, n in factors]})
    src.data["pct"] = [f"{100 * v:.1f} %" for v in src.data["prob"]]
    fig = new_figure(title=title, height=height or 90 + 36 * len(order),
                     x_axis_label="probability", y_range=FactorRange(factors=factors),
                     x_range=Range1d(0.0, max(1.0, float(max(pa.max(), pb.max()))) * 1.18),
                     tools="reset,save")
    bars = fig.hbar(y="factor", right="prob", height=0.85, color="color", legend_field="name",
                    source=src)
    fig.text(x="prob", y="factor", text="pct", source=src, x_offset=4, text_font_size="8pt",
             text_baseline="middle")
    fig.add_tools(HoverTool(renderers=[bars], tooltips=[("class", "@label"), ("input", "@name"),
                                                        ("p", "@pct")]))
    fig.legend.location = "bottom_right"
    fig.ygrid.grid_line_color = None
    # Class names level with their bars (upright, they overlapped on two bars' height); the
    # legend and colours say which bar is which, so the per-bar names are left out.
    fig.yaxis.group_label_orientation = "horizontal"
    fig.yaxis.major_label_text_font_size = "0pt"
    fig.yaxis.major_tick_line_color = None
    return fig


def dense_data(acts: np.ndarray, *, max_units: int = 512) -> tuple[dict, list[str] | None]:
    """The dense bars' source and, above ``max_units`` units, the x factors (largest first)."""
    a = as_finite_array(acts, name="acts", ndim=1, shape_doc="(units,)")
    if max_units < 1:
        raise ValueError(f"max_units must be >= 1, got {max_units}")
    n = a.shape[0]
    if n <= max_units:
        units = np.arange(n)
        x, factors = units, None
    else:
        units = np.argsort(-np.abs(a), kind="stable")[:max_units]
        x = factors = [str(u) for u in units]
    return ({"x": x, "unit": units, "act": a[units],
             "color": [BLUE if v >= 0 else VERMILION for v in a[units]]}, factors)


def dense_activation_bars(acts: np.ndarray, *, title: str = "Unit activations",
                          max_units: int = 512, height: int = 220) -> figure:
    """Bars of a dense layer's unit activations (positive blue, negative vermilion).

    With more than ``max_units`` units only the ``max_units`` largest by ``|activation|``
    are drawn, sorted by magnitude, each labelled with its unit index.

    Args:
      acts: ``(units,)`` activations of one example.
    """
    data, factors = dense_data(acts, max_units=max_units)
    n = len(acts)
    if factors is None:
        x_range, x_label = Range1d(-0.5, n - 0.5), "unit"
    else:
        x_range, x_label = FactorRange(factors=factors), "unit (sorted by |activation|)"
        title = f"{title} — top {max_units} of {n} units by |activation|"
    src = ColumnDataSource(data)
    fig = new_figure(title=title, height=height, x_axis_label=x_label,
                     y_axis_label="activation", x_range=x_range)
    bars = fig.vbar(x="x", top="act", width=0.8, color="color", source=src)
    fig.add_tools(HoverTool(renderers=[bars], tooltips=[("unit", "@unit"),
                                                       ("activation", "@act{0.000}")]))
    if n > max_units:
        fig.xaxis.major_label_orientation = 1.2
        fig.xaxis.major_label_text_font_size = "6pt"
    return fig
