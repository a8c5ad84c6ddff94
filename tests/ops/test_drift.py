"""Pure drift statistics (predictions/ml/drift.py): no database."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from predictions.ml import drift


def test_psi_of_identical_samples_is_zero():
    values = np.random.default_rng(0).normal(37, 0.5, 1000)
    assert drift.psi_numeric(values, values) == pytest.approx(0.0, abs=1e-12)


def test_psi_categorical_matches_hand_computation():
    """Shares 50/50 -> 25/75: PSI = (0.25-0.5)ln(0.5) + (0.75-0.5)ln(1.5)."""
    reference = ["F"] * 50 + ["M"] * 50
    current = ["F"] * 25 + ["M"] * 75
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert drift.psi_categorical(reference, current) == pytest.approx(expected)


def test_psi_numeric_matches_hand_computation_on_two_bins():
    """Reference split at its median; the window puts 80 % above it."""
    reference = [1, 2, 3, 4] * 25
    current = [1] * 20 + [4] * 80
    edges = drift.numeric_bin_edges(np.array(reference, dtype=float), bins=2)
    assert edges.tolist() == [2.5]
    expected = (0.2 - 0.5) * math.log(0.2 / 0.5) + (0.8 - 0.5) * math.log(0.8 / 0.5)
    assert drift.psi_numeric(reference, current, bins=2) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "band"),
    [(0.05, "stable"), (0.1, "moderate"), (0.2, "moderate"), (0.25, "major"), (None, "n/a")],
)
def test_psi_bands_are_0_1_and_0_25(value, band):
    assert drift.psi_band(value) == band


def test_fahrenheit_sent_as_celsius_is_a_major_shift():
    rng = np.random.default_rng(1)
    celsius = rng.normal(37.2, 0.7, 400)
    fahrenheit_as_celsius = rng.normal(37.2, 0.7, 200) * 9 / 5 + 32
    assert drift.psi_numeric(celsius, fahrenheit_as_celsius) > 5
    ks = drift.ks_test(celsius, fahrenheit_as_celsius)
    assert ks["statistic"] == pytest.approx(1.0)
    assert ks["p_value"] < 1e-10


def test_ks_does_not_reject_two_samples_of_one_distribution():
    rng = np.random.default_rng(2)
    ks = drift.ks_test(rng.normal(0, 1, 500), rng.normal(0, 1, 500))
    assert ks["test"] == "ks"
    assert ks["p_value"] > 0.05


def test_chi_square_detects_a_changed_category_mix_and_not_a_stable_one():
    reference = ["outpatient"] * 70 + ["emergency"] * 30
    shifted = ["outpatient"] * 20 + ["emergency"] * 80
    assert drift.chi_square_test(reference, shifted)["p_value"] < 1e-6
    stable = drift.chi_square_test(reference, reference)
    assert stable["test"] == "chi_square"
    assert stable["p_value"] == pytest.approx(1.0)


def test_chi_square_with_one_level_on_both_sides_cannot_differ():
    assert drift.chi_square_test(["F"] * 10, ["F"] * 5)["p_value"] == 1.0


def test_missing_and_range_rates():
    assert drift.missing_rate([1.0, None, float("nan"), 2.0]) == {"n": 4, "rate": 0.5}
    assert drift.range_rates([36.5, 37.0, 98.6, 101.0], 25, 45) == {"n": 4, "rate": 0.5}
    assert drift.range_rates([1.0], None, None)["rate"] is None


def _feature(name, reference, current, **ranges):
    return drift.feature_drift(
        name,
        "numeric",
        pd.Series(reference, dtype=object),
        pd.Series(current, dtype=object),
        **ranges,
    )


def test_drift_status_acts_on_a_unit_error_and_reports_the_n():
    rng = np.random.default_rng(3)
    reference = rng.normal(37.2, 0.6, 300).tolist()
    window = (rng.normal(37.2, 0.6, 120) * 9 / 5 + 32).tolist()
    feature = _feature("obs_8310-5", reference, window, plausible=(25, 45), normal=(36.1, 37.5))
    [result] = drift.drift_status([feature])
    assert result["status"] == "act"
    assert result["n_reference"] == 300
    assert result["n_window"] == 120
    assert result["implausible"]["window"] == 1.0
    assert result["psi_band"] == "major"
    assert any("implausible" in r for r in result["reasons"])


def test_drift_status_stays_ok_on_a_stable_feature():
    rng = np.random.default_rng(4)
    feature = _feature("age", rng.normal(60, 12, 300).tolist(), rng.normal(60, 12, 150).tolist())
    [result] = drift.drift_status([feature])
    assert result["status"] == "ok"
    assert result["reasons"] == []


def test_small_samples_give_figures_but_no_status():
    feature = _feature("age", [60.0] * 10 + [20.0] * 10, [90.0] * 5)
    [result] = drift.drift_status([feature])
    assert result["status"] == "insufficient"
    assert result["psi"] is not None


def test_a_feed_that_stops_sending_a_value_is_flagged_by_its_missing_rate():
    reference = [80.0 + i % 20 for i in range(200)]
    window = [None] * 70 + [80.0 + i % 20 for i in range(30)]
    [result] = drift.drift_status([_feature("obs_8867-4", reference, window)])
    assert result["status"] == "act"
    assert result["missing"]["window"] == pytest.approx(0.7)
