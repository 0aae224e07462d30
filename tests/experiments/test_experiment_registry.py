"""Every registered experiment follows the one convention: ``HELP``, ``add_arguments``, ``run``."""

import argparse

from experiments import EXPERIMENTS, accuracy, actmax, classifiers, faithfulness, projections


def test_registry_names_each_experiment_module_once():
    assert EXPERIMENTS == {"actmax": actmax, "faithfulness": faithfulness,
                           "projections": projections, "accuracy": accuracy,
                           "classifiers": classifiers}


def test_each_experiment_has_help_options_and_run():
    for name, module in EXPERIMENTS.items():
        assert isinstance(module.HELP, str) and module.HELP.strip(), name
        assert callable(module.run), name
        parser = argparse.ArgumentParser(prog=name)
        module.add_arguments(parser)
        out = {a.dest for a in parser._actions}
        assert "out" in out, (name, out)
        # every experiment but classifiers (which trains its own models) reads a --model
        assert ("model" in out) == (name != "classifiers"), (name, out)
