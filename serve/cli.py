"""The ``hearsight`` command line.

Every sub-command turns bad input into one clear line on stderr and exit status 2, never a
traceback: ``hearsight predict --model DIR missing.wav`` says the file is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from serve import commands

EPILOG = """corpus specs: synth | synth:small | synth:large | fsdd:PATH | speech-commands:PATH | folder:PATH
cache folder: $HEARSIGHT_HOME (default ~/.cache/hearsight)"""


def _corpus_parser(sub) -> None:
    p = sub.add_parser("corpus", help="build or describe a corpus")
    csub = p.add_subparsers(dest="corpus_cmd", required=True)
    s = csub.add_parser("synth", help="synthesise the embedded eSpeak NG corpus (cached)")
    s.add_argument("--small", action="store_true", help="the tiny test variant")
    s.add_argument("--seed", type=int, default=0)
    i = csub.add_parser("info", help="counts per split, label and speaker")
    i.add_argument("spec")
    i.add_argument("--json", action="store_true")


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a classifier on a corpus and checkpoint it")
    p.add_argument("--corpus", required=True, help="corpus spec (see below)")
    p.add_argument("--arch", default="ddevis_cnn",
                   help="ddevis_cnn | soomro_cnn | frame_mlp | package.module:factory")
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
    p.add_argument("--split-by", default="default", choices=["default", "speaker"])
    p.add_argument("--holdout-speaker", default=None, help="with --split-by speaker")
    p.add_argument("--resume", action="store_true",
                   help="continue a run that was killed part-way (from OUT/.last)")
    p.add_argument("--json", action="store_true", help="print the metadata as JSON")


def _io_parsers(sub) -> None:
    p = sub.add_parser("predict", help="probabilities of every class for audio files")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the cached default)")
    p.add_argument("--json", action="store_true")
    p.add_argument("files", nargs="+")
    e = sub.add_parser("evaluate", help="accuracy, per-class accuracy, confusion matrix")
    e.add_argument("--model", default=None)
    e.add_argument("--corpus", required=True)
    e.add_argument("--split", default="test", choices=["train", "valid", "test", "all"])
    e.add_argument("--split-by", default="default", choices=["default", "speaker"])
    e.add_argument("--holdout-speaker", default=None)
    e.add_argument("--json", action="store_true")
    r = sub.add_parser("recalibrate", help="recompute batch-norm statistics of a checkpoint "
                                          "on its training split (older checkpoints)")
    r.add_argument("--model", required=True)
    r.add_argument("--corpus", default=None, help="default: the checkpoint's own corpus")
    r.add_argument("--split-by", default="default", choices=["default", "speaker"])
    r.add_argument("--holdout-speaker", default=None)
    r.add_argument("--json", action="store_true")
    s = sub.add_parser("serve", help="start the interactive server")
    s.add_argument("--model", default=None, help="checkpoint folder (default: train/cached default)")
    s.add_argument("--port", type=int, default=5006)
    s.add_argument("--procs", type=int, default=1,
                   help="worker processes sharing the port (each loads the model; at most "
                        "the number of CPU cores is useful)")
    s.add_argument("--address", default="127.0.0.1",
                   help="bind address (default loopback; another needs --allow-websocket-origin)")
    s.add_argument("--allow-websocket-origin", action="append", default=[])
    s.add_argument("--basic-auth", default=None, help="password or a JSON file of user: password")
    s.add_argument("--oauth-provider", default=None,
                   help="Panel OAuth provider (github, google, azure, okta, generic, ...); "
                        "client id/secret from HEARSIGHT_OAUTH_KEY / HEARSIGHT_OAUTH_SECRET")
    s.add_argument("--oauth-redirect-uri", default=None, help="OAuth callback URL, if proxied")
    s.add_argument("--show", action="store_true", help="open a browser tab")
    s.add_argument("--separate", default=None,
                   help="a second classifier (other seed) whose verdict the Maximise page shows")
    s.add_argument("--prior", default=None, help="spectrogram_ae checkpoint: the decoder prior")
    s.add_argument("--projection", default=None,
                   help="a projection .parquet from 'hearsight project' for the Embeddings page")
    s.add_argument("--default-budget", type=float, default=90.0,
                   help="seconds of training for the first-run default model")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hearsight", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="See and hear what a speech classifier has learned.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    _corpus_parser(sub)
    _train_parser(sub)
    _io_parsers(sub)
    commands.add_analysis_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = commands.dispatch(args)
    except (ValueError, OSError) as exc:  # AudioError, CheckpointError, bad specs, IO
        # Paths may carry undecodable bytes (surrogate escapes): never crash while reporting.
        text = str(exc).encode("utf-8", "backslashreplace").decode("utf-8")
        print(f"hearsight {args.cmd}: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hearsight {args.cmd}: interrupted", file=sys.stderr)
        return 130
    if isinstance(result, int):
        return result
    if result is not None and getattr(args, "json", False):
        print(json.dumps(result, indent=2, default=_jsonable))
    return 0


def _jsonable(obj):
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
