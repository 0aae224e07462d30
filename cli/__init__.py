"""The ``hearsight`` command line: :mod:`cli.main` assembles the parser and runs a sub-command;
one module per sub-command (``add_parser(sub)`` registers it, ``run(args)`` runs it) and the
inputs they share in :mod:`cli.inputs`. The top layer: it may import every other package."""
