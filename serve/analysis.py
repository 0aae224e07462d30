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


def sonify(acts_map: np.ndarray, params, *, seed: int = 0) -> np.ndarray:
    """Audio ``(params.n_samples,)`` of one feature map ``(freq', time')``: the map stretched
    over the spectrogram and inverted by Griffin-Lim (:func:`engine.sonify.sonify_feature_map`,
    ``FEATURE_MAP_AUDIO_ITERS`` iterations, seeded phase)."""
    import jax

    from engine.sonify import sonify_feature_map

    key = jax.random.PRNGKey(seed)
    return np.asarray(sonify_feature_map(acts_map, params, n_iter=FEATURE_MAP_AUDIO_ITERS, key=key))
