"""MEDS events and labels: reading, validating, and the one rule of what a model may see.

Events follow the ``meds`` package's ``DataSchema`` (``subject_id`` int64, ``time`` timestamp or
null for static facts, ``code`` string, optional ``numeric_value`` and ``text_value``); labels follow
its ``LabelSchema`` (``subject_id``, ``prediction_time``, ``boolean_value``). Files may be Parquet or
CSV; either way the table is aligned to the schema by ``meds`` itself (which casts ISO date-time
strings and refuses a column of the wrong type), so the engine and every MEDS tool agree on what a
valid file is. Times are naive UTC, as MEDS stores them; aware inputs are converted to UTC.

:class:`Timelines` holds all events sorted by subject and time in flat numpy arrays.
:meth:`Timelines.histories` is the **only** place where a label's visible history is decided:
static events plus events strictly before ``prediction_time``. Every model, the count baseline
included, featurises from the ``(start, stop)`` slices it returns, which is what the leak test pins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import meds
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from flexible_schema.exceptions import SchemaValidationError

from predictions.ml.errors import DataError

EVENT_COLUMNS = ("subject_id", "time", "code", "numeric_value", "text_value")
LABEL_COLUMNS = ("subject_id", "prediction_time", "boolean_value")
# Static facts (null time) sort before every timed event and are visible at any prediction time.
STATIC_TIME = np.iinfo(np.int64).min
MICROSECONDS_PER_DAY = 86_400_000_000
MISSING_TOKENS = ["", "NA", "NaN", "nan", "?", "null", "None"]


def anchor_events(time: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Mask of a timeline's anchors: static facts (sex) and birth. MEDS gives birth a time, but
    it is who the patient is, not their history: anchors are never a visit, never occluded in an
    explanation, never dropped from a model's input, and never count as history."""
    return (time == STATIC_TIME) | (code == meds.birth_code)


def _read_table(source: str | Path | pd.DataFrame | pa.Table, what: str) -> pa.Table:
    if isinstance(source, pa.Table):
        return source
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
        for column in frame.columns:
            if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
                frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
        return pa.Table.from_pandas(frame, preserve_index=False)
    path = Path(source)
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pq.read_table(path)
        if suffix == ".csv":
            # Every column is read as text, then aligned (and so validated) by the meds schema.
            options = pa_csv.ConvertOptions(
                strings_can_be_null=True, null_values=MISSING_TOKENS, column_types=None
            )
            return pa_csv.read_csv(path, convert_options=options)
    except (pa.ArrowInvalid, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{what} file {path} cannot be read: {first}") from exc
    raise DataError(f"{what} file {path} must be .parquet or .csv")


def _utc_naive(table: pa.Table, column: str) -> pa.Table:
    """Timezone-aware timestamps become naive UTC (MEDS stores naive); ISO strings are parsed."""
    if column not in table.column_names:
        return table
    field = table.schema.field(column)
    values = table[column]
    if pa.types.is_timestamp(field.type) and field.type.tz is not None:
        values = values.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
    elif pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
        try:
            parsed = pd.to_datetime(values.to_pandas(), utc=True, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"column {column!r} holds a value that is not an ISO date-time"
            ) from exc
        values = pa.array(parsed.dt.tz_localize(None), type=pa.timestamp("us"))
    elif pa.types.is_null(field.type):
        values = pa.nulls(len(table), pa.timestamp("us"))
    return table.set_column(table.schema.get_field_index(column), column, values)


def _align(table: pa.Table, schema: Any, required: tuple[str, ...], what: str) -> pa.Table:
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise DataError(
            f"{what} lack the MEDS column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (have: {', '.join(table.column_names) or 'none'})"
        )
    if len(table) == 0:
        raise DataError(f"{what} file has no rows")
    subject_type = table.schema.field("subject_id").type
    if pa.types.is_string(subject_type) or pa.types.is_large_string(subject_type):
        try:
            table = table.set_column(
                table.schema.get_field_index("subject_id"),
                "subject_id",
                table["subject_id"].cast(pa.int64()),
            )
        except pa.ArrowInvalid as exc:
            raise DataError(
                f"{what}: subject_id must be an integer (MEDS subject ids are int64)"
            ) from exc
    try:
        return schema.align(table)
    except SchemaValidationError as exc:
        raise DataError(f"{what} do not fit the MEDS schema: {exc}") from exc
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataError(f"{what} do not fit the MEDS schema: {first}") from exc


def read_events(source: str | Path | pd.DataFrame | pa.Table) -> pd.DataFrame:
    """MEDS events (file, frame or Arrow table) -> validated frame sorted by subject and time.

    Columns: ``subject_id`` int64, ``time`` datetime64[us] (NaT = static), ``code`` str,
    ``numeric_value`` float64 (NaN = none), ``text_value`` object (None = none).
    """
    table = _read_table(source, "events")
    table = _utc_naive(table, "time")
    if "numeric_value" not in table.column_names:  # optional in MEDS: absent means no values
        table = table.append_column("numeric_value", pa.nulls(len(table), pa.float32()))
    table = _align(table, meds.DataSchema, ("subject_id", "time", "code"), "events")
    if table["subject_id"].null_count:
        raise DataError("events: subject_id is empty on some rows (MEDS requires it)")
    if table["code"].null_count:
        raise DataError("events: code is empty on some rows (MEDS requires it)")
    frame = pd.DataFrame(
        {
            "subject_id": table["subject_id"].to_numpy().astype(np.int64),
            "time": table["time"].to_pandas().astype("datetime64[us]").to_numpy(),
            "code": table["code"].to_pandas().astype(str).to_numpy(dtype=object),
            "numeric_value": table["numeric_value"].to_pandas().astype(float).to_numpy(),
            "text_value": np.array(table["text_value"].to_pylist(), dtype=object)
            if "text_value" in table.column_names
            else np.full(len(table), None, dtype=object),
        }
    )
    # NaT first within a subject: static facts precede the timeline (stable keeps file order).
    key = frame["time"].to_numpy().view(np.int64)
    order = np.lexsort((key, frame["subject_id"].to_numpy()))
    return frame.iloc[order].reset_index(drop=True)


def read_labels(source: str | Path | pd.DataFrame | pa.Table) -> pd.DataFrame:
    """MEDS binary labels -> frame ``subject_id``, ``prediction_time``, ``boolean_value``."""
    table = _read_table(source, "labels")
    table = _utc_naive(table, "prediction_time")
    if "boolean_value" in table.column_names and not pa.types.is_boolean(
        table.schema.field("boolean_value").type
    ):
        table = _booleans(table)
    table = _align(table, meds.LabelSchema, LABEL_COLUMNS, "labels")
    for column in LABEL_COLUMNS:
        if table[column].null_count:
            raise DataError(f"labels: {column} is empty on {table[column].null_count} rows")
    frame = pd.DataFrame(
        {
            "subject_id": table["subject_id"].to_numpy().astype(np.int64),
            "prediction_time": table["prediction_time"]
            .to_pandas()
            .astype("datetime64[us]")
            .to_numpy(),
            "boolean_value": table["boolean_value"].to_numpy(zero_copy_only=False).astype(bool),
        }
    )
    return frame.sort_values(["subject_id", "prediction_time"], kind="stable").reset_index(
        drop=True
    )


TRUE_WORDS = {"true", "1", "yes", "t", "y"}
FALSE_WORDS = {"false", "0", "no", "f", "n"}


def _booleans(table: pa.Table) -> pa.Table:
    """CSV booleans written as true/false, 1/0 or yes/no become Arrow booleans."""
    raw = table["boolean_value"].to_pandas()
    words = raw.map(lambda v: None if v is None or pd.isna(v) else str(v).strip().lower())
    bad = sorted({w for w in words.dropna() if w not in TRUE_WORDS | FALSE_WORDS})
    if bad:
        raise DataError(f"labels: boolean_value must be true or false, found {bad[0]!r}")
    values = pa.array([None if w is None else w in TRUE_WORDS for w in words], type=pa.bool_())
    return table.set_column(table.schema.get_field_index("boolean_value"), "boolean_value", values)


def write_events(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write events as a MEDS data shard (Parquet, aligned to ``meds.DataSchema``)."""
    table = pa.Table.from_pandas(
        frame[[c for c in EVENT_COLUMNS if c in frame.columns]], preserve_index=False
    )
    table = _align(
        _utc_naive(table, "time"), meds.DataSchema, ("subject_id", "time", "code"), "events"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def write_labels(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write binary labels as MEDS labels (Parquet, aligned to ``meds.LabelSchema``)."""
    table = pa.Table.from_pandas(frame[list(LABEL_COLUMNS)], preserve_index=False)
    table = _align(_utc_naive(table, "prediction_time"), meds.LabelSchema, LABEL_COLUMNS, "labels")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def to_microseconds(times: Any) -> np.ndarray:
    """datetime64 values (NaT allowed) -> int64 microseconds, NaT -> :data:`STATIC_TIME`."""
    values = np.asarray(times, dtype="datetime64[us]")
    return np.where(np.isnat(values), STATIC_TIME, values.view(np.int64))


@dataclass(frozen=True)
class Histories:
    """Visible history of each label: events ``start:stop`` of :class:`Timelines`' arrays."""

    start: np.ndarray
    stop: np.ndarray
    subject_id: np.ndarray
    prediction_time: np.ndarray  # int64 microseconds

    def __len__(self) -> int:
        return len(self.start)

    def subset(self, rows: np.ndarray) -> Histories:
        return Histories(
            self.start[rows], self.stop[rows], self.subject_id[rows], self.prediction_time[rows]
        )


@dataclass(frozen=True)
class Timelines:
    """All events in flat arrays sorted by (subject, time); ``offsets`` delimit subjects."""

    subjects: np.ndarray  # sorted unique subject ids (int64)
    offsets: np.ndarray  # len(subjects) + 1
    time: np.ndarray  # int64 microseconds, STATIC_TIME for static facts
    code: np.ndarray  # object array of str
    numeric_value: np.ndarray  # float64, NaN when absent

    @classmethod
    def from_frame(cls, events: pd.DataFrame) -> Timelines:
        """From :func:`read_events`' frame (already sorted by subject then time)."""
        subject = events["subject_id"].to_numpy(dtype=np.int64)
        time = to_microseconds(events["time"].to_numpy())
        if len(subject) > 1 and (
            np.any(np.diff(subject) < 0) or np.any((np.diff(subject) == 0) & (np.diff(time) < 0))
        ):
            order = np.lexsort((time, subject))
            subject, time = subject[order], time[order]
            events = events.iloc[order]
        subjects, first = np.unique(subject, return_index=True)
        offsets = np.append(first, len(subject)).astype(np.int64)
        return cls(
            subjects=subjects,
            offsets=offsets,
            time=time,
            code=events["code"].to_numpy(dtype=object),
            numeric_value=events["numeric_value"].to_numpy(dtype=float),
        )

    @property
    def n_events(self) -> int:
        return len(self.time)

    def subject_range(self, subject_id: int) -> tuple[int, int]:
        i = int(np.searchsorted(self.subjects, subject_id))
        if i >= len(self.subjects) or self.subjects[i] != subject_id:
            return 0, 0
        return int(self.offsets[i]), int(self.offsets[i + 1])

    def histories(self, subject_id: Any, prediction_time: Any) -> Histories:
        """Visible slices: each subject's static events and events strictly before the time.

        The single visibility rule of the timeline engine; ``prediction_time`` is datetime64 or
        int64 microseconds. An event *at* ``prediction_time`` is not visible.
        """
        subject_id = np.asarray(subject_id, dtype=np.int64)
        cut = np.asarray(prediction_time)
        cut = cut.astype(np.int64) if cut.dtype.kind in "iu" else to_microseconds(cut)
        index = np.searchsorted(self.subjects, subject_id)
        index = np.clip(index, 0, max(len(self.subjects) - 1, 0))
        known = self.subjects[index] == subject_id if len(self.subjects) else index < 0
        start = np.where(known, self.offsets[index], 0)
        end = np.where(known, self.offsets[index + 1], 0)
        stop = np.array(
            [
                s + int(np.searchsorted(self.time[s:e], t, side="left"))
                for s, e, t in zip(start, end, cut, strict=True)
            ],
            dtype=np.int64,
        )
        return Histories(start.astype(np.int64), stop, subject_id, cut)

    def full_histories(self) -> Histories:
        """Every subject's whole timeline (for statistics and embeddings of complete courses)."""
        last = np.array(
            [
                self.time[e - 1] + 1 if e > s else 0
                for s, e in zip(self.offsets[:-1], self.offsets[1:], strict=True)
            ],
            dtype=np.int64,
        )
        return Histories(self.offsets[:-1].copy(), self.offsets[1:].copy(), self.subjects, last)

    def events_frame(self, start: int, stop: int) -> pd.DataFrame:
        """Events ``start:stop`` as a readable frame (explanations, the chart's timeline)."""
        time = self.time[start:stop]
        return pd.DataFrame(
            {
                "time": np.where(
                    time == STATIC_TIME, np.datetime64("NaT"), time.astype("datetime64[us]")
                ),
                "code": self.code[start:stop],
                "numeric_value": self.numeric_value[start:stop],
            }
        )


def check_labels(timelines: Timelines, labels: pd.DataFrame) -> None:
    """One-line errors for labels no model could learn from (see DESIGN.md's forecast contract)."""
    subjects = labels["subject_id"].to_numpy(dtype=np.int64)
    known = np.isin(subjects, timelines.subjects)
    if not known.all():
        missing = np.unique(subjects[~known])
        raise DataError(
            f"{int((~known).sum())} labels belong to {len(missing)} subjects with no events "
            f"(e.g. subject_id {missing[0]})"
        )
    first_timed = _first_timed_event(timelines)
    index = np.searchsorted(timelines.subjects, subjects)
    cut = to_microseconds(labels["prediction_time"].to_numpy())
    early = cut <= first_timed[index]
    if early.any():
        row = int(np.flatnonzero(early)[0])
        when = labels["prediction_time"].iloc[row]
        raise DataError(
            f"{int(early.sum())} labels have a prediction_time at or before the subject's first "
            f"event (e.g. subject_id {subjects[row]} at {pd.Timestamp(when).isoformat()}): "
            "no history to forecast from"
        )
    values = labels["boolean_value"].to_numpy(dtype=bool)
    if values.all() or not values.any():
        raise DataError(
            f"labels are all {'true' if values.all() else 'false'}: need both outcomes to learn"
        )


def _first_timed_event(timelines: Timelines) -> np.ndarray:
    """Per subject, the time of its first timed event (int64 max when it has none)."""
    out = np.full(len(timelines.subjects), np.iinfo(np.int64).max, dtype=np.int64)
    timed = timelines.time != STATIC_TIME
    owner = np.searchsorted(timelines.offsets, np.arange(timelines.n_events), side="right") - 1
    np.minimum.at(out, owner[timed], timelines.time[timed])
    return out
