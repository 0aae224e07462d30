"""``python -m hearsight`` runs the command line."""

import sys

from cli.main import main

sys.exit(main())
