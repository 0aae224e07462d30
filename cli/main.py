"""The ``hearsight`` command line: the parser of every sub-command, and running one.

Every sub-command turns bad input into one clear line on stderr and exit status 2, never a
traceback: ``hearsight predict --model DIR missing.wav`` says the file is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cli import (activations, corpus, evaluate, experiment, models, predict, project,
                 recalibrate, serve, train)

EPILOG = """corpus specs: synth | synth:small | synth:large | fsdd:PATH | speech-commands:PATH | folder:PATH
cache folder: $HEARSIGHT_HOME (default ~/.cache/hearsight)"""

# Sub-command name -> its module (``add_parser(sub)``, ``run(args)``), in the order of --help.
COMMANDS = {"corpus": corpus, "train": train, "predict": predict, "evaluate": evaluate,
            "recalibrate": recalibrate, "serve": serve, "activations": activations,
            "project": project, "experiment": experiment, "models": models}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hearsight", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="See and hear what a speech classifier has learned.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for command in COMMANDS.values():
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        result = COMMANDS[args.cmd].run(args)
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
