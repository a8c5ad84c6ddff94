"""The differential model the app trains on its demo data, built without a database.

``manage.py seed_demo --train`` writes its generated population (3,000 visits, seed 7) and queues a
training job; the job snapshots the labelled visits (``predictions.training_set``), holds out a
share of patients for the champion comparison, and trains the engine with the task's
``model_spec`` and the configured algorithms. This module does the same steps on the generated
population directly (the records :func:`predictions.visit_records.visits_frame` would read back),
so the clinical vignettes test that model and the test needs no 3,000-visit import.
Only visits of the last two days (imported open, with provisional diagnoses) are not left out.

The population includes the longitudinal cohort ``seed_demo`` adds by default
(``--longitudinal 300``, :mod:`visits.demo.longitudinal`), whose labelled visits bring eight
more categories (check-ups, lipids, prediabetes, CKD, reflux, anxiety, back pain, headache);
the vignettes cover them too (the asymptomatic ones as the follow-up visit where they are seen:
``chronic_categories`` in ``vignettes.json``).
"""

from __future__ import annotations

import pandas as pd
from django.conf import settings

from predictions.ml.pipeline import TrainedModel, fit_final
from predictions.ml.split import holdout_split
from predictions.models import PredictionTask
from predictions.services.training import HOLDOUT_SHARE
from predictions.training_set import model_spec
from predictions.visit_records import OTHER_CLASS
from visits.demo import generate_population, population_frame

SEED_DEMO_VISITS = 3000  # seed_demo's defaults
SEED_DEMO_SEED = 7
SEED_DEMO_LONGITUDINAL = 300
# What the training job's five-fold cross-validation selects on this data: logistic regression
# on word and character n-grams (lowest out-of-fold log loss; the MLP on the capped word block
# was 5-7 points of top-1 behind in every run). `python tests/bench/bench_text.py --demo-only`
# and the Models page report the selection; if it changes, change it here.
APP_SELECTION = ("logistic_regression", "word+char")


def differential_task() -> PredictionTask:
    """The differential task as migrations 0002 and 0010 define it (unsaved)."""
    return PredictionTask(
        slug="differential",
        kind=PredictionTask.Kind.DIFFERENTIAL,
        config={"min_class_visits": 30, "max_classes": 40},  # 0002, raised by 0010
    )


def demo_training_frame(task: PredictionTask) -> pd.DataFrame:
    """What the training job learns from: the demo visits' records, labelled as
    ``differential_labels`` labels them, without the held-out patients."""
    population = generate_population(
        n_visits=SEED_DEMO_VISITS,
        seed=SEED_DEMO_SEED,
        longitudinal_patients=SEED_DEMO_LONGITUDINAL,
    )
    frame = population_frame(population)
    category = frame["diagnosis_code"].str[:3]
    counts = category.value_counts()
    frequent = set(
        counts[counts >= task.config["min_class_visits"]].index[: task.config["max_classes"]]
    )
    frame["label"] = category.where(category.isin(frequent), OTHER_CLASS)
    frame = frame.drop(columns=["diagnosis_code", "diagnosis_category"])
    train_idx, _ = holdout_split(
        frame["label"].astype(str).to_numpy(), frame["patient_id"].to_numpy(), HOLDOUT_SHARE, seed=0
    )
    return frame.iloc[train_idx].drop(columns=["visit_id"])


def train_app_model() -> TrainedModel:
    """The model the training job serves: :func:`predictions.ml.pipeline.fit_final` gives the
    engine's final refit (front-door views, hyper-parameter search, calibration, every row) for
    the learner and text representation the job's cross-validation selects, without repeating
    that cross-validation (which would cost minutes per session)."""
    algorithm, representation = APP_SELECTION
    if algorithm not in settings.MEDAI_TRAINING_ALGORITHMS:
        raise AssertionError(f"{algorithm} is not among the configured training algorithms")
    task = differential_task()
    return fit_final(
        demo_training_frame(task),
        model_spec(task),
        algorithm=algorithm,
        representation=representation,
        seed=0,
    )
