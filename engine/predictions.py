"""Predictions as records: every class's probability for audio files, for any predictor."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def prediction_record(name: str, probs: np.ndarray, labels: list[str]) -> dict:
    """JSON-friendly prediction: top class, its probability, every class's probability."""
    order = np.argsort(-probs)
    return {"file": name, "top": labels[int(order[0])], "probability": float(probs[order[0]]),
            "probs": {labels[i]: float(probs[i]) for i in order}}


def predict_files(predictor, paths: list[str]) -> list[dict]:
    """One record per file: probabilities of every class, or the reason it failed."""
    from data.audio import AudioError, prepare_wave

    out = []
    for path in paths:
        try:
            wave = prepare_wave(path, predictor.params, name=Path(path).name)
        except AudioError as exc:
            out.append({"file": str(path), "error": str(exc)})
            continue
        probs = predictor.predict_waves(wave[None])[0]
        out.append(prediction_record(str(path), probs, predictor.labels))
    return out
