"""One metric formatter for the CLI table, admin, monitoring wording and promotion reasons."""

from __future__ import annotations

import numpy as np

from predictions.ml.metric_format import format_metric


def test_floats_read_with_three_decimals_numpy_ones_too():
    assert format_metric(0.81234) == "0.812"
    assert format_metric(np.float32(0.5)) == "0.500"
    assert format_metric(0.5, width=6) == " 0.500"  # the CLI's aligned table cell


def test_missing_reads_as_the_callers_placeholder():
    assert format_metric(None) == "n/a"
    assert format_metric(None, missing="   -  ") == "   -  "


def test_a_confidence_interval_reads_as_a_bracketed_pair():
    assert format_metric([0.7123, 0.9]) == "[0.712, 0.900]"
    assert format_metric((np.float64(0.1), 0.2)) == "[0.100, 0.200]"


def test_counts_and_words_are_shown_as_written():
    assert format_metric(12) == "12"
    assert format_metric("multiclass") == "multiclass"
    assert format_metric([]) == "[]"
