"""Activation maximisation: gradient ascent on the input or on a decoder's latent code.

The input is whatever the model takes: hearsight's ``(freq, time)`` features, another
model's own features, or a raw ``(samples,)`` waveform (``input_shape=``); a ``clip`` box
keeps it valid (a waveform in ``[-1, 1]``: projected steps, so a sample that reaches full
scale stays there until the gradient turns it back).

``make_maximiser(acts_fn, objective) -> (init, step)`` follows the optax factory pattern: the
caller owns the loop, so the server can stream every step and the CLI can run to the end
(:func:`run`). Many starts are optimised at once: the per-start update is written for one
example and ``jax.vmap``-ed, so every start has its own key, optimiser state and gradient
normalisation, exactly as if it were optimised alone.

References:
  Erhan, Bengio, Courville & Vincent (2009), "Visualizing higher-layer features of a deep network".
  Nguyen, Dosovitskiy, Yosinski, Brox & Clune (2016), "Synthesizing the preferred inputs for
  neurons in neural networks via deep generator networks" (latent-space prior).
  Soomro et al., "Generating speech utterances by activation maximisation" (RMS-normalised
  gradients, 20 steps, lr 0.01 input / 0.1 latent, N(0, 0.1) starts, separate-classifier test).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from engine.objectives import Jitter, Objective, Penalty

ActsFn = Callable[[jax.Array], tuple[jax.Array, Mapping[str, jax.Array]]]
DecodeFn = Callable[[jax.Array], jax.Array]
DEFAULT_LR = {"input": 0.01, "latent": 0.1}


class State(NamedTuple):
    """Maximiser state for ``n`` starts.

    Attributes:
      params: ``(n, *input_shape)`` inputs (``(n, freq, time)`` features, ``(n, samples)``
        waveforms) or ``(n, latent)`` codes being optimised.
      opt_state: the optimiser state, batched over starts (leading axis ``n``).
      key: ``(n,)`` PRNG keys, one stream per start.
      step: ``()`` int32, steps taken.
      target: ``(n,)`` int32 class of each start (objectives built with ``TARGET``), else -1.
    """

    params: jax.Array
    opt_state: Any
    key: jax.Array
    step: jax.Array
    target: jax.Array


def _split_regularisers(regularisers: Sequence[Any]) -> tuple[tuple[Penalty, ...], tuple[Jitter, ...]]:
    penalties = tuple(r for r in regularisers if isinstance(r, Penalty))
    jitters = tuple(r for r in regularisers if isinstance(r, Jitter))
    if len(penalties) + len(jitters) != len(regularisers):
        bad = [r for r in regularisers if not isinstance(r, (Penalty, Jitter))]
        raise ValueError(f"regularisers must be Penalty (l2, total_variation) or Jitter, got {bad}")
    return penalties, jitters


def _validate(objective: Any, space: str, decode_fn: Any, normalise_grad: Any, clip: Any) -> None:
    if not isinstance(objective, Objective):
        raise ValueError(f"objective must be an engine.objectives.Objective, got {type(objective)}")
    if space not in DEFAULT_LR:
        raise ValueError(f"space must be 'input' or 'latent', got {space!r}")
    if space == "latent" and decode_fn is None:
        raise ValueError("space='latent' needs decode_fn (latent (batch, d) -> (batch, freq, time))")
    if normalise_grad not in ("rms", None):
        raise ValueError(f"normalise_grad must be 'rms' or None, got {normalise_grad!r}")
    if clip is not None and (len(clip) != 2 or not clip[0] < clip[1]):
        raise ValueError(f"clip must be (low, high) with low < high, got {clip!r}")


def _rms_normalise(g: jax.Array) -> jax.Array:
    # Soomro et al. divide by the RMS so the step length is lr whatever the gradient's scale
    # (a saturated softmax gives tiny gradients); a zero gradient stays zero.
    rms = jnp.sqrt(jnp.mean(g * g))
    return jnp.where(rms > 0, g / jnp.where(rms > 0, rms, 1.0), 0.0)


def make_maximiser(acts_fn: ActsFn, objective: Objective, *,
                   optimizer: optax.GradientTransformation | None = None, lr: float | None = None,
                   space: str = "input", decode_fn: DecodeFn | None = None,
                   regularisers: Sequence[Any] = (), normalise_grad: str | None = "rms",
                   clip: tuple[float, float] | None = None, target: int | None = None,
                   chunk_size: int | None = None, input_shape: Sequence[int] | None = None,
                   ) -> tuple[Callable[..., State], Callable[[State], tuple[State, dict]]]:
    """Gradient ascent of ``objective`` on the input (or a decoder's latent code).

    Args:
      acts_fn: pure, differentiable ``x (batch, *input_shape) -> (logits (batch, classes), acts)``.
      objective: what to maximise, e.g. ``class_prob(3)``.
      optimizer: any optax transformation; default ``optax.sgd(lr)``.
      lr: learning rate of the default optimizer; default 0.01 (input) / 0.1 (latent).
      space: ``"input"`` optimises the model input itself (a spectrogram, a model's own
        features or a waveform), ``"latent"`` the code fed to ``decode_fn``.
      decode_fn: ``z (batch, latent) -> (batch, freq, time)``; required for ``space="latent"``.
      regularisers: :class:`Penalty` terms subtracted from the score, :class:`Jitter` rolls.
      normalise_grad: ``"rms"`` divides each start's gradient by its RMS, or ``None``.
      clip: ``(low, high)`` box for the input (e.g. ``(floor, 0.0)`` for max-normalised
        log10 features, ``(-1.0, 1.0)`` for a waveform); in input space the parameters are
        projected after each step, in latent space the decoded input is clipped.
      target: class whose probability is reported; default ``objective.target_class``, and
        when that is ``None`` the probability of the predicted class. An objective built
        with ``TARGET`` (e.g. ``class_prob(TARGET)``) reads each start's class from
        ``init(..., target=)`` instead, so one compiled step serves every class.
      chunk_size: ``None`` updates all starts in one vmapped batch (best on GPU); an int runs
        ``lax.map`` over vmapped chunks of the largest divisor of ``n`` not above it, which
        keeps activations in cache and is ~2x faster on CPU (see ``benchmarks/actmax.py``).
      input_shape: per-example shape of an input-space start, e.g. ``(freq, time)`` or
        ``(samples,)``; default: any ``(freq, time)`` (rank-2) input.
    Returns:
      ``(init, step)``: ``init(x0_or_z0 (n, ...), *, key, target=None) -> State`` and a jitted
      ``step(state) -> (state, metrics)``. Metrics describe the *returned* state (one extra
      forward pass): ``objective`` (n,), ``target_prob`` (n,), ``pred`` (n,) int, ``probs``
      (n, classes) every class's probability, ``x`` (n, *input_shape), the current input
      (decoded in latent space). ``step`` runs two jitted programs (the update, then the
      evaluation); each compiles once per number of starts.
    """
    _validate(objective, space, decode_fn, normalise_grad, clip)
    input_shape = None if input_shape is None else tuple(int(d) for d in input_shape)
    if input_shape is not None and (not input_shape or min(input_shape) < 1):
        raise ValueError(f"input_shape must be positive ints, e.g. (freq, time), got {input_shape}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be None or >= 1, got {chunk_size}")
    optimizer = optimizer or optax.sgd(DEFAULT_LR[space] if lr is None else lr)
    penalties, jitters = _split_regularisers(regularisers)
    per_start = objective.per_example_target
    if per_start and target is not None:
        raise ValueError("target= is fixed, but the objective reads each start's class "
                         "(TARGET): pass the classes to init(..., target=) instead")
    target = objective.target_class if target is None else int(target)

    def to_input(p: jax.Array) -> jax.Array:
        x = p if space == "input" else decode_fn(p[None])[0]
        return x if clip is None or space == "input" else jnp.clip(x, *clip)

    def score(p: jax.Array, key: jax.Array, tgt: jax.Array) -> jax.Array:
        x = to_input(p)
        keys = jax.random.split(key, max(len(jitters), 1))
        xj = x
        for j, k in zip(jitters, keys):
            xj = j(xj, k)
        logits, acts = acts_fn(xj[None])
        return objective(logits, acts, tgt[None])[0] - sum(pen(x[None])[0] for pen in penalties)

    def evaluate(p: jax.Array, tgt: jax.Array) -> dict[str, jax.Array]:
        x = to_input(p)
        logits, acts = acts_fn(x[None])
        probs = jax.nn.softmax(logits[0])
        if target is not None and not 0 <= target < probs.shape[0]:
            raise ValueError(f"target {target} is out of range for {probs.shape[0]} classes")
        pred = jnp.argmax(probs)
        tp = probs[tgt] if per_start else probs[pred] if target is None else probs[target]
        return dict(objective=objective(logits, acts, tgt[None])[0], target_prob=tp, pred=pred,
                    probs=probs, x=x)

    def one_update(p: jax.Array, opt_state: Any, key: jax.Array, tgt: jax.Array):
        key, sub = jax.random.split(key)
        g = jax.grad(score)(p, sub, tgt)
        g = _rms_normalise(g) if normalise_grad == "rms" else g
        updates, opt_state = optimizer.update(-g, opt_state, p)  # optax minimises
        p = optax.apply_updates(p, updates)
        p = jnp.clip(p, *clip) if clip is not None and space == "input" else p
        return p, opt_state, key

    def init(x0: jax.Array, *, key: jax.Array, target: Any = None) -> State:
        x0 = jnp.asarray(x0, dtype=jnp.float32)
        _check_starts(x0, space, input_shape)
        if clip is not None and space == "input":
            x0 = jnp.clip(x0, *clip)
        n = x0.shape[0]
        if per_start != (target is not None):
            raise ValueError("init(target=) gives each start's class; it is needed exactly when "
                             "the objective is built with TARGET")
        tgt = np.full(n, -1) if target is None else np.broadcast_to(np.asarray(target), (n,))
        if per_start and (tgt.dtype.kind not in "iu" or tgt.min() < 0):
            raise ValueError(f"target must be non-negative class indices, got {target!r}")
        opt_state = jax.vmap(optimizer.init)(x0)
        return State(x0, opt_state, jax.random.split(key, n), jnp.zeros((), jnp.int32),
                     jnp.asarray(tgt, dtype=jnp.int32))

    @jax.jit
    def update(state: State) -> State:
        batched = _in_chunks(jax.vmap(one_update), state.params.shape[0], chunk_size)
        p, o, k = batched(state.params, state.opt_state, state.key, state.target)
        return State(p, o, k, state.step + 1, state.target)

    @jax.jit
    def measure(state: State) -> dict:
        return _in_chunks(jax.vmap(evaluate), state.params.shape[0], chunk_size)(
            state.params, state.target)

    def step(state: State) -> tuple[State, dict]:
        # Two compiled programs, not one: XLA on CPU ran the evaluation's forward pass about
        # 2.5x slower fused after the gradient than alone (DdevisCNN, 8 starts: 57 vs 42 ms
        # per step; benchmarks/actmax.py).
        state = update(state)
        return state, measure(state)

    return init, step


def _check_starts(x0: jax.Array, space: str, input_shape: tuple[int, ...] | None) -> None:
    if space == "latent":
        ok, want = x0.ndim == 2, "(n, latent)"
    elif input_shape is None:
        ok, want = x0.ndim == 3, "(n, freq, time)"
    else:
        ok, want = x0.shape[1:] == input_shape, f"(n, {', '.join(map(str, input_shape))})"
    if not ok or x0.shape[0] < 1:
        raise ValueError(f"{space}-space starts must have shape {want}, got {x0.shape}")


def _in_chunks(fn: Callable, n: int, chunk_size: int | None) -> Callable:
    """``fn`` over a leading axis ``n`` as ``lax.map`` over chunks (largest divisor <= chunk_size)."""
    if chunk_size is None or chunk_size >= n:
        return fn
    k = max(d for d in range(1, chunk_size + 1) if n % d == 0)
    split = lambda t: jax.tree_util.tree_map(lambda a: a.reshape(n // k, k, *a.shape[1:]), t)
    merge = lambda t: jax.tree_util.tree_map(lambda a: a.reshape(n, *a.shape[2:]), t)
    return lambda *args: merge(jax.lax.map(lambda a: fn(*a), split(args)))


def noise_start(key: jax.Array, n: int, shape: Sequence[int], *, sigma: float = 0.1,
                mean: float = 0.0) -> jax.Array:
    """``n`` noise starts ``(n, *shape)`` drawn from N(mean, sigma²) (noise-to-class).

    ``shape`` is one input's: ``(freq, time)`` features or ``(samples,)`` for a waveform.
    Soomro et al. start from N(0, 0.1). Features floored at ``floor`` and normalised to a
    maximum of 0 live in ``[floor, 0]``; pass ``mean=floor / 2`` to centre the noise there.
    """
    shape = tuple(shape)
    if n < 1 or not shape or min(shape) < 1:
        raise ValueError(f"need n >= 1 and a shape of positive ints (e.g. (freq, time) or "
                         f"(samples,)), got {n}, {shape}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    return mean + sigma * jax.random.normal(key, (n, *shape), dtype=jnp.float32)


def latent_start(key: jax.Array, n: int, latent: int, *, sigma: float = 0.1) -> jax.Array:
    """``n`` latent codes ``(n, latent)`` drawn from N(0, sigma²) (the decoder-prior start)."""
    if n < 1 or latent < 1:
        raise ValueError(f"need n >= 1 and latent >= 1, got {n}, {latent}")
    return sigma * jax.random.normal(key, (n, latent), dtype=jnp.float32)


def run(init: Callable[..., State], step: Callable[[State], tuple[State, dict]], x0: jax.Array,
        n_steps: int, *, key: jax.Array, callback: Callable[[int, State, dict], None] | None = None,
        should_stop: Callable[[], bool] | None = None, target: Any = None,
        ) -> tuple[State, dict | None]:
    """Run up to ``n_steps`` steps from ``x0``; returns the final state and its metrics.

    ``target`` gives each start's class for objectives built with ``TARGET``.
    ``callback(i, state, metrics)`` is called after step ``i`` (0-based); ``should_stop()`` is
    checked before every step, so a Stop button ends the run within one step.
    Metrics are ``None`` when no step ran; ``state.step`` counts the steps taken.
    """
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    state, metrics = init(x0, key=key, target=target), None
    for i in range(n_steps):
        if should_stop is not None and should_stop():
            break
        state, metrics = step(state)
        if callback is not None:
            callback(i, state, metrics)
    return state, metrics


def success_rate(pred_own: np.ndarray, pred_separate: np.ndarray, target: int | np.ndarray,
                 ) -> dict[str, float]:
    """Fractions of generated inputs classified as ``target`` by the own classifier, by a
    separately trained one, and by both (Soomro et al.'s success criterion).

    Args:
      pred_own, pred_separate: ``(n,)`` predicted class indices.
      target: an int or ``(n,)`` target classes.
    """
    own, sep = np.asarray(pred_own), np.asarray(pred_separate)
    if own.shape != sep.shape or own.ndim != 1 or own.size == 0:
        raise ValueError(f"need two equal non-empty (n,) predictions, got {own.shape}, {sep.shape}")
    t = np.broadcast_to(np.asarray(target), own.shape)
    a, b = own == t, sep == t
    return dict(own=float(a.mean()), separate=float(b.mean()), both=float((a & b).mean()))
