"""Bokeh/HoloViews/datashader builders: NumPy arrays in, plot objects out.

Public names are re-exported lazily (PEP 562) so that importing the package stays cheap:
``from viz import waveform_plot`` imports only the module that defines it.
"""

from __future__ import annotations

from hearsight.lazy import attach

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

__getattr__, __all__ = attach(__name__, _EXPORTS)
