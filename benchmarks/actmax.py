"""Benchmark: activation-maximisation throughput, batched jit step vs a Python loop over starts.

Model: a Soomro-sized CNN in plain JAX (input 80×90 log-mel; conv 8/16/32 with 2×2 kernels,
each ReLU + 2×2 max-pool; dense 512/256/128; 35 classes), random weights (throughput does not
depend on training). All variants run a ``make_maximiser(...)`` jitted step (class_prob,
RMS-normalised SGD, lr 0.01): "batched" gives it all starts at once (vmap inside), "chunk16"
the same with ``chunk_size=16`` (lax.map over vmapped chunks, cache-friendly on CPU),
"loop" calls the batched variant's step once per start with a single-start state. The loop is
timed on a subset of the starts and scaled linearly to the full count (stated in the table and JSON).

Run from the repository root: ``python3 benchmarks/actmax.py [--quick]``; writes
``benchmarks/results/actmax.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from engine.actmax import make_maximiser, noise_start  # noqa: E402
from engine.objectives import class_prob  # noqa: E402
from models.layers import max_pool2  # noqa: E402

SHAPE, CLASSES, CHUNK = (80, 90), 35, 16


def soomro_params(key: jax.Array) -> dict:
    """He-normal weights of the Soomro-sized CNN."""
    ks = iter(jax.random.split(key, 8))
    he = lambda k, shape, fan_in: jax.random.normal(k, shape) * jnp.sqrt(2.0 / fan_in)
    convs, c_in = [], 1
    for c_out in (8, 16, 32):
        convs.append((he(next(ks), (2, 2, c_in, c_out), 4 * c_in), jnp.zeros(c_out)))
        c_in = c_out
    f, t = SHAPE
    for _ in range(3):
        f, t = f // 2, t // 2
    dense, d_in = [], f * t * 32
    for d_out in (512, 256, 128, CLASSES):
        dense.append((he(next(ks), (d_in, d_out), d_in), jnp.zeros(d_out)))
        d_in = d_out
    return {"conv": convs, "dense": dense}


def make_acts_fn(params: dict):
    """``x (batch, 80, 90) -> (logits (batch, 35), acts)`` with conv1..3 (NHWC), dense1..3."""
    def acts_fn(x):
        h, acts = x[..., None], {}
        for i, (w, b) in enumerate(params["conv"], 1):
            h = jax.lax.conv_general_dilated(h, w, (1, 1), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
            h = jax.nn.relu(h + b)
            acts[f"conv{i}"] = h
            h = max_pool2(h)
        h = h.reshape(h.shape[0], -1)
        for i, (w, b) in enumerate(params["dense"][:-1], 1):
            h = jax.nn.relu(h @ w + b)
            acts[f"dense{i}"] = h
        w, b = params["dense"][-1]
        return h @ w + b, acts
    return acts_fn


def _block(state):
    jax.block_until_ready(state.params)
    return state


def time_batched(init, step, n: int, reps: int) -> float:
    """Median seconds of one step for ``n`` starts at once."""
    state = _block(init(noise_start(jax.random.key(1), n, SHAPE), key=jax.random.key(2)))
    state = _block(step(state)[0])  # compile
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        state = _block(step(state)[0])
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_loop(init, step, subset: int, reps: int) -> float:
    """Median seconds of one step for each of ``subset`` starts, one call per start."""
    x0 = noise_start(jax.random.key(1), subset, SHAPE)
    states = [_block(init(x0[i:i + 1], key=jax.random.key(i))) for i in range(subset)]
    states[0] = _block(step(states[0])[0])  # compile
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        states = [step(s)[0] for s in states]
        _block(states[-1])
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="128 starts, 3 reps, loop subset 16")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "actmax.json")
    args = ap.parse_args(argv)
    n, reps, subset = (128, 3, 16) if args.quick else (1024, 5, 64)

    acts_fn = make_acts_fn(soomro_params(jax.random.key(0)))
    init, step = make_maximiser(acts_fn, class_prob(3))
    init_c, step_c = make_maximiser(acts_fn, class_prob(3), chunk_size=CHUNK)
    batched_s = time_batched(init, step, n, reps)
    chunked_s = time_batched(init_c, step_c, n, reps)
    loop_s = time_loop(init, step, subset, reps) * n / subset
    rate = n / min(batched_s, chunked_s)
    result = dict(
        device=str(jax.devices()[0].device_kind), backend=jax.default_backend(),
        machine=platform.machine(), jax=jax.__version__, quick=args.quick,
        model="Soomro CNN 80x90, conv 8/16/32 2x2 + maxpool, dense 512/256/128, 35 classes",
        starts=n, reps=reps, loop_subset=subset, loop_scaled_from_subset=True,
        chunk_size=CHUNK, batched_step_s=batched_s, chunked_step_s=chunked_s, loop_step_s=loop_s,
        batched_start_steps_per_s=n / batched_s, chunked_start_steps_per_s=n / chunked_s,
        loop_start_steps_per_s=n / loop_s, best_start_steps_per_s=rate,
        speedup_batched=loop_s / batched_s, speedup_best=loop_s / min(batched_s, chunked_s),
        target_speedup=20.0,
        extrapolated_10000x35x20_s=10_000 * 35 * 20 / rate)
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def print_table(r: dict) -> None:
    print(f"actmax step, {r['starts']} starts, {r['device']} ({r['backend']}), median of {r['reps']}")
    print(f"{'variant':<10}{'s/step':>12}{'start-steps/s':>16}")
    print(f"{'batched':<10}{r['batched_step_s']:>12.4f}{r['batched_start_steps_per_s']:>16.1f}")
    print(f"{'chunk' + str(r['chunk_size']):<10}{r['chunked_step_s']:>12.4f}"
          f"{r['chunked_start_steps_per_s']:>16.1f}")
    print(f"{'loop*':<10}{r['loop_step_s']:>12.4f}{r['loop_start_steps_per_s']:>16.1f}")
    print(f"speed-up over loop: batched {r['speedup_batched']:.1f}x, best {r['speedup_best']:.1f}x "
          f"(target >= {r['target_speedup']:.0f}x); * loop timed on {r['loop_subset']} starts, scaled")
    print(f"10,000 starts x 35 classes x 20 steps (best batched rate): {r['extrapolated_10000x35x20_s']:.0f} s "
          f"({r['extrapolated_10000x35x20_s'] / 3600:.2f} h)")


if __name__ == "__main__":
    main()
