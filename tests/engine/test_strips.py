"""Adversarial strips on a tiny linear-softmax model (log p_target is concave in x)."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import softmax

from engine.strips import make_strip, strip_frames

F, T, C = 5, 7, 4
_rng = np.random.default_rng(0)
W = jnp.asarray(_rng.normal(size=(C, F * T)), jnp.float32)
B = jnp.asarray([2.0, 0.0, 0.0, 0.0], jnp.float32)     # class 0 is favoured at x = 0


def logits_fn(x):
    return x.reshape(x.shape[0], -1) @ W.T + B


def acts_fn(x):
    logits = logits_fn(x)
    return logits, {"dense1": logits}


X0 = jnp.asarray(np.random.default_rng(1).normal(size=(F, T)) * 0.05, jnp.float32)


@pytest.mark.parametrize("norm,budget", [("linf", 0.2), ("l2", 1.0)])
def test_target_probability_rises_and_diffs_stay_in_budget(norm, budget):
    frames = list(strip_frames(acts_fn, X0, 2, n_frames=6, steps_per_frame=4, budget=budget,
                               norm=norm))
    assert [f.index for f in frames] == list(range(7))
    p = np.array([f.target_prob for f in frames])
    assert np.all(np.diff(p) >= -1e-4) and p[-1] > p[0] + 0.3
    np.testing.assert_allclose(frames[0].diff, 0.0)
    for f in frames:
        dist = np.abs(f.diff).max() if norm == "linf" else np.linalg.norm(f.diff)
        assert dist <= budget * (1 + 1e-5)
        np.testing.assert_allclose(f.diff, f.x - np.asarray(X0), atol=1e-6)
        np.testing.assert_allclose(f.all_probs, softmax(np.asarray(logits_fn(f.x[None]))[0]),
                                   rtol=1e-4, atol=1e-6)
        assert f.target_prob == pytest.approx(float(f.all_probs[2]))


def test_first_linf_step_is_sign_of_weight_difference():
    # One step of size lr along sign(∇ log p_2) = sign(w_2 − Σ p_k w_k).
    init, step = make_strip(logits_fn, target=2, steps_per_frame=1, lr=0.01, budget=1.0)
    state = init(X0)
    p = softmax(np.asarray(logits_fn(X0[None]))[0])
    g = np.asarray(W[2]) - p @ np.asarray(W)
    _, frame = step(state)
    np.testing.assert_allclose(frame.diff.reshape(-1), 0.01 * np.sign(g), atol=1e-6)


def test_frames_are_yielded_lazily():
    calls = []

    def counting_fn(x):
        jax.debug.callback(lambda: calls.append(1))
        return logits_fn(x)

    gen = strip_frames(counting_fn, X0, 1, n_frames=5, steps_per_frame=3, budget=0.5)
    assert inspect.isgenerator(gen)
    first = next(gen)
    jax.effects_barrier()
    after_first = len(calls)
    assert first.index == 0 and after_first >= 1
    second = next(gen)
    jax.effects_barrier()
    after_second = len(calls)
    assert second.index == 1 and after_second > after_first
    rest = list(gen)
    jax.effects_barrier()
    assert [f.index for f in rest] == [2, 3, 4, 5]
    per_frame = after_second - after_first
    assert len(calls) == after_second + 4 * per_frame


def test_clip_box_is_respected_and_new_strips_do_not_recompile():
    traces = []

    def traced_fn(x):
        traces.append(1)
        return logits_fn(x)

    x0 = jnp.clip(X0, -0.1, 0.0)
    frames = list(strip_frames(traced_fn, x0, 3, n_frames=3, budget=0.5, clip=(-0.1, 0.0)))
    assert all(f.x.min() >= -0.1 and f.x.max() <= 0.0 for f in frames)
    n = len(traces)
    list(strip_frames(traced_fn, x0 - 0.01, 1, n_frames=3, budget=0.3, lr=0.02, clip=(-0.2, 0.0)))
    assert len(traces) == n + 1      # only the target check's eval_shape traces again


def test_strip_validates_at_the_boundary():
    with pytest.raises(ValueError, match="target"):
        strip_frames(logits_fn, X0, C)
    with pytest.raises(ValueError, match=r"\(freq, time\)"):
        strip_frames(logits_fn, X0[None], 0)
    with pytest.raises(ValueError, match="norm"):
        strip_frames(logits_fn, X0, 0, norm="l1")
    with pytest.raises(ValueError, match="budget"):
        strip_frames(logits_fn, X0, 0, budget=0.0)
    with pytest.raises(ValueError, match="outside clip"):
        strip_frames(logits_fn, X0 + 1.0, 0, clip=(-1.0, 0.0))
