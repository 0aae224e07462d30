"""``onnx:FILE``: a CNN exported with ``torch.onnx.export`` equals onnxruntime's output;
missing files, specs and unconvertible operators are refused with clear errors."""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
for _name in ("torchax", "onnx2torch"):  # plain imports fail here by design (compat.py)
    if importlib.util.find_spec(_name) is None:
        pytest.skip(f"{_name} is not installed", allow_module_level=True)

import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from foreign_builders import LABELS, make_cnn  # noqa: E402

from models.contract import describe, load_model  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """The tiny CNN as ONNX (opset 17, dynamic batch) with its sidecar spec."""
    model, spec = make_cnn()
    path = tmp_path_factory.mktemp("onnx") / "cnn.onnx"
    with warnings.catch_warnings():
        # torch's TorchScript exporter announces its own deprecation (torch >= 2.9); the
        # dynamo exporter needs onnxscript, which the project does not install
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model.eval(), (torch.zeros(1, 4000),), str(path), dynamo=False,
                          opset_version=17, input_names=["wave"], output_names=["logits"],
                          dynamic_axes={"wave": {0: "batch"}, "logits": {0: "batch"}})
    spec = {k: v for k, v in spec.items() if k != "layers"}  # default layers
    path.with_name("cnn.onnx.json").write_text(json.dumps(spec))
    return path


def test_onnx_matches_onnxruntime(exported):
    model = load_model(f"onnx:{exported}")
    assert model.labels == LABELS and model.info["adapter"] == "onnx"
    assert [(lay.name, lay.kind, lay.shape) for lay in model.layers] == [
        ("conv1", "freq_time", (40, 100, 4)), ("conv2", "time", (100, 8)),
        ("head", "vector", (3,))]
    x = np.random.default_rng(0).uniform(-1, 1, (5, 4000)).astype(np.float32)
    logits, acts = jax.jit(model.apply)(model.params, x)
    (ref,) = ort.InferenceSession(str(exported)).run(None, {"wave": x})
    dev = float(np.abs(np.asarray(logits) - ref).max())
    assert dev < 1e-4, dev
    np.testing.assert_allclose(np.asarray(acts["head"]), ref, atol=1e-4, rtol=0)
    grad = jax.jit(jax.grad(lambda x: model.apply(model.params, x)[0][:, 2].sum()))(x)
    assert np.isfinite(np.asarray(grad)).all() and np.abs(np.asarray(grad)).max() > 0
    print(json.dumps({"onnx_max_abs_logits": dev}))
    assert describe(model)["parameters"] > 0


def test_missing_file_and_spec_are_clear_errors(exported, tmp_path):
    with pytest.raises(ValueError, match="no file"):
        load_model(f"onnx:{tmp_path / 'nope.onnx'}")
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(exported.read_bytes())
    with pytest.raises(ValueError, match=r"no spec .*lone\.onnx\.json"):
        load_model(f"onnx:{lone}")


def test_operator_onnx2torch_cannot_convert_is_named(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Hardmax", ["wave"], ["logits"], axis=1)], "hardmax",
        [helper.make_tensor_value_info("wave", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 16])])
    path = tmp_path / "hardmax.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    path.with_name("hardmax.onnx.json").write_text(json.dumps(
        {"input": "waveform", "sample_rate": 16, "n_samples": 16}))
    with pytest.raises(ValueError, match=r"onnx2torch cannot convert.*Hardmax.*nothing was "
                                         r"loaded"):
        load_model(f"onnx:{path}")
