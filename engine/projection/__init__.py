"""Layer projections and how good they are.

Layouts: PivotMDS (million-point scale, streamed), classical MDS, PCA, the autoencoder
projection and the optional peers UMAP and t-SNE, all behind :func:`project` / :func:`layout_of`.
Procrustes analysis aligns the layouts of consecutive layers for the layer morph. The quality
measures say how much of the high-dimensional structure a layout keeps: the Procrustes
distance, neighbourhood preservation (trustworthiness, continuity, kNN preservation) and
dependence (distance correlation, KSG mutual information).
"""

from __future__ import annotations

from engine.projection.autoencoder import AEProjection, fit_ae_projection, project_ae
from engine.projection.classical_mds import MAX_MDS_POINTS, classical_mds
from engine.projection.dependence import distance_correlation, mutual_information_ksg
from engine.projection.layouts import ProjectionConfig, layout_of, project
from engine.projection.pairs import subsample
from engine.projection.pca import pca
from engine.projection.pivot_mds import pivot_mds, random_pivots
from engine.projection.procrustes import (ProcrustesResult, align_layers, interpolate_layouts,
                                          procrustes_align, procrustes_distance)
from engine.projection.quality import (continuity, knn_preservation, projection_quality,
                                       trustworthiness)
from engine.projection.streaming import aligned_empty

__all__ = [
    "AEProjection", "MAX_MDS_POINTS", "ProcrustesResult", "ProjectionConfig", "align_layers",
    "aligned_empty", "classical_mds", "continuity", "distance_correlation", "fit_ae_projection",
    "interpolate_layouts", "knn_preservation", "layout_of", "mutual_information_ksg", "pca",
    "pivot_mds", "procrustes_align", "procrustes_distance", "project", "project_ae",
    "projection_quality", "random_pivots", "subsample", "trustworthiness",
]
