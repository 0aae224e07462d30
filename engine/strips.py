"""Adversarial strips (Deepling): an input pushed step by step toward a target class.

Every frame of a strip is the input after a few more projected gradient-ascent steps on the
target's log-probability (the input is whatever the model takes: ``(freq, time)`` features or
a ``(samples,)`` waveform, see ``input_shape=``); the difference to the original stays inside a budget (an L∞ or L2
ball around it), so the strip shows the pattern that emerges as the class takes over.
Frames stream: :func:`strip_frames` is a generator that computes a frame only when it is asked
for, and :func:`make_strip` is the ``(init, step)`` factory beneath it.

The jitted work is module-level with the model function as a static argument, so new strips
for the same model (other inputs, targets, budgets or step sizes) never recompile.

References:
  Deepling: adversarial strips of gradually modified inputs.
  Madry, Makelov, Schmidt, Tsipras & Vladu (2018), "Towards deep learning models resistant to
  adversarial attacks" (projected gradient ascent; step 2.5·budget / steps).
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Iterator, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

NORMS = ("linf", "l2")


class StripFrame(NamedTuple):
    """One frame of a strip (host NumPy arrays).

    Attributes:
      index: 0 for the original input, then 1, 2, ... after each ``steps_per_frame`` steps.
      x: ``input_shape`` (e.g. ``(freq, time)`` or ``(samples,)``) the modified input.
      diff: ``x - x0``, of the same shape, inside the budget.
      target_prob: probability of the target class for ``x``.
      all_probs: ``(classes,)`` softmax of ``x``.
    """

    index: int
    x: np.ndarray
    diff: np.ndarray
    target_prob: float
    all_probs: np.ndarray


class StripState(NamedTuple):
    """``x0``, ``x``: one input; ``probs``: ``(classes,)`` of ``x``; ``index``: frames done."""

    x0: jax.Array
    x: jax.Array
    probs: jax.Array
    index: int


def _logits(fn: Callable, x: jax.Array) -> jax.Array:
    out = fn(x)
    return out[0] if isinstance(out, tuple) else out  # acts_fn gives (logits, acts)


def _project(d: jax.Array, budget: jax.Array, norm: str) -> jax.Array:
    if norm == "linf":
        return jnp.clip(d, -budget, budget)
    n = jnp.sqrt(jnp.sum(d * d))
    return d * jnp.minimum(1.0, budget / jnp.maximum(n, 1e-30))


def _direction(g: jax.Array, norm: str) -> jax.Array:
    # Steepest ascent direction of unit norm for the budget's norm: sign for L∞, g/‖g‖ for L2.
    if norm == "linf":
        return jnp.sign(g)
    n = jnp.sqrt(jnp.sum(g * g))
    return jnp.where(n > 0, g / jnp.where(n > 0, n, 1.0), 0.0)


@partial(jax.jit, static_argnames=("fn",))
def _probs_of(x: jax.Array, *, fn: Callable) -> jax.Array:
    return jax.nn.softmax(_logits(fn, x[None])[0])


@partial(jax.jit, static_argnames=("fn", "norm", "n_steps"))
def _advance(x0: jax.Array, x: jax.Array, target: jax.Array, lr: jax.Array, budget: jax.Array,
             box: jax.Array, *, fn: Callable, norm: str, n_steps: int
             ) -> tuple[jax.Array, jax.Array]:
    def objective(v: jax.Array) -> jax.Array:
        return jax.nn.log_softmax(_logits(fn, v[None])[0])[target]

    def body(_: int, v: jax.Array) -> jax.Array:
        v = v + lr * _direction(jax.grad(objective)(v), norm)
        v = x0 + _project(v - x0, budget, norm)
        # Clipping to a box that contains x0 never moves v farther from x0, so the budget holds.
        return jnp.clip(v, box[0], box[1])

    x = jax.lax.fori_loop(0, n_steps, body, x)
    return x, jax.nn.softmax(_logits(fn, x[None])[0])


def _validate_config(steps_per_frame: int, n_frames: int, budget: float, norm: str) -> None:
    if steps_per_frame < 1 or n_frames < 1:
        raise ValueError(f"need steps_per_frame >= 1 and n_frames >= 1, got {steps_per_frame}, {n_frames}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if not budget > 0:
        raise ValueError(f"budget must be > 0 (max {norm} distance from the input), got {budget}")


def _validate_input(fn: Callable, x0: jax.Array, target: int,
                    clip: tuple[float, float] | None, input_shape: tuple[int, ...] | None) -> None:
    if input_shape is None and x0.ndim != 2:
        raise ValueError(f"a strip starts from one input (freq, time), got shape {x0.shape}")
    if input_shape is not None and x0.shape != input_shape:
        raise ValueError(f"a strip starts from one input {input_shape}, got shape {x0.shape}")
    n_classes = jax.eval_shape(lambda v: _logits(fn, v), x0[None]).shape[-1]
    if not (isinstance(target, (int, np.integer)) and 0 <= target < n_classes):
        raise ValueError(f"target {target!r} is not a class index in [0, {n_classes})")
    if clip is not None:
        lo, hi = clip
        if not lo < hi:
            raise ValueError(f"clip must be (low, high) with low < high, got {clip}")
        if float(jnp.min(x0)) < lo - 1e-6 or float(jnp.max(x0)) > hi + 1e-6:
            raise ValueError(f"the input lies outside clip {clip}; clip it first")


def make_strip(fn: Callable, *, target: int, steps_per_frame: int = 5, lr: float | None = None,
               budget: float = 1.0, norm: str = "linf", clip: tuple[float, float] | None = None,
               n_frames: int = 8, input_shape: Sequence[int] | None = None
               ) -> tuple[Callable, Callable]:
    """Factory of an adversarial strip toward ``target``.

    Args:
      fn: ``x (batch, *input_shape) -> logits`` or ``-> (logits, acts)``; pure JAX, hashable
        (the same function object reuses the compiled step).
      target: class whose log-probability is raised.
      steps_per_frame: projected ascent steps between frames.
      lr: step length in the budget's norm; default ``2.5 * budget / (n_frames * steps_per_frame)``.
      budget: max distance of a frame from the input: L∞ (per bin in log10 units, per sample
        in amplitude for a waveform) or L2 (whole input).
      norm: ``"linf"`` (sign steps, PGD) or ``"l2"`` (unit-L2 gradient steps).
      clip: optional ``(low, high)`` box for the input values (e.g. ``(floor, 0.0)``, or
        ``(-1.0, 1.0)`` for a waveform).
      n_frames: only sets the default ``lr``.
      input_shape: one input's shape, e.g. ``(samples,)``; default: any ``(freq, time)``.
    Returns:
      ``init(x input_shape) -> StripState`` and ``step(state) -> (state, StripFrame)``;
      :func:`frame_of` turns a state into its frame.
    """
    _validate_config(steps_per_frame, n_frames, budget, norm)
    lr = 2.5 * budget / (n_frames * steps_per_frame) if lr is None else lr
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    box = jnp.asarray(clip if clip is not None else (-jnp.inf, jnp.inf), jnp.float32)
    input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)

    def init(x: jax.Array) -> StripState:
        x0 = jnp.asarray(x, jnp.float32)
        _validate_input(fn, x0, target, clip, input_shape)
        return StripState(x0, x0, _probs_of(x0, fn=fn), 0)

    def step(state: StripState) -> tuple[StripState, StripFrame]:
        x, probs = _advance(state.x0, state.x, jnp.int32(target), jnp.float32(lr),
                            jnp.float32(budget), box, fn=fn, norm=norm, n_steps=steps_per_frame)
        state = StripState(state.x0, x, probs, state.index + 1)
        return state, frame_of(state, target)

    return init, step


def frame_of(state: StripState, target: int) -> StripFrame:
    """The :class:`StripFrame` of a state, as host NumPy arrays."""
    x, x0, probs = np.asarray(state.x), np.asarray(state.x0), np.asarray(state.probs)
    return StripFrame(state.index, x, x - x0, float(probs[target]), probs)


def strip_frames(fn: Callable, x: jax.Array, target: int, *, n_frames: int = 8,
                 steps_per_frame: int = 5, lr: float | None = None, budget: float = 1.0,
                 norm: str = "linf", clip: tuple[float, float] | None = None,
                 input_shape: Sequence[int] | None = None) -> Iterator[StripFrame]:
    """Yield ``n_frames + 1`` frames lazily: frame 0 is ``x`` itself, frame ``k`` is ``x`` after
    ``k * steps_per_frame`` projected steps toward ``target`` (see :func:`make_strip`).

    Arguments are validated (and frame 0 evaluated) at the call; later frames are computed
    only when asked for, so stopping the iteration stops the work.
    """
    init, step = make_strip(fn, target=target, steps_per_frame=steps_per_frame, lr=lr,
                            budget=budget, norm=norm, clip=clip, n_frames=n_frames,
                            input_shape=input_shape)
    return _frames(init(x), step, n_frames, target)


def _frames(state: StripState, step: Callable, n_frames: int, target: int) -> Iterator[StripFrame]:
    yield frame_of(state, target)
    for _ in range(n_frames):
        state, frame = step(state)
        yield frame
