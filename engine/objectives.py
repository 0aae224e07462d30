"""Objectives and input regularisers for activation maximisation.

An :class:`Objective` scores a batch of forward passes ``(logits, acts) -> (batch,)``; it is a
frozen, hashable dataclass (so it can be a static argument of ``jax.jit``) and composes
linearly::

    class_prob(3) + 0.1 * channel_mean("conv2", 5)

Regularisers act on the input (a spectrogram, a model's own features or a waveform): :class:`Penalty` terms (``l2``,
``total_variation``) are subtracted from the objective, :class:`Jitter` randomly rolls the
input along time before every forward pass (transformation robustness).

References:
  Erhan, Bengio, Courville & Vincent (2009), "Visualizing higher-layer features of a deep network".
  Mahendran & Vedaldi (2015), "Understanding deep image representations by inverting them" (TV).
  Mordvintsev, Olah & Tyka (2015), "Inceptionism" (jitter).
  Soomro et al., "Generating speech utterances by activation maximisation" (class softmax target).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Union

import jax
import jax.numpy as jnp

Index = Union[int, str, tuple[int, ...]]


@dataclass(frozen=True)
class _Term:
    kind: str
    weight: float
    index: Index
    layer: str | None = None


def _layer(acts: Mapping[str, jax.Array], logits: jax.Array, layer: str) -> jax.Array:
    if layer in acts:
        return acts[layer]
    if layer == "logits":
        return logits
    raise ValueError(f"no activation named {layer!r}; available: {sorted(acts)} (and 'logits')")


TARGET = "target"  # a class term's index that is read per example from ``target=`` at call time


def _class_column(values: jax.Array, c: Index | str, target: jax.Array | None) -> jax.Array:
    """Column ``c`` of ``values (batch, classes)``, or each row's own ``target`` class."""
    if c == TARGET:
        if target is None:
            raise ValueError("this objective scores each example's own target class: "
                             "pass target=(batch,) class indices")
        t = jnp.broadcast_to(jnp.asarray(target, dtype=jnp.int32), values.shape[:1])
        return jnp.take_along_axis(values, t[:, None], axis=1)[:, 0]
    if not 0 <= c < values.shape[-1]:
        raise ValueError(f"class {c} is out of range for {values.shape[-1]} classes")
    return values[:, c]


def _term_value(term: _Term, logits: jax.Array, acts: Mapping[str, jax.Array],
                target: jax.Array | None) -> jax.Array:
    if term.kind == "logit":
        return _class_column(logits, term.index, target)
    if term.kind == "prob":
        return _class_column(jax.nn.softmax(logits, axis=-1), term.index, target)
    if term.kind == "log_prob":
        return _class_column(jax.nn.log_softmax(logits, axis=-1), term.index, target)
    a = _layer(acts, logits, term.layer)
    if term.kind == "channel_mean":
        if not 0 <= term.index < a.shape[-1]:
            raise ValueError(f"channel {term.index} out of range for {term.layer!r} of shape {a.shape}")
        return jnp.mean(a[..., term.index].reshape(a.shape[0], -1), axis=-1)
    idx = term.index if isinstance(term.index, tuple) else (term.index,)
    if len(idx) != a.ndim - 1:
        raise ValueError(f"unit index {term.index} does not address one unit of {term.layer!r} "
                         f"with shape {a.shape}; give one index per non-batch axis "
                         "(or use channel_mean for a conv channel)")
    return a[(slice(None), *idx)]


@dataclass(frozen=True)
class Objective:
    """A weighted sum of terms, each ``(logits, acts) -> (batch,)``; higher is better.

    Build with :func:`class_logit`, :func:`class_prob`, :func:`class_log_prob`, :func:`unit`,
    :func:`channel_mean`; combine with ``+``, ``-`` and scalar ``*``.
    """

    terms: tuple[_Term, ...]

    def __call__(self, logits: jax.Array, acts: Mapping[str, jax.Array],
                 target: jax.Array | None = None) -> jax.Array:
        """Scores ``(batch,)`` of logits ``(batch, classes)`` and named activations
        (conv ``(batch, freq, time, channels)``, ``time``/``sequence`` layers
        ``(batch, time, channels)``, dense ``(batch, units)``); ``target``
        ``(batch,)`` (or a scalar) gives the class of terms built with ``class_prob(TARGET)``."""
        if logits.ndim != 2:
            raise ValueError(f"logits must be (batch, classes), got shape {logits.shape}")
        total = jnp.zeros(logits.shape[0], dtype=logits.dtype)
        for term in self.terms:
            total = total + term.weight * _term_value(term, logits, acts, target)
        return total

    def __add__(self, other: "Objective") -> "Objective":
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(self.terms + other.terms)

    def __mul__(self, scale: float) -> "Objective":
        if not isinstance(scale, (int, float)):
            return NotImplemented
        return Objective(tuple(_Term(t.kind, t.weight * float(scale), t.index, t.layer)
                               for t in self.terms))

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return self * -1.0

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-other)

    @property
    def target_class(self) -> int | None:
        """The class of the first fixed-class term (logit/prob/log_prob), else ``None``."""
        for t in self.terms:
            if t.kind in ("logit", "prob", "log_prob") and t.index != TARGET:
                return int(t.index)
        return None

    @property
    def per_example_target(self) -> bool:
        """Whether some class term reads each example's class from ``target=``."""
        return any(t.index == TARGET for t in self.terms)


def _check_class(c: int | str) -> int | str:
    if c == TARGET:
        return c
    if not isinstance(c, int) or isinstance(c, bool) or c < 0:
        raise ValueError(f"class index must be a non-negative int or TARGET, got {c!r}")
    return c


def class_logit(c: int | str) -> Objective:
    """The logit of class ``c`` (``TARGET``: of each example's own target class)."""
    return Objective((_Term("logit", 1.0, _check_class(c)),))


def class_prob(c: int | str) -> Objective:
    """The softmax probability of class ``c`` (Soomro et al.'s target); ``TARGET``: of each
    example's own class, so one compiled maximiser serves every class."""
    return Objective((_Term("prob", 1.0, _check_class(c)),))


def class_log_prob(c: int | str) -> Objective:
    """The log-softmax of class ``c`` (does not saturate as the probability nears 1)."""
    return Objective((_Term("log_prob", 1.0, _check_class(c)),))


def unit(layer: str, index: Index) -> Objective:
    """One unit of ``layer``: an int for a dense layer, ``(f, t, channel)`` for a conv layer."""
    if isinstance(index, int):
        index = (index,)
    return Objective((_Term("unit", 1.0, tuple(int(i) for i in index), str(layer)),))


def channel_mean(layer: str, channel: int) -> Objective:
    """The mean of one channel of ``layer`` over its other axes: frequency and time of a conv
    (``freq_time``) layer, time of a ``time`` or ``sequence`` layer (one dimension of a
    transformer's tokens, averaged over them)."""
    if not isinstance(channel, int) or channel < 0:
        raise ValueError(f"channel must be a non-negative int, got {channel!r}")
    return Objective((_Term("channel_mean", 1.0, channel, str(layer)),))


@dataclass(frozen=True)
class Penalty:
    """An input penalty ``x (batch, freq, time) -> (batch,)`` subtracted from the objective.

    A waveform ``(batch, samples)`` is a signal of time alone: ``l2`` is its mean power and
    total variation its mean absolute sample-to-sample step (``weight_freq`` has no axis).
    """

    kind: str
    weight: float
    weight_freq: float = 0.0

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim not in (2, 3):
            raise ValueError("penalties take (batch, freq, time) or (batch, samples) inputs, "
                             f"got shape {x.shape}")
        axes = tuple(range(1, x.ndim))
        if self.kind == "l2":
            return self.weight * jnp.mean(x ** 2, axis=axes)
        dt = jnp.mean(jnp.abs(jnp.diff(x, axis=-1)), axis=axes) if x.shape[-1] > 1 else 0.0
        df = (jnp.mean(jnp.abs(jnp.diff(x, axis=1)), axis=axes)
              if x.ndim == 3 and x.shape[1] > 1 else 0.0)
        return self.weight * dt + self.weight_freq * df + jnp.zeros(x.shape[0], x.dtype)


def l2(weight: float) -> Penalty:
    """``weight * mean(x**2)`` over frequency and time (over samples for a waveform)."""
    if weight < 0:
        raise ValueError(f"l2 weight must be >= 0, got {weight}")
    return Penalty("l2", float(weight))


def total_variation(weight_time: float, weight_freq: float) -> Penalty:
    """Anisotropic TV: ``weight_time * mean|Δ_t x| + weight_freq * mean|Δ_f x|``.

    References: Rudin, Osher & Fatemi (1992); Mahendran & Vedaldi (2015).
    """
    if weight_time < 0 or weight_freq < 0:
        raise ValueError(f"TV weights must be >= 0, got {weight_time}, {weight_freq}")
    return Penalty("tv", float(weight_time), float(weight_freq))


@dataclass(frozen=True)
class Jitter:
    """Roll one input ``(freq, time)`` along time by a random integer in ``[-max_shift, max_shift]``
    frames, drawn from ``key`` (a fresh key every step); a waveform ``(samples,)`` rolls by
    samples.

    References: Mordvintsev, Olah & Tyka (2015), "Inceptionism".
    """

    max_shift: int

    def __post_init__(self) -> None:
        if not isinstance(self.max_shift, int) or self.max_shift < 0:
            raise ValueError(f"max_shift must be a non-negative int, got {self.max_shift!r}")

    def __call__(self, x: jax.Array, key: jax.Array) -> jax.Array:
        shift = jax.random.randint(key, (), -self.max_shift, self.max_shift + 1)
        return jnp.roll(x, shift, axis=-1)


def jitter(max_shift: int) -> Jitter:
    """See :class:`Jitter`."""
    return Jitter(max_shift)
