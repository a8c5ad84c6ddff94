"""How a metric reads to people: the one formatter of the CLI table, the admin pages, the
monitoring wording and the promotion reasons."""

from __future__ import annotations

import numpy as np


def format_metric(value: object, *, missing: str = "n/a", width: int = 0) -> str:
    """Three decimals for a float (right-aligned in ``width`` characters), ``[lo, hi]`` for a
    confidence interval or other list of floats, ``missing`` for None; anything else (a count, a
    name) as written."""
    if value is None:
        return missing
    if isinstance(value, float | np.floating):
        return f"{float(value):{width}.3f}"
    if isinstance(value, list | tuple) and value and all(_is_float(v) for v in value):
        return "[" + ", ".join(f"{float(v):.3f}" for v in value) + "]"
    return str(value)


def _is_float(value: object) -> bool:
    return isinstance(value, float | np.floating)
