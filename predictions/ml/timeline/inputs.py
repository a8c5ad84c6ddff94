"""The forecast's inputs, read and validated without scikit-learn or torch.

:func:`load_inputs` is the first step of :func:`predictions.ml.timeline.forecast.train_forecast`;
the command line calls it before importing the training code, so bad input (a missing file, a
missing MEDS column, labels without events, too few outcomes for the folds) fails fast, with the
same one-line message and in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from predictions.ml.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from predictions.ml.timeline.events import Timelines

COUNT_MODELS = {
    "count_logistic_regression": "logistic_regression",
    "count_gradient_boosting": "gradient_boosting",
}
SEQUENCE_MODELS = ("gru", "lstm", "tcn", "transformer")
FORECAST_ALGORITHMS = (*COUNT_MODELS, *SEQUENCE_MODELS)
DEFAULT_BASELINE = "count_logistic_regression"
MIN_PER_FOLD = 3


def choose_algorithms(names: Sequence[str] | None) -> tuple[list[str], list[str], bool]:
    """(count models, sequence models, baseline added?) for the requested names."""
    if names is None:
        return list(COUNT_MODELS), list(SEQUENCE_MODELS), False
    unknown = [n for n in names if n not in FORECAST_ALGORITHMS]
    if unknown:
        raise DataError(
            f"unknown forecast algorithm {unknown[0]!r}; choose from: {', '.join(FORECAST_ALGORITHMS)}"
        )
    count = [n for n in COUNT_MODELS if n in names]
    sequence = [n for n in SEQUENCE_MODELS if n in names]
    added = not count
    return (count or [DEFAULT_BASELINE]), sequence, added


@dataclass
class ForecastInputs:
    timelines: Timelines
    labels: pd.DataFrame
    count: list[str]
    sequence: list[str]
    baseline_added: bool
    y: np.ndarray


def load_inputs(
    events: Any, labels: Any, cv: int, algorithms: Sequence[str] | None
) -> ForecastInputs:
    """Read and check events and labels (files, frames, or ready :class:`Timelines`)."""
    # Imported here, not above: the command line takes the names above without pyarrow and pandas.
    from predictions.ml.dataset import check_folds
    from predictions.ml.timeline.events import Timelines, check_labels, read_events, read_labels

    check_folds(cv)
    timelines = (
        events if isinstance(events, Timelines) else Timelines.from_frame(read_events(events))
    )
    label_frame = read_labels(labels)
    check_labels(timelines, label_frame)
    count, sequence, baseline_added = choose_algorithms(algorithms)
    y = label_frame["boolean_value"].to_numpy(dtype=bool)
    # Every outer training part is searched by 3 inner grouped folds, each needing both outcomes.
    rarest = int(min(y.sum(), (~y).sum()))
    if rarest < MIN_PER_FOLD * cv:
        outcome = "true" if y.sum() <= (~y).sum() else "false"
        raise DataError(
            f"only {rarest} labels are {outcome}: {cv}-fold cross-validation needs at "
            f"least {MIN_PER_FOLD * cv} of each outcome ({MIN_PER_FOLD} per fold)"
        )
    return ForecastInputs(timelines, label_frame, count, sequence, baseline_added, y)
