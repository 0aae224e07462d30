"""Benchmark: server-side time from a received 1 s clip to every Inspect view's data, against
the d-DeVIS way of doing the same work, in the same run.

hearsight (what ``serve.session.Session.load_bytes`` + ``analyse`` + the Inspect page do, minus
drawing): decode the WAV bytes, fit to the window, features, one jitted forward returning the
probabilities and every intermediate, the mosaic array of every conv layer
(``viz.featuremaps.mosaic``) and a weight histogram per layer (``np.histogram``, 50 bins).
p50 / p95 over ``--clips`` clips after one warm-up clip. Also the time of one feature-map
sonification (``engine.sonify.sonify_feature_map``, 32 Griffin-Lim iterations) after
warm-up — the page sonifies only the filter a person taps.

d-DeVIS way (its public Flask code): per request, load the model from disk
(``models.checkpoint.load_checkpoint``), run it eagerly (no compiled function is reused) and
write one matplotlib PNG per filter of every conv layer. p50 over ``--ddevis-clips`` clips.

Clips: the first FSDD recordings of ``../shared/data/fsdd`` fitted to 1 s at the model's rate
and encoded as 16-bit WAV bytes (seeded noise if the copy is missing). Model: ``--model``, else
the cached default under ``$HEARSIGHT_HOME``, else a randomly initialised ``ddevis_cnn`` (the
work per request does not depend on the weights' values).

Run from the repository root: ``python3 benchmarks/interactive.py``; needs matplotlib for the
d-DeVIS peer (``pip install matplotlib``); writes ``benchmarks/results/interactive.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import jax  # noqa: E402
import numpy as np  # noqa: E402

from data.audio import fit_to_window, load_audio, peak_normalise, to_wav_bytes  # noqa: E402

FSDD = ROOT.parent / "shared" / "data" / "fsdd"
HIST_BINS = 50
SONIFY_ITERS = 32


def find_model(arg: str | None, workdir: Path) -> tuple[Path, str]:
    """``(checkpoint folder, description)``: the given one, the cached default, or a tiny one."""
    if arg:
        return Path(arg), "given"
    from cli.inputs import default_model_dir

    cached = default_model_dir()
    if (cached / "metadata.json").is_file():
        return cached, "cached default (trained)"
    from data.features import ddevis_stft
    from models.checkpoint import save_checkpoint
    from models.registry import build_model

    p = ddevis_stft()
    model = build_model("ddevis_cnn", n_classes=10, input_shape=p.shape, seed=0)
    meta = {"arch": "ddevis_cnn", "arch_kwargs": {"n_classes": 10, "input_shape": list(p.shape)},
            "labels": [str(d) for d in range(10)], "features": p.to_dict()}
    return save_checkpoint(workdir / "tiny", model, meta), "random init (untrained)"


def wav_clips(n: int, sample_rate: int, n_samples: int, *, seed: int = 0) -> list[bytes]:
    """``n`` clips of exactly ``n_samples`` samples as 16-bit WAV bytes."""
    files = sorted(FSDD.glob("*.wav"))[:n]
    if len(files) < n:
        rng = np.random.default_rng(seed)
        waves = [rng.normal(0, 0.1, n_samples).astype(np.float32) for _ in range(n)]
    else:
        waves = [fit_to_window(load_audio(str(f), sample_rate=sample_rate)[0], n_samples)
                 for f in files]
    return [to_wav_bytes(peak_normalise(w), sample_rate) for w in waves]


def hearsight_request(predictor, data: bytes, weights: dict) -> dict:
    """Every Inspect view's data for one received clip, as the server computes it."""
    from serve.analysis import conv_layers
    from viz.featuremaps import mosaic

    p = predictor.params
    wave, _ = load_audio(data, sample_rate=p.sample_rate, name="clip.wav")
    wave = peak_normalise(fit_to_window(wave, p.n_samples)).astype(np.float32)
    x = predictor.features(wave[None])
    probs, acts = predictor.run(x)
    acts = {k: np.asarray(v[0]) for k, v in acts.items()}
    mosaics = {k: mosaic(acts[k])[0] for k in conv_layers(acts)}
    hists = {k: np.histogram(w, bins=HIST_BINS) for k, w in weights.items()}
    first = next(iter(conv_layers(acts)))
    return {"probs": np.asarray(probs[0]), "mosaics": mosaics, "hists": hists,
            "first_map": acts[first][:, :, 0]}


def ddevis_request(model_dir: Path, data: bytes, out_dir: Path) -> int:
    """The d-DeVIS way: load from disk, eager forward, one matplotlib PNG per filter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from data.features import FeatureParams, features
    from models.architectures import call_with_intermediates
    from models.checkpoint import load_checkpoint

    model, meta = load_checkpoint(model_dir)
    p = FeatureParams.from_dict(meta["features"])
    wave, _ = load_audio(data, sample_rate=p.sample_rate, name="clip.wav")
    wave = peak_normalise(fit_to_window(wave, p.n_samples)).astype(np.float32)
    with jax.disable_jit():
        x = features(jax.numpy.asarray(wave), p)[None]
        _, acts = call_with_intermediates(model, x)
    written = 0
    for name, a in acts.items():
        a = np.asarray(a[0])
        if a.ndim != 3:
            continue
        for ch in range(a.shape[2]):
            fig, ax = plt.subplots(figsize=(3, 3))
            ax.imshow(a[:, :, ch], origin="lower", aspect="auto", cmap="viridis")
            fig.savefig(out_dir / f"{name}_{ch}.png")
            plt.close(fig)
            written += 1
    return written


def timings(fn, items) -> list[float]:
    out = []
    for item in items:
        t0 = time.perf_counter()
        jax.block_until_ready(fn(item))
        out.append(time.perf_counter() - t0)
    return out


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000.0, q))


def run(args) -> dict:
    from engine.sonify import sonify_feature_map
    from engine.predictor import Predictor, layer_parameters

    with tempfile.TemporaryDirectory() as tmp:
        model_dir, model_kind = find_model(args.model, Path(tmp))
        predictor = Predictor.load(model_dir)
        p = predictor.params
        clips = wav_clips(args.clips + 1, p.sample_rate, p.n_samples)
        weights = layer_parameters(predictor.model)
        hearsight_request(predictor, clips[0], weights)  # warm-up: compiles the forward
        hs = timings(lambda c: hearsight_request(predictor, c, weights), clips[1:])
        views = hearsight_request(predictor, clips[1], weights)
        one_map = views["first_map"]
        key = jax.random.PRNGKey(0)
        sonify = lambda _: sonify_feature_map(one_map, p, n_iter=SONIFY_ITERS, key=key)  # noqa: E731
        sonify(None)
        son = timings(sonify, range(args.sonify_repeats))
        png_dir = Path(tmp) / "png"
        png_dir.mkdir()
        n_png = ddevis_request(model_dir, clips[0], png_dir)  # warm-up (imports, caches)
        dd = timings(lambda c: ddevis_request(model_dir, c, png_dir), clips[1:1 + args.ddevis_clips])
    return summarise(str(model_dir) if args.model else "(temporary)", model_kind, hs, son, dd,
                     n_png)


def summarise(model: str, model_kind: str, hs, son, dd, n_png) -> dict:
    return {
        "model": model, "model_kind": model_kind,
        "clips": len(hs), "ddevis_clips": len(dd), "pngs_per_request": n_png,
        "hearsight_ms": {"p50": pct(hs, 50), "p95": pct(hs, 95), "mean": 1000 * statistics.mean(hs)},
        "sonify_ms": {"p50": pct(son, 50), "n_iter": SONIFY_ITERS, "repeats": len(son)},
        "ddevis_ms": {"p50": pct(dd, 50), "p95": pct(dd, 95)},
        "speedup_p50": pct(dd, 50) / pct(hs, 50),
        "targets": {"hearsight_p50_ms": 300.0, "speedup": 10.0},
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "jax_backend": jax.default_backend(), "jax": jax.__version__},
    }


def print_table(r: dict) -> None:
    print(f"model: {r['model']} ({r['model_kind']}); {r['clips']} clips, "
          f"{r['ddevis_clips']} for d-DeVIS ({r['pngs_per_request']} PNGs each)")
    print(f"{'path':<44s} {'p50 ms':>9s} {'p95 ms':>9s}")
    print(f"{'hearsight: clip -> all Inspect data':<44s} {r['hearsight_ms']['p50']:9.1f} "
          f"{r['hearsight_ms']['p95']:9.1f}")
    print(f"{'hearsight: one sonification (lazy)':<44s} {r['sonify_ms']['p50']:9.1f} {'':>9s}")
    print(f"{'d-DeVIS way: reload + eager + PNG/filter':<44s} {r['ddevis_ms']['p50']:9.1f} "
          f"{r['ddevis_ms']['p95']:9.1f}")
    ok = r["hearsight_ms"]["p50"] <= 300 and r["speedup_p50"] >= 10
    print(f"speed-up (p50): {r['speedup_p50']:.1f}x  (targets: p50 <= 300 ms, >= 10x: "
          f"{'met' if ok else 'NOT met'})")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint folder of a ddevis_cnn")
    ap.add_argument("--clips", type=int, default=30)
    ap.add_argument("--ddevis-clips", type=int, default=5)
    ap.add_argument("--sonify-repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "interactive.json"))
    args = ap.parse_args(argv)
    if args.clips < 30:
        print(f"note: {args.clips} clips (< 30): percentiles are rough", file=sys.stderr)
    result = run(args)
    print_table(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
