"""Safe labels for names people supply (file names, paths): printable, one line, bounded.

Upload names are untrusted (path separators, ``..``, undecodable bytes, thousands of
characters); every message and header that shows one goes through these.
"""

from __future__ import annotations

import os


def _as_text(name: str | bytes | os.PathLike) -> str:
    """``name`` as ``str``: paths through ``os.fspath``, bytes decoded as UTF-8 with
    replacement characters."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if isinstance(name, bytes):
        name = name.decode("utf-8", errors="replace")
    return str(name)


def display_name(name: str | bytes | os.PathLike, *, limit: int = 80) -> str:
    """A safe one-line label for a user-supplied file name or path, for messages.

    Bytes are decoded as UTF-8 with replacement; undecodable (surrogate-escaped) and
    non-printable characters become ``?``; length is capped at ``limit`` characters with an
    ellipsis. The path part is kept (a CLI user named it); see :func:`safe_basename`.
    """
    text = "".join(ch if ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF else "?"
                   for ch in _as_text(name))
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def safe_basename(name: str | bytes | os.PathLike, *, limit: int = 80) -> str:
    """:func:`display_name` of the last path component only (``/`` and ``\\`` both split),
    ``"clip"`` when nothing printable is left; used for uploads, whose names are untrusted."""
    base = _as_text(name).replace("\\", "/").rsplit("/", 1)[-1]
    return display_name(base, limit=limit).strip() or "clip"
