"""One entry point for every layer projection: :func:`project` dispatches on a method name
(:class:`ProjectionConfig` holds its static settings), :func:`layout_of` gives the 2-D layout
the layer morph and the ``project`` command draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import numpy as np

from engine.projection.autoencoder import project_ae
from engine.projection.classical_mds import classical_mds
from engine.projection.pca import pca
from engine.projection.peers import tsne_layout, umap_layout
from engine.projection.pivot_mds import PivotChoice, pivot_mds

Method = Literal["pivotmds", "pca", "mds", "umap", "tsne"]


@dataclass(frozen=True)
class ProjectionConfig:
    """Static settings of one projection (hashable, so usable as a jit static argument).

    Attributes:
      method: ``"pivotmds"``, ``"pca"``, ``"mds"`` (classical), ``"umap"`` or ``"tsne"``.
      dims: output dimensions.
      k: PivotMDS pivots.
      pivots: PivotMDS pivot choice, ``"maxmin"`` or ``"random"``.
      chunk: rows per streamed block (PivotMDS, PCA).
      n_neighbors: UMAP neighbourhood size.
      perplexity: t-SNE perplexity.
    """

    method: Method = "pivotmds"
    dims: int = 2
    k: int = 50
    pivots: PivotChoice = "maxmin"
    chunk: int = 65536
    n_neighbors: int = 15
    perplexity: float = 30.0

    def __post_init__(self) -> None:
        if self.method not in ("pivotmds", "pca", "mds", "umap", "tsne"):
            raise ValueError(f"unknown projection method {self.method!r}; choose one of "
                             "'pivotmds', 'pca', 'mds', 'umap', 'tsne'")
        if self.dims < 1:
            raise ValueError(f"dims must be >= 1, got {self.dims}")


def project(x, *, method: Method = "pivotmds", key: jax.Array | None = None,
            **kw) -> jax.Array:
    """Project ``(n, d)`` points to ``(n, dims)`` with the named method.

    Keyword arguments are the fields of :class:`ProjectionConfig`. ``key`` is required by the
    randomised methods (``pivotmds``, ``umap``, ``tsne``). UMAP and t-SNE need the optional
    peers (``pip install hearsight[peers]``).
    """
    unknown = set(kw) - set(ProjectionConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown projection options {sorted(unknown)}")
    cfg = ProjectionConfig(method=method, **kw)
    if cfg.method == "pca":
        return pca(x, dims=cfg.dims, chunk=cfg.chunk)
    if cfg.method == "mds":
        return classical_mds(x, dims=cfg.dims)
    if key is None:
        raise ValueError(f"method {cfg.method!r} is randomised: pass key=jax.random.key(seed)")
    if cfg.method == "pivotmds":
        return pivot_mds(x, k=cfg.k, dims=cfg.dims, pivots=cfg.pivots, key=key, chunk=cfg.chunk)
    fn = umap_layout if cfg.method == "umap" else tsne_layout
    return fn(x, cfg=cfg, key=key)


def layout_of(x: np.ndarray, *, method: str, key: jax.Array, pivots: int,
              strategy: str = "maxmin") -> np.ndarray:
    """``(n, 2)`` float32 layout of ``(n, d)`` activations with the named method.

    ``method`` is one of :func:`project`'s methods or ``"ae"``: the autoencoder projection,
    fitted on ``x`` itself and applied to it as a fixed map (the activation store holds one
    split; ``hearsight experiment projections`` fits on train frames and applies to test).
    PivotMDS uses ``min(pivots, n)`` pivots chosen by ``strategy`` (``"maxmin"`` or
    ``"random"``). A missing optional peer (umap-learn, openTSNE)
    raises ``ValueError`` with the install hint.
    """
    if method == "ae":
        return np.asarray(project_ae(x, x, key=key, dims=2), np.float32)
    kw = {"k": min(pivots, x.shape[0]), "pivots": strategy} if method == "pivotmds" else {}
    try:
        return np.asarray(project(x, method=method, key=key, dims=2, **kw), np.float32)
    except ImportError as exc:  # optional peers (umap-learn, openTSNE) missing
        raise ValueError(str(exc)) from exc
