"""MEDS events and labels: schema validation, one-line errors, and the visibility rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictions.ml.errors import DataError
from predictions.ml.timeline.events import (
    STATIC_TIME,
    Timelines,
    check_labels,
    read_events,
    read_labels,
    write_events,
    write_labels,
)


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subject_id": [2, 1, 1, 1, 2],
            "time": [
                "2020-01-02T10:00",
                "2020-01-01T09:00",
                None,
                "2020-03-01T09:00",
                "2020-01-05",
            ],
            "code": ["ICD10/I10", "LOINC/8480-6", "GENDER/F", "SNOMED/38341003", "RxNorm/29046"],
            "numeric_value": [None, 150.0, None, None, None],
        }
    )


def test_csv_and_parquet_read_to_the_same_sorted_frame(tmp_path: Path) -> None:
    """Both formats align through the meds schema; static facts first, then time order."""
    frame = _events()
    frame.to_csv(tmp_path / "events.csv", index=False)
    write_events(read_events(frame), tmp_path / "events.parquet")
    from_csv = read_events(tmp_path / "events.csv")
    from_parquet = read_events(tmp_path / "events.parquet")
    pd.testing.assert_frame_equal(from_csv, from_parquet)
    assert from_csv["subject_id"].tolist() == [1, 1, 1, 2, 2]
    assert from_csv["code"].tolist()[:3] == ["GENDER/F", "LOINC/8480-6", "SNOMED/38341003"]
    assert pd.isna(from_csv["time"].iloc[0])
    assert from_csv["numeric_value"].iloc[1] == 150.0


def test_timezone_aware_times_become_naive_utc() -> None:
    frame = _events().iloc[:1].copy()
    frame["time"] = pd.to_datetime(["2020-01-02T10:00+02:00"], utc=False)
    assert read_events(frame)["time"].iloc[0] == pd.Timestamp("2020-01-02T08:00")


@pytest.mark.parametrize(
    ("drop", "message"),
    [("time", "events lack the MEDS column time"), ("code", "events lack the MEDS column code")],
)
def test_missing_event_columns_are_named(drop: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_events(_events().drop(columns=[drop]))


def test_non_integer_subject_ids_are_refused() -> None:
    frame = _events()
    frame["subject_id"] = ["p2", "p1", "p1", "p1", "p2"]
    with pytest.raises(DataError, match="subject_id must be an integer"):
        read_events(frame)


def test_labels_accept_csv_booleans_and_refuse_other_words(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("subject_id,prediction_time,boolean_value\n1,2020-02-01,true\n2,2020-02-01,0\n")
    labels = read_labels(path)
    assert labels["boolean_value"].tolist() == [True, False]
    path.write_text("subject_id,prediction_time,boolean_value\n1,2020-02-01,maybe\n")
    with pytest.raises(DataError, match="boolean_value must be true or false"):
        read_labels(path)
    with pytest.raises(DataError, match="labels lack the MEDS column prediction_time"):
        read_labels(pd.DataFrame({"subject_id": [1], "boolean_value": [True]}))


def test_label_errors_are_one_line() -> None:
    timelines = Timelines.from_frame(read_events(_events()))
    unknown = pd.DataFrame(
        {
            "subject_id": [1, 7],
            "prediction_time": pd.to_datetime(["2020-02-01", "2020-02-01"]),
            "boolean_value": [True, False],
        }
    )
    with pytest.raises(
        DataError, match=r"1 labels belong to 1 subjects with no events \(e.g. subject_id 7\)"
    ) as no_events:
        check_labels(timelines, read_labels(unknown))
    early = unknown.assign(
        subject_id=[1, 2], prediction_time=pd.to_datetime(["2020-02-01", "2019-12-31"])
    )
    with pytest.raises(DataError, match="at or before the subject's first event") as before:
        check_labels(timelines, read_labels(early))
    one_class = unknown.assign(subject_id=[1, 2], boolean_value=[True, True])
    with pytest.raises(DataError, match="labels are all true"):
        check_labels(timelines, read_labels(one_class))
    for error in (no_events, before):
        assert "\n" not in str(error.value)


def test_history_is_static_facts_and_events_strictly_before_the_prediction_time() -> None:
    timelines = Timelines.from_frame(read_events(_events()))
    cut = np.array(["2020-03-01T09:00", "2020-01-05"], dtype="datetime64[us]")
    histories = timelines.histories(np.array([1, 2]), cut)
    first = timelines.code[histories.start[0] : histories.stop[0]].tolist()
    second = timelines.code[histories.start[1] : histories.stop[1]].tolist()
    # The SNOMED event and the RxNorm event sit exactly at the prediction time: not visible.
    assert first == ["GENDER/F", "LOINC/8480-6"]
    assert second == ["ICD10/I10"]
    assert timelines.time[histories.start[0]] == STATIC_TIME


def test_write_labels_round_trips(tmp_path: Path) -> None:
    labels = pd.DataFrame(
        {
            "subject_id": [3],
            "prediction_time": pd.to_datetime(["2021-05-01"]),
            "boolean_value": [False],
        }
    )
    path = write_labels(labels, tmp_path / "labels.parquet")
    pd.testing.assert_frame_equal(read_labels(path), read_labels(labels))


def test_timeline_modules_import_without_django_and_serving_without_torch() -> None:
    """The engine stays pure; a saved forecast model is served with numpy and onnxruntime only."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[4]
    code = (
        "import importlib, pkgutil, sys\n"
        "import predictions.ml.timeline as t\n"
        "serving = ['predictions.ml.timeline.serving', 'predictions.ml.timeline.artifacts',\n"
        "           'predictions.ml.timeline.embeddings', 'predictions.ml.export']\n"
        "for name in serving: importlib.import_module(name)\n"
        "assert 'torch' not in sys.modules, 'serving imported torch'\n"
        "for m in pkgutil.iter_modules(t.__path__): importlib.import_module(f'{t.__name__}.{m.name}')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'celery', 'rest_framework'})\n"
        "print(bad); raise SystemExit(1 if bad else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "", "PYTHONPATH": str(repo)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
