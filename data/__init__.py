"""Audio IO, features and their parameters, edits, corpora, cached datasets.

Public names are re-exported lazily (PEP 562) so that importing the package stays cheap:
``from data import FeatureParams`` imports only the module that defines it.
"""

from __future__ import annotations

from hearsight.lazy import attach

_EXPORTS = {
    "FeatureParams": "features",
    "ddevis_stft": "features",
    "soomro_logmel": "features",
    "features_batch": "features",
    "log_mel": "features",
    "log_magnitude": "features",
    "stft": "features",
    "istft": "features",
    "AudioError": "audio",
    "load_audio": "audio",
    "prepare_wave": "audio",
    "fit_to_window": "audio",
    "peak_normalise": "audio",
    "check_not_silent": "audio",
    "to_wav_bytes": "audio",
    "EDITS": "edits",
    "EDIT_SCHEMAS": "edits",
    "apply_chain": "edits",
    "chain_to_json": "edits",
    "chain_from_json": "edits",
    "EditHistory": "edits",
    "validate_edit": "edits",
    "check_param": "edits",
    "Item": "corpora",
    "Corpus": "corpora",
    "open_corpus": "corpora",
    "cache_home": "corpora",
    "SplitArrays": "dataset",
    "load_split": "dataset",
    "load_waves": "dataset",
}

__getattr__, __all__ = attach(__name__, _EXPORTS)
