"""Training and serving: the API the Celery tasks and the command line build on.

``train`` cleans the frame, splits it into patient-grouped stratified folds, and for every outer
fold fits the featuriser and each learner on the training part only (hyper-parameters by grouped
inner cross-validation, calibration on the inner out-of-fold scores). The outer out-of-fold
probabilities give honest metrics; the learner with the lowest out-of-fold log loss is selected
and refitted the same way on all rows. ``TrainedModel`` is what gets saved and served.
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.metrics import log_loss
from threadpoolctl import threadpool_limits

from predictions.ml.algorithms import ALGORITHMS, Algorithm, get_algorithms
from predictions.ml.calibration import CalibratedModel, aligned_scores, fit_calibrator
from predictions.ml.dataset import (
    CleanData,
    ColumnPlan,
    apply_plans,
    check_folds,
    clean,
    clean_record,
    is_missing,
)
from predictions.ml.errors import DataError
from predictions.ml.evaluate import age_band, evaluate_predictions
from predictions.ml.explain import (
    TEXT_WORDS,
    Explainer,
    global_importance,
    linear_text_words,
    occlusion_text_words,
)
from predictions.ml.features import REPRESENTATIONS, Featurizer, n_rows
from predictions.ml.split import grouped_folds

Progress = Callable[[str, int], None]

INNER_FOLDS = 3
# Abstain when more than this share of the structured inputs (numeric + categorical) is missing.
MAX_MISSING_SHARE = 0.5
# "Far outside the training range": beyond min/max by more than this share of the training span.
RANGE_MARGIN = 0.5
TOP_CONTRIBUTIONS = 8
# Free-text representations tried unless the caller names others: the word block (English words,
# jieba's Chinese words, negation terms) and word + character n-grams for the sparse learners,
# the capped word block for dense ones, token sequences for the neural models. "char" alone and
# the sentence encoder are opt-in: together they would triple a 10-fold run's time.
DEFAULT_REPRESENTATIONS = ("word", "word+char", "word-top", "sequence")
# Rows x classes above which, with free text, the default set leaves out the learners marked
# ``costly_with_text`` (1,200 texts x 24 classes: minutes each, against seconds for the rest).
COSTLY_TEXT_WORK = 10_000
# Ordering bias: a lab is measured when a clinician already suspects the condition, so "troponin
# not measured" goes with "not MI" in the records, and a model learns it (then misses every MI at
# the front door, before anything is ordered). This share of training rows (drawn afresh per fit,
# seeded) has every order-driven value removed, so the model also learns each condition as it
# presents before any lab, from the complaint, vitals and demographics, and a missing lab loses
# most of its weight (troponin missing on 52 % of MIs instead of 5 %). Evaluation rows are never
# masked. On the demo data (5 folds, logistic regression) 0.75 cost 2.4 points of top-1 against
# 0.5, with the same vignette results.
FRONT_DOOR_SHARE = 0.5
# Fits run single-threaded: workers already run in parallel processes, and OpenMP threads that
# spin-wait for a busy core turned a 7 s gradient-boosting fit into 130 s on a 2-core machine.
FIT_THREADS = 1


@dataclass
class ModelSpec:
    """What to learn and from which columns (None = infer the column kinds from the data)."""

    target: str
    group: str | None = None
    numeric: list[str] | None = None
    categorical: list[str] | None = None
    text: list[str] = field(default_factory=list)
    positive: list[Any] | None = None
    subgroup_columns: dict[str, str] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    # Possible (low, high) per column, from the caller's clinical catalogue (see dataset.clean).
    plausible: dict[str, tuple[float, float]] = field(default_factory=dict)
    # Numeric columns measured only when a clinician orders them (labs). Their absence is the
    # clinician's decision, not a finding: training also sees the front-door view of visits, with
    # these columns removed (see FRONT_DOOR_SHARE).
    order_driven: list[str] = field(default_factory=list)
    front_door_share: float = FRONT_DOOR_SHARE
    # Columns recorded after the front door (the doctor's history of the illness; body
    # measurements taken in a clinic room, not at triage): the same front-door rows have them
    # removed (text blanked), so the complaint and triage vitals also carry each class on their
    # own. Without it, a class whose history is always written alike (a clinic's follow-up
    # template) was learned from the history, and "not weighed" stood for "not a clinic patient".
    recorded_later: list[str] = field(default_factory=list)

    def front_door_columns(self, present: Any) -> tuple[str, ...]:
        """The columns a front-door view removes, of those ``present`` (the data's plans)."""
        return tuple(c for c in [*self.order_driven, *self.recorded_later] if c in present)


@dataclass
class Prediction:
    """One visit's calibrated advice with its explanation and abstention verdict."""

    probabilities: dict[str, float]
    ranked: list[tuple[str, float]]
    abstain: bool
    abstain_reason: str | None
    contributions: list[dict[str, Any]]
    scale: str
    baseline: float
    output: float
    predicted: str
    # Free text: the words that drove the predicted class, as written (for highlighting).
    text: dict[str, Any] | None = None
    # Each reason on its own (``abstain_reason`` joins them for display).
    abstain_reasons: list[str] = field(default_factory=list)


@dataclass
class FittedLearner:
    """One learner after grouped hyper-parameter search and calibration."""

    model: CalibratedModel
    params: dict[str, Any]
    search: list[dict[str, Any]]
    training_rows: int


def fit_learner(
    algorithm: Algorithm,
    X: np.ndarray,
    codes: np.ndarray,
    groups: np.ndarray,
    n_classes: int,
    *,
    seed: int = 0,
    inner_folds: int = INNER_FOLDS,
    max_search_rows: int | None = None,
) -> FittedLearner:
    """Grid search by grouped CV on (X, codes) only, Platt/temperature calibration, refit on all.

    ``max_search_rows`` bounds the search (and calibration) to a stratified subsample on large
    data; the chosen learner is still refitted on every row (SVM: up to its own row cap).
    """
    with threadpool_limits(limits=FIT_THREADS):
        return _fit_learner(
            algorithm,
            X,
            codes,
            groups,
            n_classes,
            seed=seed,
            inner_folds=inner_folds,
            max_search_rows=max_search_rows,
        )


def _stratified_subsample(codes: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Row indices: the same share of every class, at least one row of each."""
    rng = np.random.default_rng(seed)
    share = size / len(codes)
    return np.sort(
        np.concatenate(
            [
                rng.choice(members, size=max(1, round(len(members) * share)), replace=False)
                for members in (np.flatnonzero(codes == c) for c in np.unique(codes))
            ]
        )
    )


def _fit_estimator(
    algorithm: Algorithm,
    params: dict[str, Any],
    seed: int,
    X: np.ndarray,
    codes: np.ndarray,
    groups: np.ndarray,
) -> Any:
    """Build and fit one estimator, passing patient groups to learners that split internally."""
    estimator = algorithm.build(params, seed)
    if algorithm.fit_takes_groups:
        return estimator.fit(X, codes, groups=groups)
    return estimator.fit(X, codes)


def _fit_learner(
    algorithm: Algorithm,
    X: np.ndarray,
    codes: np.ndarray,
    groups: np.ndarray,
    n_classes: int,
    *,
    seed: int,
    inner_folds: int,
    max_search_rows: int | None,
) -> FittedLearner:
    rows = np.arange(n_rows(X))
    if algorithm.max_train_rows is not None and n_rows(X) > algorithm.max_train_rows:
        rows = _stratified_subsample(codes, algorithm.max_train_rows, seed)
    search_rows = rows
    if max_search_rows is not None and len(rows) > max_search_rows:
        search_rows = rows[_stratified_subsample(codes[rows], max_search_rows, seed)]
    Xs, ys, gs = X[search_rows], codes[search_rows], groups[search_rows]
    classes = np.arange(n_classes)
    splits = grouped_folds(ys, gs, inner_folds, seed)
    search: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any], Any] | None = None
    for params in algorithm.grid_for(sparse.issparse(X)):
        oof = np.zeros(n_rows(Xs)) if n_classes == 2 else np.zeros((n_rows(Xs), n_classes))
        for train_idx, val_idx in splits:
            estimator = _fit_estimator(
                algorithm, params, seed, Xs[train_idx], ys[train_idx], gs[train_idx]
            )
            oof[val_idx] = aligned_scores(estimator, Xs[val_idx], classes)
        calibrator = fit_calibrator(oof, ys)
        loss = float(log_loss(ys, calibrator.probabilities(oof), labels=list(classes)))
        search.append({"params": params, "cv_log_loss": loss})
        if best is None or loss < best[0]:
            best = (loss, params, calibrator)
    assert best is not None  # noqa: S101 - every algorithm has a non-empty grid
    _, params, calibrator = best
    estimator = _fit_estimator(algorithm, params, seed, X[rows], codes[rows], groups[rows])
    return FittedLearner(CalibratedModel(estimator, calibrator, classes), params, search, len(rows))


@dataclass
class TrainedModel:
    """A fitted, calibrated model ready to serve; pickled whole into the artifact."""

    algorithm: str
    params: dict[str, Any]
    classes: list[str]
    task: str
    featurizer: Featurizer
    model: CalibratedModel
    metadata: dict[str, Any] = field(default_factory=dict)
    max_missing_share: float = MAX_MISSING_SHARE
    range_margin: float = RANGE_MARGIN
    min_confidence: float | None = None
    # Inputs recorded on most training rows; labs ordered only sometimes are not expected, so
    # their absence is no reason to abstain.
    usual_inputs: list[str] = field(default_factory=list)
    _explainer: Explainer | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_explainer"] = None  # rebuilt on first use; keeps the artifact small
        return state

    @property
    def feature_schema(self) -> dict[str, Any]:
        return self.featurizer.schema()

    @property
    def plans(self) -> dict[str, ColumnPlan]:
        return self.featurizer.plans

    @property
    def explainer(self) -> Explainer:
        if self._explainer is None:
            method = ALGORITHMS[self.algorithm].explain
            self._explainer = Explainer(self.model, self.featurizer, method, self.classes)
        return self._explainer

    def prepare(self, record: dict[str, Any]) -> np.ndarray:
        """Record -> (1, d) feature row (cleaning + featurising, no model)."""
        return self.featurizer.transform_record(clean_record(record, self.plans))

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities (n, k) for every row, columns in ``classes`` order."""
        if frame.empty:
            return np.zeros((0, len(self.classes)))
        return self.model.predict_proba(self.featurizer.transform(apply_plans(frame, self.plans)))

    def predict_one(
        self,
        record: dict[str, Any],
        top_k: int = TOP_CONTRIBUTIONS,
        *,
        explain_text: bool = True,
        fast: bool = True,
    ) -> Prediction:
        """Calibrated probabilities, ranking, explanation and abstention for one visit.

        ``explain_text=False`` skips the word-level explanation of free text (the synchronous
        API returns feature contributions only, and word occlusion costs one scoring per word).
        ``fast``: a logistic regression is scored and explained in numpy
        (:mod:`predictions.ml.linear_serving`; the same numbers as scikit-learn's to 1e-9);
        False takes scikit-learn's predictor (tests compare the two).
        """
        cleaned = clean_record(record, self.plans)
        row = self.featurizer.transform_record(cleaned)
        linear = self.explainer.linear_serving if fast else None
        if linear is not None:
            proba = linear.probabilities(row[0])
        else:
            proba = self.model.predict_proba(row)[0]
        order = np.argsort(-proba, kind="stable")
        predicted = int(order[0])
        explanation = self.explainer.explain(row, predicted, fast=fast)
        top = sorted(explanation.contributions.items(), key=lambda kv: -abs(kv[1]))[:top_k]
        contributions = [
            {"feature": name, "value": _display(cleaned.get(name)), "contribution": value}
            for name, value in top
        ]
        reasons = self._abstention_reasons(record, cleaned, float(proba[predicted]))
        probabilities = {c: float(p) for c, p in zip(self.classes, proba, strict=True)}
        return Prediction(
            probabilities=probabilities,
            ranked=[(self.classes[i], float(proba[i])) for i in order],
            abstain=bool(reasons),
            abstain_reason="; ".join(reasons) if reasons else None,
            contributions=contributions,
            scale=explanation.scale,
            baseline=explanation.baseline,
            output=explanation.output,
            predicted=self.classes[predicted],
            text=self.explain_text(cleaned, row, predicted) if explain_text else None,
            abstain_reasons=reasons,
        )

    def explain_text(self, cleaned: dict[str, Any], row: Any, target: int) -> dict[str, Any] | None:
        """The words of the free text that drove class ``target``, in the language written.

        Linear models: exact (each present term's contribution on the calibrated logit, shared
        among the words it spans). Other models, the neural ones included: occlusion (the drop in
        the calibrated probability when one word is deleted). Each word carries its place in the
        text (``start``/``end``) so a page can highlight it, and whether it was negated.
        """
        from predictions.ml.text import detect_language

        featurizer = self.featurizer
        if not featurizer.text:
            return None
        texts = {c: str(cleaned.get(c) or "") for c in featurizer.text}
        per_feature = None
        if not featurizer.is_sequence:
            per_feature = self.explainer.linear_terms(row, target)
        if per_feature is not None:
            words, terms = linear_text_words(featurizer, per_feature, row, texts)
            method = (
                "exact: the linear model's term contributions, shared among the words they span"
            )
            scale = self.explainer.scale_for(target)
        else:

            def score(variants: list[dict[str, str]]) -> np.ndarray:
                frame = pd.DataFrame([{**cleaned, **v} for v in variants], columns=list(self.plans))
                return self.model.predict_proba(featurizer.transform(frame))[:, target]

            words, terms = occlusion_text_words(texts, score, featurizer.text), []
            method = "occlusion: the drop in probability when the word alone is deleted"
            scale = f"calibrated probability of {self.classes[target]!r}"
        return {
            "target": self.classes[target],
            "method": method,
            "scale": scale,
            "languages": {c: detect_language(t) for c, t in texts.items() if t},
            "words": words[:TEXT_WORDS],
            "terms": terms[:TEXT_WORDS],
        }

    def _abstention_reasons(
        self, record: dict[str, Any], cleaned: dict[str, Any], confidence: float
    ) -> list[str]:
        reasons: list[str] = []
        expected = self.usual_inputs
        missing = [n for n in expected if _is_blank(cleaned[n])]
        if expected and len(missing) / len(expected) > self.max_missing_share:
            reasons.append(
                f"{len(missing)} of {len(expected)} usually recorded inputs are missing "
                f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})"
            )
        featurizer = self.featurizer
        for i, name in enumerate(featurizer.numeric):
            value = cleaned[name]
            raw = record.get(name)
            if math.isnan(value):
                plan = self.plans[name]
                if plan.plausible is not None and not is_missing(raw):
                    reasons.append(f"{name} = {raw} is physiologically impossible (ignored)")
                continue
            low, high = featurizer.train_min[i], featurizer.train_max[i]
            margin = self.range_margin * max(high - low, 1e-9)
            if value < low - margin or value > high + margin:
                reasons.append(
                    f"{name} = {value:g} is far outside the training range {low:g} to {high:g}"
                )
        if self.min_confidence is not None and confidence < self.min_confidence:
            reasons.append(
                f"top probability {confidence:.2f} is below the confidence floor {self.min_confidence:.2f}"
            )
        return reasons


def _is_blank(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def usual_inputs(frame: pd.DataFrame, plans: dict[str, ColumnPlan]) -> list[str]:
    """Structured input columns present on at least half of the training rows."""
    return [
        name
        for name, plan in plans.items()
        if plan.kind != "text" and frame[name].map(_is_blank).mean() < MAX_MISSING_SHARE
    ]


def _display(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and len(value) > 80:
        return value[:77] + "..."
    return value


@dataclass
class TrainResult:
    model: TrainedModel
    report: dict[str, Any]
    plots: dict[str, Path] = field(default_factory=dict)
    oof_probabilities: np.ndarray | None = None
    labels: np.ndarray | None = None


def library_versions() -> dict[str, str]:
    """Versions of every library whose objects live inside an artifact."""
    import joblib
    import scipy
    import sklearn

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "joblib": joblib.__version__,
    }
    torch = installed_version("torch", "torch")
    if torch is not None:
        versions["torch"] = torch
    return versions


def installed_version(module: str, distribution: str) -> str | None:
    """``module.__version__`` if it is imported, else the installed ``distribution``'s metadata.

    The same string either way, without importing the package (importing torch only to read its
    version cost every training process seconds); None when it is not installed.
    """
    loaded = sys.modules.get(module)
    if loaded is not None:
        return str(loaded.__version__)
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - declared dependencies
        return None


def _subgroups(raw: pd.DataFrame, spec: ModelSpec, index: pd.Index) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, column in spec.subgroup_columns.items():
        if column not in raw.columns:
            continue
        values = raw.loc[index, column]
        if "age" in name.lower() or "age" in column.lower():
            out[f"{name}_band" if not name.endswith("band") else name] = np.array(
                [age_band(_number_or_none(v)) for v in values]
            )
        else:
            out[name] = np.array(
                ["unknown" if is_missing(v) else str(v).strip().lower() for v in values]
            )
    return out


def _number_or_none(value: Any) -> float | None:
    from predictions.ml.dataset import to_number

    number = to_number(value)
    return None if math.isnan(number) else number


def candidate_representations(algorithm: Algorithm, has_text: bool, encoder_ok: bool) -> list[str]:
    """The text representations ``algorithm`` is cross-validated with (one when no text)."""
    if not has_text:
        return ["word"]
    names = [r for r in algorithm.text_representations if r in REPRESENTATIONS]
    if not encoder_ok:
        names = [r for r in names if not REPRESENTATIONS[r].encoder]
    return names or ["word-top"]


def front_door_view(
    frame: pd.DataFrame, columns: Sequence[str], share: float, seed: int
) -> pd.DataFrame:
    """``frame`` with every value of ``columns`` removed on a random ``share`` of its rows (the
    visit as seen before any of them was ordered); the same seed masks the same rows."""
    present = [c for c in columns if c in frame.columns]
    if not present or share <= 0 or frame.empty:
        return frame
    rng = np.random.default_rng(seed)
    rows = rng.random(len(frame)) < share
    masked = frame.copy()
    # Free text (object or string dtype) is blanked, not made missing: "" is "nothing written".
    texts = [c for c in present if not pd.api.types.is_numeric_dtype(masked[c])]
    numbers = [c for c in present if c not in texts]
    if numbers:
        masked.loc[rows, numbers] = np.nan
    if texts:
        masked.loc[rows, texts] = ""
    return masked


def _english_share(frame: pd.DataFrame, text_columns: list[str]) -> dict[str, int]:
    from predictions.ml.text import detect_language

    counts: Counter[str] = Counter()
    for name in text_columns:
        for doc in frame[name]:
            if doc:
                counts[detect_language(str(doc))] += 1
    return {"en": counts.get("en", 0), "zh": counts.get("zh", 0)}


def train(
    frame: pd.DataFrame,
    spec: ModelSpec,
    algorithms: Sequence[str] | None = None,
    cv: int = 5,
    seed: int = 0,
    progress: Progress | None = None,
    out_dir: Path | None = None,
    *,
    inner_folds: int = INNER_FOLDS,
    n_bootstrap: int = 200,
    representations: Sequence[str] | None = None,
) -> TrainResult:
    """Clean, split by patient, search, calibrate, evaluate out-of-fold, select and refit.

    Every learner is cross-validated with each free-text representation it can take
    (``representations`` narrows them); per learner the representation with the lowest
    out-of-fold log loss stands for it, and the lowest log loss overall is selected.
    """
    report_progress = progress or (lambda stage, percent: None)
    chosen = get_algorithms(list(algorithms) if algorithms is not None else None)
    check_folds(cv)
    report_progress("cleaning", 0)
    data = clean(
        frame,
        target=spec.target,
        group=spec.group,
        positive=spec.positive,
        numeric=spec.numeric,
        categorical=spec.categorical,
        text=spec.text or None,
        exclude=spec.exclude,
        plausible=spec.plausible,
    )
    classes = data.classes
    code_of = {c: i for i, c in enumerate(classes)}
    codes = np.array([code_of[v] for v in data.labels])
    k = len(classes)
    task = "binary" if k == 2 else "multiclass"
    subgroups = _subgroups(frame.reset_index(drop=True), spec, data.raw_index)
    outer = grouped_folds(codes, data.groups, cv, seed)

    text_columns = [n for n, p in data.plans.items() if p.kind == "text"]
    has_text = bool(text_columns)
    languages = _english_share(data.frame, text_columns) if has_text else {}
    from predictions.ml import encoder

    encoder_status = encoder.status() if has_text else {}
    # The encoder is English-only: it is tried when most texts are English and it is installed.
    english_mostly = bool(languages) and languages["en"] >= languages["zh"]
    asked = representations is not None and any(
        REPRESENTATIONS[r].encoder for r in representations if r in REPRESENTATIONS
    )
    encoder_ok = bool(encoder_status.get("available")) and english_mostly and asked
    if has_text:
        encoder_status = {**encoder_status, "tried": encoder_ok}
        if not encoder_status["available"]:
            encoder_status["why_not"] = encoder_status["reason"]
        elif not english_mostly:
            encoder_status["why_not"] = "most texts are not English (the encoder is English-only)"
        elif not asked:
            encoder_status["why_not"] = (
                "opt-in (--text-representations word+char+encoder): embedding every text "
                "costs more than the default one-minute budget allows"
            )
    unknown = [r for r in representations or () if r not in REPRESENTATIONS]
    if unknown:
        raise DataError(
            f"unknown text representation {unknown[0]!r}; choose from: {', '.join(REPRESENTATIONS)}"
        )
    wanted = tuple(representations) if representations is not None else DEFAULT_REPRESENTATIONS
    skipped: dict[str, str] = {}
    if has_text and algorithms is None and len(codes) * k > COSTLY_TEXT_WORK:
        for algorithm in chosen:
            if algorithm.costly_with_text:
                skipped[algorithm.name] = (
                    f"left out of the default set on free text with {len(codes)} rows x {k} "
                    "classes (minutes per fold at this size); "
                    "name it in --algorithms to include it"
                )
        chosen = [a for a in chosen if a.name not in skipped]
    pairs: list[tuple[Algorithm, str]] = []
    for algorithm in chosen:
        if algorithm.needs_text and not has_text:
            skipped[algorithm.name] = "reads free text and the data has none"
            continue
        options = candidate_representations(algorithm, has_text, encoder_ok)
        picked = [r for r in options if r in wanted] if has_text else options
        for name in picked or options[:1]:
            pairs.append((algorithm, name))
    if not pairs:
        raise DataError(f"no learner takes the text representations {list(representations or [])}")
    needed = list(dict.fromkeys(r for _, r in pairs))

    oof = {(a.name, r): np.zeros((len(codes), k)) for a, r in pairs}
    params_per_fold: dict[tuple[str, str], list[dict[str, Any]]] = {
        (a.name, r): [] for a, r in pairs
    }
    total_steps = len(outer) * len(pairs) + 1
    step = 0
    order_driven = spec.front_door_columns(data.plans)
    front_door_share = spec.front_door_share if order_driven else 0.0
    for fold, (train_idx, test_idx) in enumerate(outer):
        designs: dict[str, tuple[Any, Any]] = {}
        block_cache: dict[tuple[Any, ...], Any] = {}
        fold_train = front_door_view(
            data.frame.iloc[train_idx], order_driven, front_door_share, seed + fold
        )
        for name in needed:
            featurizer = Featurizer(data.plans, representation=name).fit(fold_train, block_cache)
            designs[name] = (
                featurizer.transform(fold_train),
                featurizer.transform(data.frame.iloc[test_idx]),
            )
        for algorithm, name in pairs:
            X_train, X_test = designs[name]
            label = f"{algorithm.name} [{name}]" if has_text else algorithm.name
            report_progress(f"fold {fold + 1}/{len(outer)}: {label}", int(90 * step / total_steps))
            fitted = fit_learner(
                algorithm,
                X_train,
                codes[train_idx],
                data.groups[train_idx],
                k,
                seed=seed,
                inner_folds=inner_folds,
            )
            oof[(algorithm.name, name)][test_idx] = fitted.model.predict_proba(X_test)
            params_per_fold[(algorithm.name, name)].append(fitted.params)
            step += 1

    report_progress("evaluating", 90)
    scored: list[dict[str, Any]] = []
    for algorithm, name in pairs:
        proba = oof[(algorithm.name, name)]
        loss = float(log_loss(codes, np.clip(proba, 1e-15, 1), labels=list(range(k))))
        top = np.argsort(-proba, axis=1)[:, :3]
        scored.append(
            {
                "algorithm": algorithm.name,
                "representation": name,
                "log_loss": loss,
                "accuracy": float((proba.argmax(axis=1) == codes).mean()),
                "top3_accuracy": float((top == codes[:, None]).any(axis=1).mean())
                if k > 2
                else None,
            }
        )
    best_representation = {
        a.name: min((e for e in scored if e["algorithm"] == a.name), key=lambda e: e["log_loss"])[
            "representation"
        ]
        for a in chosen
        if any(e["algorithm"] == a.name for e in scored)
    }
    models = []
    for algorithm in chosen:
        if algorithm.name not in best_representation:
            continue
        key = (algorithm.name, best_representation[algorithm.name])
        metrics = evaluate_predictions(
            data.labels,
            oof[key],
            classes,
            subgroups=subgroups,
            n_bootstrap=n_bootstrap,
            seed=seed,
        )
        runs = params_per_fold[key]
        common = Counter(repr(sorted(p.items())) for p in runs)
        most_common = next(
            p for p in runs if repr(sorted(p.items())) == common.most_common(1)[0][0]
        )
        entry: dict[str, Any] = {
            "name": algorithm.name,
            "params": most_common,
            "params_per_fold": runs,
            "metrics": metrics,
            "explanation_method": algorithm.explain,
        }
        if has_text:
            entry["text_representation"] = key[1]
            entry["text_representations"] = [
                {k_: v for k_, v in e.items() if k_ != "algorithm"}
                for e in scored
                if e["algorithm"] == algorithm.name
            ]
        if algorithm.max_train_rows is not None:
            entry["max_train_rows"] = algorithm.max_train_rows
        if algorithm.notes:
            entry["notes"] = algorithm.notes
        models.append(entry)
    selected_entry = min(models, key=lambda m: m["metrics"]["log_loss"])
    selected = ALGORITHMS[selected_entry["name"]]
    selected_representation = best_representation[selected.name]

    report_progress(f"refitting {selected.name} on all data", 93)
    model, fitted, X_all = _refit(
        data,
        codes,
        selected,
        selected_representation,
        order_driven=order_driven,
        front_door_share=front_door_share,
        seed=seed,
        inner_folds=inner_folds,
    )
    featurizer = model.featurizer
    importance = global_importance(model.explainer, X_all, codes, seed=seed)
    report: dict[str, Any] = {
        "dataset": {
            "rows": data.report.rows_in,
            "columns": data.report.columns_in,
            "rows_used": data.report.rows_out,
            "features": featurizer.n_features,
            "patients": len(np.unique(data.groups)),
            "cleaning": data.report.to_dict(),
            "data_hash": data.data_hash,
        },
        "task": task,
        "classes": classes,
        "cv": {
            "folds": len(outer),
            "seed": seed,
            "inner_folds": inner_folds,
            "grouped_by": spec.group or "row (each row its own patient)",
            "stratified": True,
        },
        "models": models,
        "skipped": skipped,
        "selected": {
            "name": selected.name,
            "params": fitted.params,
            "metrics": selected_entry["metrics"],
            "selection_rule": "lowest out-of-fold log loss of calibrated probabilities",
            "final_search": fitted.search,
            "final_training_rows": fitted.training_rows,
            "explanation_scale": model.explainer.scale_for(k - 1 if k == 2 else 0),
        },
        "external": [],
        "feature_importance": importance,
        "feature_importance_method": (
            "mean absolute per-prediction contribution over up to 200 training rows "
            f"({model.explainer.method} attribution)"
        ),
    }
    if order_driven:
        report["ordering_bias"] = {
            "order_driven_columns": [c for c in order_driven if c not in spec.recorded_later],
            "recorded_later_columns": [c for c in order_driven if c in spec.recorded_later],
            "front_door_share": front_door_share,
            "note": (
                "in every fit a seeded share of the training rows has every order-driven value "
                "removed and the text written after the front door blanked (a front-door view), "
                "so a class is also learned as it presents before any lab is ordered and 'not "
                "measured' stops standing for 'not that class'; evaluation rows keep their values"
            ),
        }
    if has_text:
        report["selected"]["text_representation"] = selected_representation
        report["text"] = text_report(
            model,
            data.frame,
            codes,
            scored,
            selected_representation,
            languages=languages,
            encoder_status=encoder_status,
        )
    model.metadata = {
        "feature_schema": featurizer.schema(),
        "label_map": dict(enumerate(classes)),
        "positive_values": [str(v) for v in spec.positive] if spec.positive else None,
        "target": spec.target,
        "library_versions": library_versions(),
        "data_hash": data.data_hash,
        "metrics": selected_entry["metrics"],
        "cleaning": data.report.to_dict(),
    }
    plots: dict[str, Path] = {}
    key = (selected.name, selected_representation)
    if out_dir is not None:
        from predictions.ml.plots import write_plots

        plots = write_plots(
            Path(out_dir),
            data.labels,
            oof[key],
            classes,
            selected_entry["metrics"],
            title=selected.name,
        )
        report["plots"] = {name: str(path) for name, path in plots.items()}
    report_progress("done", 100)
    return TrainResult(
        model=model,
        report=report,
        plots=plots,
        oof_probabilities=oof[key],
        labels=data.labels,
    )


def _refit(
    data: CleanData,
    codes: np.ndarray,
    algorithm: Algorithm,
    representation: str,
    *,
    order_driven: Sequence[str],
    front_door_share: float,
    seed: int,
    inner_folds: int,
) -> tuple[TrainedModel, FittedLearner, Any]:
    """The selected learner refitted on every row (the served model), its fit and design.

    The front-door mask of the refit depends on ``seed`` only (not on the number of folds), so
    :func:`fit_final` reproduces the model :func:`train` returns for the same choice."""
    classes = data.classes
    all_rows = front_door_view(data.frame, order_driven, front_door_share, seed)
    featurizer = Featurizer(data.plans, representation=representation).fit(all_rows)
    X_all = featurizer.transform(all_rows)
    k = len(classes)
    fitted = fit_learner(
        algorithm, X_all, codes, data.groups, k, seed=seed, inner_folds=inner_folds
    )
    model = TrainedModel(
        algorithm=algorithm.name,
        params=fitted.params,
        classes=classes,
        task="binary" if k == 2 else "multiclass",
        featurizer=featurizer,
        model=fitted.model,
        usual_inputs=usual_inputs(data.frame, data.plans),
    )
    return model, fitted, X_all


def fit_final(
    frame: pd.DataFrame,
    spec: ModelSpec,
    *,
    algorithm: str,
    representation: str,
    seed: int = 0,
    inner_folds: int = INNER_FOLDS,
) -> TrainedModel:
    """The model :func:`train` serves when its cross-validation selects ``algorithm`` with the
    text ``representation``, without the cross-validation (no report, no metrics): the same
    cleaning, front-door views, hyper-parameter search, calibration and refit on every row."""
    data = clean(
        frame,
        target=spec.target,
        group=spec.group,
        positive=spec.positive,
        numeric=spec.numeric,
        categorical=spec.categorical,
        text=spec.text or None,
        exclude=spec.exclude,
        plausible=spec.plausible,
    )
    code_of = {c: i for i, c in enumerate(data.classes)}
    codes = np.array([code_of[v] for v in data.labels])
    order_driven = spec.front_door_columns(data.plans)
    model, _, _ = _refit(
        data,
        codes,
        ALGORITHMS[algorithm],
        representation,
        order_driven=order_driven,
        front_door_share=spec.front_door_share if order_driven else 0.0,
        seed=seed,
        inner_folds=inner_folds,
    )
    return model


TOP_TERMS_PER_CLASS = 10


def text_report(
    model: TrainedModel,
    frame: pd.DataFrame,
    codes: np.ndarray,
    scored: list[dict[str, Any]],
    selected_representation: str,
    *,
    languages: dict[str, int],
    encoder_status: dict[str, Any],
) -> dict[str, Any]:
    """What the report says about free text: the representations' CV scores, the one selected
    and why, the languages seen, the encoder's state, and the top terms per class."""
    ranked = sorted(scored, key=lambda e: e["log_loss"])
    best = ranked[0]
    runner_up = next((e for e in ranked[1:] if e["representation"] != best["representation"]), None)
    why = (
        f"{best['algorithm']} with {best['representation']} had the lowest out-of-fold log loss "
        f"({best['log_loss']:.3f}, accuracy {best['accuracy']:.3f})"
    )
    if runner_up is not None:
        why += (
            f"; the best other representation, {runner_up['representation']} "
            f"({runner_up['algorithm']}), had {runner_up['log_loss']:.3f} "
            f"(accuracy {runner_up['accuracy']:.3f})"
        )
    encoder_note = dict(encoder_status)
    encoder_note["note"] = (
        "English-only: Chinese texts get a zero embedding, so the block can only help English notes"
    )
    return {
        "columns": list(model.featurizer.text),
        "languages": languages,
        "language_detection": "per text, from its script (share of Han characters)",
        "negation": "NegEx-style scopes in English and Chinese; negated findings are NEG_ terms",
        "representations": scored,
        "selected": selected_representation,
        "why": why,
        "encoder": encoder_note,
        "top_terms": top_terms_per_class(model, frame, codes),
    }


def top_terms_per_class(
    model: TrainedModel, frame: pd.DataFrame, codes: np.ndarray, n: int = TOP_TERMS_PER_CLASS
) -> dict[str, Any]:
    """Per class, the text terms that speak most for it.

    A linear model's own coefficients when it was selected (exact); otherwise the word terms
    whose mean TF-IDF in the class most exceeds their mean elsewhere (model-free).
    """
    featurizer = model.featurizer
    estimator = model.model.estimator
    text_index = [
        j for j, source in enumerate(featurizer.feature_source) if source in featurizer.text
    ]
    names = featurizer.feature_names
    if hasattr(estimator, "coef_") and text_index and not featurizer.is_sequence:
        coef = np.asarray(estimator.coef_, dtype=float)
        if coef.shape[0] == 1:  # binary: one row for the positive class, its negation for the other
            coef = np.vstack([-coef[0], coef[0]])
        method = "largest logistic-regression coefficients of the selected model"
        weights = coef[:, text_index]
        terms = [names[j] for j in text_index]
    else:
        words = Featurizer(featurizer.plans, representation="word").fit(frame)
        X = sparse.csr_matrix(words.transform(frame))
        index = [j for j, s in enumerate(words.feature_source) if s in words.text]
        X = X[:, index]
        terms = [words.feature_names[j] for j in index]
        weights = np.vstack(
            [
                np.asarray(X[codes == c].mean(axis=0)).reshape(-1)
                - np.asarray(X[codes != c].mean(axis=0)).reshape(-1)
                for c in range(len(model.classes))
            ]
        )
        method = "word terms whose mean TF-IDF in the class most exceeds their mean elsewhere"
    out: dict[str, Any] = {"method": method, "classes": {}}
    for c, name in enumerate(model.classes):
        order = np.argsort(-weights[c], kind="stable")[:n]
        out["classes"][name] = [
            {"term": terms[j], "weight": round(float(weights[c, j]), 4)} for j in order
        ]
    return out
