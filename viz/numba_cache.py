"""numba's on-disk cache lives in hearsight's cache folder, never in the installed sources.

``@numba.njit(cache=True)`` writes its index and compiled code next to the module
(``viz/__pycache__``) unless ``NUMBA_CACHE_DIR`` says otherwise: on a read-only or shared
installation that is a write outside ``$HEARSIGHT_HOME``. Call :func:`use_hearsight_cache`
before decorating; an operator's own ``NUMBA_CACHE_DIR`` is respected.
"""

from __future__ import annotations

import os

from data.corpora import cache_home


def use_hearsight_cache() -> str:
    """Set ``NUMBA_CACHE_DIR`` to ``$HEARSIGHT_HOME/numba`` (unless already set) and make
    numba re-read it, even if numba was imported first (datashader imports it). Returns the
    folder in effect."""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_home() / "numba"))
    from numba.core import config

    config.reload_config()
    return os.environ["NUMBA_CACHE_DIR"]
