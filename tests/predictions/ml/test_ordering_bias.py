"""Ordering bias: a lab measured only when the clinician already suspects the condition must not
teach the model "not measured, so not that condition".

The data below has the trap built in: troponin is measured on 95 % of myocardial infarctions and
5 % of everything else. A model trained naively learns that a missing troponin argues against MI
and misses the classic presentation at the front door, before anything is ordered; declaring the
lab order-driven (``ModelSpec.order_driven``) trains on front-door views of the visits too (the
lab removed from half of the training rows), and the same presentation ranks MI first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from predictions.ml.pipeline import FRONT_DOOR_SHARE, ModelSpec, fit_final, front_door_view, train

# Each class has a telling phrase, written on a minority of its visits and now and then on
# another class's; the rest say only "chest pain", as many real complaints do.
PHRASES = {
    "mi": "chest pain and sweating",
    "angina": "chest pain on exertion",
    "reflux": "chest burning after meals",
}
SHARED = ("chest pain", "chest discomfort", "pain in the chest")
TELLING_SHARE = 0.45
BORROWED_SHARE = 0.15


def _frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = rng.choice(list(PHRASES), size=n)
    rows = []
    for i, label in enumerate(labels):
        measured = rng.random() < (0.95 if label == "mi" else 0.05)
        troponin = rng.lognormal(np.log(2.0 if label == "mi" else 0.01), 0.5)
        draw = rng.random()
        if draw < TELLING_SHARE:
            complaint = PHRASES[label]
        elif draw < TELLING_SHARE + BORROWED_SHARE:
            complaint = PHRASES[str(rng.choice([c for c in PHRASES if c != label]))]
        else:
            complaint = SHARED[int(rng.integers(len(SHARED)))]
        rows.append(
            {
                "patient_id": str(i),
                "complaint": complaint,
                "heart_rate": rng.normal(95 if label == "mi" else 82, 12),
                "troponin": troponin if measured else np.nan,
                "label": label,
            }
        )
    return pd.DataFrame(rows)


FRONT_DOOR_MI = {"patient_id": "new", "complaint": "chest pain and sweating", "heart_rate": 96.0}


def _spec(order_driven: list[str]) -> ModelSpec:
    return ModelSpec(
        target="label",
        group="patient_id",
        numeric=["heart_rate", "troponin"],
        categorical=[],
        text=["complaint"],
        order_driven=order_driven,
    )


@pytest.fixture(scope="module")
def models() -> dict[str, object]:
    frame = _frame()
    return {
        name: train(
            frame, _spec(order), algorithms=["logistic_regression"], cv=2, n_bootstrap=0
        ).model
        for name, order in (("naive", []), ("order_driven", ["troponin"]))
    }


def test_the_naive_model_falls_into_the_trap_and_the_order_driven_one_does_not(models) -> None:
    naive = models["naive"].predict_one(FRONT_DOOR_MI)
    handled = models["order_driven"].predict_one(FRONT_DOOR_MI)
    assert naive.predicted != "mi"  # "troponin not measured, so not MI": the trap is real
    assert handled.predicted == "mi"
    assert handled.probabilities["mi"] > naive.probabilities["mi"] + 0.3


def test_a_measured_troponin_still_counts(models) -> None:
    model = models["order_driven"]
    unmeasured = model.predict_one(FRONT_DOOR_MI).probabilities["mi"]
    raised = model.predict_one({**FRONT_DOOR_MI, "troponin": 3.0}).probabilities["mi"]
    assert raised > unmeasured
    # Reflux with a measured, normal troponin: the lab argues against MI when it was done.
    reflux = {"patient_id": "r", "complaint": "chest burning after meals", "heart_rate": 80.0}
    assert model.predict_one({**reflux, "troponin": 0.01}).predicted == "reflux"


def test_the_front_door_view_masks_a_seeded_share_of_rows_and_only_the_labs() -> None:
    frame = _frame()
    masked = front_door_view(frame, ["troponin"], FRONT_DOOR_SHARE, seed=3)
    again = front_door_view(frame, ["troponin"], FRONT_DOOR_SHARE, seed=3)
    pd.testing.assert_frame_equal(masked, again)
    measured = frame["troponin"].notna()
    lost = measured & masked["troponin"].isna()
    assert 0.35 < lost.sum() / measured.sum() < 0.65
    pd.testing.assert_frame_equal(masked.drop(columns="troponin"), frame.drop(columns="troponin"))
    assert frame["troponin"].notna().sum() == measured.sum()  # the input is not modified


def test_the_front_door_view_blanks_text_recorded_later_on_the_same_rows() -> None:
    """A history written after triage is blanked ("", not missing) where the labs are removed,
    so the complaint alone must carry a class on those rows."""
    frame = _frame().assign(history=lambda f: "history of " + f["label"])
    masked = front_door_view(frame, ["troponin", "history"], FRONT_DOOR_SHARE, seed=3)
    blanked = masked["history"] == ""
    assert 0.35 < blanked.mean() < 0.65
    assert masked["history"].notna().all()
    removed = masked["troponin"].isna() & frame["troponin"].notna()
    assert not (removed & ~blanked).any()  # the same rows
    assert (masked.loc[~blanked, "history"] == frame.loc[~blanked, "history"]).all()
    spec = ModelSpec(target="label", order_driven=["troponin"], recorded_later=["history"])
    assert spec.front_door_columns({"troponin", "history", "complaint"}) == ("troponin", "history")


def test_the_report_says_how_ordering_bias_was_handled(models) -> None:
    frame = _frame(200)
    report = train(
        frame, _spec(["troponin"]), algorithms=["logistic_regression"], cv=2, n_bootstrap=0
    ).report
    assert report["ordering_bias"]["order_driven_columns"] == ["troponin"]
    assert report["ordering_bias"]["front_door_share"] == FRONT_DOOR_SHARE


def test_fit_final_reproduces_the_model_train_serves(models) -> None:
    """The clinical vignettes test the served model through fit_final: same cleaning, front-door
    views, search, calibration and refit as train's, without the cross-validation."""
    served = models["order_driven"]
    again = fit_final(
        _frame(),
        _spec(["troponin"]),
        algorithm=served.algorithm,
        representation=served.featurizer.representation,
    )
    frame = _frame(50, seed=9)
    np.testing.assert_allclose(again.predict_frame(frame), served.predict_frame(frame))
