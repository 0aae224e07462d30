"""``python -m hearsight`` runs the command line."""

import sys

from serve.cli import main

sys.exit(main())
