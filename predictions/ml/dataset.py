"""Records to a clean, typed frame, with a report that counts every cleaning action.

Cleaning is defined per *value* (``to_number``, ``to_category``, ...) so exactly the same rules
run on a training CSV and on one visit at prediction time (:func:`clean_record`). Nothing is
dropped silently: every removed row or column is counted in :class:`CleaningReport` with a reason,
and every value converted or blanked is counted per column.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from predictions.ml.errors import DataError

Kind = Literal["numeric", "categorical", "text"]
Parse = Literal["number", "date", "category", "text"]
PARSE_OF_KIND: dict[Kind, Parse] = {"numeric": "number", "categorical": "category", "text": "text"}

# The design's missing tokens (empty, ?, NA, NaN) plus the usual spellings of "nothing".
MISSING_TOKENS = frozenset({"", "?", "na", "nan", "n/a", "null", "none", "-"})

# Binary words found in clinical CSVs (e.g. the UCI kidney data's present/notpresent) -> 1/0.
BOOLEAN_TOKENS: dict[str, float] = {
    "yes": 1.0,
    "no": 0.0,
    "y": 1.0,
    "n": 0.0,
    "true": 1.0,
    "false": 0.0,
    "present": 1.0,
    "notpresent": 0.0,
    "not present": 0.0,
    "positive": 1.0,
    "negative": 0.0,
    "abnormal": 1.0,
    "normal": 0.0,
}

# What is physiologically possible is clinical knowledge, not the engine's: callers pass it in
# as data, a mapping from column name (lower case, any "obs_" prefix removed) to (low, high) in
# the column's unit. A value outside is a recording error and becomes missing (then imputed with
# an indicator). The app passes its clinical catalogue's ranges; the command line reads the copy
# of them shipped beside this module (written by ``python -m visits.catalogue``).
PlausibleRanges = Mapping[str, tuple[float, float]]
SHIPPED_RANGES_FILE = Path(__file__).with_name("plausible_ranges.json")


def shipped_plausible_ranges() -> dict[str, tuple[float, float]]:
    """The clinical catalogue's ranges as shipped with the engine (for the command line)."""
    data = json.loads(SHIPPED_RANGES_FILE.read_text(encoding="utf-8"))
    return {str(key): (float(low), float(high)) for key, (low, high) in data.items()}


# Integer-coded columns with this many distinct values (3..10) are categories, not quantities:
# chest-pain type 1-4 or thal 3/6/7 carry no order a linear model can use.
CODED_MIN_LEVELS = 3
CODED_MAX_LEVELS = 10
# Share of values that must parse for a column to be typed numeric/date; the rest become missing.
PARSE_SHARE = 0.95
# A string column whose values average this many words or more is free text, not a category.
TEXT_MIN_WORDS = 4.0

_NUMBER_RE = re.compile(
    r"^\s*([-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z%°/\[µ].*)?$"
)
_THOUSANDS_RE = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")
_SPACES_RE = re.compile(r"\s+")


def is_missing(value: Any) -> bool:
    """True for None, NaN and the missing tokens (case-insensitive, surrounding spaces ignored)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str):
        return value.strip().lower() in MISSING_TOKENS
    return bool(pd.isna(value)) if np.isscalar(value) else False


def to_number(value: Any) -> float:
    """Parse ``38.2``, ``"38,2"``, ``"1,234"``, ``"120 mmHg"``, ``"yes"`` into a float (NaN if not)."""
    if is_missing(value):
        return math.nan
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    text = str(value).strip()
    lowered = text.lower()
    if lowered in BOOLEAN_TOKENS:
        return BOOLEAN_TOKENS[lowered]
    match = _NUMBER_RE.match(text)
    if match is None:
        return math.nan
    number = match.group(1)
    if "," in number:
        # "1,234" is a thousands separator; "38,2" is a decimal comma.
        number = (
            number.replace(",", "") if _THOUSANDS_RE.match(number) else number.replace(",", ".")
        )
    try:
        return float(number)
    except ValueError:
        return math.nan


def to_category(value: Any) -> str | None:
    """Normalise a category: stray whitespace collapsed, lower case, ``4.0`` written ``4``."""
    if is_missing(value):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    text = _SPACES_RE.sub(" ", str(value).strip()).lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def to_text(value: Any) -> str:
    """Free text: missing becomes the empty string."""
    return "" if is_missing(value) else _SPACES_RE.sub(" ", str(value).strip())


def to_date_number(value: Any) -> float:
    """A date as days since 1970-01-01 (so it can be imputed and scaled like any number)."""
    if is_missing(value):
        return math.nan
    stamp = pd.to_datetime(str(value), errors="coerce")
    if pd.isna(stamp):
        return math.nan
    return float(stamp.value) / 86_400e9


@dataclass(frozen=True)
class ColumnPlan:
    """How one input column is read: its kind, how raw values parse, and which values are possible."""

    name: str
    kind: Kind
    parse: Parse
    plausible: tuple[float, float] | None = None

    def convert(self, value: Any) -> Any:
        """Clean one raw value exactly as training did (impossible numbers become NaN)."""
        if self.parse == "number":
            number = to_number(value)
            if self.plausible is not None and not (
                self.plausible[0] <= number <= self.plausible[1]
            ):
                return math.nan
            return number
        if self.parse == "date":
            return to_date_number(value)
        if self.parse == "category":
            return to_category(value)
        return to_text(value)


@dataclass
class CleaningReport:
    """Counts of every cleaning action; removed rows and columns are named with their reason."""

    rows_in: int = 0
    columns_in: int = 0
    rows_out: int = 0
    columns_out: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    dropped_rows: dict[str, int] = field(default_factory=dict)
    dropped_columns: dict[str, str] = field(default_factory=dict)
    column_kinds: dict[str, str] = field(default_factory=dict)
    per_column: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, column: str, action: str, n: int) -> None:
        if n:
            self.actions[action] += int(n)
            self.per_column.setdefault(column, {})[action] = int(n)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "columns_in": self.columns_in,
            "rows_out": self.rows_out,
            "columns_out": self.columns_out,
            "actions": dict(sorted(self.actions.items())),
            "dropped_rows": dict(self.dropped_rows),
            "dropped_columns": dict(self.dropped_columns),
            "column_kinds": dict(self.column_kinds),
            "per_column": {k: dict(v) for k, v in sorted(self.per_column.items())},
        }


@dataclass
class CleanData:
    """The cleaned frame (features only), labels, patient groups and the per-column plans."""

    frame: pd.DataFrame
    labels: np.ndarray
    classes: list[str]
    groups: np.ndarray
    plans: dict[str, ColumnPlan]
    report: CleaningReport
    data_hash: str
    raw_index: pd.Index


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read any tabular CSV with a header as strings (typing happens in :func:`clean`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"data file is empty: {path}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"data file is empty: {path}") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot parse {path} as CSV: {first_line}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise DataError(f"data file has a header but no rows: {path}")
    return frame


def frame_hash(frame: pd.DataFrame) -> str:
    """A stable sha256 of a frame's content (training-data fingerprint stored in artifacts)."""
    hashed = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
    digest = hashlib.sha256(hashed.tobytes())
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    return digest.hexdigest()


def plausible_range(name: str, ranges: PlausibleRanges | None) -> tuple[float, float] | None:
    """The range ``ranges`` gives column ``name`` (case-insensitive, ``obs_`` prefix optional)."""
    key = name.lower().removeprefix("obs_")
    for candidate, (low, high) in (ranges or {}).items():
        if candidate.lower().removeprefix("obs_") == key:
            return (float(low), float(high))
    return None


def infer_plan(
    series: pd.Series, name: str, plausible: PlausibleRanges | None = None
) -> ColumnPlan | None:
    """Decide a column's kind from its values; None when the column has no values at all.

    ``plausible``: the possible ranges by column (see :data:`PlausibleRanges`); a column with one
    is a quantity, never an integer-coded category.
    """
    values = series[~series.map(is_missing)]
    if values.empty:
        return None
    numbers = pd.to_numeric(values, errors="coerce")
    unparsed = numbers.isna()
    if unparsed.any():
        numbers[unparsed] = values[unparsed].map(to_number)
    if numbers.notna().mean() >= PARSE_SHARE:
        finite = numbers.dropna()
        levels = finite.nunique()
        is_coded = (
            CODED_MIN_LEVELS <= levels <= CODED_MAX_LEVELS
            and bool((finite == finite.round()).all())
            and plausible_range(name, plausible) is None
        )
        if is_coded:
            return ColumnPlan(name, "categorical", "category")
        return ColumnPlan(name, "numeric", "number", plausible_range(name, plausible))
    as_text = values.astype(str)
    if as_text.str.contains(r"\d[-/]\d", regex=True).mean() >= PARSE_SHARE:
        dates = pd.to_datetime(as_text, errors="coerce", format="mixed")
        if dates.notna().mean() >= PARSE_SHARE:
            return ColumnPlan(name, "numeric", "date")
    words = as_text.map(word_count).mean()
    if words >= TEXT_MIN_WORDS:
        return ColumnPlan(name, "text", "text")
    return ColumnPlan(name, "categorical", "category")


_HAN_CHAR_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def word_count(text: str) -> float:
    """Words in ``text``: space-separated words, plus one per two Han characters (Chinese has no
    spaces; its words average about two characters), so "胸痛三小时，伴出汗" counts as text."""
    han = len(_HAN_CHAR_RE.findall(text))
    latin = len(_HAN_CHAR_RE.sub(" ", text).split())
    return latin + han / 2


def normalise_label(value: Any) -> str | None:
    """Target values compare as trimmed strings, so ``1``, ``1.0`` and `` 1 `` are one class.

    Case is kept: ICD-10 codes and other labels are shown to users as written.
    """
    if is_missing(value):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    text = _SPACES_RE.sub(" ", str(value).strip())
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def check_folds(cv: int) -> None:
    """Cross-validation needs two folds (checked first, by ``train`` and the command line)."""
    if cv < 2:
        raise DataError("--cv must be at least 2")


@dataclass
class TargetLabels:
    labels: pd.Series  # the normalised labels of the labelled rows (mapped by ``positive``)
    missing: pd.Series  # True on the rows without a label
    classes: list[str]


def check_target(
    frame: pd.DataFrame,
    *,
    target: str,
    group: str | None = None,
    positive: list[Any] | None = None,
) -> TargetLabels:
    """The checks :func:`clean` starts with: rows, the target and group columns, the ``positive``
    values, at least two classes. Cheap (one column is read), so the command line runs them
    before it imports the learners; :func:`clean` uses the labels it returns.
    """
    if frame.empty or len(frame.columns) == 0:
        raise DataError("the data has no rows")
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} not found; columns are: {', '.join(frame.columns)}"
        )
    if group is not None and group not in frame.columns:
        raise DataError(f"group column {group!r} not found")
    labels = frame[target].map(normalise_label)
    missing = labels.isna()
    labels = labels[~missing]
    if positive:
        # A missing-value token (e.g. "NA") names no class; it cannot be positive.
        wanted = {label for v in positive if (label := normalise_label(v)) is not None}
        absent = wanted - set(labels)
        if absent == wanted:
            raise DataError(f"none of the --positive values {sorted(wanted)} occur in {target!r}")
        labels = labels.map(lambda v: "positive" if v in wanted else "negative")
        classes = ["negative", "positive"]
    else:
        classes = sorted(set(labels), key=_natural_key)
    if len(set(labels)) < 2:
        only = next(iter(set(labels)), "nothing")
        raise DataError(f"target column {target!r} has one class only ({only}); need at least two")
    return TargetLabels(labels=labels, missing=missing, classes=classes)


def clean(
    frame: pd.DataFrame,
    *,
    target: str,
    group: str | None = None,
    positive: list[Any] | None = None,
    numeric: list[str] | None = None,
    categorical: list[str] | None = None,
    text: list[str] | None = None,
    exclude: list[str] | None = None,
    plausible: PlausibleRanges | None = None,
) -> CleanData:
    """Type, convert and de-duplicate ``frame``; count every action in a :class:`CleaningReport`.

    Column kinds are inferred unless given; when both ``numeric`` and ``categorical`` are given
    (not None) only the listed columns are features. ``plausible`` gives the possible range of
    numeric columns (values outside become missing); without it nothing is judged impossible.
    """
    frame = frame.reset_index(drop=True)
    target_labels = check_target(frame, target=target, group=group, positive=positive)
    report = CleaningReport(rows_in=len(frame), columns_in=len(frame.columns))

    # Labels first: rows without a label cannot be learned from (counted, not silently lost).
    missing_label = target_labels.missing
    if missing_label.any():
        report.dropped_rows["missing_target"] = int(missing_label.sum())
        report.actions["row_dropped_missing_target"] += int(missing_label.sum())
    frame, labels = frame[~missing_label], target_labels.labels
    classes = target_labels.classes

    if group is not None:
        groups = frame[group].map(to_category)
        no_group = groups.isna()
        if no_group.any():
            # A row without a patient id is treated as its own patient.
            report.count(group, "group_missing_row_is_own_patient", int(no_group.sum()))
            groups[no_group] = [f"__row{i}" for i in np.flatnonzero(no_group)]
    else:
        groups = pd.Series([f"row{i}" for i in range(len(frame))], index=frame.index)

    excluded = set(exclude or []) | {target} | ({group} if group else set())
    candidates = [c for c in frame.columns if c not in excluded]
    for name in sorted(set(exclude or []) & set(frame.columns)):
        report.dropped_columns[name] = "excluded by the caller"
    only_listed = numeric is not None and categorical is not None
    listed: dict[str, Kind] = {}
    kinds: tuple[tuple[Kind, list[str] | None], ...] = (
        ("numeric", numeric),
        ("categorical", categorical),
        ("text", text),
    )
    for kind, names in kinds:
        for name in names or []:
            if name not in frame.columns:
                raise DataError(f"{kind} column {name!r} not found")
            listed[name] = kind

    plans: dict[str, ColumnPlan] = {}
    cleaned: dict[str, pd.Series] = {}
    for name in candidates:
        if only_listed and name not in listed:
            report.dropped_columns[name] = "not listed as a feature"
            continue
        column = frame[name]
        if name in listed:
            kind = listed[name]
            parse = PARSE_OF_KIND[kind]
            plan: ColumnPlan | None = ColumnPlan(
                name, kind, parse, plausible_range(name, plausible) if kind == "numeric" else None
            )
        else:
            plan = infer_plan(column, name, plausible)
        if plan is None:
            report.dropped_columns[name] = "no values"
            report.actions["column_dropped_empty"] += 1
            continue
        values, counts = _convert_column(column, plan)
        for action, n in counts.items():
            report.count(name, action, n)
        present = values.dropna() if plan.kind != "text" else values[values != ""]
        if present.nunique() <= 1 and plan.kind != "text":
            report.dropped_columns[name] = "constant (one value)"
            report.actions["column_dropped_constant"] += 1
            continue
        if (
            plan.kind == "categorical"
            and name not in listed
            and present.nunique() > max(50, 0.9 * len(present))
        ):
            # Nearly one level per row: an identifier (a name, an MRN), never a useful category.
            report.dropped_columns[name] = "identifier-like (a distinct value on almost every row)"
            report.actions["column_dropped_identifier"] += 1
            continue
        plans[name] = plan
        cleaned[name] = values
        report.column_kinds[name] = plan.kind if plan.parse != "date" else "date"

    if not plans:
        raise DataError("no usable feature columns after cleaning")
    clean_frame = pd.DataFrame(cleaned, index=frame.index)

    # Duplicate rows (same features, label and patient) are one observation entered twice.
    keyed = clean_frame.assign(__label=labels.to_numpy(), __group=groups.to_numpy())
    duplicated = keyed.astype(str).duplicated().to_numpy()
    if duplicated.any():
        report.dropped_rows["duplicate"] = int(duplicated.sum())
        report.actions["row_dropped_duplicate"] += int(duplicated.sum())
    keep = ~duplicated
    clean_frame = clean_frame[keep]
    labels_arr = labels.to_numpy()[keep].astype(str)
    groups_arr = groups.to_numpy()[keep].astype(str)
    if len(set(labels_arr)) < 2:
        raise DataError(f"target column {target!r} has one class only after cleaning")

    numeric_cols = [n for n, p in plans.items() if p.kind == "numeric"]
    missing_numeric = int(clean_frame[numeric_cols].isna().sum().sum()) if numeric_cols else 0
    report.actions["numeric_missing_imputed_with_indicator"] += missing_numeric
    report.actions["numeric_columns_standardised"] += len(numeric_cols)
    report.rows_out = len(clean_frame)
    report.columns_out = len(plans)
    content = clean_frame.assign(__label=labels_arr, __group=groups_arr)
    return CleanData(
        frame=clean_frame.reset_index(drop=True),
        labels=labels_arr,
        classes=classes,
        groups=groups_arr,
        plans=plans,
        report=report,
        data_hash=frame_hash(content),
        raw_index=clean_frame.index,
    )


def _natural_key(value: str) -> tuple[int, float, str]:
    """Sort labels numerically when they are numbers ("2" before "10"), else alphabetically."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _convert_column(column: pd.Series, plan: ColumnPlan) -> tuple[pd.Series, Counter[str]]:
    """Convert a whole column with the plan's per-value rule, counting what changed."""
    counts: Counter[str] = Counter()
    missing = column.map(is_missing)
    counts["missing_value"] = int(missing.sum())
    if plan.parse == "number":
        values = pd.to_numeric(column.where(~missing), errors="coerce")
        hard = values.isna() & ~missing
        if hard.any():
            # Units, commas and yes/no words: the slow per-value parser, only where needed.
            parsed = column[hard].map(to_number)
            counts["converted_to_number"] = int(parsed.notna().sum())
            counts["unparseable_to_missing"] = int(parsed.isna().sum())
            values[hard] = parsed
        values = values.astype(float)
        if plan.plausible is not None:
            low, high = plan.plausible
            impossible = (values < low) | (values > high)
            counts["impossible_to_missing"] = int(impossible.sum())
            values[impossible] = np.nan
        return values, counts
    if plan.parse == "date":
        values = column.map(to_date_number).astype(float)
        counts["date_to_days"] = int(values.notna().sum())
        counts["unparseable_to_missing"] = int((values.isna() & ~missing).sum())
        return values, counts
    if plan.parse == "category":
        values = column.map(to_category)
        raw = column[~missing].astype(str)
        changed = raw != values[~missing]
        counts["category_normalised"] = int(changed.sum())
        return values, counts
    values = column.map(to_text)
    return values, counts


def clean_record(record: dict[str, Any], plans: dict[str, ColumnPlan]) -> dict[str, Any]:
    """Clean one record for prediction with the training plans (unknown keys are ignored)."""
    return {name: plan.convert(record.get(name)) for name, plan in plans.items()}


def apply_plans(frame: pd.DataFrame, plans: dict[str, ColumnPlan]) -> pd.DataFrame:
    """Clean a whole frame for scoring with the training plans (absent columns become missing)."""
    columns: dict[str, pd.Series] = {}
    for name, plan in plans.items():
        raw = (
            frame[name]
            if name in frame.columns
            else pd.Series([None] * len(frame), index=frame.index)
        )
        columns[name], _ = _convert_column(raw, plan)
    return pd.DataFrame(columns, index=frame.index).reset_index(drop=True)
