"""Pure JAX analyses: forward, inversion, attribution, actmax, strips, projections, metrics.

Public names are re-exported lazily (PEP 562) so that importing the package stays cheap:
``from engine import Forward`` imports only the module that defines it.
"""

from __future__ import annotations

from hearsight.lazy import attach

_EXPORTS = {
    "Forward": "forward",
    "make_forward": "forward",
    "Predictor": "predictor",
    "prediction_record": "predictor",
    "griffin_lim": "inversion",
    "griffin_lim_batch": "inversion",
    "spectrogram_to_audio": "inversion",
    "sonify_feature_map": "sonify",
    "sonify_feature_maps": "sonify",
    "spectral_convergence": "inversion",
    "features_to_magnitude": "inversion",
    "saliency": "attribution",
    "gradient_x_input": "attribution",
    "integrated_gradients": "attribution",
    "smoothgrad": "attribution",
    "grad_cam": "attribution",
    "occlusion": "attribution",
    "attribute": "attribution",
    "METHODS": "attribution",
    "curve": "faithfulness",
    "auc": "faithfulness",
    "faithfulness_summary": "faithfulness",
    "intervene": "ablation",
    "channel_means": "ablation",
    "ablation_effect": "ablation",
    "rank_channels": "ablation",
    "Objective": "objectives",
    "class_logit": "objectives",
    "class_prob": "objectives",
    "unit": "objectives",
    "channel_mean": "objectives",
    "l2": "objectives",
    "total_variation": "objectives",
    "jitter": "objectives",
    "make_maximiser": "actmax",
    "noise_start": "actmax",
    "latent_start": "actmax",
    "run": "actmax",
    "success_rate": "actmax",
    "StripFrame": "strips",
    "make_strip": "strips",
    "strip_frames": "strips",
    "pivot_mds": "projection",
    "classical_mds": "projection",
    "pca": "projection",
    "project": "projection",
    "ProjectionConfig": "projection",
    "ProcrustesResult": "procrustes",
    "procrustes_align": "procrustes",
    "align_layers": "procrustes",
    "interpolate_layouts": "procrustes",
    "procrustes_distance": "metrics",
    "distance_correlation": "metrics",
    "mutual_information_ksg": "metrics",
    "trustworthiness": "metrics",
    "continuity": "metrics",
    "knn_preservation": "metrics",
    "projection_quality": "metrics",
}

__getattr__, __all__ = attach(__name__, _EXPORTS)
