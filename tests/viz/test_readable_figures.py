"""Figures that read right (issue 21, item 7): the distance chart draws rounding noise as 0
and says "identical", tick labels are compact ("0.005", not "5.000e-3"), and the Explain
deletion/insertion legends sit below the curves instead of over them."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from bokeh.models import CustomJSTickFormatter, Label, Legend

from viz import figstyle
from viz.compare import activation_distance_chart
from viz.figstyle import new_figure
from viz.featuremaps import layer_distances
from viz.plots import spectrogram_plot


# -- (a) distance chart: rounding noise is 0, identical says so ------------------------------
def test_identical_activations_are_zero_and_the_chart_says_identical():
    rng = np.random.default_rng(0)
    acts = {n: rng.normal(size=(8, 5)).astype(np.float32) for n in ("conv1", "conv2", "dense1")}
    d = layer_distances(acts, {k: v.copy() for k, v in acts.items()})
    layers = list(d)
    fig = activation_distance_chart(layers, [d[k]["cosine"] for k in layers],
                                    [d[k]["rel_l2"] for k in layers])
    src = fig.renderers[0].data_source.data
    assert list(src["cosine"]) == [0.0, 0.0, 0.0] and list(src["l2"]) == [0.0, 0.0, 0.0]
    assert "identical in every layer" in fig.title.text
    assert fig.y_range.start == 0 and fig.y_range.end == 1  # not zoomed onto 1e-16
    assert any(isinstance(a, Label) and "identical" in a.text for a in fig.center)


def test_noise_is_dropped_but_real_differences_stay():
    # 1e-16 cosine (float64 rounding of identical vectors) and a float32-ulp L2 are noise;
    # a pure rescaling b = 1.5 a is parallel (cosine 0) but 50 % apart in L2.
    from viz.compare import without_rounding_noise

    cos, rel = without_rounding_noise([1e-16, 2e-16, 0.3, 1e-9],
                                      [0.0, 2e-7, 0.4, 0.5])
    np.testing.assert_array_equal(cos, [0.0, 0.0, 0.3, 1e-9])
    np.testing.assert_array_equal(rel, [0.0, 0.0, 0.4, 0.5])
    fig = activation_distance_chart(["a", "b"], [1e-16, 0.25], [0.0, 0.5])
    src = fig.renderers[0].data_source.data
    assert list(src["cosine"]) == [0.0, 0.25] and "identical" not in fig.title.text


# -- (d) compact tick labels ---------------------------------------------------------------
def test_number_axes_and_colour_bars_use_the_compact_formatter():
    fig = new_figure(title="t", height=100)
    assert isinstance(fig.xaxis[0].formatter, CustomJSTickFormatter)
    assert isinstance(fig.yaxis[0].formatter, CustomJSTickFormatter)
    spec = spectrogram_plot(np.zeros((4, 5)) + np.arange(5) * 1e-3, sample_rate=None)
    (bar,) = [r for r in spec.right if type(r).__name__ == "ColorBar"]
    assert isinstance(bar.formatter, CustomJSTickFormatter)
    factors = activation_distance_chart(["a", "b"], [0.1, 0.2], [0.1, 0.2])
    assert not isinstance(factors.xaxis[0].formatter, CustomJSTickFormatter)  # categorical


CASES = [  # ticks -> labels, as a reader writes them
    ([0, 0.0025, 0.005, 0.0075, 0.01], ["0", "0.0025", "0.005", "0.0075", "0.01"]),
    ([0.004, 0.005, 0.006], ["0.004", "0.005", "0.006"]),
    ([0, 2e-4, 4e-4, 6e-4], ["0", "2e-4", "4e-4", "6e-4"]),
    ([0, 1e-16, 2e-16], ["0", "1e-16", "2e-16"]),
    ([0, 50000, 100000, 150000], ["0", "5e4", "1e5", "1.5e5"]),
    ([-1, -0.5, 0, 0.5, 1], ["-1", "-0.5", "0", "0.5", "1"]),
    ([0.998, 0.999, 1.0, 1.001], ["0.998", "0.999", "1", "1.001"]),
    ([100, 200, 300], ["100", "200", "300"]),
    ([0.1 + 0.2, 0.4, 0.5], ["0.3", "0.4", "0.5"]),
    ([-0.2, -1e-17, 0.2], ["-0.2", "0", "0.2"]),
]


@pytest.mark.skipif(shutil.which("node") is None, reason="runs the formatter's JS in node")
def test_compact_tick_labels_in_javascript():
    script = (f"const f = (tick, index, ticks) => {{ {figstyle.COMPACT_TICKS_JS} }};\n"
              f"const cases = {json.dumps([c for c, _ in CASES])};\n"
              "console.log(JSON.stringify(cases.map((t) => t.map((x, i) => f(x, i, t)))));")
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [labels for _, labels in CASES]


# -- (b) Explain's legends below the curves -------------------------------------------------
def test_faithfulness_legend_is_outside_the_plot_frame():
    from serve.pages.explain_parts import curve_chart

    results = {m: {"deletion_curve": np.linspace(1, 0, 21)[None],
                   "deletion_auc": np.array([0.5])}
               for m in ("saliency", "integrated_gradients", "grad_cam", "random")}
    fig = curve_chart(results, mode="deletion", height=300)
    assert not any(isinstance(r, Legend) for r in fig.center)  # nothing over the curves
    (legend,) = [r for r in fig.below if isinstance(r, Legend)]
    assert len(legend.items) == 4 and legend.click_policy == "hide"
    assert fig.height == 300 + 2 * 22  # two rows of two entries: the frame keeps 300 px


def test_distance_chart_legend_is_below_the_markers():
    fig = activation_distance_chart(["conv1", "conv2"], [0.1, 0.2], [0.3, 0.4])
    assert not any(isinstance(r, Legend) for r in fig.center)
    (legend,) = [r for r in fig.below if isinstance(r, Legend)]
    assert [i.label["value"] for i in legend.items] == ["cosine distance", "relative L2"]
