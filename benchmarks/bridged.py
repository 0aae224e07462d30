"""Benchmark: a bridged Hugging Face model in JAX (torchax, jit) vs the same model in PyTorch eager.

A ``Wav2Vec2ForSequenceClassification`` with random weights (default: wav2vec2-base sized,
hidden 768, 12 layers, 12 heads, the base conv stack of 7 × 512 channels) is saved with
``save_pretrained`` and opened through the contract (``load_model("hf:...")``). Timed, one
path after the other at each batch size (16 kHz × ``seconds`` clips):

- ``jax``: one jitted function returning the logits, every exposed layer (7 convolutions,
  12 transformer layers, the pooled vector) and the gradient of one class's logit w.r.t. the
  raw waveform (``jax.value_and_grad``), all brought to host as NumPy.
- ``torch`` / ``torch_1thread``: the original model in eval mode, forward hooks on the same
  layers, the extractor's normalisation in torch, ``backward()`` for the same gradient, on all
  cores / one thread (on an oversubscribed machine one thread can win).

Before timing, both must agree (logits within 1e-3, gradient within 1e-2 relative). Compile
time of the JAX path is reported apart. Run from the repository root:
``python3 benchmarks/bridged.py [--reduced | --both | --quick] [--batches 1 16]``; needs
``pip install 'hearsight[foreign]'``; writes ``benchmarks/results/bridged.json``.
Other scripts call :func:`run_bridged` with smaller sizes (e.g. on a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from models.contract import describe, load_model  # noqa: E402

CORES = len(os.sched_getaffinity(0))
BASE = dict(hidden=768, layers=12, heads=12, intermediate=3072, conv_dim=512)
REDUCED = dict(hidden=256, layers=4, heads=4, intermediate=1024, conv_dim=256)
TARGET = 0


def save_wav2vec2(folder: Path, *, hidden: int, layers: int, heads: int, intermediate: int,
                  conv_dim: int, n_classes: int = 10, seed: int = 0) -> Path:
    """A random wav2vec2 classifier (base conv stack: kernels 10,3,3,3,3,2,2, strides
    5,2,2,2,2,2,2) and its feature extractor, saved in ``folder``."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    config = tf.Wav2Vec2Config(hidden_size=hidden, num_hidden_layers=layers,
                               num_attention_heads=heads, intermediate_size=intermediate,
                               conv_dim=(conv_dim,) * 7, num_labels=n_classes)
    tf.Wav2Vec2ForSequenceClassification(config).save_pretrained(folder)
    tf.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(folder)
    return folder


def jax_path(model):
    """Jitted ``(params, x) -> (logits, activations, d logit[TARGET] / d x)``."""
    def score(x, params):
        logits, acts = model.apply(params, x)
        return logits[:, TARGET].sum(), (logits, acts)

    grad_fn = jax.value_and_grad(score, has_aux=True)

    @jax.jit
    def run(params, x):
        (_, (logits, acts)), grad = grad_fn(x, params)
        return logits, acts, grad

    return run


def torch_path(folder: Path, layer_paths: dict[str, str]):
    """``(x, threads) -> (logits, activations, gradient)`` of the original model, NumPy out."""
    import torch
    import transformers as tf

    ref = tf.AutoModelForAudioClassification.from_pretrained(folder, local_files_only=True).eval()
    subs, outs = dict(ref.named_modules()), {}
    for name, path in layer_paths.items():
        if name == "pooled":
            subs[path].register_forward_pre_hook(lambda m, a, n=name: outs.__setitem__(n, a[0]))
        else:
            subs[path].register_forward_hook(
                lambda m, a, o, n=name: outs.__setitem__(n, o[0] if isinstance(o, tuple) else o))

    def run(x: np.ndarray, threads: int):
        torch.set_num_threads(threads)
        leaf = torch.from_numpy(x.copy()).requires_grad_(True)
        mean, var = leaf.mean(-1, keepdim=True), leaf.var(-1, unbiased=False, keepdim=True)
        logits = ref(input_values=(leaf - mean) / torch.sqrt(var + 1e-7)).logits
        logits[:, TARGET].sum().backward()
        acts = {k: v.detach().numpy() for k, v in outs.items()}
        return logits.detach().numpy(), acts, leaf.grad.numpy()

    return run


def _layer_paths(model) -> dict[str, str]:
    convs = [n for n in model.layer_names if n.startswith("conv")]
    layers = [n for n in model.layer_names if n.startswith("layer")]
    out = {n: f"wav2vec2.feature_extractor.conv_layers.{i}" for i, n in enumerate(convs)}
    out.update({n: f"wav2vec2.encoder.layers.{i}" for i, n in enumerate(layers)})
    return {**out, "pooled": "classifier"}


def median_seconds(fn, *, reps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _host(out):
    return jax.tree_util.tree_map(np.asarray, jax.block_until_ready(out))


def check_parity(run_jax, run_torch, params, x: np.ndarray, *,
                 tolerance: tuple[float, float] | None = (1e-3, 1e-2)) -> dict[str, float]:
    """Max |logit| difference and max gradient difference relative to the gradient's max;
    ``AssertionError`` past ``tolerance`` (``None``: recorded only, e.g. TF32 GPU matmuls)."""
    logits, _, grad = _host(run_jax(params, x))
    t_logits, _, t_grad = run_torch(x, CORES)
    dev = {"logits_max_abs": float(np.abs(logits - t_logits).max()),
           "grad_max_rel": float(np.abs(grad - t_grad).max() / np.abs(t_grad).max())}
    if tolerance and (dev["logits_max_abs"] > tolerance[0] or dev["grad_max_rel"] > tolerance[1]):
        raise AssertionError(f"JAX and PyTorch disagree: {dev}")
    return dev


def run_bridged(*, hidden: int, layers: int, heads: int, intermediate: int, conv_dim: int,
                seconds: float = 1.0, batches=(1, 16), reps: dict | None = None,
                torch_threads=(None, 1),
                tolerance: tuple[float, float] | None = (1e-3, 1e-2)) -> dict:
    """Parity and median seconds of the JAX and PyTorch paths at each batch size.

    ``torch_threads``: PyTorch thread counts to time (``None``: all cores); ``tolerance``:
    of the parity check (see :func:`check_parity`). Returns a dict
    with ``config``, ``describe`` (parameters, layers), ``parity``, ``compile_s`` and
    ``batches[b]`` (``seconds`` per path, ``clips_per_s``, ``speedup_vs_torch``,
    ``speedup_vs_best_torch``).
    """
    config = dict(hidden=hidden, layers=layers, heads=heads, intermediate=intermediate,
                  conv_dim=conv_dim, seconds=seconds)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_wav2vec2(Path(tmp), hidden=hidden, layers=layers, heads=heads,
                               intermediate=intermediate, conv_dim=conv_dim)
        model = load_model(f"hf:{folder}")
        if abs(model.input.duration_s - seconds) > 1e-9:
            from models.foreign.hf import load_hf
            model = load_hf(str(folder), duration_s=seconds)
        run_jax, run_torch = jax_path(model), torch_path(folder, _layer_paths(model))
        rng = np.random.default_rng(0)
        n = model.input.n_samples
        result = {"config": config, "describe": {k: v for k, v in describe(model).items()
                                                 if k not in ("ops", "spec")},
                  "batches": {}}
        result["parity"] = check_parity(run_jax, run_torch, model.params,
                                        rng.uniform(-0.5, 0.5, (2, n)).astype(np.float32),
                                        tolerance=tolerance)
        for b in batches:
            x = rng.uniform(-0.5, 0.5, (b, n)).astype(np.float32)
            t0 = time.perf_counter()
            _host(run_jax(model.params, x))
            result.setdefault("compile_s", {})[str(b)] = time.perf_counter() - t0
            r = (reps or {}).get(b, 5 if b == 1 else 3)
            secs = {"jax": median_seconds(lambda: _host(run_jax(model.params, x)), reps=r)}
            for th in torch_threads:
                key = "torch" if th is None else f"torch_{th}thread"
                secs[key] = median_seconds(lambda th=th: run_torch(x, th or CORES), reps=r)
            best = min(v for k, v in secs.items() if k.startswith("torch"))
            result["batches"][str(b)] = {
                "reps": r, "seconds": secs, "clips_per_s": {k: b / v for k, v in secs.items()},
                "speedup_vs_torch": secs["torch"] / secs["jax"],
                "speedup_vs_best_torch": best / secs["jax"]}
    return result


def gpu_check(*, cpu: bool, budget_s: float) -> dict:
    """Entry point of ``benchmarks/gpu_check.py``: the base config when not on CPU and the
    budget allows it (>= 300 s), else the reduced one; batches 1 and 16, 3 repetitions each.
    Parity is recorded, not enforced: JAX's default float32 matmuls on a GPU use TF32."""
    name, cfg = ("reduced", REDUCED) if cpu or budget_s < 300 else ("base", BASE)
    t0 = time.perf_counter()
    run = run_bridged(**cfg, batches=(1, 16), reps={1: 3, 16: 3}, tolerance=None)
    env = environment()
    env["load_avg_1min_end"] = os.getloadavg()[0]
    return {"environment": env, "runs": {name: run}, "wall_s": time.perf_counter() - t0}


def environment() -> dict:
    import torch

    from models.foreign.compat import import_torchax

    return dict(machine=platform.machine(), cores=CORES, python=platform.python_version(),
                jax=jax.__version__, torch=torch.__version__,
                torchax=import_torchax().__version__, jax_backend=jax.default_backend(),
                jax_device=str(jax.devices()[0].device_kind), load_avg_1min=os.getloadavg()[0])


def print_table(result: dict) -> None:
    env = result["environment"]
    print(f"bridged wav2vec2 forward + all layers + input gradient, {env['cores']} cores, "
          f"jax {env['jax']} ({env['jax_backend']}) vs torch {env['torch']}, load "
          f"{env['load_avg_1min']:.1f} -> {env['load_avg_1min_end']:.1f}")
    for name, run in result["runs"].items():
        c = run["config"]
        print(f"[{name}] hidden {c['hidden']}, {c['layers']} layers, {c['heads']} heads, conv "
              f"{c['conv_dim']}, {run['describe']['parameters'] / 1e6:.1f} M parameters, "
              f"{c['seconds']:g} s clips; parity {run['parity']}")
        print(f"{'batch':>6}  {'path':<16}{'median s':>10}{'clips/s':>10}{'torch/x':>9}"
              f"{'best/x':>8}")
        for b, row in run["batches"].items():
            s, best = row["seconds"], min(v for k, v in row["seconds"].items()
                                          if k.startswith("torch"))
            for path, t in s.items():
                print(f"{b:>6}  {path:<16}{t:>10.3f}{int(b) / t:>10.2f}{s['torch'] / t:>9.2f}"
                      f"{best / t:>8.2f}")
            print(f"{'':>6}  (jax compile {run['compile_s'][b]:.1f} s)")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reduced", action="store_true", help="only the reduced config")
    ap.add_argument("--quick", action="store_true", help="the reduced config, 2 repetitions")
    ap.add_argument("--both", action="store_true", help="the base and the reduced config")
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    ap.add_argument("--reps", type=int, default=None, help="repetitions per batch size")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bridged.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.reduced, args.reps = True, args.reps or 2
    configs = ({"reduced": REDUCED} if args.reduced else
               {"base": BASE, "reduced": REDUCED} if args.both else {"base": BASE})
    reps = {b: args.reps for b in args.batches} if args.reps else None
    result = {"environment": environment(), "target_speedup_batch16": 2.0, "runs": {}}
    for name, cfg in configs.items():
        result["runs"][name] = run_bridged(**cfg, batches=args.batches, reps=reps)
        print(f"{name} done", flush=True)
    result["environment"]["load_avg_1min_end"] = os.getloadavg()[0]
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
