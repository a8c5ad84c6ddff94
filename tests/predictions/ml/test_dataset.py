"""Cleaning converts, blanks and drops with every action counted and named."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from predictions.ml.dataset import (
    clean,
    clean_record,
    read_csv,
    shipped_plausible_ranges,
    to_category,
    to_number,
)
from predictions.ml.errors import DataError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("38.2", 38.2),
        ("38,2", 38.2),
        ("1,234", 1234.0),
        ("120 mmHg", 120.0),
        (" 7.5% ", 7.5),
        ("yes", 1.0),
        ("notpresent", 0.0),
        ("?", math.nan),
        ("NA", math.nan),
        ("", math.nan),
        ("abc", math.nan),
        (5, 5.0),
    ],
)
def test_to_number_parses_units_commas_and_words(raw: object, expected: float) -> None:
    value = to_number(raw)
    assert (math.isnan(value) and math.isnan(expected)) or value == expected


def test_to_category_normalises_whitespace_case_and_float_codes() -> None:
    assert to_category("  Male ") == "male"
    assert to_category("chest   Pain") == "chest pain"
    assert to_category(4.0) == "4"
    assert to_category("4.0") == "4"
    assert to_category("NaN") is None


def messy_frame() -> pd.DataFrame:
    rows = [
        # id, hr, temp, smoker, sex, admitted, empty, constant, label
        ("a", "80", "37,1", "yes", " Male", "2024-01-03", "", "x", "1"),
        ("b", "95 /min", "38.9", "no", "female", "2024-02-10", "", "x", "0"),
        ("c", "900", "36.6", "present", "MALE ", "2024-03-01", "", "x", "1"),  # impossible HR
        ("c", "900", "36.6", "present", "MALE ", "2024-03-01", "", "x", "1"),  # exact duplicate
        ("d", "1,100", "37.0", "notpresent", "female", "2024-04-12", "", "x", "0"),
        ("e", "70", "?", "no", "female", "2024-05-05", "", "x", ""),  # missing label
        ("f", "72", "37.3", "yes", "male", "2024-06-07", "", "x", "0"),
        ("g", "88", "36.9", "no", "female", "2024-07-08", "", "x", "1"),
    ]
    columns = [
        "pid",
        "obs_8867-4",
        "temperature",
        "smoker",
        "sex",
        "admitted",
        "empty",
        "const",
        "y",
    ]
    return pd.DataFrame(rows, columns=columns)


def test_clean_counts_every_action_and_names_dropped_columns() -> None:
    data = clean(messy_frame(), target="y", group="pid", plausible=shipped_plausible_ranges())
    report = data.report.to_dict()
    assert report["rows_in"] == 8
    assert report["dropped_rows"] == {"missing_target": 1, "duplicate": 1}
    assert report["rows_out"] == 6 == len(data.frame)
    assert report["dropped_columns"]["empty"] == "no values"
    assert report["dropped_columns"]["const"] == "constant (one value)"
    per_column = report["per_column"]
    # 900 (x2 before de-duplication) and 1,100 are impossible heart rates -> missing
    assert per_column["obs_8867-4"]["impossible_to_missing"] == 3
    assert per_column["obs_8867-4"]["converted_to_number"] >= 2  # "95 /min" and "1,100"
    assert report["column_kinds"]["smoker"] == "numeric"  # yes/no/present/notpresent -> 1/0
    assert report["column_kinds"]["admitted"] == "date"
    assert report["column_kinds"]["sex"] == "categorical"
    assert set(data.frame["sex"]) == {"male", "female"}
    assert per_column["sex"]["category_normalised"] >= 3
    assert np.isnan(data.frame["obs_8867-4"]).sum() == 2
    assert data.frame["temperature"].iloc[0] == pytest.approx(37.1)
    assert report["actions"]["numeric_missing_imputed_with_indicator"] >= 2


def test_clean_record_matches_frame_cleaning() -> None:
    frame = messy_frame()
    data = clean(frame, target="y", group="pid", plausible=shipped_plausible_ranges())
    record = frame.iloc[1].to_dict()
    cleaned = clean_record(record, data.plans)
    assert cleaned["obs_8867-4"] == 95.0
    assert cleaned["sex"] == "female"
    assert math.isnan(clean_record({"obs_8867-4": "900"}, data.plans)["obs_8867-4"])


def test_without_ranges_the_engine_judges_no_value_impossible() -> None:
    """What is possible is the caller's clinical knowledge, passed in; the engine has none."""
    frame = pd.DataFrame(
        {"obs_8867-4": [60 + 7 * i for i in range(20)] + [900], "y": ["a", "b"] * 10 + ["a"]}
    )
    data = clean(frame, target="y")
    assert "obs_8867-4" not in data.report.to_dict()["per_column"]
    assert data.frame["obs_8867-4"].max() == 900.0
    # Keys are matched case-insensitively, with or without the "obs_" prefix.
    judged = clean(frame, target="y", plausible={"OBS_8867-4": (20, 250)})
    assert judged.report.to_dict()["per_column"]["obs_8867-4"]["impossible_to_missing"] == 1
    assert judged.frame["obs_8867-4"].max() == 193.0


def test_positive_values_make_a_binary_task() -> None:
    frame = pd.DataFrame({"x": [1, 2, 3, 4, 5, 6], "t": ["0", "1", "2", "0", "3.0", "0"]})
    data = clean(frame, target="t", positive=["1", "2", "3"])
    assert data.classes == ["negative", "positive"]
    assert list(data.labels) == [
        "negative",
        "positive",
        "positive",
        "negative",
        "positive",
        "negative",
    ]


def test_unusable_targets_raise_data_errors(tmp_path) -> None:
    frame = pd.DataFrame({"x": [1, 2, 3], "t": ["a", "a", "a"]})
    with pytest.raises(DataError, match="one class"):
        clean(frame, target="t")
    with pytest.raises(DataError, match="not found"):
        clean(frame, target="nope")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        read_csv(empty)
    with pytest.raises(DataError, match="not found"):
        read_csv(tmp_path / "missing.csv")


def test_identifier_like_columns_are_dropped_and_named() -> None:
    n = 80
    frame = pd.DataFrame(
        {
            "name": [f"Person {i} Smith" if i % 2 else f"P{i}" for i in range(n)],
            "x": np.arange(n) % 7 * 1.5,
            "t": ["a", "b"] * (n // 2),
        }
    )
    data = clean(frame, target="t")
    assert "identifier" in data.report.dropped_columns["name"]
    assert "name" not in data.frame.columns
