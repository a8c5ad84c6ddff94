"""One featuriser: record fast path equals the batch path; unseen categories tolerated."""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from predictions.ml.dataset import clean, clean_record
from predictions.ml.features import Featurizer


def fitted(frame):
    data = clean(frame, target="label", group="patient_id", text=["chief_complaint"])
    return data, Featurizer(data.plans).fit(data.frame)


def test_numeric_features_are_imputed_standardised_and_flagged_missing(make_frame) -> None:
    data, featurizer = fitted(make_frame())
    X = featurizer.transform(data.frame)
    j = featurizer.feature_names.index("obs_8310-5")
    assert abs(X[:, j].mean()) < 1e-9
    assert abs(X[:, j].std() - 1) < 1e-9
    flag = featurizer.feature_names.index("obs_8310-5 missing")
    assert X[:, flag].sum() == data.frame["obs_8310-5"].isna().sum() > 0
    assert not np.isnan(X).any()


def test_transform_record_equals_batch_transform(make_frame) -> None:
    frame = make_frame()
    data, featurizer = fitted(frame)
    X = featurizer.transform(data.frame)
    for i in (0, 5, 17):
        record = frame.iloc[i].to_dict()
        row = featurizer.transform_record(clean_record(record, data.plans))
        np.testing.assert_allclose(row[0], X[i], atol=1e-12)


def test_unseen_category_maps_to_zeros_instead_of_failing(make_frame) -> None:
    data, featurizer = fitted(make_frame())
    record = {"visit_type": "home visit", "sex": "male", "age": 50}
    row = featurizer.transform_record(clean_record(record, data.plans))[0]
    visit_columns = [
        i for i, n in enumerate(featurizer.feature_names) if n.startswith("visit_type=")
    ]
    assert len(visit_columns) == 3
    assert row[visit_columns].sum() == 0


def test_fast_tfidf_matches_sklearn() -> None:
    docs = [
        f"chest pain and cough day {i % 5}" if i % 2 else "routine check, no complaints"
        for i in range(40)
    ]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), max_features=100, sublinear_tf=True, min_df=2)
    expected = vectorizer.fit_transform(docs).toarray()
    import pandas as pd

    frame = pd.DataFrame({"note": docs, "y": ["a", "b"] * 20, "x": range(40)})
    data = clean(frame, target="y", text=["note"])
    featurizer = Featurizer(data.plans).fit(data.frame)
    names = [n.removeprefix("note: ") for n in featurizer.feature_names if n.startswith("note: ")]
    got = featurizer.transform(data.frame)[
        :, [featurizer.feature_names.index(f"note: {n}") for n in names]
    ]
    order = [vectorizer.vocabulary_[n] for n in names]
    np.testing.assert_allclose(got, expected[:, order], atol=1e-12)
