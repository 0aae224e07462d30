"""Server defaults, in one place. Override with environment variables ``HEARSIGHT_*``."""

from __future__ import annotations

import os
from dataclasses import dataclass


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r} is not a number") from exc


@dataclass(frozen=True)
class Limits:
    """Safety limits applied to every session.

    Attributes:
      upload_bytes: largest accepted upload (bytes).
      clip_seconds: longest accepted clip (seconds of audio).
      websocket_bytes: largest websocket message the server accepts (bytes).
      jobs_per_session: concurrent long jobs (maximisation, strips) per session.
      job_seconds: wall-clock limit of one long job before it is cancelled.
    """

    upload_bytes: int = 20_000_000
    clip_seconds: float = 30.0
    websocket_bytes: int = 40_000_000
    jobs_per_session: int = 1
    job_seconds: float = 300.0

    @classmethod
    def from_env(cls) -> "Limits":
        return cls(
            upload_bytes=int(_env_float("HEARSIGHT_UPLOAD_BYTES", cls.upload_bytes)),
            clip_seconds=_env_float("HEARSIGHT_CLIP_SECONDS", cls.clip_seconds),
            websocket_bytes=int(_env_float("HEARSIGHT_WEBSOCKET_BYTES", cls.websocket_bytes)),
            jobs_per_session=int(_env_float("HEARSIGHT_JOBS_PER_SESSION", cls.jobs_per_session)),
            job_seconds=_env_float("HEARSIGHT_JOB_SECONDS", cls.job_seconds),
        )


LOOPBACK = ("127.0.0.1", "localhost", "::1")
THREADS = 4  # worker threads for callbacks, so one session's work never blocks the event loop
FEATURE_MAP_AUDIO_ITERS = 32
