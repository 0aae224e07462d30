"""hearsight: see and hear what a speech classifier has learned.

The code lives in the top-level packages ``data``, ``models``, ``engine``, ``viz`` and
``serve`` (layered in that order); this package carries the version and ``python -m hearsight``.
"""

__version__ = "0.1.0"
