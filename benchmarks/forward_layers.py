"""Where batch-1 forward time goes: each DdevisCNN convolution and each model's first dense
layer, JAX vs PyTorch (and NumPy for the dense layers), plus a matmul.

    python3 benchmarks/forward_layers.py [--batch 1] [--reps 300]

For each convolution of DdevisCNN (NHWC, 'SAME', stride 1) on one clip: XLA's convolution
(``lax.conv_general_dilated``), the route the model takes (``models.layers.conv_mono`` for
the one-channel first layer, XLA's convolution otherwise) and ``torch.nn.functional.conv2d``
(NCHW, ``torch.set_num_threads(cores)``), with GFLOP/s; then the first dense layer of each
model at batch 1 (a matrix-vector product that reads the whole weight matrix: Soomro 3520×512,
7.2 MB; d-DeVIS 2880×256, 2.9 MB) in JAX, ``torch.nn.functional.linear`` and NumPy, with the
weight bytes read per second; then a 1024² matrix product in both, to show the machine's
matrix-product speed. Medians of three rounds of blocks. Prints a table and writes
``benchmarks/results/forward_layers.json``. Needs ``pip install torch==2.13.0``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402

from models.layers import conv_mono  # noqa: E402

DENSE = {"soomro dense1": (3520, 512), "ddevis dense1": (2880, 256)}
LAYERS = {"conv1": ((160, 150), 1, 16, 7), "conv2": ((80, 75), 16, 16, 5),
          "conv3": ((40, 37), 16, 32, 3), "conv4": ((20, 18), 32, 32, 3)}


def medians(fns: dict, reps: int, rounds: int = 3) -> dict[str, float]:
    """Median seconds of each no-argument callable: ``rounds`` rounds, each timing every
    callable ``reps // rounds`` times in a row after a warm-up. Not call by call in turn:
    PyTorch's OpenMP threads keep spinning after each call and slowed the next JAX call
    (conv1: 0.69 vs 0.39 ms)."""
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            for _ in range(10):
                f()
            for _ in range(max(1, reps // rounds)):
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def layer_fns(batch: int, hw, c_in: int, c_out: int, k: int, rng) -> tuple[dict, float]:
    conv = nnx.Conv(c_in, c_out, (k, k), padding="SAME", rngs=nnx.Rngs(0))
    x = jnp.asarray(rng.normal(size=(batch, *hw, c_in)).astype(np.float32))
    xla = jax.jit(lambda a: conv(a))
    model = jax.jit(lambda a: conv_mono(conv, a)) if c_in == 1 else xla
    xt = torch.from_numpy(np.array(x).transpose(0, 3, 1, 2).copy())
    wt = torch.from_numpy(np.array(conv.kernel[...]).transpose(3, 2, 0, 1).copy())
    bt = torch.from_numpy(np.array(conv.bias[...]))
    ref = np.asarray(xla(x)).transpose(0, 3, 1, 2)
    with torch.inference_mode():
        got = torch.nn.functional.conv2d(xt, wt, bt, padding="same").numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)  # the same layer in both

    def torch_conv():
        with torch.inference_mode():
            torch.nn.functional.conv2d(xt, wt, bt, padding="same")
    fns = {"jax_xla": lambda: jax.block_until_ready(xla(x)),
           "jax_model_route": lambda: jax.block_until_ready(model(x)), "torch": torch_conv}
    return fns, 2.0 * batch * hw[0] * hw[1] * c_in * c_out * k * k


def dense_fns(batch: int, n_in: int, n_out: int, rng) -> dict:
    """A dense layer ``x @ W + b`` at ``batch`` in JAX (jitted), PyTorch and NumPy."""
    w = (rng.normal(size=(n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
    b = rng.normal(size=n_out).astype(np.float32)
    x = rng.normal(size=(batch, n_in)).astype(np.float32)
    wj, bj, xj = jnp.asarray(w), jnp.asarray(b), jnp.asarray(x)
    dense = jax.jit(lambda a, m, c: a @ m + c)
    wt, bt, xt = torch.from_numpy(np.ascontiguousarray(w.T)), torch.from_numpy(b), torch.from_numpy(x)
    with torch.inference_mode():
        got = torch.nn.functional.linear(xt, wt, bt).numpy()
    np.testing.assert_allclose(got, np.asarray(dense(xj, wj, bj)), atol=1e-4, rtol=1e-4)

    def torch_dense():
        with torch.inference_mode():
            torch.nn.functional.linear(xt, wt, bt)
    return {"jax": lambda: jax.block_until_ready(dense(xj, wj, bj)), "torch": torch_dense,
            "numpy": lambda: x @ w + b}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "forward_layers.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    rng = np.random.default_rng(0)
    rows = []
    print(f"{'layer':8s} {'MFLOP':>7s} {'jax xla ms':>11s} {'jax model ms':>13s} {'torch ms':>9s} "
          f"{'torch/jax(model)':>17s}")
    for name, (hw, c_in, c_out, k) in LAYERS.items():
        fns, flops = layer_fns(args.batch, hw, c_in, c_out, k, rng)
        t = medians(fns, args.reps)
        rows.append({"layer": name, "mflop": flops / 1e6, **{f"{k}_ms": v * 1e3 for k, v in t.items()},
                     **{f"{k}_gflops": flops / v / 1e9 for k, v in t.items()}})
        print(f"{name:8s} {flops / 1e6:7.1f} {t['jax_xla'] * 1e3:11.3f} "
              f"{t['jax_model_route'] * 1e3:13.3f} {t['torch'] * 1e3:9.3f} "
              f"{t['torch'] / t['jax_model_route']:17.2f}")
    dense_rows = []
    print(f"{'dense layer':14s} {'weights MB':>10s} {'jax ms':>7s} {'torch ms':>9s} {'numpy ms':>9s} "
          f"{'jax GB/s':>9s} {'torch GB/s':>10s} {'numpy GB/s':>10s}")
    for name, (n_in, n_out) in DENSE.items():
        t = medians(dense_fns(args.batch, n_in, n_out, rng), args.reps)
        mb = 4 * n_in * n_out / 1e6
        dense_rows.append({"layer": name, "weights_mb": mb, **{f"{k}_ms": v * 1e3 for k, v in t.items()},
                           **{f"{k}_gbps": mb / 1e3 / v for k, v in t.items()}})
        print(f"{name:14s} {mb:10.1f} {t['jax'] * 1e3:7.3f} {t['torch'] * 1e3:9.3f} "
              f"{t['numpy'] * 1e3:9.3f} {mb / 1e3 / t['jax']:9.0f} {mb / 1e3 / t['torch']:10.0f} "
              f"{mb / 1e3 / t['numpy']:10.0f}")
    a = jnp.asarray(rng.normal(size=(1024, 1024)).astype(np.float32))
    at = torch.from_numpy(np.array(a))
    mm = jax.jit(lambda m: m @ m)
    t = medians({"jax": lambda: jax.block_until_ready(mm(a)), "torch": lambda: at @ at}, 20)
    matmul = {k: 2 * 1024 ** 3 / v / 1e9 for k, v in t.items()}
    print(f"matmul 1024²: jax {matmul['jax']:.0f} GFLOP/s, torch {matmul['torch']:.0f} GFLOP/s")
    result = {"batch": args.batch, "reps": args.reps, "torch_threads": torch.get_num_threads(),
              "layers": rows, "dense": dense_rows, "matmul_1024_gflops": matmul,
              "jax": jax.__version__, "torch": torch.__version__}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
