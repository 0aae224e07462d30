"""Benchmark: integrated gradients, the engine's default and chunked calls vs a Python loop.

Workload: 64 Gauss–Legendre steps × ``--n`` utterances (default 16) of shape (160, 150),
"silence" baseline, random weights (throughput does not depend on training). Model:
``models.architectures.DdevisCNN`` in eval mode if it imports, else (and with ``--model plain``)
a small CNN in plain JAX (conv 8@5×5 → pool → conv 16@3×3 → pool → mean → dense 10).
``--quick``: 8 steps × 4 utterances on the plain CNN, a smoke run.

Variants, each in a fresh subprocess so that its peak resident memory (``ru_maxrss``; XLA
allocates outside tracemalloc's view) is its own:
  - ``loop``: a Python loop over the steps, each calling a jitted gradient on all utterances;
  - ``default``: ``engine.attribution.integrated_gradients`` as the Explain page calls it (no
    ``internal_batch_size``: every step of as many whole clips as 4M input floats hold, one
    jitted batch each, ``engine.attribution.batching.MAX_CHUNK_ELEMENTS``);
  - ``chunks-N``: the same with ``internal_batch_size=N`` (N rows per call; below the steps, a
    clip's steps are split: the memory-bounded path for large inputs);
  - ``scan-64``: the engine's earlier core, chunks of 64 (utterance, step) rows folded by one
    jitted ``lax.scan`` (kept here as the reference it was measured against).
Throughput = utterances per second, median of ``--repeats`` timed runs after one compile run.
GPU peak memory comes from ``device.memory_stats()`` where the backend reports it. The 1-minute
load average is recorded before and after each variant.

Run from the repository root: ``python3 benchmarks/attribution.py [--quick]``; writes
``benchmarks/results/attribution.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

SHAPE, CLASSES = (160, 150), 10


def plain_cnn(key):
    """``(params, logits_fn)`` of the fallback CNN (He-normal weights)."""
    import jax
    import jax.numpy as jnp

    from models.layers import max_pool2

    k1, k2, k3 = jax.random.split(key, 3)
    w1 = jax.random.normal(k1, (5, 5, 1, 8)) * jnp.sqrt(2 / 25)
    w2 = jax.random.normal(k2, (3, 3, 8, 16)) * jnp.sqrt(2 / 72)
    w3 = jax.random.normal(k3, (16, CLASSES)) * jnp.sqrt(2 / 16)

    def conv_pool(h, w):
        h = jax.lax.conv_general_dilated(h, w, (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return max_pool2(jax.nn.relu(h))

    def logits_fn(x):
        h = conv_pool(conv_pool(x[..., None], w1), w2)
        return h.mean(axis=(1, 2)) @ w3

    return logits_fn


def build_model(which: str):
    """``(name, logits_fn)``: DdevisCNN (eval mode, split/merge inside the trace) or fallback."""
    import jax

    if which == "plain":
        return "plain-cnn", plain_cnn(jax.random.key(0))
    try:
        from flax import nnx

        from models.architectures import DdevisCNN

        model = DdevisCNN(CLASSES, SHAPE, rngs=nnx.Rngs(0))
        model.eval()
        graphdef, state = nnx.split(model)
        return "DdevisCNN", lambda x: nnx.merge(graphdef, state)(x)
    except Exception as err:  # noqa: BLE001 - any failure means: use the stand-in
        print(f"DdevisCNN unavailable ({type(err).__name__}: {err}); using the plain CNN",
              file=sys.stderr)
        return "plain-cnn", plain_cnn(jax.random.key(0))


def loop_ig(logits_fn, x, target, base, steps):
    """Reference IG: the same Gauss–Legendre nodes, one jitted gradient call per step."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    grad = jax.jit(jax.grad(lambda z, t: jnp.take_along_axis(logits_fn(z), t[:, None], 1).sum()))
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    acc = jnp.zeros_like(x)
    for a, w in zip((nodes + 1) / 2, weights / 2):
        acc = acc + float(w) * grad(base + float(a) * (x - base), target)
    return (x - base) * acc


def scanned_ig(logits_fn, x, target, base, steps, chunk=64):
    """The engine's earlier integrated gradients: (utterance, node) rows in chunks of ``chunk``,
    folded by one jitted ``lax.scan`` that scatters each chunk's weighted gradients."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from engine.attribution import sum_in_chunks, target_logit_sum

    nodes, weights = np.polynomial.legendre.leggauss(steps)
    b = x.shape[0]
    rows = (np.repeat(np.arange(b), steps), np.tile((nodes + 1) / 2, b).astype(np.float32),
            np.tile(weights / 2, b).astype(np.float32))

    @jax.jit
    def run(x, base, target):
        def add(acc, r):
            e, a, w = r
            xi = base[e] + a[:, None, None] * (x[e] - base[e])
            g = jax.grad(lambda z: target_logit_sum(logits_fn, z, target[e]))(xi)
            return acc.at[e].add(w[:, None, None] * g)

        chunked = sum_in_chunks(add, rows, chunk=min(chunk, b * steps), init=jnp.zeros_like(x))
        return (x - base) * chunked

    return run(x, base, target)


def worker(variant: str, n: int, steps: int, which: str, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from engine.attribution import integrated_gradients

    name, logits_fn = build_model(which)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(-4.0, 0.0, size=(n, *SHAPE)), jnp.float32)
    target = jnp.asarray(rng.integers(0, CLASSES, n), jnp.int32)
    base = jnp.full_like(x, -4.0)
    load = os.getloadavg()[0]
    if variant == "loop":
        run = lambda: loop_ig(logits_fn, x, target, base, steps)
    elif variant == "scan-64":
        run = lambda: scanned_ig(logits_fn, x, target, base, steps)
    else:
        ibs = None if variant == "default" else int(variant.split("-")[1])
        run = lambda: integrated_gradients(logits_fn, x, target, baseline="silence", steps=steps,
                                           internal_batch_size=ibs)
    attr = run().block_until_ready()  # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run().block_until_ready()
        times.append(time.perf_counter() - t0)
    f = lambda z: np.asarray(jnp.take_along_axis(logits_fn(z), target[:, None], 1))[:, 0]
    delta = f(x) - f(base)
    err = np.abs(np.asarray(attr).sum(axis=(1, 2)) - delta) / np.maximum(np.abs(delta), 1e-6)
    stats = jax.devices()[0].memory_stats() or {}
    return {"model": name, "seconds_median": statistics.median(times), "seconds": times,
            "utterances_per_s": n / statistics.median(times),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "device_peak_mb": stats.get("peak_bytes_in_use", 0) / 2**20 or None,
            "completeness_rel_err_median": float(np.median(err)),
            "attr_checksum": float(np.asarray(attr).sum()), "device": str(jax.devices()[0]),
            "loadavg_1min": {"before": load, "after": os.getloadavg()[0]}}


def run_variant(variant: str, n: int, steps: int, which: str, repeats: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", variant, "--n", str(n), "--steps", str(steps),
           "--model", which, "--repeats", str(repeats)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"variant {variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="8 steps × 4 utterances on the plain CNN (a smoke run)")
    p.add_argument("--model", choices=("ddevis", "plain"), default=None,
                   help="default: ddevis (plain with --quick)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "attribution.json")
    p.add_argument("--n", type=int, default=16, help="utterances")
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2, help="timed runs per variant")
    p.add_argument("--variants", default="loop,default,chunks-64,chunks-16,scan-64")
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.steps, args.model, args.repeats)))
        return
    n, steps = (4, 8) if args.quick else (args.n, args.steps)
    which = args.model or ("plain" if args.quick else "ddevis")
    variants = args.variants.split(",")
    if "loop" not in variants:
        p.error("--variants must include loop (the reference of the ratios)")
    results = {v: run_variant(v, n, steps, which, args.repeats) for v in variants}
    loop_rate = results["loop"]["utterances_per_s"]
    print(f"integrated gradients: {steps} steps × {n} utterances {SHAPE}, "
          f"model {results['loop']['model']}, device {results['loop']['device']}")
    print(f"{'variant':<14}{'utt/s':>10}{'× loop':>9}{'RSS MB':>10}{'dev MB':>10}"
          f"{'compl.err':>11}{'load':>12}")
    for v, r in results.items():
        r["ratio_vs_loop"] = r["utterances_per_s"] / loop_rate
        dev = f"{r['device_peak_mb']:.0f}" if r["device_peak_mb"] else "-"
        load = f"{r['loadavg_1min']['before']:.1f}->{r['loadavg_1min']['after']:.1f}"
        print(f"{v:<14}{r['utterances_per_s']:>10.2f}{r['ratio_vs_loop']:>9.2f}"
              f"{r['peak_rss_mb']:>10.0f}{dev:>10}{r['completeness_rel_err_median']:>11.2e}"
              f"{load:>12}")
    out = {"benchmark": "integrated_gradients", "quick": args.quick, "n_utterances": n,
           "steps": steps, "shape": SHAPE, "repeats": args.repeats, "date": time.strftime("%Y-%m-%d"),
           "python": platform.python_version(), "cpus": os.cpu_count(), "variants": results}
    path = args.out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
