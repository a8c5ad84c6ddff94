"""The plain baseline every text result is held against: scikit-learn's TF-IDF of word 1-2-grams
(no cap) with logistic regression, scored out-of-fold on the engine's own outer folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from predictions.ml.dataset import clean
from predictions.ml.split import grouped_folds


def baseline_oof(
    frame: pd.DataFrame, *, target: str, text: str, cv: int = 10, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(out-of-fold probabilities, integer labels, classes) of the plain baseline, on the folds
    ``predictions.ml.pipeline.train`` uses for the same frame, cv and seed."""
    data = clean(frame, target=target)
    codes = np.array([data.classes.index(v) for v in data.labels])
    docs = data.frame[text].fillna("").astype(str).to_numpy()
    proba = np.zeros((len(codes), len(data.classes)))
    for train_idx, test_idx in grouped_folds(codes, data.groups, cv, seed):
        model = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=1000)
        ).fit(docs[train_idx], codes[train_idx])
        proba[np.ix_(test_idx, model.classes_)] = model.predict_proba(docs[test_idx])
    return proba, codes, data.classes


def accuracy_and_top3(proba: np.ndarray, codes: np.ndarray) -> tuple[float, float]:
    top3 = np.argsort(-proba, axis=1)[:, :3]
    return (
        float((proba.argmax(axis=1) == codes).mean()),
        float((top3 == codes[:, None]).any(axis=1).mean()),
    )
