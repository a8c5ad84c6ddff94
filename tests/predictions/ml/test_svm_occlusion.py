"""The RBF SVM's distance-based occlusion equals occluding real rows, number for number."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.svm import SVC

from predictions.ml.algorithms import ALGORITHMS, rbf_svc_kernel
from predictions.ml.calibration import CalibratedModel, Calibrator
from predictions.ml.dataset import clean
from predictions.ml.explain import Explainer
from predictions.ml.features import Featurizer
from predictions.ml.pipeline import fit_learner


@pytest.mark.parametrize("shape", ["ovr", "ovo"])
@pytest.mark.parametrize("classes", [2, 4])
def test_kernel_decision_function_equals_libsvm(classes: int, shape: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 9))
    y = np.digitize(X[:, 0] + X[:, 1] ** 2, [-0.5, 0.5, 1.5])[: len(X)] % classes
    svc = SVC(C=2.0, decision_function_shape=shape).fit(X, y)
    kernel = rbf_svc_kernel(svc)
    assert kernel is not None
    rows = np.vstack([rng.normal(size=(300, 9)) * 2, X[svc.support_[:20]]])  # incl. the SVs
    np.testing.assert_allclose(
        kernel.decision_function(rows), svc.decision_function(rows), atol=1e-9
    )


def test_other_kernels_use_the_generic_occlusion() -> None:
    X = np.random.default_rng(0).normal(size=(60, 3))
    assert rbf_svc_kernel(SVC(kernel="linear").fit(X, X[:, 0] > 0)) is None
    assert rbf_svc_kernel(SVC(kernel="rbf").fit(X, X[:, 0] > 0)) is not None


def generic(explainer: Explainer, row: np.ndarray, target: int):
    kernel, explainer._kernel = explainer._kernel, None
    try:
        return explainer.explain(row, target)
    finally:
        explainer._kernel = kernel


def assert_same(fast, slow) -> None:
    assert fast.scale == slow.scale
    assert fast.baseline == pytest.approx(slow.baseline, abs=1e-9)
    assert fast.output == pytest.approx(slow.output, abs=1e-9)
    assert list(fast.contributions) == list(slow.contributions)
    for name, value in slow.contributions.items():
        assert fast.contributions[name] == pytest.approx(value, abs=1e-9), name


@pytest.mark.parametrize("classes", [2, 3])
def test_fast_occlusion_equals_occluding_rows(make_frame, classes: int) -> None:
    frame = make_frame(n=300, seed=11, classes=classes)
    data = clean(frame, target="label", group="patient_id", text=["chief_complaint"])
    featurizer = Featurizer(data.plans).fit(data.frame)
    X = featurizer.transform(data.frame)
    codes = np.array([data.classes.index(v) for v in data.labels])
    fitted = fit_learner(ALGORITHMS["svm"], X, codes, data.groups, len(data.classes), inner_folds=2)
    explainer = Explainer(fitted.model, featurizer, "occlusion", data.classes)
    assert explainer._kernel is not None
    rows = X.copy()
    rows[::5] = featurizer.feature_means  # a record at the reference: every contribution 0
    some = featurizer.feature_source.index(explainer.columns[0])
    rows[1::5, some] = featurizer.feature_means[some]  # one column already at the reference
    proba = fitted.model.predict_proba(rows)
    for i in range(0, len(rows), 3):
        for target in range(len(data.classes)):
            fast = explainer.explain(rows[i], target)
            assert_same(fast, generic(explainer, rows[i], target))
            total = fast.baseline + sum(fast.contributions.values())
            assert total == pytest.approx(fast.output, abs=1e-9)
            assert fast.output == pytest.approx(proba[i, target], abs=1e-9)
            if i % 5 == 0:
                assert all(abs(v) < 1e-12 for v in fast.contributions.values())


def test_fast_occlusion_with_a_class_the_learner_never_saw(make_frame) -> None:
    """A fold's SVM may miss a rare class; its scores are laid out like the generic path's."""
    frame = make_frame(n=200, seed=4, classes=3)
    data = clean(frame, target="label", group="patient_id", text=["chief_complaint"])
    featurizer = Featurizer(data.plans).fit(data.frame)
    X = featurizer.transform(data.frame)
    codes = np.array([data.classes.index(v) for v in data.labels])
    seen = codes != 1
    svc = SVC().fit(X[seen], codes[seen])
    model = CalibratedModel(svc, Calibrator(temperature=1.7), np.arange(3))
    explainer = Explainer(model, featurizer, "occlusion", data.classes)
    for i in range(0, 40, 4):
        for target in range(3):
            assert_same(explainer.explain(X[i], target), generic(explainer, X[i], target))
