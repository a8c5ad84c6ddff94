"""Per-prediction explanations that add up: ``baseline + sum(contributions) == model output``.

The output and its scale depend on the learner (always stated in ``Explanation.scale``):

* **linear** (logistic regression): exact on the *calibrated log-odds* (binary) or *calibrated
  logit* (multi-class, the softmax input of the class). Platt and temperature scaling are affine
  on that scale, so contribution_j = a * w_j * (x_j - mean_j) and baseline = the model's calibrated
  log-odds at the training mean.
* **boosting** (histogram gradient boosting): Saabas path attribution on the same calibrated
  log-odds/logit scale: each split on the path of each tree is credited with the change in node
  value it causes; the sum telescopes to the leaf values, i.e. the raw score, which calibration
  maps affinely. The walk runs over all of the class's trees at once on the flattened arrays of
  :class:`~predictions.ml.algorithms.BoostedForest`.
* **tree** (decision tree): Saabas path attribution on the *calibrated probability*: node class
  mixes are mapped through the calibrator, so the telescoping sum ends exactly at the calibrated
  probability of the leaf the record reaches.
* **occlusion** (SVM, MLP, rules baseline): sequential occlusion on the *calibrated probability*.
  Input columns are replaced one at a time by their training mean feature values, largest single
  effect first; each column is credited with the change its replacement causes. The sum telescopes
  from the model's output at the record to its output at the training mean (the baseline). This is
  one ordering of the Shapley-value average: exact in sum, approximate in attribution. For an RBF
  SVM the occluded variants are scored from squared distances to the support vectors, updated per
  column instead of recomputed per row (the same numbers to rounding, several times faster).

Contributions are reported per *input column* (one-hot levels, missing indicators and TF-IDF terms
are summed into the column they came from), so a doctor reads "heart rate", not "heart rate=...".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import logit
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from predictions.ml import text as textlib
from predictions.ml.algorithms import (
    PROBA_FLOOR,
    ExplainMethod,
    boosted_forest,
    one_blas_thread,
    rbf_svc_kernel,
)
from predictions.ml.calibration import CalibratedModel, align_scores
from predictions.ml.features import Featurizer, SequenceData, dense_row, n_rows, occurrences_in
from predictions.ml.linear_serving import LinearServing


def _flat(x: Any) -> np.ndarray:
    """One feature row (dense, sparse or (1, d)) as a flat float array."""
    if sparse.issparse(x):
        x = x.toarray()
    return np.asarray(x, dtype=float).reshape(-1)


@dataclass
class Explanation:
    """Contributions per input column towards ``target_class`` on ``scale``."""

    target_class: str
    scale: str
    baseline: float
    output: float
    contributions: dict[str, float]


class Explainer:
    """Explains one fitted, calibrated model; heavy preparation happens once, here."""

    def __init__(
        self,
        model: CalibratedModel,
        featurizer: Featurizer,
        method: ExplainMethod,
        class_names: list[str] | None = None,
    ):
        self.model = model
        self.method = method
        self.classes = class_names or [str(c) for c in model.classes]
        self.binary = len(self.classes) == 2
        self.reference = featurizer.feature_means.copy()
        self._linear_at_reference: np.ndarray | None = None
        sources = featurizer.feature_source
        self.columns = list(dict.fromkeys(sources))
        # Neural text models read token sequences: their text columns are occluded by removing
        # the column's tokens, the structured columns as usual.
        self.sequence = featurizer.is_sequence
        self.text_columns = list(featurizer.text) if self.sequence else []
        if self.sequence:
            method = self.method = "occlusion"
        column_index = {c: i for i, c in enumerate(self.columns)}
        self.source_code = np.array([column_index[s] for s in sources], dtype=int)
        estimator = model.estimator
        if method == "linear" and not isinstance(estimator, LogisticRegression):
            method = self.method = "occlusion"
        if method == "boosting" and not isinstance(estimator, HistGradientBoostingClassifier):
            method = self.method = "occlusion"
        if method == "tree" and not isinstance(estimator, DecisionTreeClassifier):
            method = self.method = "occlusion"
        if method == "boosting":
            self._prepare_boosting(estimator)
        # One-row serving of a logistic regression in numpy (predictions/ml/linear_serving.py).
        self.linear_serving = (
            LinearServing.for_model(model, self.reference, self.source_code, len(self.columns))
            if self.method == "linear"
            else None
        )
        # RBF SVM occlusion works on squared distances to the support vectors (same numbers as
        # predicting every occluded row, to rounding; ~6x faster, see _occlusion_from_distances).
        self._kernel = rbf_svc_kernel(estimator) if self.method == "occlusion" else None
        if self._kernel is not None:
            self._grouping = np.zeros((len(self.source_code), len(self.columns)))
            self._grouping[np.arange(len(self.source_code)), self.source_code] = 1.0

    # -- scale names ----------------------------------------------------------------------------
    def scale_for(self, target: int) -> str:
        name = self.classes[target]
        if self.method in ("linear", "boosting"):
            if self.binary:
                return f"calibrated log-odds of {name!r}"
            return f"calibrated logit of {name!r} (softmax input)"
        return f"calibrated probability of {name!r}"

    # -- public ---------------------------------------------------------------------------------
    def explain(self, x: Any, target: int, *, fast: bool = True) -> Explanation:
        """Explain the model's output for the class at index ``target`` on one feature row.

        ``fast``: a logistic regression's contributions come from :class:`LinearServing` (the
        same numbers to rounding, in time proportional to the row's non-zero features).
        """
        if self.sequence:
            return self._occlusion_sequence(x, target)
        row = _flat(x)
        if fast and self.linear_serving is not None:
            baseline, by_column = self.linear_serving.column_contributions(row, target)
            return self._explanation(target, baseline, by_column)
        if self.method == "linear":
            baseline, per_feature = self._linear(row, target)
        elif self.method == "boosting":
            baseline, per_feature = self._boosting(row, target)
        elif self.method == "tree":
            baseline, per_feature = self._tree(row, target)
        else:
            return self._occlusion(row, target)
        by_column = np.bincount(self.source_code, per_feature, minlength=len(self.columns))
        return self._explanation(target, baseline, by_column)

    def _explanation(self, target: int, baseline: float, by_column: np.ndarray) -> Explanation:
        return Explanation(
            target_class=self.classes[target],
            scale=self.scale_for(target),
            baseline=float(baseline),
            output=float(baseline + by_column.sum()),
            contributions=dict(zip(self.columns, by_column.tolist(), strict=True)),
        )

    def model_output(self, x: np.ndarray, target: int) -> float:
        """The model's own output on the explanation's scale (what the sum must equal; tests)."""
        if self.sequence:
            return float(self.model.predict_proba(x)[0, target])
        row = _flat(x).reshape(1, -1)
        calibrator = self.model.calibrator
        if self.method in ("linear", "boosting"):
            z = calibrator.calibrated_logits(self.model.scores(row))
            if self.binary:
                return float(z[0] if target == 1 else -z[0])
            return float(z[0, target])
        return float(self.model.predict_proba(row)[0, target])

    # -- methods --------------------------------------------------------------------------------
    def _linear(self, row: np.ndarray, target: int) -> tuple[float, np.ndarray]:
        estimator: LogisticRegression = self.model.estimator
        calibrator = self.model.calibrator
        delta = row - self.reference
        if self._linear_at_reference is None:
            # The model's raw output at the training mean, per class: computed once (with tens of
            # thousands of text terms, a multi-threaded dot product per call cost ~50 ms).
            with one_blas_thread():
                self._linear_at_reference = estimator.coef_ @ self.reference + estimator.intercept_
        at_reference = self._linear_at_reference
        if self.binary:
            sign = 1.0 if target == 1 else -1.0
            w = estimator.coef_[0] * calibrator.slope * sign
            base = sign * (calibrator.slope * at_reference[0] + calibrator.intercept)
            return base, w * delta
        t = calibrator.temperature
        return at_reference[target] / t, estimator.coef_[target] / t * delta

    def _prepare_boosting(self, estimator: HistGradientBoostingClassifier) -> None:
        forest = boosted_forest(estimator)
        if forest is None:  # native categorical splits: not flattened; explain by occlusion
            self.method = "occlusion"
        self._forest = forest

    def _boosting(self, row: np.ndarray, target: int) -> tuple[float, np.ndarray]:
        calibrator = self.model.calibrator
        assert self._forest is not None  # noqa: S101 - method is "boosting" only with a forest
        raw_base, per_feature = self._forest.path_contributions(row, 0 if self.binary else target)
        if self.binary:
            sign = 1.0 if target == 1 else -1.0
            base = sign * (calibrator.slope * raw_base + calibrator.intercept)
            return base, sign * calibrator.slope * per_feature
        return raw_base / calibrator.temperature, per_feature / calibrator.temperature

    def _node_probability(self, mixes: np.ndarray, target: int) -> np.ndarray:
        mixes = mixes / mixes.sum(axis=1, keepdims=True)
        clipped = np.clip(mixes, PROBA_FLOOR, 1 - PROBA_FLOOR)
        scores = logit(clipped[:, 1]) if self.binary else np.log(clipped)
        return self.model.calibrator.probabilities(scores)[:, target]

    def _tree(self, row: np.ndarray, target: int) -> tuple[float, np.ndarray]:
        tree = self.model.estimator.tree_
        # sklearn compares float32 copies of the inputs with the thresholds; so do we.
        row32 = row.astype(np.float32)
        path = [0]
        while tree.children_left[path[-1]] != -1:
            node = path[-1]
            go_left = row32[tree.feature[node]] <= tree.threshold[node]
            path.append(tree.children_left[node] if go_left else tree.children_right[node])
        values = self._node_probability(tree.value[path][:, 0, :], target)
        per_feature = np.zeros(len(row))
        for i, node in enumerate(path[:-1]):
            per_feature[tree.feature[node]] += values[i + 1] - values[i]
        return values[0], per_feature

    def _sequence_variant(
        self, x: SequenceData, removed: list[int]
    ) -> tuple[list[str], np.ndarray]:
        """Tokens and dense row of ``x`` with the listed columns (structured, then text) occluded."""
        dense = x.dense[0].copy()
        tokens = list(x.tokens[0])
        n_structured = len(self.columns)
        for c in removed:
            if c < n_structured:
                mask = self.source_code == c
                dense[mask] = self.reference[mask]
            else:
                marker = f"<{self.text_columns[c - n_structured]}>"
                start = tokens.index(marker) + 1 if marker in tokens else len(tokens)
                end = start
                while end < len(tokens) and not (
                    tokens[end].startswith("<")
                    and tokens[end].endswith(">")
                    and tokens[end] != "<sep>"
                ):
                    end += 1
                tokens = tokens[:start] + tokens[end:]
        return tokens, dense

    def _occlusion_sequence(self, x: SequenceData, target: int) -> Explanation:
        names = self.columns + self.text_columns
        singles = [self._sequence_variant(x, [])] + [
            self._sequence_variant(x, [c]) for c in range(len(names))
        ]
        batch = SequenceData([t for t, _ in singles], np.vstack([d for _, d in singles]))
        p = self.model.predict_proba(batch)[:, target]
        order = np.argsort(-np.abs(p[0] - p[1:]), kind="stable")
        path = [
            self._sequence_variant(x, [int(c) for c in order[:step]])
            for step in range(len(names) + 1)
        ]
        batch = SequenceData([t for t, _ in path], np.vstack([d for _, d in path]))
        q = self.model.predict_proba(batch)[:, target]
        contributions = np.zeros(len(names))
        contributions[order] = q[:-1] - q[1:]
        return Explanation(
            target_class=self.classes[target],
            scale=self.scale_for(target),
            baseline=float(q[-1]),
            output=float(q[0]),
            contributions=dict(zip(names, contributions.tolist(), strict=True)),
        )

    def linear_terms(self, row: np.ndarray, target: int) -> np.ndarray | None:
        """Exact per-feature contributions of a linear model (None for other methods)."""
        if self.method != "linear":
            return None
        return self._linear(np.asarray(row, dtype=float).reshape(-1), target)[1]

    def _occlusion(self, row: np.ndarray, target: int) -> Explanation:
        if self._kernel is not None:
            return self._occlusion_from_distances(row, target)
        n_columns = len(self.columns)
        singles = np.repeat(row[None, :], n_columns + 1, axis=0)
        for c in range(n_columns):
            mask = self.source_code == c
            singles[c + 1, mask] = self.reference[mask]
        p = self.model.predict_proba(singles)[:, target]
        order = np.argsort(-np.abs(p[0] - p[1:]), kind="stable")
        path = np.repeat(row[None, :], n_columns + 1, axis=0)
        for step, c in enumerate(order, start=1):
            path[step:, self.source_code == c] = self.reference[self.source_code == c]
        q = self.model.predict_proba(path)[:, target]
        return self._occlusion_result(target, order, q)

    def _occlusion_from_distances(self, row: np.ndarray, target: int) -> Explanation:
        """The same sequential occlusion for an RBF SVM without building the occluded rows.

        Predicting the 2 x (columns + 1) occluded rows costs libsvm a full kernel row each (rows x
        support vectors x features). Here the squared distances of the row are computed once and
        each column's replacement changes them by a precomputed term; a path of replacements is a
        cumulative sum of those terms. Only the exp and the dual-coefficient products remain per
        variant. Equal to :meth:`_occlusion` on the generic path to rounding (tested to 1e-9).
        """
        kernel = self._kernel
        assert kernel is not None  # noqa: S101 - only called with a kernel
        model = self.model
        with one_blas_thread():
            base = kernel.distances(row)  # (1, n_support)
            change = kernel.column_distance_changes(row, self.reference, self._grouping)
            singles = np.vstack([base, base + change])
            scores = kernel.decision_from_distances(singles)
            p = model.calibrator.probabilities(align_scores(scores, model.estimator, model.classes))
            order = np.argsort(-np.abs(p[0, target] - p[1:, target]), kind="stable")
            path = np.vstack([base, base + np.cumsum(change[order], axis=0)])
            scores = kernel.decision_from_distances(path)
            q = model.calibrator.probabilities(align_scores(scores, model.estimator, model.classes))
        return self._occlusion_result(target, order, q[:, target])

    def _occlusion_result(self, target: int, order: np.ndarray, q: np.ndarray) -> Explanation:
        contributions = np.zeros(len(self.columns))
        contributions[order] = q[:-1] - q[1:]
        return Explanation(
            target_class=self.classes[target],
            scale=self.scale_for(target),
            baseline=float(q[-1]),
            output=float(q[0]),
            contributions=dict(zip(self.columns, contributions.tolist(), strict=True)),
        )


def global_importance(
    explainer: Explainer, X: np.ndarray, targets: np.ndarray, max_rows: int = 200, seed: int = 0
) -> list[dict[str, Any]]:
    """Mean |contribution| per input column over up to ``max_rows`` training rows (their own class).

    Uses the same method as the per-prediction explanations, so global and local stories agree.
    """
    rng = np.random.default_rng(seed)
    rows = rng.choice(n_rows(X), size=min(max_rows, n_rows(X)), replace=False)
    columns = explainer.columns + explainer.text_columns
    totals = np.zeros(len(columns))
    for i in rows:
        x = X[[int(i)]] if isinstance(X, SequenceData) else dense_row(X, i)
        explanation = explainer.explain(x, int(targets[i]))
        totals += np.abs([explanation.contributions[c] for c in columns])
    means = totals / max(1, len(rows))
    ranked = np.argsort(-means, kind="stable")
    return [{"feature": columns[j], "importance": float(means[j])} for j in ranked]


# -- free text: which words drove the prediction ----------------------------------------------

TEXT_WORDS = 10
# Occlusion re-scores the record once per word: long notes are explained on their first words.
OCCLUSION_MAX_WORDS = 60


def _word_tokens(text: str) -> list[textlib.Token]:
    return [t for t in textlib.analyse(text).tokens if t.kind in ("word", "trigger")]


def _word_item(column: str, text: str, token: textlib.Token, value: float) -> dict[str, Any]:
    return {
        "column": column,
        "text": text[token.start : token.end],
        "start": token.start,
        "end": token.end,
        "language": token.language,
        "negated": token.polarity == "NEG",
        "uncertain": token.polarity == "UNC",
        "contribution": float(value),
    }


def linear_text_words(
    featurizer: Featurizer, per_feature: np.ndarray, row: np.ndarray, texts: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Exact words and terms of a linear model: each present term's contribution
    ``w_j * (x_j - mean_j)`` is shared among its occurrences and, within one, among the words it
    spans; a word's credit is the sum. Returns (words, terms), largest first."""
    words: list[dict[str, Any]] = []
    terms: list[dict[str, Any]] = []
    for column, blocks in featurizer.text_offsets().items():
        text = texts.get(column, "")
        tokens = _word_tokens(text)
        credit = np.zeros(len(tokens))
        starts = np.array([t.start for t in tokens])
        ends = np.array([t.end for t in tokens])
        for offset, block in blocks:
            if block.kind == "encoder":
                value = float(per_feature[offset : offset + block.width].sum())
                terms.append(
                    {"column": column, "term": "(sentence embedding)", "contribution": value}
                )
                continue
            index, lows, highs = occurrences_in(text, block)
            if not len(index) or not len(tokens):
                continue
            # Each term's credit is shared among its occurrences, then among the words each
            # occurrence spans (tokens are sorted and disjoint: a span covers a range of them).
            seen, counts = np.unique(index, return_counts=True)
            share = per_feature[offset + index] / counts[np.searchsorted(seen, index)]
            lo = np.searchsorted(ends, lows, side="right")
            hi = np.searchsorted(starts, highs, side="left")
            spanned = np.maximum(hi - lo, 1)
            ok = hi > lo
            step = np.zeros(len(tokens) + 1)
            np.add.at(step, lo[ok], share[ok] / spanned[ok])
            np.add.at(step, hi[ok], -share[ok] / spanned[ok])
            credit += np.cumsum(step)[:-1]
            mark = "~" if block.kind == "char" else ""
            names = featurizer.feature_names
            prefix = len(column) + 2 + len(mark)  # "column: " and the char mark
            values = per_feature[offset + seen]
            strongest = np.argsort(-np.abs(values), kind="stable")[:TEXT_WORDS]
            terms.extend(
                {
                    "column": column,
                    "term": mark + names[offset + int(seen[k])][prefix:],
                    "contribution": float(values[k]),
                }
                for k in strongest
            )
        words += [
            _word_item(column, text, token, credit[i])
            for i, token in enumerate(tokens)
            if credit[i] != 0
        ]
    words.sort(key=lambda w: -abs(w["contribution"]))
    terms.sort(key=lambda t: -abs(t["contribution"]))
    return words, terms


def occlusion_text_words(
    texts: dict[str, str], score: Any, text_columns: list[str]
) -> list[dict[str, Any]]:
    """Words by occlusion: each word's credit is the drop in the calibrated probability when
    that word alone is deleted from its text. ``score(texts_list)`` returns one probability per
    variant (the first variant is the record as written)."""
    variants: list[dict[str, str]] = [dict(texts)]
    where: list[tuple[str, textlib.Token]] = []
    for column in text_columns:
        text = texts.get(column, "")
        for token in _word_tokens(text)[:OCCLUSION_MAX_WORDS]:
            changed = dict(texts)
            changed[column] = text[: token.start] + text[token.end :]
            variants.append(changed)
            where.append((column, token))
    if not where:
        return []
    p = np.asarray(score(variants), dtype=float)
    words = [
        _word_item(column, texts[column], token, p[0] - p[i + 1])
        for i, (column, token) in enumerate(where)
    ]
    words.sort(key=lambda w: -abs(w["contribution"]))
    return words
