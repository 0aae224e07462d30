"""Any ``torch.nn.Module`` classifier behind the model contract, lowered to JAX by torchax.

torchax (``torchax.extract_jax``) turns a module's ATen ops into a pure JAX function of its
weights, so ``jax.jit``, ``jax.grad`` and ``jax.vmap`` work on it. Intermediates are captured
with forward hooks on declared submodules (a :class:`Tap` each); the hooks run while torchax
traces, inside ``jax.jit``, and hand the activation to :func:`models.hooks.tap`, so the
engine's interventions (ablation masks, Grad-CAM perturbations) reach foreign models too.

Before extraction the module is put in eval mode and float32, and weight-norm
parametrisations are baked into plain weights (torchax has no lowering for the
``aten::set_`` they use; wav2vec2's positional convolution has one). A model loads whole or
not at all: one eager forward (batch 1) finds the layers' shapes and the ATen ops it runs,
one abstract trace (``jax.eval_shape``) proves every op lowers; either failing raises a
``ValueError`` naming the model, the first op that cannot be lowered and what to do.
"""

from __future__ import annotations

import contextvars
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from models import tap
from models.contract import LAYER_KINDS, InputSpace, LayerInfo, LoadedModel
from models.foreign.compat import import_torchax

Call = Callable[[Any, Any], Any]  # (module, model input tensor) -> logits tensor
_CHANNELS_FIRST = {"freq_time", "time"}  # torch (batch, channels, ...) -> channels-last


@dataclass(frozen=True)
class Tap:
    """A layer to expose.

    Attributes:
      name: its name in the activations dict (``conv1``, ``layer3``, ...).
      module: dotted path of the submodule in ``module.named_modules()`` (``features.0``).
      kind: ``"freq_time"`` (torch ``(channels, freq, time)``), ``"time"`` (torch
        ``(channels, time)``), ``"sequence"`` (``(time, dim)``) or ``"vector"`` (``(dim,)``);
        ``None``: inferred (a 4-d output is ``freq_time``, 2-d ``vector``, a ``Conv1d``'s
        3-d output ``time``; any other 3-d output is ambiguous and must be declared).
      capture: ``"output"`` (forward hook) or ``"input"`` (the first positional input, e.g.
        a classifier head's pooled vector).
    """

    name: str
    module: str
    kind: str | None = None
    capture: Literal["output", "input"] = "output"


def prepare_module(module):
    """``module`` in eval mode and float32 with parametrisations and weight norm baked in."""
    import torch
    from torch.nn.utils import parametrize

    for sub in module.modules():
        if parametrize.is_parametrized(sub):
            for name in list(sub.parametrizations.keys()):
                parametrize.remove_parametrizations(sub, name, leave_parametrized=True)
        for hook in list(sub._forward_pre_hooks.values()):  # legacy torch.nn.utils.weight_norm
            if type(hook).__name__ == "WeightNorm":
                torch.nn.utils.remove_weight_norm(sub, hook.name)
    return module.eval().float()


def _first_tensor(value):
    return value[0] if isinstance(value, (tuple, list)) else value


def _with_first(value, first):
    if isinstance(value, (tuple, list)):
        return type(value)((first, *value[1:]))
    return first


def _canonical(kind: str, value: jax.Array) -> jax.Array:
    return jnp.moveaxis(value, 1, -1) if kind in _CHANNELS_FIRST else value


def _torch_layout(kind: str, value: jax.Array) -> jax.Array:
    return jnp.moveaxis(value, -1, 1) if kind in _CHANNELS_FIRST else value


# torchax swaps the traced weights into the module's attributes while it traces (torch.func
# style reparametrisation), and warnings.catch_warnings is process-wide: one trace at a time.
# Tracing holds the GIL anyway; compiled calls never take the lock.
_TRACING = threading.RLock()
# The activations of the trace under way in this thread (or task); None outside one. Hooks
# stay registered and write here, so two threads tracing the same model never mix layers.
_RECORDING: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "hearsight_foreign_acts", default=None)


def _make_tapped(model, taps: Sequence[Tap], call: Call):
    """A wrapper module whose forward returns ``(logits, {name: channels-last activation})``.

    The hooks are registered once on ``model``'s submodules; outside a bridged trace they do
    nothing (a plain PyTorch call of the model is unchanged).
    """
    import torch

    env = import_torchax().default_env()
    subs = dict(model.named_modules())
    for t in taps:
        _register(subs[t.module], t, env)

    class Tapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            token = _RECORDING.set({})
            try:
                logits = call(self.model, x)
                acts = _RECORDING.get()
            finally:
                _RECORDING.reset(token)
            return logits, {t.name: acts[t.name] for t in taps}

    return Tapped()


def _register(sub, t: Tap, env):
    def seen(value):
        acts = _RECORDING.get()
        if acts is None:
            return None
        v = _canonical(t.kind, env.t2j_iso(_first_tensor(value)))
        changed = tap(t.name, v)
        acts[t.name] = changed
        if changed is v:
            return None
        return _with_first(value, env.j2t_iso(_torch_layout(t.kind, changed)))

    if t.capture == "input":
        return sub.register_forward_pre_hook(lambda mod, args: seen(args))
    return sub.register_forward_hook(lambda mod, args, out: seen(out))


def _check_taps(model, taps: Sequence[Tap], spec: str) -> None:
    names = dict(model.named_modules())
    for t in taps:
        if t.module not in names:
            near = [n for n in names if n and n.split(".")[-1] == t.module.split(".")[-1]][:5]
            raise ValueError(f"{spec}: layer {t.name!r} names submodule {t.module!r}, which the "
                             f"model does not have (similar: {near or 'none'}); use a name from "
                             "model.named_modules()")
        if t.kind is not None and t.kind not in LAYER_KINDS:
            raise ValueError(f"{spec}: layer {t.name!r} has kind {t.kind!r}; use one of "
                             f"{sorted(LAYER_KINDS)}")
    dup = {t.name for t in taps if sum(u.name == t.name for u in taps) > 1}
    if dup:
        raise ValueError(f"{spec}: layer names must be unique, repeated: {sorted(dup)}")


def _inferred_kind(sub, t: Tap, rank: int) -> str | None:
    import torch

    if t.capture == "output" and rank == 3 and isinstance(sub, torch.nn.Conv1d):
        return "time"
    return {4: "freq_time", 2: "vector"}.get(rank)


def _resolve_kind(t: Tap, outs: dict, model, spec: str) -> Tap:
    """``t`` with its kind settled from its eager output (batch first) and module type."""
    if t.name not in outs:
        raise ValueError(f"{spec}: layer {t.name!r} ({t.module}) was not called by the forward; "
                         "expose a submodule that runs")
    shape = tuple(outs[t.name].shape)
    kind = t.kind or _inferred_kind(model.get_submodule(t.module), t, len(shape))
    if kind is None:
        raise ValueError(f"{spec}: layer {t.name!r} ({t.module}) gives a {len(shape) - 1}-d "
                         f"output {tuple(shape[1:])} per example; declare its kind: 'time' "
                         "(channels x time, a conv1d) or 'sequence' (time x dim)")
    if len(shape) - 1 != LAYER_KINDS[kind]:
        raise ValueError(f"{spec}: layer {t.name!r} of kind {kind!r} gives shape "
                         f"{tuple(shape[1:])} per example; a {kind} layer is "
                         f"{LAYER_KINDS[kind]}-d")
    return replace(t, kind=kind)


def eager_probe(model, taps: Sequence[Tap], call: Call, x, spec: str):
    """One eager PyTorch forward on ``x``: logits, ``{name: torch-layout output}``, ATen ops."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recorder(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops: dict[str, None] = {}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.setdefault(str(func), None)
            return func(*args, **(kwargs or {}))

    subs, outs, handles = dict(model.named_modules()), {}, []
    for t in taps:
        keep = (lambda n: lambda mod, out: outs.__setitem__(n, _first_tensor(out)))(t.name)
        handles.append(subs[t.module].register_forward_pre_hook(keep) if t.capture == "input"
                       else subs[t.module].register_forward_hook(
                           lambda mod, args, out, keep=keep: keep(mod, out)))
    try:
        with torch.no_grad(), Recorder() as rec:
            logits = call(model, x)
    except Exception as e:
        raise ValueError(f"{spec}: the PyTorch forward failed on an input of shape "
                         f"{tuple(x.shape)}: {type(e).__name__}: {e}") from e
    finally:
        for h in handles:
            h.remove()
    return logits, outs, list(rec.ops)


def _lowering_error(spec: str, e: Exception) -> ValueError:
    torchax = import_torchax()
    if isinstance(e, torchax.tensor.OperatorNotFound):
        return ValueError(
            f"{spec}: cannot be lowered to JAX: {e} (torchax {torchax.__version__}). Replace the "
            "layer that uses this operator with standard torch ops (or export the model "
            "without it), or register a JAX lowering for it with torchax.ops; nothing was "
            "loaded")
    return ValueError(f"{spec}: tracing the model to JAX failed: {type(e).__name__}: {e}. "
                      "Data-dependent shapes and Python control flow on tensor values cannot "
                      "be traced; nothing was loaded")


def bridge_module(module, *, spec: str, input_space: InputSpace, taps: Sequence[Tap],
                  labels: Sequence[str] | None = None, call: Call | None = None,
                  to_model: Callable[[jax.Array], jax.Array] | None = None,
                  info: dict | None = None) -> LoadedModel:
    """``module`` behind the contract.

    Args:
      module: a ``torch.nn.Module`` classifier.
      spec: the model spec (named in errors).
      input_space: what ``apply`` takes; ``x`` is ``(batch, *input_space.shape)``.
      taps: the layers to expose (:class:`Tap`), in forward order.
      labels: class names in logit order (``None``: ``"0"``, ``"1"``, ...).
      call: ``call(module, model_input) -> logits (batch, classes)``; default ``module(x)``.
      to_model: JAX preprocessing of ``x`` before the module (normalisation, transposes).
      info: adapter facts for ``describe``.
    """
    import torch

    torchax = import_torchax()
    call = call or (lambda m, x: _first_tensor(m(x)))
    model = prepare_module(module)
    _check_taps(model, taps, spec)
    to_model = to_model or (lambda x: x)
    x0 = np.asarray(to_model(jnp.zeros((1, *input_space.shape), jnp.float32)))
    logits0, outs, ops = eager_probe(model, taps, call, torch.from_numpy(x0.copy()), spec)
    if logits0.ndim != 2:
        raise ValueError(f"{spec}: the model returns logits of shape {tuple(logits0.shape)}; "
                         "expected (batch, classes)")
    taps = [_resolve_kind(t, outs, model, spec) for t in taps]
    labels = _labels(labels, logits0.shape[1], spec)
    with warnings.catch_warnings():
        # torchax reads every attribute of every submodule to find tensors, deprecated
        # properties (transformers' is_gradient_checkpointing) included
        warnings.simplefilter("ignore", FutureWarning)
        weights, fn = torchax.extract_jax(_make_tapped(model, taps, call))

    # Shapes must stay concrete: ONNX graphs compute them with tensor ops (Shape, Gather,
    # Concat) and branch on them in Python. So integer buffers (shape constants, index
    # tables, BatchNorm's counter) are closed over instead of traced, only floating-point
    # tensors are params, and ops on concrete values run at trace time.
    weights, static = _split_static(weights)

    def apply(params, x):
        with _TRACING, warnings.catch_warnings(), jax.ensure_compile_time_eval():
            # torch's int64 indices become JAX's int32 (x64 is off), as intended
            warnings.filterwarnings("ignore", message="Explicitly requested dtype int64",
                                    category=UserWarning)
            return fn({**params, **static}, (to_model(jnp.asarray(x, jnp.float32)),))

    try:
        _, acts = jax.eval_shape(apply, weights, jax.ShapeDtypeStruct(
            (1, *input_space.shape), jnp.float32))
    except Exception as e:  # noqa: BLE001 - every failure to trace becomes one clear error
        raise _lowering_error(spec, e) from e
    layers = tuple(LayerInfo(t.name, t.kind, tuple(acts[t.name].shape[1:])) for t in taps)
    facts = {"torchax": torchax.__version__, "torch": torch.__version__, "ops": ops}
    return LoadedModel(spec=spec, input=input_space, params=weights, apply=apply,
                       labels=labels, layers=layers, info={**(info or {}), **facts})


def _split_static(weights: dict) -> tuple[dict, dict]:
    """``(floating-point tensors, the rest)`` of torchax's weights dict."""
    floating = {k: v for k, v in weights.items() if jnp.issubdtype(v.dtype, jnp.inexact)}
    return floating, {k: v for k, v in weights.items() if k not in floating}


def _labels(labels: Sequence[str] | None, n: int, spec: str) -> tuple[str, ...]:
    if labels is None:
        return tuple(str(i) for i in range(n))
    if len(labels) != n:
        raise ValueError(f"{spec}: {len(labels)} labels for {n} logits; give one label per "
                         "class, in logit order")
    return tuple(str(label) for label in labels)
