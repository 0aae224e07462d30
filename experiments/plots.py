"""PNG line charts for the command-line experiments, without a browser.

Uses matplotlib when it is installed and Pillow (always present: Bokeh depends on it)
otherwise, so ``hearsight experiment ...`` writes its figures on any installation.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
RANDOM = "#7f7f7f"
SIZE, MARGIN = (900, 560), (70, 30, 30, 60)  # pixels; margins left, top, right, bottom


def curves_png(curves: Mapping[str, Sequence[float]], aucs: Mapping[str, float], path, *,
               title: str, x: Sequence[float], y_label: str = "target probability",
               x_label: str = "fraction of patches") -> Path:
    """Draw ``curves`` (name → values at ``x``, y in [0, 1]) with ``name · AUC a`` legends.

    The entry ``"random"`` is drawn dashed grey. Returns the written path.
    """
    x = np.asarray(x, float)
    for name, c in curves.items():
        if np.shape(c) != x.shape or not np.all(np.isfinite(c)):
            raise ValueError(f"curve {name!r} must be finite with shape {x.shape}")
    labels = {name: f"{name} · AUC {aucs[name]:.3f}" for name in curves}
    path = Path(path)
    if importlib.util.find_spec("matplotlib") is not None:
        _matplotlib(curves, labels, path, title, x, x_label, y_label)
    else:
        _pillow(curves, labels, path, title, x, x_label, y_label)
    return path


def _colour(i: int, name: str) -> str:
    return RANDOM if name == "random" else COLOURS[i % len(COLOURS)]


def _matplotlib(curves, labels, path, title, x, x_label, y_label) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(SIZE[0] / 100, SIZE[1] / 100), dpi=100)
    for i, (name, c) in enumerate(curves.items()):
        ax.plot(x, c, color=_colour(i, name), linestyle="--" if name == "random" else "-",
                label=labels[name], linewidth=2)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=x_label, ylabel=y_label, title=title)
    ax.legend(loc="best", fontsize=9)
    fig.savefig(path)
    plt.close(fig)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size only
        return ImageFont.load_default()


def _pillow(curves, labels, path, title, x, x_label, y_label) -> None:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", SIZE, "white")
    d = ImageDraw.Draw(img)
    left, top, right, bottom = MARGIN[0], MARGIN[1], SIZE[0] - MARGIN[2], SIZE[1] - MARGIN[3]

    def px(u, v):
        return left + u * (right - left), bottom - v / 1.02 * (bottom - top)

    font = _font(13)
    d.rectangle([left, top, right, bottom], outline="black")
    for t in np.linspace(0, 1, 5):
        gx, gy = px(t, 0)[0], px(0, t)[1]
        d.line([gx, bottom, gx, bottom + 5], fill="black")
        d.line([left - 5, gy, left, gy], fill="black")
        d.text((gx - 10, bottom + 8), f"{t:.2f}", fill="black", font=font)
        d.text((left - 45, gy - 7), f"{t:.2f}", fill="black", font=font)
    title_font = _font(16)
    d.text(((left + right - d.textlength(title, font=title_font)) / 2, 6), title, fill="black",
           font=title_font)
    d.text(((left + right) / 2 - 60, bottom + 30), x_label, fill="black", font=font)
    d.text((6, top - 22), y_label, fill="black", font=font)
    for i, (name, c) in enumerate(curves.items()):
        pts = [px(u, v) for u, v in zip(x, np.clip(c, 0, 1.02))]
        colour = _colour(i, name)
        if name == "random":  # dashed: every other segment
            for k in range(0, len(pts) - 1, 2):
                d.line([pts[k], pts[k + 1]], fill=colour, width=2)
        else:
            d.line(pts, fill=colour, width=3)
        ly = top + 10 + 18 * i
        d.line([right - 250, ly + 7, right - 225, ly + 7], fill=colour, width=3)
        d.text((right - 220, ly), labels[name], fill="black", font=font)
    img.save(path, format="PNG")
