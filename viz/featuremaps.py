"""Feature maps of a conv layer as one tiled image, and activation distances between inputs.

A layer with 32 filters becomes ONE image glyph (cheap to send to the browser) instead of 32
figures. :class:`MosaicLayout` maps a clicked data coordinate back to the filter it shows.

Image coordinates: the mosaic image of shape ``(height, width)`` is drawn with its lower-left
corner at data ``(0, 0)`` and one data unit per pixel; image row 0 is the bottom (Bokeh's
convention), so each tile keeps frequency increasing upward. Channel 0 is the top-left tile,
channels run left to right, then top to bottom.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from bokeh.models import ColumnDataSource, HoverTool, Range1d, TapTool
from bokeh.plotting import figure

from viz.figstyle import Palette, colour_mapper, new_figure


@dataclass(frozen=True)
class MosaicLayout:
    """Geometry of a mosaic: ``rows × columns`` tiles of ``tile_h × tile_w`` pixels,
    separated and surrounded by ``pad`` pixels of padding; ``channels`` tiles are used."""

    rows: int
    columns: int
    tile_h: int
    tile_w: int
    pad: int
    channels: int

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return self.rows * (self.tile_h + self.pad) + self.pad

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return self.columns * (self.tile_w + self.pad) + self.pad

    def tile_origin(self, channel: int) -> tuple[int, int]:
        """``(x0, y0)``: lower-left pixel of ``channel``'s tile in image / data coordinates."""
        if not 0 <= channel < self.channels:
            raise ValueError(f"channel {channel} is outside 0..{self.channels - 1}")
        r, c = divmod(channel, self.columns)
        return (self.pad + c * (self.tile_w + self.pad),
                self.pad + (self.rows - 1 - r) * (self.tile_h + self.pad))

    def channel_at(self, x: float, y: float) -> int | None:
        """The channel whose tile contains data point ``(x, y)``, or None on padding,
        separators, unused tiles and outside the image (as a Bokeh Tap event reports it)."""
        if not (0 <= x < self.width and 0 <= y < self.height):
            return None
        cx, cy = math.floor(x) - self.pad, math.floor(y) - self.pad
        c, in_x = divmod(cx, self.tile_w + self.pad)
        rr, in_y = divmod(cy, self.tile_h + self.pad)
        if cx < 0 or cy < 0 or in_x >= self.tile_w or in_y >= self.tile_h:
            return None
        channel = (self.rows - 1 - rr) * self.columns + c
        return channel if channel < self.channels else None


def _normalise_channels(acts: np.ndarray) -> np.ndarray:
    # Min-max per channel so weak and strong filters are equally visible; a constant channel
    # (e.g. a dead ReLU) has no contrast to show and maps to 0 rather than dividing by zero.
    lo = acts.min(axis=(0, 1), keepdims=True)
    span = acts.max(axis=(0, 1), keepdims=True) - lo
    return np.where(span > 0, (acts - lo) / np.where(span > 0, span, 1.0), 0.0)


SILENT_HATCH = "x"  # the hatching of a tile whose filter is constant (silent) for the clip


def silent_channels(acts: np.ndarray) -> np.ndarray:
    """``(channels,)`` bool: which channels of ``(freq, time, channels)`` activations are
    constant over the clip (a dead ReLU: a flat tile with nothing to see or hear)."""
    a = np.asarray(acts, dtype=np.float32)
    return a.max(axis=(0, 1)) == a.min(axis=(0, 1))


def _tile_hatch(acts: np.ndarray) -> list[str]:
    return [SILENT_HATCH if s else " " for s in silent_channels(acts)]


def mosaic_title(layer: str, acts: np.ndarray) -> str:
    """``"conv1: 16 filters of 64×150"``, plus how many are silent (hatched) for this clip."""
    silent = int(silent_channels(acts).sum())
    note = f" · {silent} silent for this clip (hatched)" if silent else ""
    return f"{layer}: {acts.shape[2]} filters of {acts.shape[0]}×{acts.shape[1]}{note}"


def refresh_silent_tiles(fig: figure, acts: np.ndarray) -> bool:
    """Hatch the tiles of the filters silent for new ``acts`` (same layer, another clip)."""
    tiles = fig.select_one({"name": "hs-tiles"})
    if tiles is None or len(tiles.data_source.data["channel"]) != np.shape(acts)[2]:
        return False
    tiles.data_source.data = {**tiles.data_source.data, "hatch": _tile_hatch(acts)}
    return True


def mosaic(acts: np.ndarray, *, columns: int | None = None,
           pad: int = 1) -> tuple[np.ndarray, MosaicLayout]:
    """Tile every channel of one conv layer's activations into one 2-D image.

    Args:
      acts: ``(freq, time, channels)`` activations of one example.
      columns: tiles per row (default ``ceil(sqrt(channels))``).
      pad: pixels of padding around and between tiles (filled with NaN, drawn as separator).
    Returns:
      ``(image, layout)``: float32 ``(layout.height, layout.width)`` with each channel
      min-max normalised to [0, 1] (constant channels → 0), and its :class:`MosaicLayout`.
    """
    # float32 throughout: the image is float32, and float64 took 3x as long on a first layer.
    a = np.asarray(acts, dtype=np.float32)
    if a.ndim != 3 or min(a.shape) == 0:
        raise ValueError(f"acts must be a non-empty (freq, time, channels) array, got shape "
                         f"{a.shape}; for a single map use acts[..., None]")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"acts of shape {a.shape} contain NaN or infinite values")
    n_freq, n_time, n_ch = a.shape
    columns = math.ceil(math.sqrt(n_ch)) if columns is None else int(columns)
    if columns < 1 or pad < 0:
        raise ValueError(f"need columns >= 1 and pad >= 0, got columns={columns}, pad={pad}")
    columns = min(columns, n_ch)
    layout = MosaicLayout(rows=math.ceil(n_ch / columns), columns=columns, tile_h=n_freq,
                          tile_w=n_time, pad=int(pad), channels=n_ch)
    image = np.full((layout.height, layout.width), np.nan, dtype=np.float32)
    norm = _normalise_channels(a)
    for ch in range(n_ch):
        x0, y0 = layout.tile_origin(ch)
        image[y0:y0 + n_freq, x0:x0 + n_time] = norm[:, :, ch]
    return image, layout


def feature_map_mosaic(acts: np.ndarray, *, columns: int | None = None, pad: int = 1,
                       palette: Palette = "Viridis256", title: str = "Feature maps",
                       height: int = 420) -> tuple[figure, MosaicLayout]:
    """All feature maps of one conv layer as one image glyph, each tile labelled and tappable.

    Every channel is min-max normalised separately (see :func:`mosaic`); a channel constant
    over the clip (silent) is hatched, since its flat tile looks like one of low values.
    Hovering a tile shows its channel; tapping selects its (invisible) tile quad, and
    ``layout.channel_at(x, y)`` maps a Tap event's coordinates to the channel.

    Args:
      acts: ``(freq, time, channels)`` activations of one example.
    Returns:
      ``(figure, layout)``.
    """
    image, layout = mosaic(acts, columns=columns, pad=pad)
    w, h = layout.width, layout.height
    fig = new_figure(title=title, height=height, x_axis_label="time (tile pixels)",
                     y_axis_label="frequency (tile pixels)",
                     x_range=Range1d(0, w, bounds=(0, w)), y_range=Range1d(0, h, bounds=(0, h)))
    mapper = colour_mapper(palette, 0.0, 1.0)
    mapper.nan_color = "#DDDDDD"
    fig.image(image=[image], x=0, y=0, dw=w, dh=h, color_mapper=mapper)
    origins = np.array([layout.tile_origin(ch) for ch in range(layout.channels)], dtype=float)
    src = ColumnDataSource({
        "channel": np.arange(layout.channels), "label": [str(c) for c in range(layout.channels)],
        "left": origins[:, 0], "right": origins[:, 0] + layout.tile_w,
        "bottom": origins[:, 1], "top": origins[:, 1] + layout.tile_h,
        "hatch": _tile_hatch(acts)})
    tiles = fig.quad(left="left", right="right", bottom="bottom", top="top", source=src,
                     name="hs-tiles", hatch_pattern="hatch", hatch_color="white",
                     hatch_alpha=0.8, hatch_scale=8, hatch_weight=1.5,
                     fill_alpha=0.0, line_alpha=0.0, selection_line_color="#FF3030",
                     selection_line_alpha=1.0, selection_line_width=2,
                     nonselection_fill_alpha=0.0, nonselection_line_alpha=0.0)
    fig.text(x="left", y="top", text="label", source=src, x_offset=2,
             text_font_size="7pt", text_color="white", text_baseline="top")
    fig.add_tools(HoverTool(renderers=[tiles], tooltips=[("channel", "@channel")]),
                  TapTool(renderers=[tiles]))
    fig.xgrid.visible = False
    fig.ygrid.visible = False
    return fig, layout


def _distances(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    l2 = float(np.linalg.norm(b - a))
    if na == 0.0 and nb == 0.0:
        cosine = 0.0
    elif na == 0.0 or nb == 0.0:
        cosine = 1.0  # no direction to compare; treat as unrelated
    else:
        cosine = 1.0 - float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))
    ref = na if na > 0 else nb
    return {"cosine": cosine, "l2": l2, "rel_l2": l2 / ref if ref > 0 else 0.0}


def layer_distances(acts_a: Mapping[str, np.ndarray],
                    acts_b: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per-layer distance between the activations of two inputs (original a, edited b).

    For flattened activations ``a``, ``b`` of each layer:
    ``cosine = 1 − a·b / (‖a‖‖b‖)`` in [0, 2] (0 if both are zero, 1 if only one is),
    ``l2 = ‖b − a‖`` and ``rel_l2 = ‖b − a‖ / ‖a‖`` (relative to ``‖b‖`` when ``a = 0``).

    Args:
      acts_a, acts_b: ``{layer: activations of one example}`` with the same keys and shapes.
    Returns:
      ``{layer: {"cosine": ..., "l2": ..., "rel_l2": ...}}`` in ``acts_a``'s order.
    """
    if set(acts_a) != set(acts_b):
        raise ValueError(f"layer names differ: {sorted(set(acts_a) ^ set(acts_b))}")
    out = {}
    for name, a_raw in acts_a.items():
        a = np.asarray(a_raw, dtype=np.float64)
        b = np.asarray(acts_b[name], dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"layer {name!r}: shapes differ, {a.shape} vs {b.shape}")
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            raise ValueError(f"layer {name!r} of shape {a.shape} has NaN or infinite values")
        out[name] = _distances(a.reshape(-1), b.reshape(-1))
    return out
