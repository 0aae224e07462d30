"""The toy problem shared by the training and checkpoint tests, and a classifier trained on it
once per session (training is the slow part)."""

from types import SimpleNamespace

import numpy as np
import pytest

from models.registry import build_model
from models.train import train_classifier

SHAPE = (16, 16)
LABELS = ["low", "high"]


def _bright_row_data(n, seed):
    """Class 0: a bright row near the bottom; class 1: near the top (noise floor elsewhere)."""
    rng = np.random.default_rng(seed)
    x = (-4.0 + rng.uniform(0.0, 1.0, (n, *SHAPE))).astype(np.float32)
    y = rng.integers(0, 2, n).astype(np.int32)
    rows = np.where(y == 0, 3, 12) + rng.integers(-1, 2, n)
    x[np.arange(n), rows, :] = -0.2
    return x, y


@pytest.fixture(scope="session")
def toy_problem():
    """``shape``, ``labels`` and ``data(n, seed) -> (x, y)`` of the bright-row problem."""
    return SimpleNamespace(shape=SHAPE, labels=LABELS, data=_bright_row_data)


@pytest.fixture(scope="session")
def trained():
    """A tiny d-DeVIS CNN trained on the toy problem (shared: training is the slow part)."""
    xtr, ytr = _bright_row_data(96, 0)
    xva, yva = _bright_row_data(48, 1)
    model = build_model("ddevis_cnn", n_classes=2, input_shape=SHAPE, seed=0)
    seen = []
    result = train_classifier(model, xtr, ytr, xva, yva, epochs=30, batch_size=32,
                              learning_rate=3e-3, patience=3, seed=0, progress=False,
                              on_epoch=lambda e, m, metrics: seen.append((e, metrics)))
    return model, result, seen, (xva, yva)
