"""One featuriser for training and serving.

Numeric columns: median imputation, a missing-indicator feature for every column that had missing
values in training, then standardisation (mean 0, sd 1 of the imputed training values).
Categorical columns: one-hot; a category not seen in training maps to all zeros (tolerated, and
reported to abstention). Free-text columns: one of the :data:`REPRESENTATIONS`, chosen by
cross-validation in :func:`predictions.ml.pipeline.train`:

* ``word``: TF-IDF of word 1-2-grams (no cap: ``min_df`` and sublinear TF instead), English words
  and Chinese words from jieba, negated/uncertain findings as their own terms ("NEG_chest_pain",
  :mod:`predictions.ml.text`);
* ``char``: TF-IDF of character 2-4-grams inside words and Han runs (no segmenter needed), with
  the same negation prefixes;
* ``word+char``: both blocks side by side;
* ``word+char+encoder``: both plus the optional pretrained sentence encoder's embedding
  (:mod:`predictions.ml.encoder`; English texts only);
* ``word-top``: the word block capped at the :data:`TOP_TERMS` most frequent terms per column,
  dense, for learners that cannot take a sparse matrix (gradient boosting, the MLP, 1R);
* ``sequence``: the token sequences themselves, for the neural text models
  (:mod:`predictions.ml.neural_text`), which fit their own vocabulary on training rows only.

With text, :meth:`Featurizer.transform` returns a CSR sparse matrix (tens of thousands of terms);
without, the dense array it always returned. The fitted state is plain numpy arrays and dicts,
saved inside the model artifact, so serving never refits anything. :meth:`transform_record` is
the per-visit fast path: it builds the feature row with dict look-ups instead of a one-row
DataFrame (which would cost milliseconds), and equals :meth:`transform` (tested).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from predictions.ml import text as textlib
from predictions.ml.dataset import ColumnPlan
from predictions.ml.names import REPRESENTATION_NAMES, check_registry

# Dense learners see the old capped representation: the most frequent words and word pairs.
TOP_TERMS = 100
# Terms must occur in at least this many training texts (once there are MIN_DF_ROWS texts):
# a term seen once cannot generalise, and dropping them halves the vocabulary.
MIN_DF = 2
MIN_DF_ROWS = 20
CHAR_NGRAMS = (2, 4)
WORD_NGRAMS = 2
BlockKind = Literal["word", "char", "encoder"]


@dataclass(frozen=True)
class TextRepresentation:
    """How free text becomes features (one of :data:`REPRESENTATIONS`)."""

    name: str
    word: bool = False
    char: bool = False
    encoder: bool = False
    max_terms: int | None = None
    sequence: bool = False

    @property
    def sparse(self) -> bool:
        return self.max_terms is None and not self.sequence


REPRESENTATIONS: dict[str, TextRepresentation] = {
    r.name: r
    for r in (
        TextRepresentation("word", word=True),
        TextRepresentation("char", char=True),
        TextRepresentation("word+char", word=True, char=True),
        TextRepresentation("word+char+encoder", word=True, char=True, encoder=True),
        TextRepresentation("word-top", word=True, max_terms=TOP_TERMS),
        TextRepresentation("sequence", sequence=True),
    )
}
check_registry("text representation", REPRESENTATIONS, REPRESENTATION_NAMES)


def _word_analyzer(doc: str) -> list[str]:
    return textlib.word_features(doc, WORD_NGRAMS)


def _char_analyzer(doc: str) -> list[str]:
    return textlib.char_features(doc, *CHAR_NGRAMS)


ANALYZERS: dict[str, Callable[[str], list[str]]] = {"word": _word_analyzer, "char": _char_analyzer}


@dataclass
class TextColumn:
    """A fitted TF-IDF vocabulary with the numbers needed to reproduce it without sklearn."""

    vocabulary: dict[str, int]
    idf: np.ndarray
    kind: BlockKind = "word"

    @property
    def width(self) -> int:
        return len(self.vocabulary) if self.kind != "encoder" else len(self.idf)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_recent", None)  # a serving-time cache, never part of the artifact
        return state


# Serving explains the record it just featurised: the vocabulary look-ups of the last few texts
# are kept so the explanation reuses them instead of repeating hundreds of dictionary look-ups.
RECENT_TEXTS = 256


def occurrences_in(doc: str, column: TextColumn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vocabulary index, start, end) of every occurrence of a known term in ``doc``."""
    recent: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = column.__dict__.setdefault(
        "_recent", {}
    )
    hit = recent.get(doc)
    if hit is not None:
        return hit
    if column.kind == "word":
        occurrences = textlib.word_occurrences(doc, WORD_NGRAMS)
    else:
        occurrences = textlib.char_occurrences(doc, *CHAR_NGRAMS)
    vocabulary = column.vocabulary
    found = [(j, a, b) for f, a, b in occurrences if (j := vocabulary.get(f)) is not None]
    result = (
        np.fromiter((j for j, _, _ in found), dtype=np.int64, count=len(found)),
        np.fromiter((a for _, a, _ in found), dtype=np.int64, count=len(found)),
        np.fromiter((b for _, _, b in found), dtype=np.int64, count=len(found)),
    )
    if len(recent) >= RECENT_TEXTS:
        recent.clear()
    recent[doc] = result
    return result


def fit_tfidf(docs: Sequence[str], kind: BlockKind, max_terms: int | None) -> TextColumn:
    """Vocabulary and idf of one text column (sklearn's TfidfVectorizer, our analyser)."""
    vectorizer = TfidfVectorizer(
        analyzer=ANALYZERS[kind],
        sublinear_tf=True,
        min_df=MIN_DF if len(docs) >= MIN_DF_ROWS else 1,
        max_features=max_terms,
    )
    try:
        vectorizer.fit(docs)
    except ValueError:  # every document empty: the column contributes no features
        return TextColumn({}, np.zeros(0), kind)
    vocabulary = {term: int(i) for term, i in vectorizer.vocabulary_.items()}
    return TextColumn(vocabulary, vectorizer.idf_.astype(float), kind)


def tfidf_weights(doc: str, column: TextColumn) -> tuple[np.ndarray, np.ndarray]:
    """(indices, values) of one document's sublinear, l2-normalised TF-IDF (as sklearn's)."""
    found = occurrences_in(doc, column)[0]
    if not len(found):
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    idx, counts = np.unique(found, return_counts=True)
    tf = 1.0 + np.log(counts.astype(float))
    weights = tf * column.idf[idx]
    return idx, weights / np.sqrt(np.dot(weights, weights))


def tfidf_matrix(docs: Sequence[str], column: TextColumn) -> sparse.csr_matrix:
    """Many documents at once: the same numbers as :func:`tfidf_weights` row by row (tested),
    with the per-document work reduced to dictionary look-ups."""
    vocabulary = column.vocabulary
    analyzer = ANALYZERS[column.kind]
    indices: list[int] = []
    indptr = [0]
    for doc in docs:
        found = [i for i in map(vocabulary.get, analyzer(doc)) if i is not None]
        indices.extend(found)
        indptr.append(len(indices))
    counts = sparse.csr_matrix(
        (np.ones(len(indices)), np.asarray(indices, dtype=np.int64), np.asarray(indptr)),
        shape=(len(docs), column.width),
    )
    counts.sum_duplicates()
    counts.data = (1.0 + np.log(counts.data)) * column.idf[counts.indices]
    norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1)).reshape(-1))
    norms[norms == 0] = 1.0
    counts.data /= np.repeat(norms, np.diff(counts.indptr))
    return counts


@dataclass
class SequenceData:
    """Input of the neural text models: token lists per row plus the dense structured block."""

    tokens: list[list[str]]
    dense: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.tokens), self.dense.shape[1])

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, rows: Any) -> SequenceData:
        index = np.arange(len(self.tokens))[rows]
        index = np.atleast_1d(index)
        return SequenceData([self.tokens[i] for i in index], self.dense[index])


def n_rows(X: Any) -> int:
    """Rows of a dense array, a sparse matrix or :class:`SequenceData` alike."""
    return int(X.shape[0])


def dense_row(X: Any, i: int) -> np.ndarray:
    """Row ``i`` of a dense or sparse matrix as a flat float array."""
    row = X[i]
    if sparse.issparse(row):
        return np.asarray(row.toarray(), dtype=float).reshape(-1)
    return np.asarray(row, dtype=float).reshape(-1)


@dataclass
class Featurizer:
    """Cleaned frame -> feature matrix; fitted once on training data only."""

    plans: dict[str, ColumnPlan]
    text_max_features: int | None = None
    # The dense capped word block by default (what every learner can take, and what a featuriser
    # built without a representation always gave); ``train`` names the representation it tries.
    representation: str = "word-top"
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
    # Per text column, its blocks in order (word, char, encoder).
    text_blocks: dict[str, list[TextColumn]] = field(default_factory=dict)
    feature_names: list[str] = field(default_factory=list)
    feature_source: list[str] = field(default_factory=list)
    feature_means: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # What the encoder block did (or why it is absent), for the report.
    encoder_status: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> TextRepresentation:
        spec = REPRESENTATIONS[self.representation]
        if self.text_max_features is not None and spec.max_terms is None:
            return TextRepresentation(
                spec.name, spec.word, spec.char, spec.encoder, self.text_max_features
            )
        return spec

    @property
    def is_sparse(self) -> bool:
        return bool(self.text) and self.spec.sparse

    @property
    def is_sequence(self) -> bool:
        return bool(self.text) and self.spec.sequence

    def fit(
        self, frame: pd.DataFrame, block_cache: dict[tuple[Any, ...], TextColumn] | None = None
    ) -> Featurizer:
        """Fit on ``frame``; featurisers of other representations fitted on the same rows may
        share ``block_cache`` so each text block (word, char) is fitted once per fold."""
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
        missing = np.atleast_1d(np.isnan(values).any(axis=0))
        self.indicator_columns = [n for n, had in zip(self.numeric, missing, strict=True) if had]
        names += [f"{n} missing" for n in self.indicator_columns]
        sources += self.indicator_columns

        self.levels = {}
        for name in self.categorical:
            observed = sorted({v for v in frame[name] if v is not None and v == v})
            self.levels[name] = {level: i for i, level in enumerate(observed)}
            names += [f"{name}={level}" for level in observed]
            sources += [name] * len(observed)

        self.text_blocks = {}
        spec = self.spec
        if not spec.sequence:
            for name in self.text:
                docs = frame[name].fillna("").astype(str).tolist()
                blocks: list[TextColumn] = []
                for kind in ("word", "char"):
                    if not getattr(spec, kind):
                        continue
                    key = (name, kind, spec.max_terms)
                    block = block_cache.get(key) if block_cache is not None else None
                    if block is None:
                        block = fit_tfidf(docs, kind, spec.max_terms)
                        if block_cache is not None:
                            block_cache[key] = block
                    blocks.append(block)
                if spec.encoder:
                    from predictions.ml import encoder

                    self.encoder_status = encoder.status()
                    if self.encoder_status["available"]:
                        blocks.append(TextColumn({}, np.zeros(encoder.DIMENSIONS), "encoder"))
                self.text_blocks[name] = blocks
                for block in blocks:
                    if block.kind == "encoder":
                        names += [f"{name}: encoder[{i}]" for i in range(block.width)]
                    else:
                        by_index = sorted(block.vocabulary, key=block.vocabulary.__getitem__)
                        mark = "~" if block.kind == "char" else ""
                        names += [f"{name}: {mark}{term}" for term in by_index]
                    sources += [name] * block.width

        self.feature_names = names
        self.feature_source = sources
        X = self.transform(frame)
        if isinstance(X, SequenceData):
            X = X.dense
        self.feature_means = np.asarray(X.mean(axis=0), dtype=float).reshape(-1)
        return self

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def _structured(self, frame: pd.DataFrame) -> np.ndarray:
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
        return np.hstack(blocks) if blocks else np.zeros((n, 0))

    def _text_block(self, docs: list[str], block: TextColumn) -> sparse.csr_matrix:
        if block.kind == "encoder":
            from predictions.ml import encoder

            return sparse.csr_matrix(encoder.encode(docs))
        return tfidf_matrix(docs, block)

    def transform(self, frame: pd.DataFrame) -> Any:
        """A cleaned frame -> (n, d) matrix: CSR with sparse text, dense float64 otherwise;
        :class:`SequenceData` for the ``sequence`` representation."""
        structured = self._structured(frame)
        if self.is_sequence:
            return SequenceData(self._sequence_tokens(frame), structured)
        if not self.text:
            return structured
        blocks: list[Any] = [sparse.csr_matrix(structured)]
        for name in self.text:
            docs = frame[name].fillna("").astype(str).tolist()
            for block in self.text_blocks[name]:
                blocks.append(self._text_block(docs, block))
        matrix = sparse.hstack(blocks, format="csr")
        return matrix if self.is_sparse else matrix.toarray()

    def _sequence_tokens(self, frame: pd.DataFrame) -> list[list[str]]:
        columns = [frame[name].fillna("").astype(str).tolist() for name in self.text]
        out: list[list[str]] = []
        for parts in zip(*columns, strict=True):
            row: list[str] = []
            for name, doc in zip(self.text, parts, strict=True):
                row.append(f"<{name}>")
                row.extend(textlib.sequence_tokens(doc))
            out.append(row)
        return out

    def transform_record(self, cleaned: dict[str, Any]) -> Any:
        """One cleaned record -> (1, d) dense row, same numbers as :meth:`transform` (tested);
        :class:`SequenceData` of one row for the ``sequence`` representation."""
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
        if self.is_sequence:
            tokens: list[str] = []
            for name in self.text:
                tokens.append(f"<{name}>")
                tokens.extend(textlib.sequence_tokens(str(cleaned.get(name) or "")))
            return SequenceData([tokens], row[:k].reshape(1, -1))
        for name in self.text:
            doc = str(cleaned.get(name) or "")
            for block in self.text_blocks.get(name, []):
                width = block.width
                if block.kind == "encoder":
                    from predictions.ml import encoder

                    row[k : k + width] = encoder.encode([doc])[0]
                elif width:
                    idx, weights = tfidf_weights(doc, block)
                    row[k + idx] = weights
                k += width
        return row.reshape(1, -1)

    def text_offsets(self) -> dict[str, list[tuple[int, TextColumn]]]:
        """Per text column, each block with the index of its first feature."""
        k = len(self.numeric) + len(self.indicator_columns)
        k += sum(len(levels) for levels in self.levels.values())
        out: dict[str, list[tuple[int, TextColumn]]] = {}
        for name in self.text:
            out[name] = []
            for block in self.text_blocks.get(name, []):
                out[name].append((k, block))
                k += block.width
        return out

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
            "text": {
                name: sum(block.width for block in blocks)
                for name, blocks in self.text_blocks.items()
            },
            "text_representation": self.representation if self.text else None,
            "n_features": self.n_features,
        }
