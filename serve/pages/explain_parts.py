"""Pieces of the Explain page that hold no widgets: attribution maps of one clip, the top-p %
mask that is listened to, deletion/insertion curves and their chart, the channel ablation table.

Everything here takes one example ``x`` of shape ``(freq, time)`` (log10 feature units) and
the model protocol of :mod:`engine.attribution` (``acts_fn`` / ``logits_fn``, pass the same
objects every call so the jit caches stay warm).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np

from engine.attribution import METHODS, attribute
from engine.attribution.options import default_patch

METHOD_TITLES = {"saliency": "Saliency", "gradient_x_input": "Gradient × input",
                 "integrated_gradients": "Integrated gradients", "smoothgrad": "SmoothGrad",
                 "grad_cam": "Grad-CAM", "occlusion": "Occlusion"}
RANDOM_COLOUR = "#7f7f7f"
METHOD_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9")


def compute_maps(acts_fn: Callable, logits_fn: Callable, x: np.ndarray, target: int, *,
                 methods: Sequence[str], options: dict[str, dict],
                 on_method: Callable[[int, str], None] | None = None) -> dict[str, np.ndarray]:
    """Attribution of ``target`` for one input ``x`` ``(freq, time)`` by each method.

    ``on_method(i, name)`` is called before method ``i`` starts (progress notes); Grad-CAM is
    skipped when ``options["grad_cam"]["layer"]`` is None (a model without conv layers).
    Returns ``{method: (freq, time) float32}``.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown attribution methods {unknown}; choose from {METHODS}")
    out = {}
    for i, name in enumerate(methods):
        if name == "grad_cam" and options[name].get("layer") is None:
            continue
        if on_method is not None:
            on_method(i, name)
        a = attribute(name, x[None], int(target), logits_fn=logits_fn, acts_fn=acts_fn,
                      **options[name])
        out[name] = np.asarray(a[0], np.float32)
    return out


def top_mask(attribution: np.ndarray, *, percent: float) -> np.ndarray:
    """Boolean ``(freq, time)`` mask of the ``round(percent / 100 · cells)`` highest cells.

    Ties are broken by position (stable sort), so exactly that many cells are kept.
    """
    a = np.asarray(attribution, np.float64)
    if a.ndim != 2 or not np.all(np.isfinite(a)):
        raise ValueError(f"attribution must be a finite (freq, time) array, got shape {a.shape}")
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be in [0, 100], got {percent}")
    k = int(round(percent / 100.0 * a.size))
    mask = np.zeros(a.size, bool)
    mask[np.argsort(-a.ravel(), kind="stable")[:k]] = True
    return mask.reshape(a.shape)


def keep_top(x: np.ndarray, attribution: np.ndarray, *, percent: float,
             floor: float) -> np.ndarray:
    """``x`` where the attribution is in its top ``percent`` %, ``floor`` (silence) elsewhere."""
    x = np.asarray(x, np.float32)
    if x.shape != np.shape(attribution):
        raise ValueError(f"x {x.shape} and attribution {np.shape(attribution)} differ in shape")
    return np.where(top_mask(attribution, percent=percent), x, np.float32(floor))


def kept_audio(x: np.ndarray, attribution: np.ndarray, params, *, percent: float,
               n_iter: int = 32, seed: int = 0) -> np.ndarray:
    """Griffin-Lim audio ``(params.n_samples,)`` of :func:`keep_top` (what the map keeps)."""
    from engine.inversion import spectrogram_to_audio

    spec = keep_top(x, attribution, percent=percent, floor=params.floor)
    return np.asarray(spectrogram_to_audio(spec, params, n_iter=n_iter,
                                           key=jax.random.PRNGKey(seed)))


def faithfulness_curves(logits_fn: Callable, x: np.ndarray, target: int,
                        maps: dict[str, np.ndarray], *, floor: float, seed: int = 0,
                        n_steps: int = 21, baseline: str = "silence") -> dict:
    """Deletion and insertion curves of one input for every map and a random order
    (:func:`engine.faithfulness.evaluate` with :func:`default_patch`)."""
    from engine.faithfulness import evaluate

    return evaluate(logits_fn, x[None], int(target), {k: v[None] for k, v in maps.items()},
                    key=jax.random.PRNGKey(seed), floor=floor, baseline=baseline,
                    patch=default_patch(x.shape), n_steps=n_steps)


def curve_chart(results: dict, *, mode: str, height: int = 300):
    """One Bokeh chart of the ``mode`` curves (example 0) of every method and the random
    order, each legend entry ending in ``AUC 0.123`` (trapezoid rule, 3 decimals)."""
    from bokeh.models import Range1d

    from engine.faithfulness import fractions
    from viz.figstyle import new_figure

    what = "removed" if mode == "deletion" else "inserted"
    fig = new_figure(title=f"{mode.capitalize()}: target probability as cells are {what}",
                     height=height, x_axis_label=f"fraction of cells {what}",
                     y_axis_label="target probability", tools="pan,box_zoom,reset,save",
                     y_range=Range1d(0.0, 1.02), x_range=Range1d(0.0, 1.0))
    for i, (name, res) in enumerate(results.items()):
        c = np.asarray(res[f"{mode}_curve"])[0]
        label = f"{METHOD_TITLES.get(name, name)} · AUC {float(res[f'{mode}_auc'][0]):.3f}"
        rnd = name == "random"
        fig.line(fractions(c.shape[0]), c, legend_label=label, line_width=2,
                 line_dash="dashed" if rnd else "solid",
                 color=RANDOM_COLOUR if rnd else METHOD_COLOURS[i % len(METHOD_COLOURS)])
    fig.legend.location = "top_right" if mode == "deletion" else "bottom_right"
    fig.legend.click_policy = "hide"
    return fig


def ablation_frame(order: np.ndarray, drop: np.ndarray):
    """Table rows, most important channel first: rank, channel, probability drop, on."""
    import pandas as pd

    order = np.asarray(order, int)
    return pd.DataFrame({"rank": np.arange(1, order.size + 1), "channel": order,
                         "drop": np.asarray(drop, float)[order], "on": np.ones(order.size, bool)})
