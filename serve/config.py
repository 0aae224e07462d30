"""Server defaults, in one place. Override with environment variables ``HEARSIGHT_*``."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass


_ENV = {  # field -> (environment variable, type, smallest allowed value)
    "upload_bytes": ("HEARSIGHT_UPLOAD_BYTES", int, 1),
    "clip_seconds": ("HEARSIGHT_CLIP_SECONDS", float, 0.1),
    "websocket_bytes": ("HEARSIGHT_WEBSOCKET_BYTES", int, 1024),
    "jobs_per_session": ("HEARSIGHT_JOBS_PER_SESSION", int, 1),
    "job_seconds": ("HEARSIGHT_JOB_SECONDS", float, 0.1),
    "login_failures": ("HEARSIGHT_LOGIN_FAILURES", int, 1),
    "login_cooldown_s": ("HEARSIGHT_LOGIN_COOLDOWN_SECONDS", float, 0.1),
}


def _env_value(name: str, raw: str | None, kind: type, minimum: float, default):
    """``kind(raw)`` checked to be finite and ``>= minimum``; ``default`` if unset/blank."""
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip().replace("_", ""))
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r} is not a number; unset it or give e.g. "
                         f"{name}={default}") from exc
    if not math.isfinite(value) or value < minimum or (kind is int and value != int(value)):
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name}={raw!r} must be {what} >= {minimum:g}; unset it or give "
                         f"e.g. {name}={default}")
    return kind(value)


@dataclass(frozen=True)
class Limits:
    """Safety limits applied to every session (defaults; see :meth:`from_env`).

    Attributes:
      upload_bytes: largest accepted upload (bytes); ``HEARSIGHT_UPLOAD_BYTES``.
      clip_seconds: longest accepted clip (seconds of audio); ``HEARSIGHT_CLIP_SECONDS``.
      websocket_bytes: largest websocket message the server accepts (bytes); must exceed
        ``upload_bytes`` (a base64 upload grows by 4/3); ``HEARSIGHT_WEBSOCKET_BYTES``.
      jobs_per_session: concurrent long jobs (maximisation, strips) per session;
        ``HEARSIGHT_JOBS_PER_SESSION``.
      job_seconds: wall-clock limit of one long job before it is cancelled;
        ``HEARSIGHT_JOB_SECONDS``.
      login_failures: failed basic-auth logins from one address that start a cool-down;
        ``HEARSIGHT_LOGIN_FAILURES``.
      login_cooldown_s: the window those failures count in, and the wait after the last
        (answered 429); ``HEARSIGHT_LOGIN_COOLDOWN_SECONDS``.
    """

    upload_bytes: int = 20_000_000
    clip_seconds: float = 30.0
    websocket_bytes: int = 40_000_000
    jobs_per_session: int = 1
    job_seconds: float = 300.0
    login_failures: int = 5
    login_cooldown_s: float = 60.0

    @classmethod
    def from_env(cls, environ=None) -> "Limits":
        """Defaults overridden by the ``HEARSIGHT_*`` variables above (``ValueError`` naming
        the variable for a non-number, a value below its minimum or a fraction for a count).

        ``websocket_bytes`` defaults to at least twice ``upload_bytes``, so raising the upload
        limit alone keeps uploads possible."""
        env = os.environ if environ is None else environ
        values = {}
        for field, (name, kind, minimum) in _ENV.items():
            values[field] = _env_value(name, env.get(name), kind, minimum, getattr(cls, field))
        if env.get("HEARSIGHT_WEBSOCKET_BYTES") in (None, ""):
            values["websocket_bytes"] = max(values["websocket_bytes"], 2 * values["upload_bytes"])
        elif values["websocket_bytes"] < values["upload_bytes"] * 4 // 3 + 1024:
            raise ValueError(f"HEARSIGHT_WEBSOCKET_BYTES={values['websocket_bytes']} is too small "
                             f"for uploads of {values['upload_bytes']} bytes (base64 adds a "
                             "third); raise it or lower HEARSIGHT_UPLOAD_BYTES")
        return cls(**values)


LOOPBACK = ("127.0.0.1", "localhost", "::1")
THREADS = 4  # worker threads for callbacks, so one session's work never blocks the event loop
FEATURE_MAP_AUDIO_ITERS = 32
