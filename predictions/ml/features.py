"""One featuriser for training and serving.

Numeric columns: median imputation, a missing-indicator feature for every column that had missing
values in training, then standardisation (mean 0, sd 1 of the imputed training values).
Categorical columns: one-hot; a category not seen in training maps to all zeros (tolerated, and
reported to abstention). Free-text columns: TF-IDF of words and word pairs.

The fitted state is plain numpy arrays and dicts, saved inside the model artifact, so serving never
refits anything. :meth:`Featurizer.transform_record` is the per-visit fast path: it builds the
feature row with dict look-ups instead of a one-row DataFrame (which would cost milliseconds).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from predictions.ml.dataset import ColumnPlan

# Words and word pairs; a cap keeps the dense matrix small at 100k visits (2 text columns x 100).
TEXT_MAX_FEATURES = 100
TEXT_NGRAMS = (1, 2)
_TOKEN_RE = re.compile(r"(?u)\b\w\w+\b")  # TfidfVectorizer's default token pattern


@dataclass
class TextColumn:
    """A fitted TF-IDF vocabulary with the numbers needed to reproduce it without sklearn."""

    vocabulary: dict[str, int]
    idf: np.ndarray


@dataclass
class Featurizer:
    """Cleaned frame -> dense float matrix; fitted once on training data only."""

    plans: dict[str, ColumnPlan]
    text_max_features: int = TEXT_MAX_FEATURES
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    medians: np.ndarray = field(default_factory=lambda: np.zeros(0))
    means: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scales: np.ndarray = field(default_factory=lambda: np.zeros(0))
    train_min: np.ndarray = field(default_factory=lambda: np.zeros(0))
    train_max: np.ndarray = field(default_factory=lambda: np.zeros(0))
    indicator_columns: list[str] = field(default_factory=list)
    levels: dict[str, dict[str, int]] = field(default_factory=dict)
    text_columns: dict[str, TextColumn] = field(default_factory=dict)
    feature_names: list[str] = field(default_factory=list)
    feature_source: list[str] = field(default_factory=list)
    feature_means: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def fit(self, frame: pd.DataFrame) -> Featurizer:
        self.numeric = [n for n, p in self.plans.items() if p.kind == "numeric"]
        self.categorical = [n for n, p in self.plans.items() if p.kind == "categorical"]
        self.text = [n for n, p in self.plans.items() if p.kind == "text"]
        names: list[str] = []
        sources: list[str] = []

        values = (
            frame[self.numeric].to_numpy(dtype=float) if self.numeric else np.zeros((len(frame), 0))
        )
        with np.errstate(all="ignore"):
            medians = np.nanmedian(values, axis=0) if values.size else np.zeros(0)
        self.medians = np.nan_to_num(medians, nan=0.0)
        imputed = np.where(np.isnan(values), self.medians, values)
        self.means = imputed.mean(axis=0) if len(frame) else np.zeros(len(self.numeric))
        scales = imputed.std(axis=0) if len(frame) else np.ones(len(self.numeric))
        self.scales = np.where(scales > 0, scales, 1.0)  # a constant column stays 0, not NaN
        finite = np.where(np.isnan(values), np.nan, values)
        with np.errstate(all="ignore"):
            self.train_min = (
                np.nan_to_num(np.nanmin(finite, axis=0), nan=0.0) if values.size else np.zeros(0)
            )
            self.train_max = (
                np.nan_to_num(np.nanmax(finite, axis=0), nan=0.0) if values.size else np.zeros(0)
            )
        names += self.numeric
        sources += self.numeric
        self.indicator_columns = [
            n for n, had in zip(self.numeric, np.isnan(values).any(axis=0), strict=True) if had
        ]
        names += [f"{n} missing" for n in self.indicator_columns]
        sources += self.indicator_columns

        self.levels = {}
        for name in self.categorical:
            observed = sorted({v for v in frame[name] if v is not None and v == v})
            self.levels[name] = {level: i for i, level in enumerate(observed)}
            names += [f"{name}={level}" for level in observed]
            sources += [name] * len(observed)

        self.text_columns = {}
        for name in self.text:
            docs = frame[name].fillna("").astype(str).tolist()
            vectorizer = TfidfVectorizer(
                ngram_range=TEXT_NGRAMS,
                max_features=self.text_max_features,
                sublinear_tf=True,
                min_df=2 if len(docs) >= 20 else 1,
            )
            try:
                vectorizer.fit(docs)
            except ValueError:  # every document empty: the column contributes no features
                self.text_columns[name] = TextColumn({}, np.zeros(0))
                continue
            vocabulary = {term: int(i) for term, i in vectorizer.vocabulary_.items()}
            self.text_columns[name] = TextColumn(vocabulary, vectorizer.idf_.astype(float))
            by_index = sorted(vocabulary, key=vocabulary.__getitem__)
            names += [f"{name}: {term}" for term in by_index]
            sources += [name] * len(by_index)

        self.feature_names = names
        self.feature_source = sources
        self.feature_means = self.transform(frame).mean(axis=0)
        return self

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """A cleaned frame -> (n, d) float64 matrix."""
        blocks: list[np.ndarray] = []
        n = len(frame)
        if self.numeric:
            values = frame[self.numeric].to_numpy(dtype=float)
            missing = np.isnan(values)
            imputed = np.where(missing, self.medians, values)
            blocks.append((imputed - self.means) / self.scales)
            if self.indicator_columns:
                positions = [self.numeric.index(c) for c in self.indicator_columns]
                blocks.append(missing[:, positions].astype(float))
        for name in self.categorical:
            levels = self.levels[name]
            block = np.zeros((n, len(levels)))
            codes = frame[name].map(levels).to_numpy(dtype=float)
            seen = ~np.isnan(codes)
            block[np.flatnonzero(seen), codes[seen].astype(int)] = 1.0
            blocks.append(block)
        for name in self.text:
            column = self.text_columns[name]
            block = np.zeros((n, len(column.vocabulary)))
            if column.vocabulary:
                for i, doc in enumerate(frame[name].fillna("").astype(str)):
                    self._tfidf_into(doc, column, block[i])
            blocks.append(block)
        return np.hstack(blocks) if blocks else np.zeros((n, 0))

    def transform_record(self, cleaned: dict[str, Any]) -> np.ndarray:
        """One cleaned record -> (1, d) row, same numbers as :meth:`transform` (tested)."""
        row = np.zeros(self.n_features)
        k = len(self.numeric)
        if k:
            values = np.array([cleaned.get(n, math.nan) for n in self.numeric], dtype=float)
            missing = np.isnan(values)
            row[:k] = (np.where(missing, self.medians, values) - self.means) / self.scales
            for j, name in enumerate(self.indicator_columns):
                row[k + j] = float(missing[self.numeric.index(name)])
            k += len(self.indicator_columns)
        for name in self.categorical:
            levels = self.levels[name]
            position = levels.get(cleaned.get(name))  # type: ignore[arg-type]
            if position is not None:
                row[k + position] = 1.0
            k += len(levels)
        for name in self.text:
            column = self.text_columns[name]
            width = len(column.vocabulary)
            if width:
                self._tfidf_into(str(cleaned.get(name) or ""), column, row[k : k + width])
            k += width
        return row.reshape(1, -1)

    @staticmethod
    def _tfidf_into(doc: str, column: TextColumn, out: np.ndarray) -> None:
        """Sublinear TF-IDF with l2 norm, exactly as the fitted TfidfVectorizer (tested)."""
        tokens = _TOKEN_RE.findall(doc.lower())
        counts: dict[int, int] = {}
        grams = list(tokens)
        if TEXT_NGRAMS[1] >= 2:
            grams += [f"{a} {b}" for a, b in itertools.pairwise(tokens)]
        for gram in grams:
            index = column.vocabulary.get(gram)
            if index is not None:
                counts[index] = counts.get(index, 0) + 1
        if not counts:
            return
        idx = np.fromiter(counts.keys(), dtype=int, count=len(counts))
        tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=float, count=len(counts)))
        weights = tf * column.idf[idx]
        out[idx] = weights / np.sqrt(np.dot(weights, weights))

    def schema(self) -> dict[str, Any]:
        """The feature schema stored with a model version (what inputs it expects and how)."""
        return {
            "columns": {
                name: {
                    "kind": plan.kind,
                    "parse": plan.parse,
                    "plausible": list(plan.plausible) if plan.plausible else None,
                }
                for name, plan in self.plans.items()
            },
            "numeric": {
                name: {
                    "median": float(self.medians[i]),
                    "min": float(self.train_min[i]),
                    "max": float(self.train_max[i]),
                }
                for i, name in enumerate(self.numeric)
            },
            "categorical": {name: sorted(levels) for name, levels in self.levels.items()},
            "text": {name: len(col.vocabulary) for name, col in self.text_columns.items()},
            "n_features": self.n_features,
        }
