"""The decoder prior: a spectrogram autoencoder's decoder, used as the input space of
activation maximisation (the Maximise page, ``hearsight experiment actmax``).

References:
  Soomro et al., "Generating speech utterances by activation maximisation" (maximising in the
  latent space of a spectrogram autoencoder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Prior:
    """A decoder prior: ``decode_fn`` maps codes ``(b, latent)`` to features ``(b, freq, time)``."""

    decode_fn: Callable
    latent: int


def load_prior(directory: str, params) -> Prior:
    """A :class:`Prior` from a ``spectrogram_ae`` checkpoint trained on the same features.

    Args:
      directory: the autoencoder's checkpoint folder.
      params: the classifier's :class:`data.features.FeatureParams`; the autoencoder must have
        been trained on exactly these features.
    """
    from flax import nnx

    from models.checkpoint import load_checkpoint

    model, meta = load_checkpoint(directory)
    if not hasattr(model, "decode") or meta.get("features") != params.to_dict():
        raise ValueError(f"{directory} is not a spectrogram autoencoder trained on the "
                         "classifier's features; train one with: hearsight train --arch "
                         "spectrogram_ae --features <same> ...")
    graphdef, state = nnx.split(model)
    return Prior(lambda z: nnx.merge(graphdef, state).decode(z), int(model.latent_dim))
