"""Unit conversion on entry, for the observations clinicians record in two units.

Values are stored in the catalogue's canonical UCUM unit; the unit as entered is kept beside them.
"""

from __future__ import annotations

from collections.abc import Callable

from medai_site.errors import InvalidInput

# Spellings people type, mapped to UCUM.
_UNIT_ALIASES = {
    "c": "Cel",
    "°c": "Cel",
    "cel": "Cel",
    "celsius": "Cel",
    "degc": "Cel",
    "f": "[degF]",
    "°f": "[degF]",
    "[degf]": "[degF]",
    "fahrenheit": "[degF]",
    "degf": "[degF]",
    "kg": "kg",
    "lb": "[lb_av]",
    "lbs": "[lb_av]",
    "[lb_av]": "[lb_av]",
    "pound": "[lb_av]",
    "mg/dl": "mg/dL",
    "mmol/l": "mmol/L",
}

# mg/dL per mmol/L, from molar mass: glucose 180.16 g/mol, cholesterol 386.65 g/mol.
GLUCOSE_MG_DL_PER_MMOL_L = 18.016
CHOLESTEROL_MG_DL_PER_MMOL_L = 38.67

_CONVERSIONS: dict[tuple[str, str], Callable[[float], float]] = {
    ("8310-5", "[degF]"): lambda f: (f - 32.0) * 5.0 / 9.0,
    ("29463-7", "[lb_av]"): lambda lb: lb * 0.45359237,
    ("2345-7", "mmol/L"): lambda v: v * GLUCOSE_MG_DL_PER_MMOL_L,
    ("2093-3", "mmol/L"): lambda v: v * CHOLESTEROL_MG_DL_PER_MMOL_L,
}


def normalise_unit(unit: str) -> str:
    text = (unit or "").strip()
    return _UNIT_ALIASES.get(text.casefold(), text)


def to_canonical(code: str, value: float, unit: str, canonical_unit: str) -> float:
    """The value in the canonical unit; a clear error for a unit this code cannot be given in."""
    unit = normalise_unit(unit) or canonical_unit
    if unit == canonical_unit:
        return float(value)
    convert = _CONVERSIONS.get((code, unit))
    if convert is None:
        raise InvalidInput(
            f"Unit '{unit}' is not accepted for {code}; use {canonical_unit}.",
            fields={"unit": [f"Use {canonical_unit}."]},
        )
    return convert(float(value))
