"""flax nnx architectures, training, checkpoints and the model registry.

Public names are re-exported lazily (PEP 562) so that importing the package stays cheap:
``from models import DdevisCNN`` imports only the module that defines it.
"""

from __future__ import annotations

from hearsight.lazy import attach

_EXPORTS = {
    "DdevisCNN": "architectures",
    "SoomroCNN": "architectures",
    "FrameMLP": "architectures",
    "frame_windows": "architectures",
    "FRAME_CONTEXT": "architectures",
    "call_with_intermediates": "architectures",
    "SpectrogramAE": "autoencoder",
    "ARCHITECTURES": "registry",
    "DEFAULT_FEATURES": "registry",
    "build_model": "registry",
    "resolve_factory": "registry",
    "train_classifier": "train",
    "train_autoencoder": "train",
    "evaluate": "train",
    "recalibrate_batch_norm": "train",
    "TrainResult": "train",
    "save_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "CheckpointError": "checkpoint",
    "FitConfig": "fit",
    "to_model_inputs": "fit",
    "tap": "hooks",
    "intervening": "hooks",
    "make_intervention": "hooks",
    "intervene": "hooks",
}

__getattr__, __all__ = attach(__name__, _EXPORTS)
