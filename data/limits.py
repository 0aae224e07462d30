"""How messages state a value that is over a limit, never rounded onto the limit itself.

``30.01 s`` against a 30 s limit must not read "30.0 s, limit 30 s", nor 20,000,001 bytes
"20.0 MB, over the 20 MB limit": the value gets as many decimals as it takes to differ.
"""

from __future__ import annotations

import math


def exceeding(value: float, limit: float, *, digits: int = 1, most: int = 6) -> str:
    """``value`` formatted with at least ``digits`` decimals, more (up to ``most``) while it
    would print equal to ``limit``; huge or non-finite values in ``g`` notation."""
    if not math.isfinite(value) or abs(value) >= 1e9:
        return f"{value:.3g}"
    for d in range(digits, most + 1):
        text = f"{value:.{d}f}"
        if float(text) != float(limit):
            return text
    return repr(float(value))


def seconds_over(n_samples: int, rate: int, limit_s: float) -> str:
    """``'30.0001 s, limit 30 s'`` for a clip of ``n_samples`` at ``rate`` Hz."""
    return f"{exceeding(n_samples / rate, limit_s)} s, limit {limit_s:g} s"


def bytes_over(n_bytes: int, limit: int) -> str:
    """``'20,000,001 bytes, over the 20,000,000-byte limit'``: exact counts, no rounding."""
    return f"{n_bytes:,} bytes, over the {limit:,}-byte limit"
