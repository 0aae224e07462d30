"""Batch experiments that reproduce the papers' results: ``hearsight experiment NAME``.

Every experiment is a module listed in :data:`EXPERIMENTS` under its command name, and each
defines the same three names:

- ``HELP``: one line for the command's help;
- ``add_arguments(parser)``: its options, on the ``argparse`` parser of its sub-command;
- ``run(args)``: run it for the parsed ``args`` and write its files; returns an exit status
  (``int``) or the result (a ``dict``, printed as JSON with ``--json``).

Experiments import data, models, engine and viz only, never serve or cli: the command line
(:mod:`cli.experiment`) builds their parsers from this registry and runs them.
"""

from __future__ import annotations

from experiments import accuracy, actmax, classifiers, faithfulness, projections

EXPERIMENTS = {"actmax": actmax, "faithfulness": faithfulness, "projections": projections,
               "accuracy": accuracy, "classifiers": classifiers}

__all__ = ["EXPERIMENTS"]
