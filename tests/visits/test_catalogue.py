"""visits/catalogue.py and visits/units.py are the one source of codes, units and ranges."""

from __future__ import annotations

import pytest

from medai_site.errors import InvalidInput
from predictions.ml.dataset import SHIPPED_RANGES_FILE, shipped_plausible_ranges
from visits.catalogue import (
    BY_CODE,
    CATALOGUE,
    LAB_READING_ORDER,
    VITAL_READING_ORDER,
    plausible_ranges,
    plausible_ranges_json,
)
from visits.units import CONVERSIONS, canonical_value


def test_the_engines_shipped_ranges_are_the_catalogues():
    """Regenerate with: python -m visits.catalogue > predictions/ml/plausible_ranges.json"""
    assert SHIPPED_RANGES_FILE.read_text(encoding="utf-8") == plausible_ranges_json()
    assert shipped_plausible_ranges() == plausible_ranges()


def test_the_app_trains_the_engine_with_the_catalogues_ranges(db):
    from predictions.models import PredictionTask
    from predictions.training_set import model_spec as _spec

    for task in PredictionTask.objects.all():
        assert _spec(task).plausible == plausible_ranges()


def test_engine_ranges_cover_every_code_and_alias_with_its_plausible_range():
    ranges = plausible_ranges()
    for d in CATALOGUE:
        for key in (d.code, *d.aliases):
            assert ranges[key] == d.plausible
    assert ranges["8867-4"] == (20.0, 250.0)  # one heart-rate range, wherever it is used


@pytest.mark.django_db
def test_the_stored_catalogue_is_the_catalogue():
    from visits.models import ObservationDefinition

    stored = {d.code: d for d in ObservationDefinition.objects.all()}
    assert set(stored) == set(BY_CODE)
    for code, d in BY_CODE.items():
        row = stored[code]
        assert (row.display, row.category, row.unit, row.decimals) == (
            d.display,
            d.category,
            d.unit,
            d.decimals,
        )
        assert row.alternative_units == list(d.alternative_units)
        assert (row.plausible_low, row.plausible_high) == d.plausible
        assert (row.normal_low, row.normal_high) == d.normal
        assert (row.critical_low, row.critical_high) == d.critical


def test_every_alternative_unit_has_exactly_one_conversion():
    offered = {(d.code, unit) for d in CATALOGUE for unit in d.alternative_units}
    assert offered == set(CONVERSIONS)


@pytest.mark.parametrize(("code", "unit"), sorted(CONVERSIONS))
def test_conversions_round_trip(code, unit):
    conversion = CONVERSIONS[code, unit]
    canonical = 42.0
    assert conversion.to_canonical(conversion.from_canonical(canonical)) == pytest.approx(canonical)
    assert canonical_value(code, conversion.from_canonical(canonical), unit) == pytest.approx(42.0)


def test_reading_orders_name_catalogue_codes_once():
    for order in (VITAL_READING_ORDER, LAB_READING_ORDER):
        assert len(set(order)) == len(order)
        assert set(order) <= set(BY_CODE)
    assert {BY_CODE[c].category for c in VITAL_READING_ORDER} == {"vital"}
    assert {BY_CODE[c].category for c in LAB_READING_ORDER} == {"lab"}


def test_canonical_value_conversions():
    assert canonical_value("8310-5", 98.6, "[degF]") == pytest.approx(37.0)
    assert canonical_value("8310-5", 37.2, "Cel") == pytest.approx(37.2)
    assert canonical_value("29463-7", 100.0, "[lb_av]") == pytest.approx(45.359237)
    assert canonical_value("2345-7", 5.5, "mmol/L") == pytest.approx(5.5 * 18.016)
    assert canonical_value("2093-3", 5.0, "mmol/L") == pytest.approx(5.0 * 38.67)
    assert canonical_value("2345-7", 99.0, "mg/dL") == 99.0
    with pytest.raises(InvalidInput, match="not accepted"):
        canonical_value("8867-4", 80.0, "[degF]")
    with pytest.raises(InvalidInput, match="Unknown observation code"):
        canonical_value("0000-0", 1.0, "1")
