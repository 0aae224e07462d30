"""Benchmark: batched forward with every intermediate, JAX jit vs the same model in PyTorch eager.

For each architecture (``ddevis``: DdevisCNN on 160×150; ``soomro``: SoomroCNN on 80×90) a
flax ``nnx`` model is initialised (random weights, random BatchNorm statistics so that the
weight copy is checked for real; throughput does not depend on training) and copied into its
PyTorch peer (``benchmarks/torch_peers.py``). Before timing, both must give the same logits and
intermediates (``allclose``, atol 1e-3). Timed, round-robin so machine load hits all alike:

- ``jax_call``: ``engine.forward.Forward.__call__`` on a NumPy batch: host→device, the jitted
  forward, and every intermediate back as NumPy (what the server calls).
- ``jax_apply``: the raw jitted ``apply(state, x)`` with ``jax.block_until_ready``.
- ``torch``: the peer in eval mode under ``torch.inference_mode()`` with
  ``torch.set_num_threads(cores)``, every intermediate as NumPy (``.numpy()``, zero-copy);
  ``torch_1thread`` the same on one thread (faster on an oversubscribed machine, where
  OpenMP barriers stall). Speed-ups are given against both and against the faster one.

``--investigate`` adds DdevisCNN variants at every batch size: logits only (no intermediates
out), the apply plus zero-copy NumPy views (no concatenation), pure-JAX NHWC/NCHW in float32
and bfloat16, ``jax.default_matmul_precision("float32")``, and XLA CPU flags (each in a
subprocess, since XLA reads ``XLA_FLAGS`` once). Run from the repository root: ``python3 benchmarks/forward.py [--quick] [--investigate]``;
needs ``pip install torch==2.13.0``; writes ``benchmarks/results/forward.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
sys.path.insert(0, str(ROOT / "benchmarks"))

import flax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402

from engine.forward import Forward, make_forward  # noqa: E402
from models.architectures import DdevisCNN, SoomroCNN, variable_value  # noqa: E402
from torch_peers import acts_as_nhwc, peer_from_nnx  # noqa: E402

ARCHS = {"ddevis": (DdevisCNN, (160, 150), 10), "soomro": (SoomroCNN, (80, 90), 35)}
FLAG_VARIANTS = ("--xla_cpu_use_thunk_runtime=false", "--xla_cpu_multi_thread_eigen=false",
                 "--xla_cpu_use_xnnpack=true", "--xla_cpu_use_onednn=true")
CORES = len(os.sched_getaffinity(0))


def build_model(arch: str, *, seed: int) -> nnx.Module:
    """An eval-ready ``arch`` model with random weights and random BatchNorm statistics."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose from {sorted(ARCHS)}")
    cls, shape, n_classes = ARCHS[arch]
    model = cls(n_classes, input_shape=shape, rngs=nnx.Rngs(seed))
    rng = np.random.default_rng(seed)
    for i in range(1, 5):
        bn = getattr(model, f"bn{i}", None)
        if bn is not None:
            c = bn.mean.shape[0]
            for var, lo, hi in ((bn.mean, -0.3, 0.3), (bn.var, 0.5, 2.0),
                                (bn.scale, 0.5, 1.5), (bn.bias, -0.1, 0.1)):
                var.set_value(jnp.asarray(rng.uniform(lo, hi, size=c), jnp.float32))
    return model


def torch_run(peer: torch.nn.Module, xt: torch.Tensor, *, threads: int) -> tuple[np.ndarray, dict]:
    """The peer's logits and every intermediate as NumPy (NCHW for conv layers).

    ``threads`` is set on every call (microseconds) so that runs with different thread
    counts can alternate: on an oversubscribed machine PyTorch's OpenMP barriers stall and one
    thread can beat all cores, so both are timed and the faster is the peer to beat.
    """
    torch.set_num_threads(threads)
    with torch.inference_mode():
        logits, acts = peer(xt)
        return logits.numpy(), {k: v.numpy() for k, v in acts.items()}


def check_parity(fw: Forward, peer: torch.nn.Module, x: np.ndarray, *, atol: float) -> float:
    """Max |logits difference| of JAX vs PyTorch; raises AssertionError beyond ``atol``."""
    lj, aj = fw(x)
    with torch.inference_mode():
        lt, at = peer(torch.from_numpy(x))
    at = acts_as_nhwc(at)
    for name, ref in at.items():
        if aj[name].shape != ref.shape or not np.allclose(aj[name], ref, atol=atol, rtol=1e-4):
            raise AssertionError(f"JAX and PyTorch disagree at {name}: shapes {aj[name].shape} "
                                 f"vs {ref.shape}, max diff {np.abs(aj[name] - ref).max()}")
    return float(np.abs(lj - lt.numpy()).max())


def median_times(fns: dict, *, reps: int, warmup: int) -> dict[str, float]:
    """Median wall seconds of each zero-argument callable: each one's warm-up and repetitions
    run back to back, one callable after the other.

    Not round-robin: PyTorch's spinning OpenMP threads slowed whichever path ran next (JAX
    batch 1: 2.0 ms after a PyTorch call, 1.75 ms alone); pauses between calls let both thread
    pools sleep (PyTorch batch 1: 10.9 ms), another regime.
    """
    out = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    return out


def core_fns(fw: Forward, peer, x: np.ndarray) -> dict:
    """The three timed paths on one batch (see the module docstring)."""
    xj, xt = jax.device_put(x), torch.from_numpy(x)
    return {"jax_call": lambda: fw(x),
            "jax_apply": lambda: jax.block_until_ready(fw.apply(fw.state, xj)),
            "torch": lambda: torch_run(peer, xt, threads=CORES),
            "torch_1thread": lambda: torch_run(peer, xt, threads=1)}


def pure_params(model: DdevisCNN, *, layout: str, dtype) -> dict:
    """DdevisCNN weights with BatchNorm folded to scale/shift, in ``layout`` ("NHWC"/"NCHW")."""
    get = lambda v: jnp.asarray(variable_value(v), dtype)  # noqa: E731
    convs = []
    for i in range(1, 5):
        conv, bn = getattr(model, f"conv{i}"), getattr(model, f"bn{i}")
        k = get(conv.kernel) if layout == "NHWC" else get(conv.kernel).transpose(3, 2, 0, 1)
        scale = get(bn.scale) / jnp.sqrt(get(bn.var) + bn.epsilon)
        convs.append((k, get(conv.bias), scale, get(bn.bias) - get(bn.mean) * scale))
    w1 = get(model.dense1.kernel)
    if layout == "NCHW":  # rows (h, w, c) -> (c, h, w); four 2×2 pools floor to s // 16
        h, w = (s // 16 for s in model.input_shape)
        w1 = w1.reshape(h, w, 32, -1).transpose(2, 0, 1, 3).reshape(h * w * 32, -1)
    return {"convs": convs, "dense1": (w1, get(model.dense1.bias)),
            "out": (get(model.out.kernel), get(model.out.bias))}


def pure_forward(params: dict, x: jax.Array, *, layout: str) -> tuple[jax.Array, dict]:
    """DdevisCNN eval forward in plain ``jax.lax`` with layout NHWC or NCHW; same intermediates."""
    dtype = params["out"][0].dtype
    nhwc = layout == "NHWC"
    h, acts = (x[..., None] if nhwc else x[:, None]).astype(dtype), {}
    bshape, win = ((1, 1, 1, -1), (1, 2, 2, 1)) if nhwc else ((1, -1, 1, 1), (1, 1, 2, 2))
    dims = ("NHWC", "HWIO", "NHWC") if nhwc else ("NCHW", "OIHW", "NCHW")
    for i, (k, b, scale, shift) in enumerate(params["convs"], start=1):
        h = jax.lax.conv_general_dilated(h, k, (1, 1), "SAME", dimension_numbers=dims)
        h = jax.nn.relu(h + b.reshape(bshape)) * scale.reshape(bshape) + shift.reshape(bshape)
        acts[f"conv{i}"] = h
        h = jax.lax.reduce_window(h, jnp.array(-jnp.inf, dtype), jax.lax.max, win, win, "VALID")
    h = jax.nn.relu(h.reshape(h.shape[0], -1) @ params["dense1"][0] + params["dense1"][1])
    acts["dense1"] = h
    logits = h @ params["out"][0] + params["out"][1]
    return logits, {**acts, "logits": logits}


def variant_fns(model: DdevisCNN, fw: Forward, x: np.ndarray) -> dict:
    """In-process DdevisCNN variants for ``--investigate`` (see the module docstring)."""
    xj = jax.device_put(x)
    logits_only = jax.jit(fw.logits_fn)
    fns = {"jax_logits_only": lambda: jax.block_until_ready(logits_only(fw.state, xj)),
           "jax_apply_views": lambda: {k: np.asarray(v) for k, v in
                                       fw.apply(fw.state, jnp.asarray(x))[1].items()}}
    for layout in ("NHWC", "NCHW"):
        for dtype in (jnp.float32, jnp.bfloat16):
            p = pure_params(model, layout=layout, dtype=dtype)
            f = jax.jit(lambda p, x, layout=layout: pure_forward(p, x, layout=layout))
            name = f"pure_{layout.lower()}_{jnp.dtype(dtype).name}"
            if dtype == jnp.float32:  # same function as the nnx model, or the timing is moot
                ref = np.asarray(fw.apply(fw.state, xj)[0])
                np.testing.assert_allclose(np.asarray(f(p, xj)[0]), ref, atol=1e-3, rtol=1e-4)
            fns[name] = lambda f=f, p=p: jax.block_until_ready(f(p, xj))

    def precise():
        with jax.default_matmul_precision("float32"):
            return jax.block_until_ready(fw.apply(fw.state, xj))
    fns["jax_apply_precision_f32"] = precise
    return fns


def flag_timings(flags: str, batches: list[int], reps: int) -> dict:
    """Raw DdevisCNN apply seconds per batch in a subprocess run with ``XLA_FLAGS=flags``."""
    env = {**os.environ, "XLA_FLAGS": flags}
    cmd = [sys.executable, __file__, "--apply-only", "--reps", str(reps),
           "--batches", *map(str, batches)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def apply_only(batches: list[int], reps: int) -> dict:
    """Child mode: median raw apply seconds of DdevisCNN per batch size (JSON on stdout)."""
    fw = make_forward(build_model("ddevis", seed=0))
    out = {}
    for b in batches:
        xj = jax.device_put(np.zeros((b, 160, 150), np.float32))
        out[str(b)] = median_times(
            {"a": lambda: jax.block_until_ready(fw.apply(fw.state, xj))},
            reps=reps, warmup=2)["a"]
    return out


def best_torch(secs: dict[str, float]) -> float:
    """Seconds of the faster PyTorch thread setting."""
    return min(secs["torch"], secs["torch_1thread"])


def bench_arch(arch: str, batches: list[int], reps: dict[int, int], *,
               investigate: bool) -> dict:
    """Parity check and timings of one architecture at every batch size."""
    model = build_model(arch, seed=0)
    peer = peer_from_nnx(model)
    fw = make_forward(model, max_batch=max(batches))
    rng = np.random.default_rng(1)
    shape = ARCHS[arch][1]
    diff = check_parity(fw, peer, rng.uniform(-4, 0, (4, *shape)).astype(np.float32), atol=1e-3)
    rows = {}
    for b in batches:
        x = rng.uniform(-4, 0, (b, *shape)).astype(np.float32)
        fns = core_fns(fw, peer, x)
        if investigate and arch == "ddevis":
            fns.update(variant_fns(model, fw, x))
        secs = median_times(fns, reps=reps[b], warmup=2 if b < 64 else 1)
        rows[str(b)] = {"reps": reps[b], "seconds": secs,
                        "clips_per_s": {k: b / s for k, s in secs.items()},
                        "speedup_call_vs_torch": secs["torch"] / secs["jax_call"],
                        "speedup_apply_vs_torch": secs["torch"] / secs["jax_apply"],
                        "speedup_call_vs_best_torch": best_torch(secs) / secs["jax_call"],
                        "speedup_apply_vs_best_torch": best_torch(secs) / secs["jax_apply"]}
    return {"parity_max_abs_logit_diff": diff, "batches": rows}


def environment() -> dict:
    return dict(machine=platform.machine(), processor=platform.processor(), cores=CORES,
                python=platform.python_version(), jax=jax.__version__, flax=flax.__version__,
                numpy=np.__version__, torch=torch.__version__,
                torch_threads=torch.get_num_threads(), jax_backend=jax.default_backend(),
                jax_device=str(jax.devices()[0].device_kind),
                xla_flags=os.environ.get("XLA_FLAGS", ""),
                load_avg_1min=os.getloadavg()[0])


def print_table(result: dict) -> None:
    env = result["environment"]
    print(f"forward with all intermediates, {env['cores']} cores, jax {env['jax']} vs torch "
          f"{env['torch']} ({env['torch_threads']} threads), load {env['load_avg_1min']:.1f}")
    print(f"{'arch':<8}{'batch':>6}  {'path':<26}{'median s':>11}{'clips/s':>11}"
          f"{'torch/x':>9}{'best/x':>8}")
    for arch, r in result["archs"].items():
        for b, row in r["batches"].items():
            t_torch, t_best = row["seconds"]["torch"], best_torch(row["seconds"])
            for path, s in row["seconds"].items():
                print(f"{arch:<8}{b:>6}  {path:<26}{s:>11.4f}{int(b) / s:>11.1f}"
                      f"{t_torch / s:>9.2f}{t_best / s:>8.2f}")
    for flags, t in result.get("xla_flags", {}).items():
        print(f"ddevis apply with XLA_FLAGS={flags or '(none)'}: {t}")
    print(f"target: JAX >= {result['target_speedup']}x PyTorch throughput; torch/x: vs PyTorch "
          f"on all cores, best/x: vs the faster of all cores and 1 thread")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="batches 1 and 16, 3 reps")
    ap.add_argument("--investigate", action="store_true", help="add variants and XLA flags")
    ap.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    ap.add_argument("--apply-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--batches", nargs="+", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--reps", type=int, default=None, help="override repetitions per batch")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "forward.json")
    args = ap.parse_args(argv)
    batches = args.batches or ([1, 16] if args.quick else [1, 256])
    reps = {b: args.reps or (3 if args.quick else (200 if b == 1 else 5)) for b in batches}
    if args.apply_only:
        res = apply_only(batches, min(reps.values()))
        print(json.dumps(res))
        return res
    result = {"environment": environment(), "quick": args.quick, "target_speedup": 2.0,
              "archs": {a: bench_arch(a, batches, reps, investigate=args.investigate)
                        for a in args.archs}}
    if args.investigate:
        result["xla_flags"] = {f: flag_timings(f, batches, 3) for f in ("", *FLAG_VARIANTS)}
    result["environment"]["load_avg_1min_end"] = os.getloadavg()[0]
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
