"""``hearsight predict``: every class's probability for audio files."""

from __future__ import annotations

import sys

from cli.inputs import MODEL_HELP, load_model_arg


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="probabilities of every class for audio files")
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument("--json", action="store_true")
    p.add_argument("--arch", default=None, metavar="ENTRY",
                   help="trust this bring-your-own entry point 'package.module:factory' "
                        "(a checkpoint naming one is refused without it; registered "
                        "architectures need nothing)")
    p.add_argument("files", nargs="+")


def run(args) -> int:
    """Exit status 2 when no file could be classified, else 0 (failures reported per file)."""
    from data.names import display_name

    predictor = load_model_arg(args.model, getattr(args, "arch", None))
    records = predictor.predict_files(args.files)
    for r in records:  # names may hold undecodable bytes or control characters
        r["file"] = display_name(r["file"], limit=200)
    if not args.json:
        for r in records:
            if "error" in r:
                print(f"hearsight predict: error: {r['error']}", file=sys.stderr)
            else:
                top3 = ", ".join(f"{k} {v:.3f}" for k, v in list(r["probs"].items())[:3])
                print(f"{r['file']}: {r['top']} ({r['probability']:.3f}); {top3}")
    failed = sum("error" in r for r in records)
    if args.json:
        import json

        print(json.dumps(records, indent=2))
    return 2 if failed == len(records) else 0
