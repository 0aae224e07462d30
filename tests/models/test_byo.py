"""Bring-your-own model: entry points resolve, train, forward, save and load."""

from pathlib import Path

import numpy as np
import pytest

from engine.forward import make_forward
from data.features import FeatureParams
from models.checkpoint import load_checkpoint, save_checkpoint
from models.registry import build_model, resolve_factory
from models.train import train_classifier

ENTRY = "byo_fixture:make_model"
SHAPE = (3, 5)


@pytest.fixture()
def byo_path(monkeypatch):
    # tests/ is not a package (import-mode importlib): put this folder on sys.path.
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


def _linear_logits(model, x):
    """Independent NumPy reference: two affine maps of the flattened input."""
    h = x.reshape(len(x), -1) @ np.asarray(model.hidden.kernel[...]) + np.asarray(
        model.hidden.bias[...])
    return h @ np.asarray(model.out.kernel[...]) + np.asarray(model.out.bias[...])


def test_byo_model_builds_trains_forwards_and_round_trips(byo_path, tmp_path):
    model = build_model(ENTRY, n_classes=2, input_shape=SHAPE, seed=0)
    assert type(model).__name__ == "TinyLinear"
    rng = np.random.default_rng(0)
    x = rng.uniform(-4, 0, (6, *SHAPE)).astype(np.float32)
    y = np.array([0, 1, 0, 1, 0, 1], np.int32)
    before = np.asarray(model.out.kernel[...]).copy()
    result = train_classifier(model, x, y, x, y, epochs=1, batch_size=6, progress=False)
    assert len(result.history) == 1
    assert not np.allclose(np.asarray(model.out.kernel[...]), before)  # one step was taken

    fwd = make_forward(model, max_batch=8, floor=-4.0)
    logits, acts = fwd(x)
    np.testing.assert_allclose(logits, _linear_logits(model, x), rtol=1e-5, atol=1e-5)
    assert set(acts) == {"hidden", "logits", "probs"} and acts["hidden"].shape == (6, 4)
    np.testing.assert_allclose(acts["probs"].sum(axis=1), 1.0, rtol=1e-6)

    meta = {"arch": ENTRY, "arch_kwargs": {"n_classes": 2, "input_shape": list(SHAPE)},
            "labels": ["no", "yes"], "features": FeatureParams().to_dict()}
    path = save_checkpoint(tmp_path / "byo", model, meta)
    loaded, meta2 = load_checkpoint(path, trusted_arch=ENTRY)
    assert meta2["arch"] == ENTRY
    np.testing.assert_allclose(_linear_logits(loaded, x), _linear_logits(model, x), rtol=1e-6)


def test_registered_names_resolve_without_import():
    assert callable(resolve_factory("ddevis_cnn"))


@pytest.mark.parametrize("arch, message", [
    ("nosuchmod:f", "cannot import module 'nosuchmod'"),
    ("os:path", "not a callable factory"),
    ("x", "unknown architecture 'x'"),
    ("byo_fixture:missing", "has no attribute 'missing'"),
    ("byo_fixture:NOT_CALLABLE", "not a callable factory"),
    ("byo_fixture:make_model()", "malformed entry point"),
    ("os:system; rm", "malformed entry point"),
])
def test_bad_entry_points_give_clear_errors(byo_path, arch, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        resolve_factory(arch)
