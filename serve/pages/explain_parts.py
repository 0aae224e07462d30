"""Pieces of the Explain page that hold no widgets: attribution maps of one clip and their
pictures, the top-p % mask that is listened to, deletion/insertion curves and their chart, the
channel ablation table.

Everything here takes one model input ``x``: ``(freq, time)`` features (log10 feature units
for hearsight's own) or ``(n_samples,)`` a waveform, and the model protocol of
:mod:`engine.attribution` (``acts_fn`` / ``logits_fn``, pass the same objects every call so
the jit caches stay warm). A waveform's maps are over samples; :func:`map_picture` draws them
on the clip's time-frequency picture, and "cells" of a waveform are ``segment``-sample
stretches (the picture's frames).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache, partial

import jax
import numpy as np

from engine.attribution import (METHODS, attribute, waveform_attribution_picture,
                                waveform_time_picture)
from engine.attribution.options import default_patch

METHOD_TITLES = {"saliency": "Saliency", "gradient_x_input": "Gradient × input",
                 "integrated_gradients": "Integrated gradients", "smoothgrad": "SmoothGrad",
                 "grad_cam": "Grad-CAM", "occlusion": "Occlusion"}
RANDOM_COLOUR = "#7f7f7f"
METHOD_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9")


def compute_maps(acts_fn: Callable, logits_fn: Callable, x: np.ndarray, target: int, *,
                 methods: Sequence[str], options: dict[str, dict],
                 on_method: Callable[[int, str], None] | None = None) -> dict[str, np.ndarray]:
    """Attribution of ``target`` for one input ``x`` (``(freq, time)`` or ``(n_samples,)``)
    by each method.

    ``on_method(i, name)`` is called before method ``i`` starts (progress notes); Grad-CAM is
    skipped when ``options["grad_cam"]["layer"]`` is None (a model without a layer over time
    or freq × time). Returns ``{method: float32 map of x's shape}``.
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


def map_picture(name: str, attribution: np.ndarray, x: np.ndarray, params) -> np.ndarray:
    """What the page draws of a map: a feature input's map as it is; a waveform's map
    ``(n_samples,)`` on the picture grid of ``params`` (``predictor.picture_params``), the
    attribution per frame spread over that frame's spectrum by energy
    (:func:`engine.attribution.waveform_attribution_picture`), Grad-CAM's map over time as its
    mean per frame in every row (:func:`engine.attribution.waveform_time_picture`)."""
    if np.ndim(x) != 1:
        return np.asarray(attribution, np.float32)
    if name == "grad_cam":
        return np.asarray(waveform_time_picture(attribution, params))
    return np.asarray(waveform_attribution_picture(attribution, x, params))


def top_mask(attribution: np.ndarray, *, percent: float) -> np.ndarray:
    """Boolean ``(freq, time)`` mask of the ``round(percent / 100 · cells)`` highest cells.

    Ties are broken by position (stable sort), so exactly that many cells are kept.
    """
    a = np.asarray(attribution, np.float64)
    if a.ndim != 2 or not np.all(np.isfinite(a)):
        raise ValueError(f"attribution must be a finite (freq, time) array, got shape {a.shape}")
    return _top(a.ravel(), percent).reshape(a.shape)


def _top(scores: np.ndarray, percent: float) -> np.ndarray:
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be in [0, 100], got {percent}")
    k = int(round(percent / 100.0 * scores.size))
    mask = np.zeros(scores.size, bool)
    mask[np.argsort(-scores, kind="stable")[:k]] = True
    return mask


def top_segments(attribution: np.ndarray, *, percent: float, segment: int) -> np.ndarray:
    """Boolean ``(n_samples,)`` mask of a waveform's ``round(percent / 100 · segments)``
    ``segment``-sample stretches of highest summed attribution (the last may be shorter;
    ties by position)."""
    a = np.asarray(attribution, np.float64)
    if a.ndim != 1 or not np.all(np.isfinite(a)):
        raise ValueError(f"attribution must be a finite (n_samples,) array, got shape {a.shape}")
    seg = np.arange(a.size) // max(1, int(segment))
    return _top(np.bincount(seg, weights=a), percent)[seg]


def keep_top(x: np.ndarray, attribution: np.ndarray, *, percent: float, floor,
             segment: int | None = None) -> np.ndarray:
    """``x`` where the attribution is in its top ``percent`` %, ``floor`` (silence: a value or
    the input of a silent clip) elsewhere. A waveform keeps whole ``segment``-sample stretches
    (:func:`top_segments`; default :func:`engine.attribution.options.default_patch`)."""
    x = np.asarray(x, np.float32)
    if x.shape != np.shape(attribution):
        raise ValueError(f"x {x.shape} and attribution {np.shape(attribution)} differ in shape")
    if x.ndim == 1:
        seg = segment or default_patch(x.shape)[0]
        mask = top_segments(attribution, percent=percent, segment=seg)
    else:
        mask = top_mask(attribution, percent=percent)
    return np.where(mask, x, np.asarray(floor, np.float32)).astype(np.float32)


def kept_audio(x: np.ndarray, attribution: np.ndarray, params, *, percent: float,
               n_iter: int = 32, seed: int = 0) -> np.ndarray:
    """Griffin-Lim audio ``(params.n_samples,)`` of :func:`keep_top` (what the map keeps)."""
    from engine.inversion import spectrogram_to_audio

    spec = keep_top(x, attribution, percent=percent, floor=params.floor)
    return np.asarray(spectrogram_to_audio(spec, params, n_iter=n_iter,
                                           key=jax.random.PRNGKey(seed)))


@partial(jax.jit, static_argnames=("logits_fn",))
def _logits(logits_fn, x):
    return logits_fn(x)


def logits_of(logits_fn: Callable, x: np.ndarray) -> np.ndarray:
    """``(batch, classes)`` logits of inputs ``x`` (jitted once per model and shape)."""
    return np.asarray(_logits(logits_fn, jax.numpy.asarray(x, jax.numpy.float32)))


@lru_cache(maxsize=16)
def _one_row(logits_fn: Callable) -> Callable:
    """``logits_fn`` of a waveform seen as a one-row picture ``(batch, 1, n_samples)``
    (cached: the same object every call, so the faithfulness jit stays warm)."""
    return lambda z: logits_fn(z.reshape(z.shape[0], -1))


def faithfulness_curves(logits_fn: Callable, x: np.ndarray, target: int,
                        maps: dict[str, np.ndarray], *, floor: float, seed: int = 0,
                        n_steps: int = 21, baseline="silence",
                        segment: int | None = None) -> dict:
    """Deletion and insertion curves of one input for every map and a random order
    (:func:`engine.faithfulness.evaluate` with :func:`default_patch`).

    A waveform ``(n_samples,)`` is moved in ``segment``-sample stretches (by their mean
    attribution), removed ones filled with ``floor`` (0.0, silence): the engine sees it as a
    one-row picture ``(1, n_samples)`` with ``(1, segment)`` patches.
    """
    from engine.faithfulness import evaluate

    x = np.asarray(x, np.float32)
    if x.ndim == 1:
        patch = (1, *default_patch(x.shape, segment=segment))
        return evaluate(_one_row(logits_fn), x[None, None], int(target),
                        {k: np.asarray(v)[None, None] for k, v in maps.items()},
                        key=jax.random.PRNGKey(seed), floor=floor, baseline=baseline,
                        patch=patch, n_steps=n_steps)
    return evaluate(logits_fn, x[None], int(target), {k: v[None] for k, v in maps.items()},
                    key=jax.random.PRNGKey(seed), floor=floor, baseline=baseline,
                    patch=default_patch(x.shape), n_steps=n_steps)


def curve_chart(results: dict, *, mode: str, height: int = 300, unit: str = "cells"):
    """One Bokeh chart of the ``mode`` curves (example 0) of every method and the random
    order, each legend entry ending in ``AUC 0.123`` (trapezoid rule, 3 decimals); ``unit``
    names what is moved (``"10 ms segments"`` of a waveform)."""
    from bokeh.models import Range1d

    from engine.faithfulness import fractions
    from viz.figstyle import new_figure

    what = "removed" if mode == "deletion" else "inserted"
    fig = new_figure(title=f"{mode.capitalize()}: target probability as {unit} are {what}",
                     height=height, x_axis_label=f"fraction of {unit} {what}",
                     y_axis_label="target probability", tools="pan,box_zoom,reset,save",
                     y_range=Range1d(0.0, 1.02), x_range=Range1d(0.0, 1.0))
    for i, (name, res) in enumerate(results.items()):
        c = np.asarray(res[f"{mode}_curve"])[0]
        label = f"{METHOD_TITLES.get(name, name)} · AUC {float(res[f'{mode}_auc'][0]):.3f}"
        rnd = name == "random"
        fig.line(fractions(c.shape[0]), c, legend_label=label, line_width=2,
                 line_dash="dashed" if rnd else "solid",
                 color=RANDOM_COLOUR if rnd else METHOD_COLOURS[i % len(METHOD_COLOURS)])
    # Below the plot, not over it: a deletion curve starts top left and an insertion curve
    # ends top right, where a legend inside the frame hid them.
    legend = fig.legend[0]
    fig.center.remove(legend)
    legend.update(orientation="vertical", ncols=2, click_policy="hide", label_text_font_size="9pt",
                  margin=4, padding=4, spacing=0)
    fig.add_layout(legend, "below")
    fig.height = height + 22 * (-(-len(results) // 2))  # the frame keeps its height
    return fig


def ablation_frame(order: np.ndarray, drop: np.ndarray):
    """Table rows, most important channel first: rank, channel, probability drop, on."""
    import pandas as pd

    order = np.asarray(order, int)
    return pd.DataFrame({"rank": np.arange(1, order.size + 1), "channel": order,
                         "drop": np.asarray(drop, float)[order], "on": np.ones(order.size, bool)})
