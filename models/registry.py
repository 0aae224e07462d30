"""Model registry and the bring-your-own (BYO) model protocol.

An architecture is named either by a registered name (``ddevis_cnn``, ``soomro_cnn``,
``frame_mlp``, ``spectrogram_ae``) or by an entry point ``"package.module:factory"`` that is
imported with :mod:`importlib` (never ``eval``); the module must be importable (on
``sys.path`` / ``PYTHONPATH``).

Bring-your-own protocol — a factory::

    def make_model(*, n_classes: int, input_shape: tuple[int, int], rngs: nnx.Rngs) -> nnx.Module

returning an ``nnx.Module`` that

- maps features ``(batch, freq, time)`` float32 (values in ``[floor, 0]``) to logits
  ``(batch, n_classes)``; ``input_shape == (freq, time)``;
- sows its intermediate activations as ``nnx.Intermediate`` under stable names, e.g.
  ``self.sow(nnx.Intermediate, "conv1", x)`` (or ``models.architectures.sow(self, "conv1", x)``,
  which stays silent outside ``nnx.capture`` on flax ≥ 0.12);
- has ``layer_names: tuple[str, ...]``, the sown names in forward order;
- optionally has ``input_shape`` (used by ``engine.forward`` to fit the time axis);
- optionally behaves differently in training (dropout, batch-norm) through nnx's standard
  ``model.train()`` / ``model.eval()``.

Checkpoints store the entry point string as ``arch``, so the same module must be importable
when the checkpoint is loaded.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

from flax import nnx

from models.architectures import DdevisCNN, FrameMLP, SoomroCNN, call_with_intermediates
from models.autoencoder import SpectrogramAE

__all__ = ["ARCHITECTURES", "DEFAULT_FEATURES", "arch_help", "build_model",
           "call_with_intermediates", "resolve_factory"]

Factory = Callable[..., nnx.Module]


def _ddevis(*, n_classes: int, input_shape: tuple[int, int], rngs: nnx.Rngs) -> nnx.Module:
    return DdevisCNN(n_classes, input_shape, rngs=rngs)


def _soomro(*, n_classes: int, input_shape: tuple[int, int], rngs: nnx.Rngs,
            **options) -> nnx.Module:
    return SoomroCNN(n_classes, input_shape, rngs=rngs, **options)


def _frame_mlp(*, n_classes: int, input_shape: tuple[int, int], rngs: nnx.Rngs) -> nnx.Module:
    return FrameMLP(n_classes, input_shape, rngs=rngs)


def _spectrogram_ae(*, n_classes: int, input_shape: tuple[int, int],
                    rngs: nnx.Rngs) -> nnx.Module:
    del n_classes  # an autoencoder has no classes; kept for the common factory signature
    return SpectrogramAE(input_shape, rngs=rngs)


ARCHITECTURES: dict[str, Factory] = {
    "ddevis_cnn": _ddevis,
    "soomro_cnn": _soomro,
    "frame_mlp": _frame_mlp,
    "spectrogram_ae": _spectrogram_ae,
}

DEFAULT_FEATURES: dict[str, str] = {
    "ddevis_cnn": "stft",
    "soomro_cnn": "logmel",
    "frame_mlp": "logmel",
    "spectrogram_ae": "logmel",
}

# One line each for ``hearsight train --help``: what a registered architecture is.
DESCRIPTIONS: dict[str, str] = {
    "ddevis_cnn": "the d-DeVIS CNN",
    "soomro_cnn": "the Soomro et al. CNN, the default model's",
    "frame_mlp": "a per-frame MLP on context windows",
    "spectrogram_ae": "the decoder prior, a spectrogram autoencoder (reconstruction loss)",
}


def arch_help() -> str:
    """Help text of an ``--arch`` option: every registered architecture (with its default
    features), then the bring-your-own entry point form. Built from :data:`ARCHITECTURES`, so
    a newly registered name is listed without touching the CLI."""
    names = " | ".join(ARCHITECTURES)
    details = "; ".join(f"{name}: {DESCRIPTIONS.get(name, 'registered architecture')} "
                        f"({DEFAULT_FEATURES.get(name, 'stft')} features)" for name in ARCHITECTURES)
    return f"{names} | package.module:factory — {details}"


_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def resolve_factory(arch: str) -> Factory:
    """The factory of a registered name or of an entry point ``"package.module:factory"``.

    Raises:
      ValueError: unknown name, malformed entry point, module not importable, attribute
        missing or not callable.
    """
    if not isinstance(arch, str):
        raise ValueError(f"architecture must be a string, got {type(arch).__name__}")
    if arch in ARCHITECTURES:
        return ARCHITECTURES[arch]
    if ":" not in arch:
        raise ValueError(f"unknown architecture {arch!r}: use one of {sorted(ARCHITECTURES)} "
                         "or a bring-your-own entry point 'package.module:factory'")
    mod_name, _, attr = arch.partition(":")
    if not (_DOTTED.match(mod_name) and _DOTTED.match(attr)):
        raise ValueError(f"malformed entry point {arch!r}: expected 'package.module:factory'")
    try:
        obj = importlib.import_module(mod_name)
    except ImportError as e:
        raise ValueError(f"cannot import module {mod_name!r} of entry point {arch!r} ({e}); "
                         "make sure it is on sys.path / PYTHONPATH") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"module {mod_name!r} has no attribute {attr!r} (entry point "
                             f"{arch!r})")
        obj = getattr(obj, part)
    if not callable(obj) or isinstance(obj, type(importlib)):
        raise ValueError(f"entry point {arch!r} is not a callable factory "
                         f"(got {type(obj).__name__})")
    return obj


def build_model(arch: str, *, n_classes: int, input_shape, seed: int = 0,
                options: dict | None = None) -> nnx.Module:
    """Build architecture ``arch`` with parameters initialised from ``seed``.

    Args:
      arch: registered name or ``"package.module:factory"``.
      n_classes: number of output classes.
      input_shape: ``(freq, time)`` of one input example.
      seed: integer seed of the ``nnx.Rngs`` (parameters and dropout).
      options: further keyword arguments of the factory (a checkpoint's ``arch_kwargs``
        beyond ``n_classes`` and ``input_shape``, e.g. ``{"input_norm": "mean"}`` for
        ``soomro_cnn``); none by default, so older checkpoints build as before.
    Returns:
      the ``nnx.Module`` (in nnx's default training mode).
    """
    factory = resolve_factory(arch)
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 2 or min(shape) < 1 or int(n_classes) < 1:
        raise ValueError(f"need n_classes >= 1 and input_shape (freq, time) > 0, "
                         f"got {n_classes}, {input_shape}")
    model = factory(n_classes=int(n_classes), input_shape=shape, rngs=nnx.Rngs(int(seed)),
                    **dict(options or {}))
    if not isinstance(model, nnx.Module):
        raise ValueError(f"factory of {arch!r} returned {type(model).__name__}, "
                         "expected an nnx.Module")
    return model
