"""``hearsight experiment classifiers``: train the reference classifiers and measure them.

The README's accuracy rows for models trained here (``ddevis_cnn`` on the Free Spoken Digit
Dataset, ``soomro_cnn`` on the synthetic corpus's held-out voices) are backed by this
experiment: each named run trains with the repository's own training code
(:func:`models.fit.fit`, the same as ``hearsight train``; batch-norm statistics are
recalibrated after training there), then scores the saved checkpoint on every split, overall
and per speaker, and writes one JSON file per run (settings, seed, epochs, the epoch history,
accuracies, wall time, machine, load average).

Runs (:data:`RUNS`):

- ``fsdd``: ``ddevis_cnn`` on FSDD's own split (takes 0-4 test, 5-9 valid, the rest train);
- ``fsdd-loso``: ``ddevis_cnn``, leave one speaker out: one training per speaker, whose 500
  clips are the test set (the others' takes 0-4 validate, the rest train);
- ``synth``, ``synth-warp``: ``soomro_cnn`` on ``synth`` (5 held-out voices test), without and
  with a ±20 % frequency warp; ``synth-large-warp``: the same warp on ``synth:large`` (4 takes
  per voice, the same held-out voices), also scored on ``synth``'s test split.

References: Becker et al. 2018, "Interpreting and Explaining Deep Neural Networks for
Classification of Audio Signals" (d-DeVIS, FSDD); Soomro et al. (the synthetic-voice
classifier); Jackson et al., Free Spoken Digit Dataset.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

HELP = ("train the reference classifiers (ddevis_cnn on FSDD, also leave-one-speaker-out; "
        "soomro_cnn on synth) and write their accuracies per split and speaker")


@dataclass(frozen=True)
class Run:
    """One named training run: which corpus option, architecture and training settings."""

    corpus: str  # "fsdd" | "synth" | "synth_large": the option that gives the corpus spec
    arch: str
    about: str
    epochs: int = 30  # hearsight train's default
    freq_warp: float = 0.0
    leave_one_speaker_out: bool = False
    also_test: str = ""  # a corpus option whose test split scores the model too


RUNS = {
    "fsdd": Run("fsdd", "ddevis_cnn", "FSDD digits, takes 0-4 test"),
    "fsdd-loso": Run("fsdd", "ddevis_cnn", "FSDD, leave one speaker out (one training each)",
                     epochs=12, leave_one_speaker_out=True),
    "synth": Run("synth", "soomro_cnn", "synth, 5 held-out voices"),
    "synth-warp": Run("synth", "soomro_cnn", "synth, 5 held-out voices, --freq-warp 0.2",
                      freq_warp=0.2),
    "synth-large-warp": Run("synth_large", "soomro_cnn",
                            "synth:large (4 takes a voice), 5 held-out voices, --freq-warp 0.2; "
                            "also scored on synth's test split (the same 5 voices, 350 clips)",
                            freq_warp=0.2, also_test="synth"),
}
SPLITS = ("train", "valid", "test")


def add_arguments(p) -> None:
    """The options of ``hearsight experiment classifiers`` on its parser ``p``."""
    p.add_argument("--runs", default="fsdd,fsdd-loso",
                   help=f"comma list of {', '.join(RUNS)} or 'all' (default: fsdd,fsdd-loso)")
    p.add_argument("--fsdd", default=None, metavar="PATH",
                   help="the FSDD recordings folder, e.g. ../shared/data/fsdd (read in place)")
    p.add_argument("--synth", default="synth", metavar="SPEC",
                   help="corpus of the synth runs (default: synth)")
    p.add_argument("--synth-large", default="synth:large", metavar="SPEC",
                   help="corpus of synth-large-warp (default: synth:large)")
    p.add_argument("--epochs", type=int, default=None,
                   help="override every run's epochs (default: each run's own: 30, fsdd-loso 12)")
    p.add_argument("--speakers", default=None,
                   help="fsdd-loso: comma list of speakers to hold out (default: all)")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--models", default=None, metavar="DIR",
                   help="keep the checkpoints in DIR/RUN[/SPEAKER] (default: a temporary "
                        "folder, deleted afterwards)")
    p.add_argument("--out", default="docs/experiments/classifiers",
                   help="folder for RUN.json (default: docs/experiments/classifiers)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def parse_runs(spec: str) -> tuple[str, ...]:
    """``"all"`` or a comma list → run names (validated, in the order given)."""
    names = tuple(RUNS) if spec.strip() == "all" else tuple(
        s.strip() for s in spec.split(",") if s.strip())
    bad = [n for n in names if n not in RUNS]
    if bad or not names:
        raise ValueError(f"--runs: unknown {bad or spec!r}; use 'all' or some of {list(RUNS)}")
    return names


def corpus_spec(option: str, args) -> str:
    """The corpus spec that ``option`` (a :attr:`Run.corpus`) names in the parsed ``args``
    (ValueError when --fsdd is missing)."""
    if option == "fsdd":
        if not args.fsdd:
            raise ValueError("the fsdd runs need --fsdd PATH (the FSDD recordings folder, "
                             "e.g. --fsdd ../shared/data/fsdd)")
        return f"fsdd:{args.fsdd}"
    return args.synth if option == "synth" else args.synth_large


def machine() -> dict:
    """Where the run happened: platform, cores, Python and JAX versions, JAX's devices."""
    import jax

    return {"platform": platform.platform(), "processor": platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "jax": jax.__version__, "devices": [str(d) for d in jax.devices()]}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def accuracy_by_speaker(checkpoint: Path, corpus, labels, splits=SPLITS) -> dict:
    """Top-1 of the checkpoint on ``splits`` of ``corpus``: overall and per speaker."""
    from data.dataset import load_split
    from engine.predictor import Predictor

    predictor = Predictor.load(checkpoint)
    if list(predictor.labels) != list(labels):
        raise ValueError(f"checkpoint labels {predictor.labels} differ from the corpus's")
    out = {}
    for split in splits:
        arrays = load_split(corpus, split, predictor.params)
        pred = np.concatenate([predictor.run(arrays.x[i:i + 64])[0].argmax(axis=1)
                               for i in range(0, len(arrays.x), 64)])
        hit = pred == np.asarray(arrays.y)
        speakers = np.array([s or "?" for s in arrays.speakers])
        out[split] = {"accuracy": float(hit.mean()), "n": int(len(hit)),
                      "per_speaker": {str(s): {"accuracy": float(hit[speakers == s].mean()),
                                               "n": int((speakers == s).sum())}
                                      for s in sorted(set(speakers))}}
    return out


def train_one(name: str, spec: str, args, folder: Path, holdout: str | None) -> dict:
    """Train run ``name`` on ``spec`` (holding speaker ``holdout`` out) into ``folder`` and
    score it: the fold's record (epoch history, accuracy per split and speaker, timings)."""
    from data.corpora import open_corpus
    from models.fit import FitConfig, fit

    run = RUNS[name]
    split = {"split_by": "speaker", "holdout_speaker": holdout} if holdout else {}
    corpus = open_corpus(spec, progress=False, **split)
    config = FitConfig(arch=run.arch, epochs=args.epochs or run.epochs, seed=args.seed,
                       freq_warp=run.freq_warp)
    tag = f"[{name}{' ' + holdout if holdout else ''}]"

    def on_epoch(epoch, _model, m):
        log(f"{tag} epoch {epoch}/{config.epochs} train_acc {m['train_acc']:.3f} "
            f"valid_acc {m['valid_acc']:.3f} {m['seconds']:.0f} s "
            f"(load {os.getloadavg()[0]:.1f})")

    load0, t0 = os.getloadavg(), time.perf_counter()
    meta = fit(corpus, folder, config, progress=False, log=lambda s: log(f"{tag} {s}"),
               on_epoch=on_epoch)
    train_wall = time.perf_counter() - t0
    accuracy = accuracy_by_speaker(folder, corpus, corpus.labels)
    metrics = meta["metrics"]
    return {**scored_elsewhere(run, folder, args, tag), "holdout_speaker": holdout,
            "corpus": corpus.spec, "split_sizes": meta["split"], "labels": list(corpus.labels),
            "best_epoch": metrics["best_epoch"], "epochs_run": len(metrics["history"]),
            "history": metrics["history"],
            "checkpoint_test_accuracy": metrics["test"]["accuracy"], "accuracy": accuracy,
            "train_seconds": round(train_wall, 1),
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "loadavg": {"before": list(load0), "after": list(os.getloadavg())},
            "config": asdict(config)}


def scored_elsewhere(run: Run, folder: Path, args, tag: str) -> dict:
    """``{"also_test": ...}``: the checkpoint's top-1 on the test split of ``run.also_test``'s
    corpus (raises ValueError when its labels differ from the checkpoint's); ``{}`` without."""
    from data.corpora import open_corpus

    if not run.also_test:
        return {}
    other = open_corpus(corpus_spec(run.also_test, args), progress=False)
    test = accuracy_by_speaker(folder, other, other.labels, splits=("test",))["test"]
    log(f"{tag} on {other.spec} test: accuracy {test['accuracy']:.4f} on {test['n']} clips")
    return {"also_test": {"corpus": other.spec, **test}}


def holdout_speakers(spec: str, args) -> list[str]:
    """The speakers fsdd-loso holds out: ``--speakers`` or every speaker of the corpus."""
    from data.corpora import open_corpus

    have = sorted({it.speaker for it in open_corpus(spec, progress=False).items if it.speaker})
    if not args.speakers:
        return have
    chosen = [s.strip() for s in args.speakers.split(",") if s.strip()]
    bad = [s for s in chosen if s not in have]
    if bad or not chosen:
        raise ValueError(f"--speakers: {bad or args.speakers!r} not in {spec} (its speakers "
                         f"are {have})")
    return chosen


def summary(run: Run, folds: list[dict]) -> dict:
    """Headline figures: test accuracy, or per held-out speaker and their mean."""
    if not run.leave_one_speaker_out:
        also = folds[0].get("also_test")
        return {"test_accuracy": folds[0]["accuracy"]["test"]["accuracy"],
                **({"also_test_corpus": also["corpus"], "also_test_accuracy": also["accuracy"]}
                   if also else {})}
    by = {f["holdout_speaker"]: f["accuracy"]["test"]["accuracy"] for f in folds}
    return {"test_accuracy_by_holdout_speaker": by,
            "mean_test_accuracy": float(np.mean(list(by.values())))}


def run_one(name: str, args, models_dir: Path, out_dir: Path) -> dict:
    """Train and score run ``name``; writes ``out_dir/name.json`` after every fold."""
    run = RUNS[name]
    spec = corpus_spec(run.corpus, args)
    holdouts = holdout_speakers(spec, args) if run.leave_one_speaker_out else [None]
    result = {"experiment": "classifiers", "run": name, "about": run.about,
              "arch": run.arch, "corpus": spec, "seed": args.seed,
              "epochs": args.epochs or run.epochs, "freq_warp": run.freq_warp,
              "leave_one_speaker_out": run.leave_one_speaker_out,
              "settings": {"fsdd": args.fsdd, "synth": args.synth,
                           "synth_large": args.synth_large, "epochs": args.epochs,
                           "speakers": args.speakers, "seed": args.seed},
              "machine": machine(), "loadavg_before": list(os.getloadavg()), "folds": []}
    t0, path = time.perf_counter(), out_dir / f"{name}.json"
    for holdout in holdouts:
        folder = models_dir / name / (holdout or "")
        result["folds"].append(train_one(name, spec, args, folder, holdout))
        result.update(summary=summary(run, result["folds"]),
                      complete=len(result["folds"]) == len(holdouts),
                      wall_seconds=round(time.perf_counter() - t0, 1),
                      loadavg_after=list(os.getloadavg()))
        path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    log(f"[{name}] {json.dumps(result['summary'])}; {result['wall_seconds']:.0f} s; wrote {path}")
    return result


def run(args) -> dict:
    """Train, score and write every run of ``args.runs``; returns ``{run: result}``."""
    names = parse_runs(args.runs)
    for name in names:  # refuse a missing corpus option before training anything
        corpus_spec(RUNS[name].corpus, args)
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    models_dir = Path(args.models) if args.models else Path(tempfile.mkdtemp(prefix="hs-cls-"))
    try:
        return {name: run_one(name, args, models_dir, out_dir) for name in names}
    finally:
        if not args.models:
            shutil.rmtree(models_dir, ignore_errors=True)
