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


def test_text_blocks_match_sklearn_tfidf_with_our_analysers_and_have_no_cap() -> None:
    """Word and char blocks equal TfidfVectorizer(analyzer=ours, sublinear_tf, min_df=2) exactly,
    batch and per record, and keep every term seen twice (no 100-term cap)."""
    from predictions.ml.features import ANALYZERS

    docs = [
        f"chest pain and cough day {i} with term{i // 2}"
        if i % 2
        else f"无发热，咳嗽{i % 7}天，伴胸痛"
        for i in range(400)
    ]
    import pandas as pd

    frame = pd.DataFrame({"note": docs, "y": ["a", "b"] * 200, "x": range(400)})
    data = clean(frame, target="y", text=["note"])
    featurizer = Featurizer(data.plans, representation="word+char").fit(data.frame)
    X = featurizer.transform(data.frame)
    offsets = featurizer.text_offsets()["note"]
    for offset, block in offsets:
        expected = TfidfVectorizer(analyzer=ANALYZERS[block.kind], sublinear_tf=True, min_df=2).fit(
            docs
        )
        assert expected.vocabulary_ == block.vocabulary
        got = X[:, offset : offset + block.width].toarray()
        np.testing.assert_allclose(got, expected.transform(docs).toarray(), atol=1e-12)
    word_block = offsets[0][1]
    assert len(word_block.vocabulary) > 100  # the old cap is gone
    assert "NEG_发热" in word_block.vocabulary
    for i in (0, 3, 250):
        row = featurizer.transform_record(clean_record(frame.iloc[i].to_dict(), data.plans))
        np.testing.assert_allclose(row[0], X[i].toarray()[0], atol=1e-12)


def test_dense_learners_get_the_capped_word_block() -> None:
    import pandas as pd

    docs = [f"cough day{i % 150} fever term{i % 140}" for i in range(300)]
    frame = pd.DataFrame({"note": docs, "y": ["a", "b", "c"] * 100})
    data = clean(frame, target="y", text=["note"])
    featurizer = Featurizer(data.plans, representation="word-top").fit(data.frame)
    X = featurizer.transform(data.frame)
    assert isinstance(X, np.ndarray)
    assert X.shape[1] == 100
