"""How the demo population's vitals and labs are drawn, bounded, rounded and written down.

Codes, canonical units, decimals, alternative units and conversions all come from the clinical
catalogue (:mod:`visits.catalogue`, :mod:`visits.units`); this module adds only what is the
simulation's own: healthy baselines, the bounds draws are folded into, and how often a value is
entered in its alternative unit.
"""

from __future__ import annotations

import numpy as np

from visits.catalogue import BY_CODE, CATALOGUE
from visits.units import CONVERSIONS

# Baseline (healthy adult) distribution of every drawn quantity: ("n", mean, sd) or
# ("ln", median, sigma). Condition specs override the centre; a per-visit severity interpolates
# between baseline and condition centre so conditions overlap. Weight, height and BMI are drawn
# per patient instead (see the generator).
BASELINE: dict[str, tuple[str, float, float]] = {
    "8310-5": ("n", 36.8, 0.3),
    "8867-4": ("n", 77.0, 11.0),
    "9279-1": ("n", 16.0, 2.0),
    "8480-6": ("n", 124.0, 13.0),
    "8462-4": ("n", 77.0, 9.0),
    "2708-6": ("n", 97.6, 1.2),
    "2345-7": ("n", 96.0, 13.0),
    "2093-3": ("n", 190.0, 35.0),
    "6690-2": ("n", 7.0, 1.8),
    "718-7": ("n", 13.3, 1.0),
    "2160-0": ("ln", 0.85, 0.18),
    "1988-5": ("ln", 2.0, 0.8),
    "10839-9": ("ln", 0.01, 0.6),
    "2951-2": ("n", 139.5, 2.4),
    "2823-3": ("n", 4.2, 0.35),
    "4548-4": ("n", 5.4, 0.35),
    "2524-7": ("ln", 1.1, 0.3),
}

# The vital signs drawn per visit from BASELINE and the condition (in this order: it fixes the
# random stream, and so the output for a seed).
DRAWN_VITALS = ("8310-5", "8867-4", "9279-1", "8480-6", "8462-4", "2708-6")

# Where the simulation keeps its draws (canonical units): narrower than the catalogue's plausible
# ranges, which say what is possible at all, because a demo population of adults seen in clinics
# and wards does not reach those extremes. A test keeps them inside the plausible ranges.
GENERATION_BOUNDS: dict[str, tuple[float, float]] = {
    "8310-5": (34.0, 42.0),
    "8867-4": (35.0, 190.0),
    "9279-1": (8.0, 45.0),
    "8480-6": (70.0, 230.0),
    "8462-4": (40.0, 135.0),
    "2708-6": (70.0, 100.0),
    "29463-7": (35.0, 200.0),
    "8302-2": (140.0, 205.0),
    "39156-5": (13.0, 65.0),
    "2345-7": (40.0, 600.0),
    "2093-3": (90.0, 400.0),
    "6690-2": (1.0, 40.0),
    "718-7": (5.0, 19.0),
    "2160-0": (0.3, 8.0),
    "1988-5": (0.1, 400.0),
    "10839-9": (0.001, 50.0),
    "2951-2": (118.0, 155.0),
    "2823-3": (2.6, 6.8),
    "4548-4": (4.0, 15.0),
    "2524-7": (0.4, 15.0),
}

# The alternative unit the demo writes some values in: the catalogue's first one for the code.
ALTERNATIVE_UNITS: dict[str, str] = {
    d.code: d.alternative_units[0] for d in CATALOGUE if d.alternative_units
}
# Probability that a measured value is entered in that alternative unit.
ALTERNATIVE_UNIT_SHARE = {"8310-5": 0.15, "29463-7": 0.2, "2345-7": 0.3, "2093-3": 0.3}


def fold_into_range(code: str, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Move out-of-bounds draws just inside the generation bounds (no pile-up on the bound)."""
    lo, hi = GENERATION_BOUNDS[code]
    margin = 0.04 * (hi - lo)
    jitter = rng.random(v.shape[0]) * margin
    return np.where(v > hi, hi - jitter, np.where(v < lo, lo + jitter, v))


def recorded_values(
    code: str, values: np.ndarray, measured: np.ndarray, rng: np.random.Generator
) -> tuple[list[float], list[str]]:
    """The values as written down (rounded as a clinician or analyser would) and their units.

    NaN where the code was not measured. Some values are written in the alternative unit, unless
    rounding in that unit would carry them outside the generation bounds.
    """
    definition = BY_CODE[code]
    canonical = np.round(values, definition.decimals)
    n = values.shape[0]
    alternative = ALTERNATIVE_UNITS.get(code)
    if alternative is None:
        recorded = canonical
        in_alternative = np.zeros(n, dtype=bool)
    else:
        conversion = CONVERSIONS[code, alternative]
        in_alternative = rng.random(n) < ALTERNATIVE_UNIT_SHARE[code]
        alt_values = np.round(conversion.from_canonical(values), conversion.decimals)
        back = np.array([conversion.to_canonical(a) for a in (44.0, 1.0)])
        slope = back[0] - back[1]  # conversions are affine: canonical = a * alt + b
        alt_back = (alt_values - 1.0) * slope / 43.0 + back[1]
        lo, hi = GENERATION_BOUNDS[code]
        in_alternative &= (alt_back >= lo) & (alt_back <= hi)  # rounding must not leave range
        recorded = np.where(in_alternative, alt_values, canonical)
    recorded = np.where(measured, recorded, np.nan)
    units = [alternative if a else definition.unit for a in in_alternative.tolist()]
    return recorded.tolist(), units
