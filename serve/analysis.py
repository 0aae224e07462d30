"""Analyses several pages (and the server's warm-up) share: which activations are feature maps,
and how a feature map sounds.

No widgets here; one example at a time (a session's current clip).
"""

from __future__ import annotations

import numpy as np

from serve.config import FEATURE_MAP_AUDIO_ITERS


def conv_layers(acts: dict) -> list[str]:
    """Names of spatial (freq, time, channels) activations of one example, in forward order."""
    return [k for k, v in acts.items() if np.ndim(v) == 3 and k not in ("probs", "logits")]


def sonify(acts_map: np.ndarray, predictor, *, seed: int = 0) -> np.ndarray:
    """Audio ``(n_samples,)`` of one feature map ``(freq', time')``: the map stretched over the
    predictor's input picture and inverted by Griffin-Lim (``predictor.sonify_map``, see
    :func:`engine.sonify.sonify_feature_map`; ``FEATURE_MAP_AUDIO_ITERS`` iterations, seeded
    phase). ``predictor`` may also be hearsight ``FeatureParams``."""
    from data.features import FeatureParams

    if isinstance(predictor, FeatureParams):
        import jax

        from engine.sonify import sonify_feature_map

        return np.asarray(sonify_feature_map(acts_map, predictor, n_iter=FEATURE_MAP_AUDIO_ITERS,
                                             key=jax.random.PRNGKey(seed)))
    return np.asarray(predictor.sonify_map(acts_map, n_iter=FEATURE_MAP_AUDIO_ITERS, seed=seed))
