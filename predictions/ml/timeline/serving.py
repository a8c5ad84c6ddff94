"""Serving a forecast: calibrated risk, its observed-rate interval, and the events that drove it.

:class:`ForecastModel` is what training produces and what is saved; serving needs no torch (the
sequence networks run in onnxruntime, the count baseline in numpy/scikit-learn).

``forecast`` explains by **occlusion of visits**: the history is re-scored with each of its 20 most
recent visits (the events sharing one time) removed, and with all older visits removed together;
a visit's contribution is how much the calibrated probability falls without it (negative: the
visit made the forecast lower). All variants are scored in one batch. Occlusion measures the model's reliance on a visit given the others; when
two visits carry the same information each looks unimportant alone (the stated caveat).

The risk interval is not a property of one patient's model output: it is the 95% Wilson interval
of the outcome rate observed (out of fold, in cross-validation) among patients whose predicted
risk fell in the same decile band, i.e. "of patients given a similar risk, this many developed it".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from predictions.ml.calibration import CalibratedModel, Calibrator
from predictions.ml.export import OnnxModel
from predictions.ml.timeline.baseline import CountFeaturizer
from predictions.ml.timeline.events import (
    Histories,
    Timelines,
    anchor_events,
    to_microseconds,
)
from predictions.ml.timeline.tokens import TokenEncoder
from predictions.ml.timeline.weights import TimelineWeights

MAX_EXPLAINED_VISITS = 20  # one by one; older visits are occluded as one block
RISK_BINS = 10
BATCH = 512
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def risk_table(
    probabilities: np.ndarray, outcomes: np.ndarray, bins: int = RISK_BINS
) -> list[dict[str, Any]]:
    """Observed outcome rates (with Wilson CIs) per band of out-of-fold predicted risk.

    Bands are predicted-risk quantiles (so every band holds patients), merged when equal.
    """
    edges = np.unique(np.quantile(probabilities, np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = 0.0, 1.0
    which = np.clip(np.searchsorted(edges, probabilities, side="right") - 1, 0, len(edges) - 2)
    table = []
    for b in range(len(edges) - 1):
        mask = which == b
        n = int(mask.sum())
        if not n:
            continue
        k = int(outcomes[mask].sum())
        low, high = wilson_interval(k, n)
        table.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "n": n,
                "predicted": float(probabilities[mask].mean()),
                "observed": k / n,
                "observed_ci": [low, high],
            }
        )
    return table


@dataclass
class Forecast:
    """One patient's forecast, ready for a chart panel."""

    probability: float
    risk_interval: tuple[float, float] | None
    model: str
    drivers: list[dict[str, Any]] = field(default_factory=list)
    explanation_method: str = ""


@dataclass
class TimelineEmbedder:
    """Patient embeddings from a pretrained network (served by onnxruntime)."""

    kind: str
    encoder: TokenEncoder
    onnx: OnnxModel

    def embed(self, timelines: Timelines, histories: Histories) -> np.ndarray:
        """(n, d) L2-normalised embeddings of each visible history."""
        codes, continuous = self.encoder.encode(timelines, histories)
        return np.vstack(
            [
                self.onnx.run(
                    {"codes": codes[i : i + BATCH], "continuous": continuous[i : i + BATCH]}
                )
                for i in range(0, max(len(codes), 1), BATCH)
            ]
        )[: len(codes)]


@dataclass
class ForecastModel:
    """A trained forecast: the selected model (count baseline or sequence network) and helpers."""

    name: str
    family: str  # "count" or "sequence"
    params: dict[str, Any]
    count_featurizer: CountFeaturizer | None = None
    count_model: CalibratedModel | None = None
    token_encoder: TokenEncoder | None = None
    onnx: OnnxModel | None = None
    onnx_int8: OnnxModel | None = None
    serve_int8: bool = False
    calibrator: Calibrator | None = None
    embedder: TimelineEmbedder | None = None
    risk_bins: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    # Torch weights as numpy (pretrained encoders, the served net's fine-tuned weights) for the
    # nightly incremental fine-tune; serving never reads them. None in artifacts written before.
    weights: TimelineWeights | None = None

    # -- batch scoring --------------------------------------------------------------------------
    def probabilities(self, timelines: Timelines, histories: Histories) -> np.ndarray:
        """(n,) calibrated probabilities of the outcome for each visible history."""
        if self.family == "count":
            assert self.count_featurizer is not None  # noqa: S101
            assert self.count_model is not None  # noqa: S101
            X = self.count_featurizer.transform(timelines, histories)
            return self.count_model.predict_proba(X)[:, 1]
        assert self.token_encoder is not None  # noqa: S101
        assert self.calibrator is not None  # noqa: S101
        codes, continuous = self.token_encoder.encode(timelines, histories)
        return self.calibrator.probabilities(self.logits(codes, continuous))[:, 1]

    def logits(self, codes: np.ndarray, continuous: np.ndarray) -> np.ndarray:
        """Uncalibrated risk logits of encoded sequences (onnxruntime, int8 when accepted)."""
        int8 = self.serve_int8 and self.onnx_int8 is not None
        runner = self.onnx_int8 if int8 else self.onnx
        assert runner is not None  # noqa: S101 - a sequence model always carries its ONNX graph
        # Dynamic quantisation scales activations per tensor, i.e. per batch: int8 rows are run one
        # at a time so a patient's risk never depends on who else is in the batch.
        step = 1 if int8 else BATCH
        out = [
            runner.run({"codes": codes[i : i + step], "continuous": continuous[i : i + step]})
            for i in range(0, len(codes), step)
        ]
        return np.concatenate(out).astype(float) if out else np.zeros(0)

    def risk_interval(self, probability: float) -> tuple[float, float] | None:
        for band in self.risk_bins:
            if band["low"] <= probability <= band["high"]:
                low, high = band["observed_ci"]
                return (float(low), float(high))
        return None

    # -- one patient ----------------------------------------------------------------------------
    def forecast(
        self, events: pd.DataFrame, prediction_time: Any, *, explain: bool = True
    ) -> Forecast:
        """Forecast for one subject from its MEDS events (only events before the time count).

        ``events`` has ``time``, ``code`` and optionally ``numeric_value`` columns (one subject);
        ``prediction_time`` is an aware datetime, or naive UTC (as MEDS stores times).
        """
        cut = int(to_microseconds(np.array([naive_utc(prediction_time)]))[0])
        time, code, value = _visible_arrays(events, cut)
        # Birth has a time in MEDS but is not a visit: occluding it would "explain" the risk by
        # the patient's age and show the birth year as a visit on the chart's timeline.
        demographic = anchor_events(time, code)
        visits = np.unique(time[~demographic]) if explain else np.zeros(0, np.int64)
        recent, earlier = visits[-MAX_EXPLAINED_VISITS:], visits[:-MAX_EXPLAINED_VISITS]
        keeps = [np.ones(len(time), bool)] + [demographic | (time != t) for t in recent]
        if len(earlier):  # older visits are occluded together, as one block
            keeps.append(demographic | (time > earlier[-1]))
        timelines, histories = _variants(time, code, value, keeps, cut)
        p = self.probabilities(timelines, histories)
        drivers = []
        if len(earlier):
            drivers.append(
                {
                    "kind": "earlier_history",
                    "time": _iso(earlier[0]),
                    "until": _iso(earlier[-1]),
                    "visits": len(earlier),
                    "events": [],
                    "contribution": float(p[0] - p[-1]),
                }
            )
        for i, t in enumerate(recent):
            members = time == t
            drivers.append(
                {
                    "kind": "visit",
                    "time": _iso(t),
                    "events": [
                        {"code": str(c), "numeric_value": None if np.isnan(v) else float(v)}
                        for c, v in zip(code[members], value[members], strict=True)
                    ],
                    "contribution": float(p[0] - p[i + 1]),
                }
            )
        probability = float(p[0])
        return Forecast(
            probability=probability,
            risk_interval=self.risk_interval(probability),
            model=self.name,
            drivers=drivers,
            explanation_method=(
                "occlusion of visits: change in calibrated probability when the visit's events "
                "are removed (reliance given the other visits; redundant visits share credit); "
                f"visits before the last {MAX_EXPLAINED_VISITS} are removed together"
            ),
        )


def _iso(microseconds: Any) -> str:
    return pd.Timestamp(np.datetime64(int(microseconds), "us")).isoformat()


def embed_one(embedder: TimelineEmbedder, events: pd.DataFrame, prediction_time: Any) -> np.ndarray:
    """One subject's embedding from its events before ``prediction_time`` (query for
    :meth:`~predictions.ml.timeline.embeddings.PatientIndex.nearest`)."""
    cut = int(to_microseconds(np.array([naive_utc(prediction_time)]))[0])
    time, code, value = _visible_arrays(events, cut)
    timelines, histories = _variants(time, code, value, [np.ones(len(time), bool)], cut)
    return embedder.embed(timelines, histories)[0]


def naive_utc(moment: Any) -> np.datetime64:
    """A datetime (aware, or naive UTC as MEDS stores it) as naive-UTC datetime64[us]."""
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return np.datetime64(stamp.to_datetime64(), "us")


def _visible_arrays(events: pd.DataFrame, cut: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One subject's events strictly before ``cut`` (plus static facts), statics first, in time order.

    The same rule as :meth:`Timelines.histories`, applied to a single subject's frame.
    """
    times = events["time"]
    if isinstance(times.dtype, pd.DatetimeTZDtype):  # aware datetimes: compared in UTC
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    time = to_microseconds(pd.to_datetime(times).to_numpy(dtype="datetime64[us]"))
    code = events["code"].to_numpy(dtype=object)
    value = (
        events["numeric_value"].to_numpy(dtype=float)
        if "numeric_value" in events.columns
        else np.full(len(events), np.nan)
    )
    visible = time < cut  # STATIC_TIME is the smallest int64, so static facts pass
    order = np.argsort(time[visible], kind="stable")
    return time[visible][order], code[visible][order], value[visible][order]


def _variants(
    time: np.ndarray, code: np.ndarray, value: np.ndarray, keeps: list[np.ndarray], cut: int
) -> tuple[Timelines, Histories]:
    """One pseudo-subject per variant (the history with some events removed), all cut at ``cut``."""
    sizes = np.array([int(k.sum()) for k in keeps], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    timelines = Timelines(
        subjects=np.arange(len(keeps), dtype=np.int64),
        offsets=offsets,
        time=np.concatenate([time[k] for k in keeps]),
        code=np.concatenate([code[k] for k in keeps]),
        numeric_value=np.concatenate([value[k] for k in keeps]),
    )
    histories = Histories(
        start=offsets[:-1].copy(),
        stop=offsets[1:].copy(),
        subject_id=timelines.subjects,
        prediction_time=np.full(len(keeps), cut, dtype=np.int64),
    )
    return timelines, histories
