"""``torch:package.module:factory``: a small CNN with a declared spec equals PyTorch eager;
interventions reach its layers; an operator without a lowering is refused by name."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("torchax") is None:  # a plain import fails on torch 2.13 (compat.py)
    pytest.skip("torchax is not installed", allow_module_level=True)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from models import intervening, make_intervention  # noqa: E402
from models.contract import InputSpace, describe, load_model  # noqa: E402
from models.foreign.bridge import Tap, bridge_module  # noqa: E402

HERE = Path(__file__).parent
SPEC = "torch:foreign_builders:make_cnn"


@pytest.fixture(autouse=True)
def builders_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def _reference(x: np.ndarray, *, zero_channel: int | None = None):
    """Eager logits, channels-last conv maps and the input gradient of the factory's CNN."""
    from foreign_builders import make_cnn

    model = make_cnn()[0].eval()
    outs = {}

    def keep(name):
        def hook(mod, args, out):
            if zero_channel is not None and name == "conv1":
                out = out.clone()
                out[:, zero_channel] = 0
            outs[name] = out
            return out
        return hook

    model.conv1.register_forward_hook(keep("conv1"))
    model.conv2.register_forward_hook(keep("conv2"))
    leaf = torch.tensor(x, requires_grad=True)
    logits = model(leaf)
    logits[:, 0].sum().backward()
    acts = {"conv1": outs["conv1"].detach().numpy().transpose(0, 2, 3, 1),
            "conv2": outs["conv2"].detach().numpy().transpose(0, 2, 1)}
    return logits.detach().numpy(), acts, leaf.grad.numpy()


def test_cnn_matches_pytorch_eager():
    model = load_model(SPEC)
    assert model.input.kind == "waveform" and model.input.shape == (4000,)
    assert [(lay.name, lay.kind, lay.shape) for lay in model.layers] == [
        ("conv1", "freq_time", (40, 100, 4)), ("conv2", "time", (100, 8)),
        ("pooled", "vector", (8,))]
    x = np.random.default_rng(0).uniform(-1, 1, (3, 4000)).astype(np.float32)
    logits, acts = jax.jit(model.apply)(model.params, x)
    grad = jax.jit(jax.grad(lambda x: model.apply(model.params, x)[0][:, 0].sum()))(x)
    ref_logits, ref_acts, ref_grad = _reference(x)
    np.testing.assert_allclose(np.asarray(logits), ref_logits, atol=1e-4, rtol=0)
    for name, ref in ref_acts.items():
        np.testing.assert_allclose(np.asarray(acts[name]), ref, atol=1e-4, rtol=0)
    assert np.abs(np.asarray(grad) - ref_grad).max() < 1e-3 * np.abs(ref_grad).max()
    import foreign_builders

    cnn = foreign_builders.make_cnn()[0]
    assert describe(model)["parameters"] == sum(t.numel() for t in cnn.state_dict().values()
                                                if t.is_floating_point())


def test_spec_as_attribute_is_the_same_model():
    a, b = load_model(SPEC), load_model("torch:foreign_builders:make_cnn_with_attribute")
    x = np.random.default_rng(1).uniform(-1, 1, (2, 4000)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(a.apply(a.params, x)[0]),
                                  np.asarray(b.apply(b.params, x)[0]))


def test_intervention_masks_a_channel_inside_the_torch_model():
    model = load_model(SPEC)
    x = np.random.default_rng(2).uniform(-1, 1, (2, 4000)).astype(np.float32)
    mask = jnp.ones(4).at[1].set(0.0)

    @jax.jit
    def ablated(params, x):
        with intervening(make_intervention(mask={"conv1": mask})):
            return model.apply(params, x)

    logits, acts = ablated(model.params, x)
    ref_logits, ref_acts, _ = _reference(x, zero_channel=1)
    assert np.all(np.asarray(acts["conv1"])[..., 1] == 0)
    np.testing.assert_allclose(np.asarray(logits), ref_logits, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(acts["conv2"]), ref_acts["conv2"], atol=1e-4, rtol=0)
    plain = np.asarray(jax.jit(model.apply)(model.params, x)[0])
    assert np.abs(plain - np.asarray(logits)).max() > 1e-3  # the mask changed the output


class _Airy(torch.nn.Module):
    """A classifier whose forward calls an operator torchax 0.0.13 has no lowering for."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(16, 2)

    def forward(self, x):
        return self.head(torch.special.airy_ai(x))


def test_operator_without_lowering_is_refused_by_name():
    space = InputSpace("waveform", 16, 16, (16,))
    with pytest.raises(ValueError, match=r"^torch:airy: cannot be lowered to JAX: .*"
                                         r"aten::special_airy_ai has no lowering.*Replace the "
                                         r"layer.*nothing was loaded$"):
        bridge_module(_Airy(), spec="torch:airy", input_space=space,
                      taps=[Tap("head", "head", "vector")])


@pytest.mark.parametrize(("entry", "message"), [
    ("foreign_builders:missing", "has no attribute 'missing'"),
    ("no_such_module_here:make", "cannot import module"),
])
def test_bad_factory_is_a_clear_error(entry, message):
    with pytest.raises(ValueError, match=message):
        load_model(f"torch:{entry}")


def test_bad_spec_is_a_clear_error(monkeypatch):
    import foreign_builders

    model, spec = foreign_builders.make_cnn()
    cases = [({**spec, "layers": {"x": "nope.sub"}}, "does not have"),
             ({**spec, "labels": ["a"]}, "1 labels for 3 logits"),
             ({**spec, "input": "spectrogram"}, "'input' must be"),
             ({**spec, "colour": 1}, "unknown spec keys"),
             ({k: v for k, v in spec.items() if k != "sample_rate"}, "needs 'sample_rate'")]
    for bad, message in cases:
        monkeypatch.setattr(foreign_builders, "make_cnn", lambda bad=bad: (model, bad))
        with pytest.raises(ValueError, match=message):
            load_model(SPEC)


def test_unknown_prefix_names_the_adapters():
    with pytest.raises(ValueError, match="hf:PATH, torch:package.module:factory, onnx:FILE"):
        load_model("keras:model.h5")


def test_threads_tracing_one_model_keep_their_own_layers():
    from concurrent.futures import ThreadPoolExecutor

    model = load_model(SPEC)
    rng = np.random.default_rng(3)
    xs = [rng.uniform(-1, 1, (b, 4000)).astype(np.float32) for b in (1, 2, 3, 4)]
    with ThreadPoolExecutor(4) as pool:  # four traces (one per batch size) at once
        outs = list(pool.map(lambda x: jax.jit(model.apply)(model.params, x), xs))
    for x, (logits, acts) in zip(xs, outs):
        ref_logits, ref_acts, _ = _reference(x)
        np.testing.assert_allclose(np.asarray(logits), ref_logits, atol=1e-4, rtol=0)
        np.testing.assert_allclose(np.asarray(acts["conv2"]), ref_acts["conv2"], atol=1e-4,
                                   rtol=0)


def test_bridging_leaves_the_pytorch_module_as_it_was():
    import foreign_builders

    module, spec = foreign_builders.make_cnn()
    x = torch.from_numpy(np.random.default_rng(4).uniform(-1, 1, (2, 4000)).astype(np.float32))
    with torch.no_grad():
        before = module.eval()(x).numpy()
    model = bridge_module(module, spec="torch:cnn", input_space=InputSpace(
        "waveform", 4000, 4000, (4000,)), taps=[Tap("conv1", "conv1")])
    with torch.no_grad():
        np.testing.assert_array_equal(module(x).numpy(), before)  # hooks are inert outside
    np.testing.assert_allclose(np.asarray(jax.jit(model.apply)(model.params, x.numpy())[0]),
                               before, atol=1e-4, rtol=0)
