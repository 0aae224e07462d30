"""Bokeh/HoloViews/datashader builders: NumPy arrays in, plot objects out.

Public names are re-exported lazily (PEP 562) so that importing the package stays cheap:
``from viz import waveform_plot`` imports only the module that defines it.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "waveform_plot": "plots",
    "spectrogram_plot": "plots",
    "probability_bars": "plots",
    "compare_probability_bars": "plots",
    "dense_activation_bars": "plots",
    "MosaicLayout": "featuremaps",
    "mosaic": "featuremaps",
    "feature_map_mosaic": "featuremaps",
    "layer_distances": "featuremaps",
    "weight_histogram": "weights",
    "weight_histograms_grid": "weights",
    "layer_table": "weights",
    "layer_table_data": "weights",
    "difference_map_plot": "compare",
    "activation_distance_chart": "compare",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
