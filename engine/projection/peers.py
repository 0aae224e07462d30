"""Optional peer projections (UMAP, openTSNE), imported lazily so the engine runs without them.

Install with ``pip install hearsight[peers]``. Both run on the host with NumPy; the seed is
drawn from the explicit ``jax.random`` key so results are reproducible.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

PEERS_HINT = "pip install hearsight[peers]"


def _seed(key: jax.Array) -> int:
    return int(jax.random.randint(key, (), 0, 2**31 - 1))


def umap_layout(x, *, cfg, key: jax.Array) -> jax.Array:
    """UMAP layout ``(n, cfg.dims)`` of ``(n, d)`` points.

    References:
      McInnes, Healy & Melville (2018), UMAP: Uniform Manifold Approximation and Projection.
    """
    try:
        import umap
    except ImportError as err:
        raise ImportError(f"method='umap' needs umap-learn: {PEERS_HINT}") from err
    model = umap.UMAP(n_components=cfg.dims, n_neighbors=cfg.n_neighbors,
                      random_state=_seed(key))
    return jnp.asarray(model.fit_transform(np.asarray(x, np.float32)), jnp.float32)


def tsne_layout(x, *, cfg, key: jax.Array) -> jax.Array:
    """openTSNE (FFT-accelerated t-SNE) layout ``(n, cfg.dims)`` of ``(n, d)`` points.

    References:
      van der Maaten & Hinton (2008), Visualizing data using t-SNE. JMLR 9;
      Poličar, Stražar & Zupan (2024), openTSNE. JSS 109.
    """
    try:
        import openTSNE
    except ImportError as err:
        raise ImportError(f"method='tsne' needs openTSNE: {PEERS_HINT}") from err
    model = openTSNE.TSNE(n_components=cfg.dims, perplexity=cfg.perplexity,
                          random_state=_seed(key))
    return jnp.asarray(np.asarray(model.fit(np.asarray(x, np.float64))), jnp.float32)
