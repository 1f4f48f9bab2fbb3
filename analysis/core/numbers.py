"""How two numbers are shown side by side ("before → after"): with enough digits to tell them apart."""

from __future__ import annotations

import math

__all__ = ["shown_apart"]


def shown_apart(a: float, b: float, digits: int = 4, most: int = 10) -> tuple[str, str]:
    """`a` and `b` with `digits` significant digits, or as many more (up to `most`) as it takes for the two to read
    differently: an accuracy near 1 that "falls to 0.999 (from 0.999)" said nothing. Non-finite values as `str`."""
    for d in range(digits, max(digits, most) + 1):
        sa, sb = (f"{v:.{d}g}" if math.isfinite(v) else str(v) for v in (a, b))
        if sa != sb:
            break
    return sa, sb
