"""``hearsight experiment actmax``: Soomro et al.'s noise-to-class experiment.

For every class, ``N`` starts are maximised for the class's softmax output (RMS-normalised
gradient ascent, 20 steps) in input space (lr 0.01, N(mean, 0.1) noise) and, with a decoder
prior, in its latent space (lr 0.1, N(0, 0.1) codes). A start succeeds on a classifier when it
is assigned the target class; the own classifier is the one maximised, the separate one the
same architecture trained with another seed. Writes ``DIR/results.json`` and ``DIR/heatmap.png``
(classes × {own, separate} × {input, latent}, like the paper's Fig. 5).

The paper's scale (10,000 starts per class, 35 classes)::

    hearsight experiment actmax --model A --separate B --prior AE --per-class 10000 --out DIR

References:
  Soomro et al., "Generating speech utterances by activation maximisation" (own 96.8 % / 92.1 %,
  separate 7.6 % / 67.5 % without / with the prior).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from engine import actmax
from engine.objectives import TARGET, class_prob
from models.prior import Prior, load_prior

PAPER = {"own": {"input": 96.8, "latent": 92.1}, "separate": {"input": 7.6, "latent": 67.5}}
SPACES = ("input", "latent")


@dataclass(frozen=True)
class Setup:
    """Static configuration of one experiment (units: steps, starts; lr per space)."""

    shape: tuple[int, int]
    floor: float
    per_class: int = 200
    steps: int = 20
    chunk: int | None = 16
    batch: int = 1024
    lr_input: float = 0.01
    lr_latent: float = 0.1
    start_mean: float = 0.0
    sigma: float = 0.1

    def __post_init__(self) -> None:
        if self.per_class < 1 or self.steps < 1 or self.batch < 1:
            raise ValueError(f"need per_class, steps and batch >= 1, got {self.per_class}, "
                             f"{self.steps}, {self.batch}")


@partial(jax.jit, static_argnames=("fn",))
def _argmax(x: jax.Array, *, fn) -> jax.Array:
    return jnp.argmax(fn(x)[0], axis=-1)


def predict(acts_fn: Callable, x: np.ndarray, *, batch: int = 1024) -> np.ndarray:
    """Predicted classes ``(n,)`` of inputs ``(n, freq, time)``, in batches."""
    return np.concatenate([np.asarray(_argmax(jnp.asarray(x[i:i + batch]), fn=acts_fn))
                           for i in range(0, len(x), batch)])


def generate(acts_fn: Callable, targets: Sequence[int], *, space: str, setup: Setup,
             key: jax.Array, prior: Prior | None = None, progress: bool = False) -> np.ndarray:
    """``setup.per_class`` maximised inputs ``(len(targets) * per_class, freq, time)``.

    Row ``i`` maximises the probability of ``np.repeat(targets, per_class)[i]``. Every class
    runs through one compiled step (the class is data, not code): starts of all classes are
    cut into equal batches (the last one padded), so it compiles once per space.
    """
    from tqdm.auto import tqdm

    lr = setup.lr_input if space == "input" else setup.lr_latent
    init, step = actmax.make_maximiser(
        acts_fn, class_prob(TARGET), lr=lr, space=space,
        decode_fn=None if prior is None else prior.decode_fn, clip=(setup.floor, 0.0),
        chunk_size=setup.chunk)
    want = np.repeat(np.asarray(targets, dtype=np.int32), setup.per_class)
    n = min(len(want), setup.batch)
    out = []
    for i in tqdm(range(-(-len(want) // n)), desc=f"actmax {space}", unit="batch",
                  disable=not progress, leave=False):
        tgt = want[i * n:(i + 1) * n]
        tgt = np.pad(tgt, (0, n - len(tgt)), mode="edge")
        k_start, k_run = jax.random.split(jax.random.fold_in(key, i))
        if space == "input":
            x0 = actmax.noise_start(k_start, n, setup.shape, sigma=setup.sigma,
                                    mean=setup.start_mean)
        else:
            x0 = actmax.latent_start(k_start, n, prior.latent, sigma=setup.sigma)
        _, metrics = actmax.run(init, step, x0, setup.steps, key=k_run, target=tgt)
        out.append(np.asarray(metrics["x"]))
    return np.concatenate(out)[: len(want)]


def class_success(own_fn: Callable, separate_fn: Callable, targets: Sequence[int], *,
                  space: str, setup: Setup, key: jax.Array, prior: Prior | None = None,
                  progress: bool = False) -> list[dict[str, float]]:
    """Per target: percent of its starts assigned the target by the own, the separate, both."""
    x = generate(own_fn, targets, space=space, setup=setup, key=key, prior=prior,
                 progress=progress)
    own, sep = predict(own_fn, x, batch=setup.batch), predict(separate_fn, x, batch=setup.batch)
    m = setup.per_class
    return [{k: 100.0 * v for k, v in actmax.success_rate(own[j * m:(j + 1) * m],
                                                            sep[j * m:(j + 1) * m], c).items()}
            for j, c in enumerate(targets)]


def run_experiment(own_fn: Callable, separate_fn: Callable, labels: list[str],
                   classes: list[int], *, setup: Setup, key: jax.Array,
                   prior: Prior | None = None, progress: bool = True) -> dict:
    """Success per class and space, their means, and the paper's numbers (percent)."""
    spaces = SPACES if prior is not None else ("input",)
    per_class = {labels[c]: {s: None for s in SPACES} for c in classes}
    timing = {}
    for s in spaces:
        t0 = time.perf_counter()
        rates = class_success(own_fn, separate_fn, classes, space=s, setup=setup, prior=prior,
                              key=jax.random.fold_in(key, SPACES.index(s)), progress=progress)
        timing[s] = round(time.perf_counter() - t0, 1)
        for c, r in zip(classes, rates):
            per_class[labels[c]][s] = r
    return {"units": "percent of starts", "labels": [labels[c] for c in classes],
            "per_class": per_class, "overall": overall(per_class), "paper": PAPER,
            "seconds": timing,
            "config": {**dataclasses.asdict(setup), "shape": list(setup.shape), "prior": prior is not None}}


def overall(per_class: dict) -> dict:
    """Mean over classes of own / separate / both per space (``None`` where not run)."""
    out = {}
    for s in SPACES:
        rows = [v[s] for v in per_class.values() if v[s] is not None]
        out[s] = None if not rows else {k: float(np.mean([r[k] for r in rows]))
                                        for k in ("own", "separate", "both")}
    return out


def heatmap_matrix(results: dict) -> tuple[np.ndarray, list[str], list[str]]:
    """``(classes, 4)`` percent (NaN where not run), row and column labels."""
    cols = [(who, s) for s in SPACES for who in ("own", "separate")]
    rows = results["labels"]
    m = np.full((len(rows), len(cols)), np.nan)
    for i, lab in enumerate(rows):
        for j, (who, s) in enumerate(cols):
            cell = results["per_class"][lab][s]
            m[i, j] = np.nan if cell is None else cell[who]
    return m, rows, [f"{who} · {s}" for who, s in cols]


def heatmap_png(matrix: np.ndarray, rows: list[str], cols: list[str], *, cell: int = 18,
                title: str = "success (%)") -> bytes:
    """A PNG heat map (Viridis over 0..100 %, grey where NaN) with row/column labels."""
    import io

    from PIL import Image, ImageDraw

    from viz.figstyle import resolve_palette

    pal = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in resolve_palette("Viridis256")]
    left, top, colw = 8 * max(len(r) for r in rows) + 12, 36, max(8 * max(len(c) for c in cols), cell * 3)
    img = Image.new("RGB", (left + colw * len(cols) + 8, top + cell * len(rows) + 8), "white")
    draw = ImageDraw.Draw(img)
    draw.text((4, 2), title, fill="black")
    for j, name in enumerate(cols):
        draw.text((left + j * colw + 2, 18), name, fill="black")
    for i, name in enumerate(rows):
        y = top + i * cell
        draw.text((4, y + 3), name, fill="black")
        for j, v in enumerate(matrix[i]):
            colour = (200, 200, 200) if np.isnan(v) else pal[int(round(np.clip(v, 0, 100) * 2.55))]
            draw.rectangle([left + j * colw, y, left + (j + 1) * colw - 2, y + cell - 2], fill=colour)
            if not np.isnan(v):
                draw.text((left + j * colw + 3, y + 3), f"{v:.0f}",
                          fill="white" if v < 60 else "black")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_results(results: dict, out: str | Path) -> list[Path]:
    """``results.json`` and ``heatmap.png`` under ``out`` (created); returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True))
    (out / "heatmap.png").write_bytes(heatmap_png(*heatmap_matrix(results)))
    return [out / "results.json", out / "heatmap.png"]


def table(results: dict) -> str:
    """The overall result next to the paper's, as a text table."""
    lines = [f"{'':10s} {'space':7s} {'ours %':>8s} {'paper %':>8s}"]
    for who in ("own", "separate", "both"):
        for s in SPACES:
            ours = results["overall"][s]
            v = "-" if ours is None else f"{ours[who]:.1f}"
            paper = PAPER.get(who, {}).get(s)
            lines.append(f"{who:10s} {s:7s} {v:>8s} {'-' if paper is None else paper:>8}")
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------
HELP = "noise-to-class activation maximisation with and without a decoder prior (Soomro et al.)"


def add_arguments(p) -> None:
    """The options of ``hearsight experiment actmax`` on its parser ``p``."""
    p.add_argument("--model", required=True, help="checkpoint folder of the own classifier")
    p.add_argument("--separate", required=True, help="the same architecture, another seed")
    p.add_argument("--prior", default=None, help="spectrogram_ae checkpoint folder (latent space)")
    p.add_argument("--per-class", type=int, default=200, help="starts per class (paper: 10000)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--classes", default="all", help="all, or a comma list of labels or indices")
    p.add_argument("--chunk", type=int, default=16, help="starts per vmapped chunk (0: all)")
    p.add_argument("--lr-input", type=float, default=0.01)
    p.add_argument("--lr-latent", type=float, default=0.1)
    p.add_argument("--start-mean", type=float, default=0.0, help="mean of the input noise")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for results.json and heatmap.png")


def parse_classes(spec: str, labels: list[str]) -> list[int]:
    """``"all"`` or a comma list of labels / indices → class indices."""
    if spec.strip() == "all":
        return list(range(len(labels)))
    out = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if part in labels:
            out.append(labels.index(part))
        elif part.isdigit() and int(part) < len(labels):
            out.append(int(part))
        else:
            raise ValueError(f"class {part!r} is neither a label nor an index; labels: {labels}")
    return out


def acts_fn_of(predictor) -> Callable:
    """The predictor's stable ``acts_fn`` (built from its split model when it has none)."""
    fn = getattr(predictor, "acts_fn", None)
    if fn is not None:
        return fn
    from flax import nnx

    from models.architectures import call_with_intermediates

    graphdef, state = predictor.forward.graphdef, predictor.forward.state
    return lambda x: call_with_intermediates(nnx.merge(graphdef, state), x)


def run(args) -> int:
    from engine.predictor import Predictor

    own, sep = Predictor.load(args.model), Predictor.load(args.separate)
    if own.labels != sep.labels or own.params != sep.params:
        raise ValueError("--model and --separate must share labels and feature parameters")
    prior = load_prior(args.prior, own.params) if args.prior else None
    setup = Setup(shape=own.params.shape, floor=own.params.floor, per_class=args.per_class,
                  steps=args.steps, chunk=args.chunk or None, lr_input=args.lr_input,
                  lr_latent=args.lr_latent, start_mean=args.start_mean)
    results = run_experiment(acts_fn_of(own), acts_fn_of(sep), own.labels,
                             parse_classes(args.classes, own.labels), setup=setup,
                             key=jax.random.PRNGKey(args.seed), prior=prior)
    results["config"].update(model=str(args.model), separate=str(args.separate),
                             prior_dir=args.prior, seed=args.seed)
    paths = write_results(results, args.out)
    print(table(results))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
