"""``hearsight experiment NAME``: the batch experiments of :data:`experiments.EXPERIMENTS`."""

from __future__ import annotations

from cli.inputs import resolve_model
from experiments import EXPERIMENTS

MODEL_OPTIONS = ("model", "separate", "prior")  # the options that name a model


def add_parser(sub) -> None:
    e = sub.add_parser("experiment", help="reproduce a paper's experiment (actmax, "
                                          "faithfulness, projections, accuracy, "
                                          "classifiers)")
    esub = e.add_subparsers(dest="experiment", required=True)
    for name, experiment in EXPERIMENTS.items():
        experiment.add_arguments(esub.add_parser(name, help=experiment.HELP))


def check_model_specs(name: str, experiment, args) -> None:
    """Refuse a model of the user's own (``hf:``, ``torch:``, ``onnx:``) for an experiment that
    opens hearsight checkpoints only; one that declares ``OPENS_MODEL_SPECS`` opens such a spec
    itself (or refuses it with its own reason)."""
    from engine.predictor import is_contract_spec

    if getattr(experiment, "OPENS_MODEL_SPECS", False):
        return
    for option in MODEL_OPTIONS:
        spec = getattr(args, option, None)
        if spec and is_contract_spec(spec):
            raise ValueError(f"experiment {name} runs on hearsight checkpoint folders only "
                             f"(--{option} {spec} is a model of your own); its pages in "
                             f"'hearsight serve --model {spec}' work on your model")


def run(args):
    """Run the named experiment; a ``--model`` left out means the cached default model."""
    experiment = EXPERIMENTS[args.experiment]
    check_model_specs(args.experiment, experiment, args)
    if getattr(args, "model", "") is None:
        args.model = str(resolve_model(None))
    return experiment.run(args)
