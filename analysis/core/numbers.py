"""How two numbers are shown side by side ("before → after"): with enough digits to tell them apart; and how far a
value is from a best."""

from __future__ import annotations

import math

__all__ = ["shown_apart", "worse_than_best"]


def shown_apart(a: float, b: float, digits: int = 4, most: int = 10) -> tuple[str, str]:
    """`a` and `b` with `digits` significant digits, or as many more (up to `most`) as it takes for the two to read
    differently: an accuracy near 1 that "falls to 0.999 (from 0.999)" said nothing. Non-finite values as `str`."""
    for d in range(digits, max(digits, most) + 1):
        sa, sb = (f"{v:.{d}g}" if math.isfinite(v) else str(v) for v in (a, b))
        if sa != sb:
            break
    return sa, sb


def worse_than_best(rel: float, best: str = "its best", percent: str = ".0%", falling: bool = False) -> str:
    """How far a value is from `best` (the phrase naming it), given its relative degradation `rel` (>= 0): "15% worse
    than its best", and, for a metric that rises when it gets worse, from twice the best on "16.7 times its best" (a
    loss whose best was near 0, a Mask R-CNN box loss at 0.01 before any proposal matches, read "rose 106764% from
    its best"). A `falling` metric (higher is better) is always told in percent: an accuracy at 0 is 100% worse than
    its best, not "2 times" it."""
    if rel >= 1.0 and not falling:
        return f"{1.0 + rel:.3g} times {best}"
    return f"{rel:{percent}} worse than {best}"
