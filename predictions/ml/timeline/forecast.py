"""Training a forecast: count baseline vs. pretrained sequence models, patient-grouped CV, gating.

``train_forecast(events, labels, ...)``:

1. validates the MEDS inputs and decides each label's visible history (events strictly before its
   prediction time, :meth:`Timelines.histories`);
2. splits labels into patient-grouped stratified folds (:func:`predictions.ml.split.grouped_folds`);
3. count baseline: per fold, :class:`CountFeaturizer` fitted on the training rows, logistic
   regression and gradient boosting through the tabular engine's ``fit_learner``;
4. sequence models: one token vocabulary and one self-supervised pretraining per architecture on
   the *pretraining corpus* -- every subject's events before its earliest prediction time (the
   whole timeline of subjects without labels), so no outcome event and nothing a forecast could
   not have seen is ever used; then per fold, fine-tuning on the training rows and Platt scaling on
   their grouped validation split. Each fold's network is exported to ONNX (parity-checked) and
   quantised, and the test fold is scored by torch, onnxruntime float32 and int8;
5. metrics of the out-of-fold probabilities by :func:`predictions.ml.evaluate.evaluate_predictions`
   (CIs, calibration, subgroups by sex and age band); within each family the lowest log loss wins;
   a sequence model is selected only if its ROC AUC CI lies wholly above the baseline's, else the
   baseline is selected and the report says why;
6. the selected model is refitted on all labels and returned as a :class:`ForecastModel`, with a
   patient embedder from the pretrained network (nearest patients, phenotypes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import meds
import numpy as np
import pandas as pd

from predictions.ml.algorithms import ALGORITHMS
from predictions.ml.calibration import fit_calibrator
from predictions.ml.evaluate import age_band, evaluate_predictions
from predictions.ml.pipeline import fit_learner, library_versions
from predictions.ml.split import grouped_folds
from predictions.ml.timeline.baseline import CountFeaturizer
from predictions.ml.timeline.events import (
    MICROSECONDS_PER_DAY,
    STATIC_TIME,
    Histories,
    Timelines,
    anchor_events,
)

# The algorithm names and choose_algorithms lived here first: re-exported.
from predictions.ml.timeline.inputs import COUNT_MODELS as COUNT_MODELS
from predictions.ml.timeline.inputs import DEFAULT_BASELINE as DEFAULT_BASELINE
from predictions.ml.timeline.inputs import FORECAST_ALGORITHMS as FORECAST_ALGORITHMS
from predictions.ml.timeline.inputs import MIN_PER_FOLD as MIN_PER_FOLD
from predictions.ml.timeline.inputs import SEQUENCE_MODELS as SEQUENCE_MODELS
from predictions.ml.timeline.inputs import choose_algorithms as choose_algorithms
from predictions.ml.timeline.inputs import load_inputs
from predictions.ml.timeline.serving import ForecastModel, TimelineEmbedder, risk_table
from predictions.ml.timeline.tokens import MAX_LEN, TokenEncoder
from predictions.ml.timeline.weights import TimelineWeights

CLASSES = ["false", "true"]
LATENCY_SAMPLES = 50
SELECTION_RULE = (
    "a sequence model is selected only when the lower bound of its ROC AUC 95% CI is above the "
    "upper bound of the baseline's (no CI overlap); within each family, lowest out-of-fold log loss"
)

Progress = Callable[[str, int], None]


@dataclass
class ForecastOptions:
    """How to train; the command line maps its flags onto these."""

    cv: int = 5
    seed: int = 0
    algorithms: Sequence[str] | None = None
    pretrain_epochs: int = 3
    finetune_epochs: int = 20
    max_len: int = MAX_LEN
    dim: int = 64
    compress: bool = True
    n_bootstrap: int = 200


@dataclass
class ForecastResult:
    model: ForecastModel
    report: dict[str, Any]
    out_of_fold: dict[str, np.ndarray] = field(default_factory=dict)
    labels: np.ndarray | None = None


def pretraining_corpus(timelines: Timelines, labels: pd.DataFrame) -> Histories:
    """Each subject's events before its earliest prediction time (whole timeline if unlabelled)."""
    earliest = labels.groupby("subject_id")["prediction_time"].min()
    cut = np.full(len(timelines.subjects), np.iinfo(np.int64).max, dtype=np.int64)
    index = np.searchsorted(timelines.subjects, earliest.index.to_numpy(dtype=np.int64))
    cut[index] = earliest.to_numpy().astype("datetime64[us]").view(np.int64)
    return timelines.histories(timelines.subjects, cut)


def label_subgroups(timelines: Timelines, histories: Histories) -> dict[str, np.ndarray]:
    """Sex (from a static ``GENDER/``/``SEX/`` code) and age band at the prediction time."""
    # Only static facts and birth events are looked at (cheap on millions of events).
    candidates = np.flatnonzero(anchor_events(timelines.time, timelines.code))
    owner = np.searchsorted(timelines.offsets, candidates, side="right") - 1
    subject_sex = np.full(len(timelines.subjects), "unknown", dtype=object)
    subject_birth = np.full(len(timelines.subjects), STATIC_TIME, dtype=np.int64)
    for event, subject in zip(candidates, owner, strict=True):
        code = str(timelines.code[event])
        if code.startswith(("GENDER/", "SEX/")):
            subject_sex[subject] = code.split("/", 1)[1].lower()
        elif code == meds.birth_code and timelines.time[event] != STATIC_TIME:
            subject_birth[subject] = timelines.time[event]
    index = np.searchsorted(timelines.subjects, histories.subject_id)
    birth = subject_birth[index]
    known = (birth != STATIC_TIME) & (birth < histories.prediction_time)
    age = np.where(
        known, (histories.prediction_time - birth) / MICROSECONDS_PER_DAY / 365.25, np.nan
    )
    out = {"sex": subject_sex[index].astype(str)}
    if known.any():
        out["age_band"] = np.array([age_band(a) for a in age])
    return out


def _proba2(p: np.ndarray) -> np.ndarray:
    return np.column_stack([1 - p, p])


def _metrics(
    y: np.ndarray, p: np.ndarray, subgroups: dict[str, np.ndarray], options: ForecastOptions
) -> dict[str, Any]:
    return evaluate_predictions(
        np.where(y, "true", "false"),
        _proba2(p),
        CLASSES,
        subgroups=subgroups,
        n_bootstrap=options.n_bootstrap,
        seed=options.seed,
    )


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


class _Run:
    """State of one training run (kept in one place so the steps below stay short)."""

    def __init__(
        self, events: Any, labels: Any, options: ForecastOptions, progress: Progress | None
    ) -> None:
        self.started = time.perf_counter()
        self.options = options
        self.say = progress or (lambda stage, percent: None)
        inputs = load_inputs(events, labels, options.cv, options.algorithms)
        self.timelines = inputs.timelines
        self.labels = inputs.labels
        self.count, self.sequence = inputs.count, inputs.sequence
        self.baseline_added = inputs.baseline_added
        self.y = inputs.y
        self.groups = self.labels["subject_id"].to_numpy(dtype=np.int64)
        self.histories = self.timelines.histories(
            self.groups, self.labels["prediction_time"].to_numpy()
        )
        self.folds = grouped_folds(self.y.astype(int), self.groups, options.cv, options.seed)
        self.subgroups = label_subgroups(self.timelines, self.histories)
        self.oof: dict[str, np.ndarray] = {}
        self.entries: list[dict[str, Any]] = []
        self.compression: list[dict[str, Any]] = []
        self.pretrained: dict[str, Any] = {}
        self.pretrain_logs: dict[str, Any] = {}
        self.encoder: TokenEncoder | None = None
        self.codes: np.ndarray | None = None
        self.continuous: np.ndarray | None = None
        self.corpus_events = 0
        # (network, fp32 bytes, int8 bytes, codes, continuous) of one fold, for the latency table
        self.latency_example: tuple[Any, bytes, bytes, np.ndarray, np.ndarray] | None = None


def train_forecast(
    events: Any,
    labels: Any,
    options: ForecastOptions | None = None,
    progress: Progress | None = None,
) -> ForecastResult:
    """Cross-validate, gate, refit; ``events``/``labels`` are MEDS files, frames or Timelines."""
    options = options or ForecastOptions()
    run = _Run(events, labels, options, progress)
    run.say("count baseline", 2)
    for name in run.count:
        _cross_validate_count(run, name)
    if run.sequence:
        _prepare_sequences(run)
        for i, kind in enumerate(run.sequence):
            run.say(f"{kind}: fine-tuning per fold", 20 + int(60 * i / len(run.sequence)))
            _cross_validate_sequence(run, kind)
    return _select_and_refit(run)


# -- count baseline -----------------------------------------------------------------------------
def _fit_count(
    run: _Run, name: str, rows: np.ndarray
) -> tuple[CountFeaturizer, Any, dict[str, Any]]:
    featurizer = CountFeaturizer().fit(run.timelines, run.histories.subset(rows))
    X = featurizer.transform(run.timelines, run.histories.subset(rows))
    fitted = fit_learner(
        ALGORITHMS[COUNT_MODELS[name]],
        X,
        run.y[rows].astype(int),
        run.groups[rows],
        2,
        seed=run.options.seed,
    )
    return featurizer, fitted.model, fitted.params


def _cross_validate_count(run: _Run, name: str) -> None:
    started = time.perf_counter()
    oof = np.zeros(len(run.y))
    params = []
    for fold, (train, test) in enumerate(run.folds):
        run.say(f"{name}: fold {fold + 1}/{len(run.folds)}", 2 + 3 * fold)
        featurizer, model, chosen = _fit_count(run, name, train)
        X_test = featurizer.transform(run.timelines, run.histories.subset(test))
        oof[test] = model.predict_proba(X_test)[:, 1]
        params.append(chosen)
    run.oof[name] = oof
    run.entries.append(
        {
            "name": name,
            "family": "count",
            "params": params[0],
            "params_per_fold": params,
            "features": "code counts (90d, 1y, 3y, ever), days since each code, last values "
            "of measurements per window, age, history length",
            "metrics": _metrics(run.y, oof, run.subgroups, run.options),
            "seconds": round(time.perf_counter() - started, 1),
        }
    )


# -- sequence models ----------------------------------------------------------------------------
def _prepare_sequences(run: _Run) -> None:
    from predictions.ml.timeline.training import NetConfig, pretrain

    corpus = pretraining_corpus(run.timelines, run.labels)
    run.corpus_events = int((corpus.stop - corpus.start).sum())
    run.encoder = TokenEncoder(max_len=run.options.max_len).fit(run.timelines, corpus)
    run.codes, run.continuous = run.encoder.encode(run.timelines, run.histories)
    for kind in run.sequence:
        run.say(f"{kind}: pretraining", 15)
        net, log = pretrain(
            NetConfig(kind, dim=run.options.dim),
            run.encoder,
            run.timelines,
            corpus,
            epochs=run.options.pretrain_epochs,
            seed=run.options.seed,
        )
        run.pretrained[kind] = net if run.options.pretrain_epochs > 0 else None
        run.pretrain_logs[kind] = log.as_dict()


def _finetune(run: _Run, kind: str, rows: np.ndarray) -> tuple[Any, Any, dict[str, Any]]:
    from predictions.ml.timeline.training import NetConfig, finetune

    assert run.encoder is not None  # noqa: S101
    assert run.codes is not None  # noqa: S101
    assert run.continuous is not None  # noqa: S101
    tuned = finetune(
        run.pretrained.get(kind),
        NetConfig(kind, dim=run.options.dim),
        run.encoder,
        run.codes[rows],
        run.continuous[rows],
        run.y[rows],
        run.groups[rows],
        max_epochs=run.options.finetune_epochs,
        seed=run.options.seed,
    )
    calibrator = fit_calibrator(
        tuned.validation_logits, run.y[rows][tuned.validation_rows].astype(int)
    )
    return tuned.net, calibrator, tuned.log.as_dict()


def _cross_validate_sequence(run: _Run, kind: str) -> None:
    from predictions.ml.export import OnnxModel, export_onnx, parity, quantize_int8
    from predictions.ml.timeline.training import predict_logits

    assert run.codes is not None  # noqa: S101
    assert run.continuous is not None  # noqa: S101
    started = time.perf_counter()
    oof = np.zeros(len(run.y))
    oof_fp32 = np.zeros(len(run.y))
    oof_int8 = np.zeros(len(run.y))
    logs, parities, sizes = [], [], []
    for fold, (train, test) in enumerate(run.folds):
        net, calibrator, log = _finetune(run, kind, train)
        logs.append(log)
        codes, continuous = run.codes[test], run.continuous[test]
        logits = predict_logits(net, codes, continuous)
        oof[test] = calibrator.probabilities(logits)[:, 1]
        if run.options.compress:
            fp32 = export_onnx(
                net, {"codes": codes[:2], "continuous": continuous[:2]}, output_name="logit"
            )
            int8 = quantize_int8(fp32)
            fp32_logits = _onnx_logits(OnnxModel(fp32), codes, continuous)
            int8_logits = _onnx_logits(OnnxModel(int8), codes, continuous, step=1)
            parities.append(parity(logits, fp32_logits))
            oof_fp32[test] = calibrator.probabilities(fp32_logits)[:, 1]
            oof_int8[test] = calibrator.probabilities(int8_logits)[:, 1]
            sizes.append((len(fp32), len(int8)))
            if fold == 0:
                run.latency_example = (net, fp32, int8, codes, continuous)
    run.oof[kind] = oof
    run.entries.append(
        {
            "name": kind,
            "family": "sequence",
            "params": {"dim": run.options.dim, "max_len": run.options.max_len},
            "pretrained": run.pretrained.get(kind) is not None,
            "finetune_per_fold": logs,
            "metrics": _metrics(run.y, oof, run.subgroups, run.options),
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
    if run.options.compress:
        run.compression.append(
            _compression_entry(run, kind, oof, oof_fp32, oof_int8, parities, sizes)
        )


def _onnx_logits(
    model: Any, codes: np.ndarray, continuous: np.ndarray, step: int = 512
) -> np.ndarray:
    """Logits from onnxruntime; int8 uses ``step=1`` as served (its activation scale is per batch)."""
    return np.concatenate(
        [
            model.run({"codes": codes[i : i + step], "continuous": continuous[i : i + step]})
            for i in range(0, len(codes), step)
        ]
    ).astype(float)


def _compression_entry(
    run: _Run,
    kind: str,
    oof: np.ndarray,
    oof_fp32: np.ndarray,
    oof_int8: np.ndarray,
    parities: list[float],
    sizes: list[tuple[int, int]],
) -> dict[str, Any]:
    import torch

    from predictions.ml.export import OnnxModel, accept_int8, median_latency_ms
    from predictions.ml.timeline.training import torch_threads

    assert run.latency_example is not None  # noqa: S101 - set by the first fold
    net, fp32, int8, codes, continuous = run.latency_example
    samples = [
        (codes[i : i + 1], continuous[i : i + 1]) for i in range(min(LATENCY_SAMPLES, len(codes)))
    ]
    fp32_model, int8_model = OnnxModel(fp32), OnnxModel(int8)

    def torch_call(sample: tuple[np.ndarray, np.ndarray]) -> Any:
        with torch.no_grad():
            return net(torch.as_tensor(sample[0]), torch.as_tensor(sample[1]))

    with torch_threads():
        torch_ms = median_latency_ms(torch_call, samples)
    auc_torch, auc_fp32, auc_int8 = _auc(run.y, oof), _auc(run.y, oof_fp32), _auc(run.y, oof_int8)
    accepted, reason = accept_int8(auc_fp32, auc_int8)
    return {
        "model": kind,
        "onnx_fp32_bytes": int(np.mean([s[0] for s in sizes])),
        "onnx_int8_bytes": int(np.mean([s[1] for s in sizes])),
        "latency_ms": {
            "torch": round(torch_ms, 3),
            "onnxruntime": round(
                median_latency_ms(
                    lambda s: fp32_model.run({"codes": s[0], "continuous": s[1]}), samples
                ),
                3,
            ),
            "onnxruntime_int8": round(
                median_latency_ms(
                    lambda s: int8_model.run({"codes": s[0], "continuous": s[1]}), samples
                ),
                3,
            ),
            "what": "median of single-sequence predictions (no explanation), one thread",
        },
        "parity_max_abs_logit_difference": max(parities),
        "auc": {"torch": auc_torch, "onnxruntime": auc_fp32, "onnxruntime_int8": auc_int8},
        "auc_drop_int8": auc_fp32 - auc_int8,
        "int8_accepted": accepted,
        "int8_decision": reason,
        "where": "out-of-fold predictions of every cross-validation fold's network",
    }


# -- selection and refit ------------------------------------------------------------------------
def select_models(
    entries: list[dict[str, Any]], *, baseline_added: bool = False
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(baseline entry, selected entry, selection summary) from the models' report entries.

    Each entry has ``name``, ``family`` ("count" or "sequence") and ``metrics`` with ``log_loss``,
    ``roc_auc`` and ``roc_auc_ci``.
    """
    by_loss = lambda e: e["metrics"]["log_loss"]  # noqa: E731 - a sort key
    counts = [e for e in entries if e["family"] == "count"]
    sequences = [e for e in entries if e["family"] == "sequence"]
    baseline = min(counts, key=by_loss)
    summary: dict[str, Any] = {"rule": SELECTION_RULE, "baseline_added": baseline_added}
    if not sequences:
        summary["reason"] = "no sequence model was trained: the baseline serves"
        return baseline, baseline, summary
    best = min(sequences, key=by_loss)
    lo, _ = best["metrics"]["roc_auc_ci"]
    _, base_hi = baseline["metrics"]["roc_auc_ci"]
    summary["best_sequence_model"] = best["name"]
    if lo is not None and base_hi is not None and lo > base_hi:
        summary["reason"] = (
            f"{best['name']} beats the baseline {baseline['name']} beyond CI overlap "
            f"(AUC CI lower bound {lo:.3f} > baseline upper bound {base_hi:.3f})"
        )
        summary["sequence_beats_baseline"] = True
        return baseline, best, summary
    summary["sequence_beats_baseline"] = False
    summary["reason"] = (
        f"no sequence model beats the baseline beyond CI overlap (best: {best['name']}, AUC "
        f"{best['metrics']['roc_auc']:.3f} CI {_ci(best)}; baseline {baseline['name']} AUC "
        f"{baseline['metrics']['roc_auc']:.3f} CI {_ci(baseline)}): the baseline is selected"
    )
    return baseline, baseline, summary


def _ci(entry: dict[str, Any]) -> str:
    lo, hi = entry["metrics"]["roc_auc_ci"]
    return "n/a" if lo is None else f"[{lo:.3f}, {hi:.3f}]"


def _build_model(run: _Run, name: str, *, int8: bool) -> tuple[ForecastModel, dict[str, Any]]:
    """``name`` fitted on every label as a servable :class:`ForecastModel` (+ its training log)."""
    from predictions.ml.export import OnnxModel, export_onnx, quantize_int8

    every = np.arange(len(run.y))
    run.say(f"fitting {name} on all labels", 90)
    log: dict[str, Any] = {}
    tuned_net: Any = None
    if name in COUNT_MODELS:
        featurizer, fitted, params = _fit_count(run, name, every)
        model = ForecastModel(name=name, family="count", params=params)
        model.count_featurizer, model.count_model = featurizer, fitted
    else:
        net, calibrator, log = _finetune(run, name, every)
        tuned_net = net
        assert run.codes is not None  # noqa: S101
        assert run.continuous is not None  # noqa: S101
        example = {"codes": run.codes[:2], "continuous": run.continuous[:2]}
        fp32 = export_onnx(net, example, output_name="logit")
        model = ForecastModel(
            name=name,
            family="sequence",
            params={"dim": run.options.dim, "max_len": run.options.max_len},
            token_encoder=run.encoder,
            calibrator=calibrator,
            onnx=OnnxModel(fp32),
        )
        if int8:
            model.onnx_int8, model.serve_int8 = OnnxModel(quantize_int8(fp32)), True
    embedder_kind = name if run.pretrained.get(name) is not None else _best_pretrained(run)
    if embedder_kind is not None:
        model.embedder = _embedder(run, embedder_kind)
    model.weights = _kept_weights(run, name, tuned_net)
    return model, log


def _kept_weights(run: _Run, name: str, tuned: Any) -> TimelineWeights | None:
    """Every pretrained encoder of the run, and the selected network's fine-tuned weights."""
    if run.encoder is None:
        return None
    from predictions.ml.timeline.training import NetConfig, net_weights

    pretrained = {
        kind: net_weights(net, NetConfig(kind, dim=run.options.dim), run.encoder, "pretrained")
        for kind, net in run.pretrained.items()
        if net is not None
    }
    finetuned = None
    if tuned is not None:
        parent = pretrained[name].checksum if name in pretrained else ""
        finetuned = net_weights(
            tuned, NetConfig(name, dim=run.options.dim), run.encoder, "finetuned", parent=parent
        )
    if not pretrained and finetuned is None:
        return None
    return TimelineWeights(pretrained=pretrained, finetuned=finetuned)


def _select_and_refit(run: _Run) -> ForecastResult:
    baseline, selected, summary = select_models(run.entries, baseline_added=run.baseline_added)
    name = selected["name"]
    entry = next((c for c in run.compression if c["model"] == name), None)
    model, log = _build_model(run, name, int8=entry is not None and entry["int8_accepted"])
    if log:
        summary["final_finetune"] = log
    model.risk_bins = risk_table(run.oof[name], run.y)
    report = _report(run, baseline, selected, summary, model)
    model.metadata = {
        "library_versions": library_versions(),
        "metrics": selected["metrics"],
        "baseline": {"name": baseline["name"], "metrics": baseline["metrics"]},
        "selection": summary,
        "dataset": report["dataset"],
    }
    run.say("done", 100)
    return ForecastResult(model=model, report=report, out_of_fold=run.oof, labels=run.y)


def fit_forecast_model(
    events: Any,
    labels: Any,
    algorithm: str,
    options: ForecastOptions | None = None,
    progress: Progress | None = None,
) -> tuple[ForecastModel, dict[str, Any]]:
    """Pretrain (sequence models) and fit ``algorithm`` on every label, without cross-validation.

    For refits of an already validated choice (a nightly fine-tune, the timing benchmark); the
    returned model serves float32 (int8 is only accepted through :func:`train_forecast`'s test
    folds) and has no risk interval table. Returns the model and a log with the timings.
    """
    options = options or ForecastOptions()
    started = time.perf_counter()
    run = _Run(
        events, labels, ForecastOptions(**{**options.__dict__, "algorithms": [algorithm]}), progress
    )
    timings: dict[str, Any] = {}
    if algorithm in SEQUENCE_MODELS:
        _prepare_sequences(run)
        timings["pretraining"] = run.pretrain_logs[algorithm]
    model, log = _build_model(run, algorithm, int8=False)
    timings["finetune"] = log
    timings["seconds"] = round(time.perf_counter() - started, 1)
    model.metadata = {"library_versions": library_versions(), "fit": timings}
    return model, timings


def _best_pretrained(run: _Run) -> str | None:
    ranked = sorted(
        (
            e
            for e in run.entries
            if e["family"] == "sequence" and run.pretrained.get(e["name"]) is not None
        ),
        key=lambda e: e["metrics"]["log_loss"],
    )
    if ranked:
        return str(ranked[0]["name"])
    return next((k for k, net in run.pretrained.items() if net is not None), None)


def _embedder(run: _Run, kind: str) -> TimelineEmbedder:
    from predictions.ml.export import OnnxModel, export_onnx
    from predictions.ml.timeline.networks import EmbeddingHead

    assert run.encoder is not None  # noqa: S101
    assert run.codes is not None  # noqa: S101
    assert run.continuous is not None  # noqa: S101
    head = EmbeddingHead(run.pretrained[kind])
    onnx = export_onnx(
        head, {"codes": run.codes[:2], "continuous": run.continuous[:2]}, output_name="embedding"
    )
    return TimelineEmbedder(kind=kind, encoder=run.encoder, onnx=OnnxModel(onnx))


def _report(
    run: _Run,
    baseline: dict[str, Any],
    selected: dict[str, Any],
    summary: dict[str, Any],
    model: ForecastModel,
) -> dict[str, Any]:
    positives = int(run.y.sum())
    report: dict[str, Any] = {
        "dataset": {
            "subjects": len(run.timelines.subjects),
            "events": int(run.timelines.n_events),
            "labels": len(run.y),
            "positive_labels": positives,
            "prevalence": positives / len(run.y),
            "labelled_subjects": len(np.unique(run.groups)),
            "visible_events": int((run.histories.stop - run.histories.start).sum()),
        },
        "task": "binary",
        "classes": CLASSES,
        "cv": {
            "folds": len(run.folds),
            "seed": run.options.seed,
            "grouped_by": "subject_id",
            "stratified": True,
        },
        "models": run.entries,
        "baseline": {"name": baseline["name"], "metrics": baseline["metrics"]},
        "selected": {
            "name": selected["name"],
            "family": selected["family"],
            "metrics": selected["metrics"],
            "selection_rule": SELECTION_RULE,
            "selection": summary,
        },
        "visibility": "only events strictly before each label's prediction_time (and static facts)",
    }
    if run.sequence:
        report["pretraining"] = {
            "objective": "next-visit code prediction (soft cross-entropy over the codes recorded at "
            "the next time, from the state after each visit)",
            "corpus": "every subject's events before its earliest prediction time; whole timeline "
            "for subjects without labels",
            "corpus_events": run.corpus_events,
            "epochs_requested": run.options.pretrain_epochs,
            "per_model": run.pretrain_logs,
            "vocabulary_size": run.encoder.vocabulary_size if run.encoder else 0,
            "max_len": run.options.max_len,
        }
    if run.compression:
        report["compression"] = run.compression
        report["serving"] = {
            "runtime": "onnxruntime" if model.family == "sequence" else "numpy/scikit-learn",
            "int8": model.serve_int8,
        }
    report["embeddings"] = (
        {"from": model.embedder.kind, "dimension": 2 * run.options.dim}
        if model.embedder is not None
        else None
    )
    report["risk_bins"] = model.risk_bins
    report["seconds"] = round(time.perf_counter() - run.started, 1)
    return report
