"""Units of the clinical catalogue: conversions between them, and how values are written.

Values are stored in the catalogue's canonical UCUM unit; the unit as entered is kept beside them.
The conversions here are the only ones in MedAI: entry validation, the demo generator and the
engine's tabular view all convert through them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils import formats

from medai_site.errors import InvalidInput

from .catalogue import BY_CODE

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
KG_PER_LB = 0.45359237  # the international avoirdupois pound, exactly


@dataclass(frozen=True)
class Conversion:
    """An alternative unit of one code: both directions, and the decimals values carry in it."""

    # Plain arithmetic, so one definition serves a float and a numpy array (the generator's).
    to_canonical: Callable[[Any], Any]
    from_canonical: Callable[[Any], Any]
    decimals: int


CONVERSIONS: dict[tuple[str, str], Conversion] = {
    ("8310-5", "[degF]"): Conversion(
        lambda f: (f - 32.0) * 5.0 / 9.0, lambda c: c * 9.0 / 5.0 + 32.0, decimals=1
    ),
    ("29463-7", "[lb_av]"): Conversion(
        lambda lb: lb * KG_PER_LB, lambda kg: kg / KG_PER_LB, decimals=1
    ),
    ("2345-7", "mmol/L"): Conversion(
        lambda v: v * GLUCOSE_MG_DL_PER_MMOL_L,
        lambda v: v / GLUCOSE_MG_DL_PER_MMOL_L,
        decimals=1,
    ),
    ("2093-3", "mmol/L"): Conversion(
        lambda v: v * CHOLESTEROL_MG_DL_PER_MMOL_L,
        lambda v: v / CHOLESTEROL_MG_DL_PER_MMOL_L,
        decimals=2,
    ),
}


def normalise_unit(unit: str) -> str:
    text = (unit or "").strip()
    return _UNIT_ALIASES.get(text.casefold(), text)


def to_canonical(code: str, value: float, unit: str, canonical_unit: str) -> float:
    """The value in the canonical unit; a clear error for a unit this code cannot be given in."""
    unit = normalise_unit(unit) or canonical_unit
    if unit == canonical_unit:
        return float(value)
    conversion = CONVERSIONS.get((code, unit))
    if conversion is None:
        raise InvalidInput(
            f"Unit '{unit}' is not accepted for {code}; use {canonical_unit}.",
            fields={"unit": [f"Use {canonical_unit}."]},
        )
    return conversion.to_canonical(float(value))


def canonical_value(code: str, value: float, unit: str) -> float:
    """``value`` recorded in ``unit``, in the catalogue's canonical unit of ``code``."""
    definition = BY_CODE.get(code)
    if definition is None:
        raise InvalidInput(f"Unknown observation code '{code}'.", fields={code: ["Unknown code."]})
    return to_canonical(code, value, unit, definition.unit)


def value_text(value: float | None, decimals: int | None = None) -> str:
    """A measured value (or range bound) as people read it; ``None`` (no bound) is empty.

    With ``decimals`` (the catalogue's, for pages): rounded and in the reader's locale, e.g.
    ``38,5``. Without: its shortest exact form, e.g. ``38.5`` or ``250``, for the messages the
    services write (the API's language).
    """
    if value is None:
        return ""
    if decimals is None:
        return f"{value:g}"
    return formats.number_format(round(value, decimals), decimals)
