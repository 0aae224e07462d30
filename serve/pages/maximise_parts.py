"""Helpers of the Maximise page (:mod:`serve.pages.maximise`): layer shapes of a model; a page
config turned into its objective, regularisers, starting points and maximiser; the NPZ
download. No widgets here.

Everything works in the model's own input space (:mod:`serve.pages.input_space`): a waveform,
hearsight's features or another model's features, each with its box.
"""

from __future__ import annotations

import io
import threading
import json
from collections import OrderedDict
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from engine import actmax
from engine import objectives as obj
from serve.analysis import most_active_channel
from serve.pages.input_space import InputSpace, input_space
from serve.text import esc

PRIOR_HINT = ("No decoder prior is loaded. Train one with: "
              "`hearsight train --arch spectrogram_ae ...` and serve it alongside the model.")
# A class target counts as reached when, judged by the own classifier at the end of the run,
# it is the top class AND has at least this probability; below that the page warns.
TARGET_REACHED_PROB = 0.5
# The page's default step sizes. Each step moves every input cell (or latent unit) by about
# ``lr``: the gradient is RMS-normalised. On the default model, 35 words x 8 starts x 20 steps
# (`hearsight experiment actmax --per-class 8`, docs/experiments/actmax/README.md), latent lr
# 0.1 / 0.3 / 1.0 / 3.0 made the target the top class for 7.9 / 68.6 / 97.5 / 93.2 % of the
# starts (a second classifier agreed for 7.1 / 46.1 / 80.7 / 72.9 %); in input space lr 0.01 /
# 0.1 for 9.6 / 87.9 %. Another model's input (waveforms, its own features) keeps 0.01.
LR_LATENT, LR_INPUT, LR_INPUT_FOREIGN = 1.0, 0.1, 0.01
NO_PRIOR_NOTE = ("A decoder prior exists only for hearsight's own features; this model's input "
                 "is optimised directly.")


def layer_shapes(acts_fn, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Per-example shape of every named activation (``probs`` left out), without computing.

    ``shape`` is one model input's (``predictor.input_shape``: ``(freq, time)``, ``(samples,)``);
    layers of any kind come back: ``(freq, time, channels)``, ``(time, channels)``, ``(units,)``."""
    _, acts = jax.eval_shape(acts_fn, jax.ShapeDtypeStruct((1, *shape), jnp.float32))
    return {k: tuple(v.shape[1:]) for k, v in acts.items() if k != "probs"}


def parse_index(text: str) -> tuple[int, ...]:
    """``"3"`` or ``"2, 5, 1"`` → a tuple of non-negative ints."""
    try:
        idx = tuple(int(p) for p in str(text).replace(" ", "").split(",") if p != "")
    except ValueError:
        raise ValueError(f"index {text!r} must be integers separated by commas, e.g. 3 or 2,5,1")
    if not idx or min(idx) < 0:
        raise ValueError(f"index {text!r} must be one or more non-negative integers")
    return idx


def live_index(act: np.ndarray, kind: str) -> str:
    """The index text a ``"channel"`` or ``"unit"`` target of a layer starts with, from one
    example's activation ``act`` (per-example shape): the most active channel
    (:func:`serve.analysis.most_active_channel`; a dead channel 0 never rises), or the
    position of the layer's largest activation."""
    a = np.asarray(act)
    if kind == "channel":
        return str(most_active_channel(a)) if a.ndim >= 2 else "0"
    return ",".join(str(int(i)) for i in np.unravel_index(int(np.argmax(a)), a.shape))


CLASS_SCORES = {"probability": obj.class_prob, "logit": obj.class_logit}


def build_objective(cfg: dict, layers: dict[str, tuple[int, ...]]) -> obj.Objective:
    """The objective of a page config: a class's probability (or logit, ``cfg["score"]``),
    one unit, or a channel's mean (over frequency and time of a conv layer, over time of a
    ``time``/``sequence`` layer)."""
    if cfg["kind"] == "class":
        return CLASS_SCORES[cfg.get("score", "probability")](int(cfg["cls"]))
    layer = cfg["layer"]
    if layer not in layers:
        raise ValueError(f"layer {layer!r} is not one of {sorted(layers)}")
    shape, idx = layers[layer], parse_index(cfg["index"])
    if cfg["kind"] == "channel":
        if len(shape) < 2 or len(idx) != 1 or idx[0] >= shape[-1]:
            raise ValueError(f"a channel of {layer!r} {shape} is one index below {shape[-1]} "
                             "of a conv, time or sequence layer (a vector layer has units)")
        return obj.channel_mean(layer, idx[0])
    if len(idx) != len(shape) or any(i >= n for i, n in zip(idx, shape)):
        raise ValueError(f"a unit of {layer!r} needs {len(shape)} index(es) within {shape}")
    return obj.unit(layer, idx)


def build_regularisers(cfg: dict, *, samples_per_frame: int = 1) -> list:
    """L2, TV and jitter of a config; jitter is given in picture columns (frames), so for a
    waveform it rolls by ``samples_per_frame`` samples per frame."""
    regs = [obj.l2(cfg["l2"])] if cfg["l2"] > 0 else []
    regs += [obj.total_variation(cfg["tv"], cfg["tv"])] if cfg["tv"] > 0 else []
    shift = int(cfg["jitter"]) * int(samples_per_frame)
    return regs + ([obj.jitter(shift)] if shift > 0 else [])


def start_inputs(cfg: dict, key: jax.Array, *, space: InputSpace, prior, session) -> jax.Array:
    """The ``cfg["starts"]`` starting points ``(n, *space.shape)``: noise centred in the box
    (in latent space with the ``prior``) or, class-to-class, the session's current clip's
    model input plus a little noise (encoded with the prior)."""
    n, shape = cfg["starts"], space.shape
    sigma, spread = space.sigmas
    if cfg["mode"] == "noise":
        if cfg["prior"]:
            return actmax.latent_start(key, n, prior.latent)
        return actmax.noise_start(key, n, shape, sigma=sigma, mean=space.noise_mean)
    if session.clip is None:
        raise ValueError("class-to-class starts from the current clip; bring one in first")
    x = jnp.asarray(session.analyse(session.clip.wave).features)[None]
    # Start 0 is the clip itself; the others add a little noise so the starts differ.
    noise = actmax.noise_start(key, n, shape, sigma=spread).at[0].set(0.0)
    if not cfg["prior"]:
        return x + noise
    encode = getattr(prior, "encode_fn", None)
    if encode is None:
        raise ValueError("class-to-class with the prior needs the autoencoder's encoder")
    return encode(jnp.clip(x + noise, *space.box))


def setup_run(cfg: dict, *, predictor, params=None, prior, layers, session):
    """``(init, step, starts, run key, target class or None)`` of a page config; raises
    ``ValueError`` for a config that cannot run. The input space (shape, box, starts) is the
    predictor's own (:func:`serve.pages.input_space.input_space`); ``params`` is unused and
    kept for older callers."""
    if cfg["steps"] < 1 or cfg["starts"] < 1 or not cfg["lr"] > 0:
        raise ValueError("steps and starts must be >= 1 and the learning rate > 0")
    space = input_space(predictor)
    if cfg["prior"] and (prior is None or not space.own_features):
        raise ValueError(PRIOR_HINT if space.own_features else NO_PRIOR_NOTE)
    objective = build_objective(cfg, layers)
    target = objective.target_class
    where = "latent" if cfg["prior"] else "input"
    per_class = CLASS_SCORES[cfg.get("score", "probability")](obj.TARGET)
    init, step = cached_maximiser(
        predictor.acts_fn, per_class if cfg["kind"] == "class" else objective,
        lr=float(cfg["lr"]), space=where, decode_fn=prior.decode_fn if cfg["prior"] else None,
        regularisers=tuple(build_regularisers(cfg, samples_per_frame=space.samples_per_frame)),
        clip=space.box, input_shape=space.shape)
    if cfg["kind"] == "class":
        init = partial(init, target=target)
    key_start, key_run = jax.random.split(jax.random.PRNGKey(cfg["seed"]))
    starts = start_inputs(cfg, key_start, space=space, prior=prior, session=session)
    return init, step, starts, key_run, target


def start_objective(cfg: dict, starts: jax.Array, *, predictor, prior,
                    layers: dict[str, tuple[int, ...]]) -> np.ndarray:
    """The objective ``(n,)`` of the run's ``starts`` before any step (decoded with the
    ``prior`` in latent space, clipped to the input's box otherwise), to tell whether a
    unit or channel target rose over the run."""
    objective = build_objective(cfg, layers)
    x = prior.decode_fn(starts) if cfg["prior"] else jnp.clip(starts,
                                                              *input_space(predictor).box)
    logits, acts = predictor.acts_fn(jnp.asarray(x, jnp.float32))
    return np.asarray(objective(logits, acts))


def target_shortfall(cfg: dict, labels: list[str], own: np.ndarray, *,
                     start_best: float | None = None,
                     final_best: float | None = None) -> str | None:
    """The warning (HTML) of a run that did not reach its target, or None when it did.

    A class target is reached when the own classifier's probabilities ``own`` of the best
    input have it on top with at least :data:`TARGET_REACHED_PROB`; a unit or channel
    target when the best start's objective ``final_best`` ended above ``start_best``
    (before the first step)."""
    if cfg["kind"] == "class":
        target, top = int(cfg["cls"]), int(np.argmax(own))
        if top == target and own[target] >= TARGET_REACHED_PROB:
            return None
        why = (f"it is not the top class ({esc(labels[top])} has {own[top]:.1%})" if top != target
               else f"it is below {TARGET_REACHED_PROB:.0%}")
        return (f"⚠ Target not reached: <b>{esc(labels[target])}</b> ended at "
                f"<b>{own[target]:.1%}</b> — {why}. A class target counts as reached when it "
                f"is the top class with at least {TARGET_REACHED_PROB:.0%}. Try more steps, a "
                "larger learning rate or more starts.")
    if start_best is None or final_best is None or final_best > start_best:
        return None
    what = esc(f"{cfg['kind']} {cfg['layer']}[{cfg['index']}]")
    return (f"⚠ Target not reached: <b>{what}</b> ended at <b>{final_best:.4g}</b>, not above "
            f"its start ({start_best:.4g}) — the activation did not rise. A silent unit or "
            "channel has no gradient; pick a live one or change the settings.")


_MAXIMISERS: OrderedDict = OrderedDict()
_MAXIMISERS_LOCK = threading.Lock()
MAXIMISER_CACHE_SIZE = 16


def cached_maximiser(acts_fn, objective, *, lr, space, decode_fn, regularisers, clip,
                     input_shape=None):
    """``actmax.make_maximiser``, shared by every session of the server: its jitted step
    compiles once per (model, objective, settings, number of starts) instead of on every
    press of Run (several seconds on CPU). A class target is data (``TARGET``), so all
    classes share one entry. Least recently used entries beyond 16 are dropped."""
    key = (id(acts_fn), objective, lr, space, id(decode_fn), regularisers, clip, input_shape)
    with _MAXIMISERS_LOCK:
        if key in _MAXIMISERS:
            _MAXIMISERS.move_to_end(key)
            return _MAXIMISERS[key][1]
    pair = actmax.make_maximiser(acts_fn, objective, lr=lr, space=space, decode_fn=decode_fn,
                                 regularisers=regularisers, clip=clip,
                                 input_shape=None if space == "latent" else input_shape)
    with _MAXIMISERS_LOCK:
        # Keep the functions alive with the entry, so their ids cannot be reused meanwhile.
        _MAXIMISERS[key] = ((acts_fn, decode_fn), pair)
        while len(_MAXIMISERS) > MAXIMISER_CACHE_SIZE:
            _MAXIMISERS.popitem(last=False)
    return pair


def npz_bytes(x: np.ndarray, history: np.ndarray, target: int, config: dict, *,
              picture: np.ndarray | None = None) -> bytes:
    """An ``.npz`` (no pickled objects) of the best input ``x`` (the model's input: features
    ``(freq, time)`` or a waveform ``(samples,)``), the objective ``history`` (steps, starts),
    the ``target`` class (−1 for none), the config as JSON and, when given, the input's
    ``picture`` ``(freq, time)``."""
    buf = io.BytesIO()
    extra = {} if picture is None else {"picture": np.asarray(picture, np.float32)}
    np.savez(buf, x=np.asarray(x, np.float32), history=np.asarray(history, np.float32),
             target=np.int64(target), config=np.array(json.dumps(config, sort_keys=True)),
             **extra)
    return buf.getvalue()
