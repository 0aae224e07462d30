"""``hearsight experiment NAME``: the batch experiments of :data:`experiments.EXPERIMENTS`."""

from __future__ import annotations

from cli.inputs import resolve_model
from experiments import EXPERIMENTS


def add_parser(sub) -> None:
    e = sub.add_parser("experiment", help="reproduce a paper's experiment (actmax, "
                                          "faithfulness, projections)")
    esub = e.add_subparsers(dest="experiment", required=True)
    for name, experiment in EXPERIMENTS.items():
        experiment.add_arguments(esub.add_parser(name, help=experiment.HELP))


def run(args):
    """Run the named experiment; a ``--model`` left out means the cached default model."""
    if getattr(args, "model", "") is None:
        args.model = str(resolve_model(None))
    return EXPERIMENTS[args.experiment].run(args)
