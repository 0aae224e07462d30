"""Helpers of the Maximise page (:mod:`serve.pages.maximise`): layer shapes of a model; a page
config turned into its objective, regularisers, starting points and maximiser; the NPZ
download; the in-place update of a Bokeh figure. No widgets here.
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

PRIOR_HINT = ("No decoder prior is loaded. Train one with: "
              "`hearsight train --arch spectrogram_ae ...` and serve it alongside the model.")


def layer_shapes(acts_fn, shape: tuple[int, int]) -> dict[str, tuple[int, ...]]:
    """Per-example shape of every named activation (``probs`` left out), without computing."""
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


def build_objective(cfg: dict, layers: dict[str, tuple[int, ...]]) -> obj.Objective:
    """The objective of a page config: class probability, one unit, or a channel's mean."""
    if cfg["kind"] == "class":
        return obj.class_prob(int(cfg["cls"]))
    layer = cfg["layer"]
    if layer not in layers:
        raise ValueError(f"layer {layer!r} is not one of {sorted(layers)}")
    shape, idx = layers[layer], parse_index(cfg["index"])
    if cfg["kind"] == "channel":
        if len(shape) < 2 or len(idx) != 1 or idx[0] >= shape[-1]:
            raise ValueError(f"a channel of {layer!r} {shape} is one index below {shape[-1]} "
                             "of a conv layer")
        return obj.channel_mean(layer, idx[0])
    if len(idx) != len(shape) or any(i >= n for i, n in zip(idx, shape)):
        raise ValueError(f"a unit of {layer!r} needs {len(shape)} index(es) within {shape}")
    return obj.unit(layer, idx)


def build_regularisers(cfg: dict) -> list:
    regs = [obj.l2(cfg["l2"])] if cfg["l2"] > 0 else []
    regs += [obj.total_variation(cfg["tv"], cfg["tv"])] if cfg["tv"] > 0 else []
    return regs + ([obj.jitter(int(cfg["jitter"]))] if cfg["jitter"] > 0 else [])



def start_inputs(cfg: dict, key: jax.Array, *, params, prior, session) -> jax.Array:
    """The ``cfg["starts"]`` starting points: noise (in latent space with the ``prior``) or,
    class-to-class, the session's current clip plus a little noise (encoded with the prior)."""
    n, shape, floor = cfg["starts"], params.shape, params.floor
    if cfg["mode"] == "noise":
        if cfg["prior"]:
            return actmax.latent_start(key, n, prior.latent)
        return actmax.noise_start(key, n, shape, sigma=0.1, mean=floor / 2)
    if session.clip is None:
        raise ValueError("class-to-class starts from the current clip; bring one in first")
    x = jnp.asarray(session.analyse(session.clip.wave).features)[None]
    # Start 0 is the clip itself; the others add a little noise so the starts differ.
    noise = actmax.noise_start(key, n, shape, sigma=0.05).at[0].set(0.0)
    if not cfg["prior"]:
        return x + noise
    encode = getattr(prior, "encode_fn", None)
    if encode is None:
        raise ValueError("class-to-class with the prior needs the autoencoder's encoder")
    return encode(jnp.clip(x + noise, floor, 0.0))


def setup_run(cfg: dict, *, predictor, params, prior, layers, session):
    """``(init, step, starts, run key, target class or None)`` of a page config; raises
    ``ValueError`` for a config that cannot run."""
    if cfg["steps"] < 1 or cfg["starts"] < 1 or not cfg["lr"] > 0:
        raise ValueError("steps and starts must be >= 1 and the learning rate > 0")
    if cfg["prior"] and prior is None:
        raise ValueError(PRIOR_HINT)
    objective = build_objective(cfg, layers)
    target = objective.target_class
    space = "latent" if cfg["prior"] else "input"
    init, step = cached_maximiser(
        predictor.acts_fn, obj.class_prob(obj.TARGET) if cfg["kind"] == "class" else objective,
        lr=float(cfg["lr"]), space=space, decode_fn=prior.decode_fn if cfg["prior"] else None,
        regularisers=tuple(build_regularisers(cfg)), clip=(params.floor, 0.0))
    if cfg["kind"] == "class":
        init = partial(init, target=target)
    key_start, key_run = jax.random.split(jax.random.PRNGKey(cfg["seed"]))
    starts = start_inputs(cfg, key_start, params=params, prior=prior, session=session)
    return init, step, starts, key_run, target


_MAXIMISERS: OrderedDict = OrderedDict()
_MAXIMISERS_LOCK = threading.Lock()
MAXIMISER_CACHE_SIZE = 16


def cached_maximiser(acts_fn, objective, *, lr, space, decode_fn, regularisers, clip):
    """``actmax.make_maximiser``, shared by every session of the server: its jitted step
    compiles once per (model, objective, settings, number of starts) instead of on every
    press of Run (several seconds on CPU). A class target is data (``TARGET``), so all
    classes share one entry. Least recently used entries beyond 16 are dropped."""
    key = (id(acts_fn), objective, lr, space, id(decode_fn), regularisers, clip)
    with _MAXIMISERS_LOCK:
        if key in _MAXIMISERS:
            _MAXIMISERS.move_to_end(key)
            return _MAXIMISERS[key][1]
    pair = actmax.make_maximiser(acts_fn, objective, lr=lr, space=space, decode_fn=decode_fn,
                                 regularisers=regularisers, clip=clip)
    with _MAXIMISERS_LOCK:
        # Keep the functions alive with the entry, so their ids cannot be reused meanwhile.
        _MAXIMISERS[key] = ((acts_fn, decode_fn), pair)
        while len(_MAXIMISERS) > MAXIMISER_CACHE_SIZE:
            _MAXIMISERS.popitem(last=False)
    return pair


def npz_bytes(x: np.ndarray, history: np.ndarray, target: int, config: dict) -> bytes:
    """An ``.npz`` (no pickled objects) of the best input ``x`` (freq, time), the objective
    ``history`` (steps, starts), the ``target`` class (−1 for none) and the config as JSON."""
    buf = io.BytesIO()
    np.savez(buf, x=np.asarray(x, np.float32), history=np.asarray(history, np.float32),
             target=np.int64(target), config=np.array(json.dumps(config, sort_keys=True)))
    return buf.getvalue()
