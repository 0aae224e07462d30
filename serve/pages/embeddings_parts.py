"""View helpers of the Embeddings page: colour codes and legend, the cloud figure, the
mapping of a box / lasso selection to points, and the position caption.

Selections arrive as Bokeh ``SelectionGeometry`` in data coordinates and are tested against
*every* point at the current morph position (not a browser-side subsample).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

COLOURS = ("label", "speaker", "prediction", "correctness")


# -- colours ----------------------------------------------------------------------------
def colour_codes(meta: pd.DataFrame, by: str, *, labels: Sequence[str] = ()):
    """``(codes (n,) int32, categories)`` of the column to colour by.

    ``label`` and ``prediction`` share one category list (``labels`` order first, then any
    others sorted) so a class has the same colour in both; ``correctness`` is
    ``("correct", "wrong")``; ``speaker`` is sorted, an empty speaker shown as ``"unknown"``.
    """
    if by not in COLOURS:
        raise ValueError(f"colour must be one of {COLOURS}, got {by!r}")
    if by == "correctness":
        values = np.where(meta["correct"].to_numpy(bool), "correct", "wrong")
        cats = ["correct", "wrong"]
    elif by == "speaker":
        values = meta["speaker"].astype(str).replace("", "unknown").to_numpy()
        cats = sorted(set(values))
    else:
        values = meta[by].astype(str).to_numpy()
        seen = set(meta["label"].astype(str)) | set(meta["prediction"].astype(str))
        cats = [c for c in labels if c in seen] + sorted(seen - set(labels))
    codes = pd.Categorical(values, categories=cats).codes.astype(np.int32)
    return codes, tuple(cats)


def legend_html(color_key: dict, *, limit: int = 40) -> str:
    """A compact HTML legend of ``category -> #colour`` (first ``limit`` entries)."""
    import html

    spans = [f'<span style="white-space:nowrap;margin-right:10px"><span style="display:'
             f'inline-block;width:10px;height:10px;background:{c};margin-right:4px"></span>'
             f'{html.escape(str(k))}</span>' for k, c in list(color_key.items())[:limit]]
    more = f" … and {len(color_key) - limit} more" if len(color_key) > limit else ""
    return "".join(spans) + more


# -- selection --------------------------------------------------------------------------
def points_in_box(x, y, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """Sorted indices of points with ``x0 <= x <= x1`` and ``y0 <= y <= y1`` (either order)."""
    (x0, x1), (y0, y1) = sorted((x0, x1)), sorted((y0, y1))
    return np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))


def points_in_polygon(x, y, px, py) -> np.ndarray:
    """Sorted indices of points inside the polygon ``(px, py)`` (even-odd ray casting)."""
    px, py = np.asarray(px, np.float64), np.asarray(py, np.float64)
    if px.shape != py.shape or px.ndim != 1 or px.size < 3:
        return np.zeros(0, np.int64)
    inside = np.zeros(np.shape(x), bool)
    for (xa, ya), (xb, yb) in zip(zip(px, py), zip(np.roll(px, 1), np.roll(py, 1))):
        crosses = (ya > y) != (yb > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = xa + (y - ya) * (xb - xa) / (yb - ya)
        inside ^= crosses & (x < xc)
    return np.flatnonzero(inside)


def geometry_indices(x, y, geometry: dict) -> np.ndarray:
    """Points selected by a Bokeh ``SelectionGeometry`` (``rect`` box or ``poly`` lasso)."""
    kind = geometry.get("type")
    if kind == "rect":
        return points_in_box(x, y, geometry["x0"], geometry["x1"], geometry["y0"], geometry["y1"])
    if kind == "poly":
        return points_in_polygon(x, y, list(geometry["x"]), list(geometry["y"]))
    return np.zeros(0, np.int64)


def position_text(layers: Sequence[str], reflected: Sequence[bool], position: float) -> str:
    """Markdown naming the layer(s) at ``position`` and whether their alignment mirrored."""
    i = min(int(np.floor(position)), len(layers) - 1)
    t = position - i

    def name(k):
        return f"**{layers[k]}**" + (" (mirrored to align)" if reflected[k] else "")
    if t < 1e-6 or i + 1 >= len(layers):
        return f"Layer {name(i)} ({i + 1} of {len(layers)})"
    return f"Between {name(i)} and {name(i + 1)}: {t:.0%} of the way"


def layout_points(xy: np.ndarray, position: float, rows=None) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` float32 of ``rows`` (default all) of aligned layouts ``xy (layers, n, 2)`` at
    ``position`` ∈ [0, layers − 1]: linear interpolation between the neighbouring layers, the
    same formula as :func:`viz.embeddings.morph_points`."""
    i = min(int(np.floor(position)), xy.shape[0] - 1)
    j, t = min(i + 1, xy.shape[0] - 1), np.float32(position - i)
    a = xy[i] if rows is None else xy[i, rows]
    b = xy[j] if rows is None else xy[j, rows]
    out = a if t == 0 else a + t * (b - a)
    return out[:, 0], out[:, 1]


def cloud_figure(*, size: int):
    """The cloud's Bokeh figure (WebGL, fixed ranges) and its sources.

    Returns ``(figure, {"image", "anchors", "selected"})``: ``image`` feeds one ``image_rgba``;
    ``anchors`` holds invisible points (the range corners) that give the box and lasso tools a
    renderer, since the selection itself is computed on the server from the tool's geometry;
    ``selected`` draws rings around the selected points.
    """
    from bokeh.models import BoxSelectTool, ColumnDataSource, LassoSelectTool, Range1d
    from bokeh.plotting import figure

    sources = {"image": ColumnDataSource({"image": [], "x": [], "y": [], "dw": [], "dh": []}),
               "anchors": ColumnDataSource({"x": [0.0], "y": [0.0]}),
               "selected": ColumnDataSource({"x": [], "y": []})}
    fig = figure(title="Layer walkthrough", width=size, height=size, x_range=Range1d(0, 1),
                 y_range=Range1d(0, 1), output_backend="webgl", tools="pan,wheel_zoom,reset")
    fig.toolbar.logo = None
    fig.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh", source=sources["image"])
    anchors = fig.scatter("x", "y", source=sources["anchors"], size=1, alpha=0)
    fig.scatter("x", "y", source=sources["selected"], size=7, fill_alpha=0, line_color="black",
                line_width=1)
    fig.add_tools(BoxSelectTool(renderers=[anchors]), LassoSelectTool(renderers=[anchors]))
    return fig, sources


class UtteranceList:
    """The selected utterances: a table (first ``max_rows``), a player for the clicked row and
    an "Open in Inspect" button that hands the file to the session.

    Args:
      session: has ``load_bytes(data, name, source=)`` and ``error(message)``.
      items_fn: ``items_fn() -> items`` (``id``, ``path``, ``label``, ``speaker``), read once.
    """

    COLUMNS = ["item_id", "label", "speaker", "prediction", "correct"]

    def __init__(self, session, items_fn, *, max_rows: int = 2000):
        import panel as pn

        self.session, self._items_fn, self.max_rows = session, items_fn, max_rows
        self._by_id = None
        self.current_item = None
        self.table = pn.widgets.Tabulator(None, disabled=True, selectable=1, show_index=False,
                                          height=300, pagination="local", page_size=50,
                                          css_classes=["hs-emb-table"])
        self.table.param.watch(self._on_row, "selection")
        self.note = pn.pane.Markdown("Box- or lasso-select points to list them.",
                                     css_classes=["hs-emb-table-note"])
        self.audio = pn.pane.Audio(None, name="utterance", visible=False,
                                   css_classes=["hs-emb-audio"])
        self.playing = pn.pane.Markdown("", css_classes=["hs-emb-playing"])
        self.open_button = pn.widgets.Button(name="Open in Inspect", disabled=True,
                                             css_classes=["hs-emb-open"])
        self.open_button.on_click(lambda _: self.open_in_inspect())

    def show(self, meta: pd.DataFrame, rows: np.ndarray) -> None:
        """List ``meta``'s ``rows`` (categoricals as strings, first ``max_rows``)."""
        cols = [c for c in self.COLUMNS if c in meta]
        shown = meta.iloc[rows[:self.max_rows]][cols].reset_index(drop=True)
        for c in shown.columns:
            if isinstance(shown[c].dtype, pd.CategoricalDtype):
                shown[c] = shown[c].astype(str)
        self.table.selection = []
        self.table.value = shown
        more = f" (first {self.max_rows} listed)" if rows.size > self.max_rows else ""
        self.note.object = f"{rows.size:,} selected{more}; click a row to play it"

    def _on_row(self, event) -> None:
        if event.new and self.table.value is not None:
            self.play(str(self.table.value.iloc[event.new[0]]["item_id"]))

    def play(self, item_id: str) -> bool:
        """Load ``item_id``'s audio file into the player and enable "Open in Inspect"."""
        from pathlib import Path

        if self._by_id is None:
            self._by_id = {it.id: it for it in self._items_fn()}
        item = self._by_id.get(item_id)
        if item is None or not Path(item.path).is_file():
            self.session.error(f"no audio file for {item_id!r} (its corpus is not available to "
                               "this server); open it from its folder instead")
            return False
        self.current_item = item
        self.audio.object = Path(item.path).read_bytes()
        self.audio.visible, self.open_button.disabled = True, False
        self.playing.object = f"Playing **{item.id}** ({item.label}, speaker {item.speaker or '?'})"
        return True

    def open_in_inspect(self) -> bool:
        """Hand the current utterance's file to the session and bring the Inspect tab up."""
        from pathlib import Path

        item = self.current_item
        if item is None:
            return False
        ok = self.session.load_bytes(Path(item.path).read_bytes(), item.id, source="corpus")
        if ok:
            self.session.show("Inspect")
        return ok

    def view(self):
        import panel as pn

        return pn.Column(self.note, self.table, self.playing, self.audio, self.open_button,
                         sizing_mode="stretch_width")


def layer_formatter(layers: Sequence[str]):
    """A slider formatter showing the layer name at whole positions and ``a → b 40%`` between."""
    from bokeh.models import CustomJSTickFormatter

    code = ("const i = Math.min(Math.floor(tick + 1e-6), names.length - 1); const t = tick - i;"
            " return t < 1e-6 ? names[i] : names[i] + ' → ' + names[i + 1] + ' ' +"
            " Math.round(t * 100) + '%';")
    return CustomJSTickFormatter(args={"names": list(layers)}, code=code)
