"""A model input's time-frequency picture whose rows are not linear in Hz (mel filter banks),
drawn with each row where it is and the frequency axis labelled at real frequencies.

A linear STFT picture is drawn by :func:`viz.plots.spectrogram_plot` in Hz; rows on the mel
scale (AST's filter bank, Whisper's log-mel, hearsight's own log-mel) are evenly spaced in
mel, not in Hz, so labelling them ``0 … sr/2`` linearly puts a 1 kHz tone at ~2.8 kHz on a
24-row AST axis. Here the image keeps one data unit per row (row ``i`` spans ``[i, i+1)``)
and the axis carries ticks at round frequencies placed where those frequencies fall between
the rows' centre frequencies.
"""

from __future__ import annotations

import numpy as np
from bokeh.models import CustomJSHover, FixedTicker, HoverTool, Range1d
from bokeh.plotting import figure

from viz.figstyle import Palette, add_colour_bar, as_finite_array, colour_mapper, new_figure

# Octaves from 125 Hz, and the low end: round on a mel axis, 1 kHz always among them.
TICK_HZ = (0.0, 62.5, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 32000.0)


def hz_label(hz: float) -> str:
    """``"500"``, ``"1k"``, ``"2.5k"``: a frequency in Hz as a short tick label."""
    if hz >= 1000.0:
        return f"{hz / 1000.0:g}k"
    return f"{hz:g}"


def frequency_ticks(row_hz: np.ndarray, *, min_gap_rows: float = 1.0,
                    ticks_hz=TICK_HZ) -> dict[float, str]:
    """Tick positions (row units, row ``i``'s centre at ``i + 0.5``) → labels of the round
    frequencies of ``ticks_hz`` inside the rows' range, linearly interpolated between row
    centres; a tick closer than ``min_gap_rows`` to the one below is left out.

    Args:
      row_hz: ``(rows,)`` centre frequency of every row in Hz, increasing.
    """
    hz = np.asarray(row_hz, np.float64)
    if hz.ndim != 1 or hz.size < 2 or np.any(np.diff(hz) <= 0):
        raise ValueError(f"row_hz must be an increasing (rows >= 2,) array, got shape {hz.shape}")
    centres = np.arange(hz.size) + 0.5
    out: dict[float, str] = {}
    last = -np.inf
    for f in ticks_hz:
        if hz[0] <= f <= hz[-1]:
            pos = float(np.interp(f, hz, centres))
            if pos - last >= min_gap_rows:
                out[pos] = hz_label(f)
                last = pos
    return out


def picture_plot(picture: np.ndarray, row_hz: np.ndarray, *, duration_s: float,
                 title: str = "Input picture", palette: Palette = "Inferno256",
                 value_range: tuple[float, float] | None = None, height: int = 300,
                 value_label: str = "value") -> figure:
    """``picture`` ``(rows, time)`` (row 0 lowest) as an image over ``[0, duration_s]`` s,
    one data unit per row, the frequency axis ticked at the round frequencies of
    :func:`frequency_ticks`; hovering a row reports its centre frequency.

    Args:
      row_hz: ``(rows,)`` centre frequency of every row in Hz (e.g. mel-spaced).
      duration_s: seconds the picture's columns span.
      value_range: ``(low, high)`` of the colour map (default: the data's range).
    """
    s = as_finite_array(picture, name="picture", ndim=2, shape_doc="(freq, time)")
    hz = np.asarray(row_hz, np.float64)
    if hz.shape != (s.shape[0],):
        raise ValueError(f"row_hz has shape {hz.shape}, the picture has {s.shape[0]} rows")
    if not duration_s > 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    rows = float(s.shape[0])
    low, high = value_range if value_range is not None else (float(s.min()), float(s.max()))
    mapper = colour_mapper(palette, low, high)
    fig = new_figure(title=title, height=height, x_axis_label="time (s)",
                     y_axis_label="frequency (Hz; rows on the mel scale)",
                     x_range=Range1d(0.0, duration_s, bounds=(0.0, duration_s)),
                     y_range=Range1d(0.0, rows, bounds=(0.0, rows)))
    img = fig.image(image=[s.astype(np.float32)], x=0.0, y=0.0, dw=float(duration_s), dh=rows,
                    color_mapper=mapper)
    # ticks at least ~1/16 of the axis apart: on a linear STFT axis 125/250/500 Hz would overlap
    ticks = frequency_ticks(hz, min_gap_rows=max(1.0, len(hz) / 16))
    fig.yaxis.ticker = FixedTicker(ticks=list(ticks))
    fig.yaxis.major_label_overrides = ticks
    row_freq = CustomJSHover(args={"hz": [float(f) for f in hz]}, code=(
        "const i = Math.min(Math.max(Math.floor(value), 0), hz.length - 1);"
        "return hz[i].toFixed(0) + ' Hz (row ' + i + ')';"))
    fig.add_tools(HoverTool(renderers=[img], tooltips=[
        ("time", "$x{0.000} s"), ("frequency", "$y{custom}"), (value_label, "@image{0.000}")],
        formatters={"$y": row_freq}))
    add_colour_bar(fig, mapper, title=value_label)
    return fig
