"""``hearsight train``: train a classifier (or the decoder prior) on a corpus and checkpoint it."""

from __future__ import annotations

from cli.inputs import err, open_corpus_args


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a classifier (or, with --arch spectrogram_ae, the "
                                     "decoder prior) on a corpus and checkpoint it")
    p.add_argument("--corpus", required=True, help="corpus spec (see below)")
    p.add_argument("--arch", default="ddevis_cnn",
                   help="ddevis_cnn | soomro_cnn | frame_mlp | spectrogram_ae (the decoder prior "
                        "for Maximise) | package.module:factory")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--features", default="", help="stft | logmel (default: the arch's own)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-budget", type=float, default=None, help="seconds; stop after the epoch")
    p.add_argument("--freq-warp", type=float, default=0.0,
                   help="VTLP-like random frequency stretch, e.g. 0.1 for factors 0.9-1.1 "
                        "(helps on unseen voices)")
    p.add_argument("--time-shift", type=float, default=0.1,
                   help="largest random time shift, a share of the frames (default 0.1)")
    p.add_argument("--band-limit", type=float, default=0.0, metavar="P",
                   help="probability of silencing the band above a random 3.4-5.5 kHz cutoff "
                        "(real 8 kHz recordings hold nothing above 4 kHz)")
    p.add_argument("--reverb", type=float, default=0.0, metavar="P",
                   help="probability of adding a synthetic room's reverberant tail")
    p.add_argument("--tilt", type=float, default=0.0,
                   help="largest random spectral tilt, log10 units across the band")
    p.add_argument("--gate", type=float, default=0.0, metavar="P",
                   help="probability of gating quiet cells to silence")
    p.add_argument("--default-recipe", action="store_true",
                   help="train exactly the first-run default model's recipe "
                        "(models.fit.DEFAULT_RECIPE: arch, epochs, augmentation; with "
                        "--seed, that seed instead of the recipe's 0; the other training "
                        "options are ignored)")
    p.add_argument("--split-by", default="default", choices=["default", "speaker"])
    p.add_argument("--holdout-speaker", default=None, help="with --split-by speaker")
    p.add_argument("--resume", action="store_true",
                   help="continue a run that was killed part-way (from OUT/.last)")
    p.add_argument("--json", action="store_true", help="print the metadata as JSON")


def run(args):
    from dataclasses import replace

    from models.checkpoint import check_replaceable
    from models.fit import DEFAULT_RECIPE, FitConfig, fit

    check_replaceable(args.out)  # refuse a foreign --out before synthesising or training
    corpus = open_corpus_args(args.corpus, args)
    if getattr(args, "default_recipe", False):
        config = replace(DEFAULT_RECIPE, seed=args.seed)
    else:
        config = FitConfig(arch=args.arch, features=args.features, epochs=args.epochs,
                           batch_size=args.batch_size, learning_rate=args.lr,
                           patience=args.patience, seed=args.seed,
                           time_budget_s=args.time_budget,
                           freq_warp=getattr(args, "freq_warp", 0.0),
                           time_shift=getattr(args, "time_shift", 0.1),
                           band_limit=getattr(args, "band_limit", 0.0),
                           reverb=getattr(args, "reverb", 0.0),
                           tilt=getattr(args, "tilt", 0.0), gate=getattr(args, "gate", 0.0))
    meta = fit(corpus, args.out, config, log=err if args.json else print,
               resume=getattr(args, "resume", False))
    return meta
