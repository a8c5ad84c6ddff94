"""Shared fixtures for the engine tests: none of them needs a database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[3]
DATASETS = REPO / ".." / "shared" / "datasets"
HEART = DATASETS / "heart_cleveland.csv"


@pytest.fixture(scope="session")
def heart_path() -> Path:
    if not HEART.is_file():
        pytest.fail(f"reference dataset missing: {HEART} (CI provides ../shared/datasets)")
    return HEART


def make_clinical_frame(n: int = 240, seed: int = 0, *, classes: int = 2) -> pd.DataFrame:
    """A small visit-shaped frame with a learnable label and every column kind."""
    rng = np.random.default_rng(seed)
    patients = rng.integers(0, n // 2, n)
    age = rng.uniform(20, 90, n)
    heart_rate = rng.normal(80, 15, n)
    temperature = rng.normal(37.0, 0.7, n)
    sex = rng.choice(["male", "female"], n)
    visit_type = rng.choice(["emergency", "outpatient", "inpatient"], n)
    risk = 0.04 * (age - 55) + 0.06 * (heart_rate - 80) + 1.2 * (temperature - 37)
    risk += np.where(visit_type == "emergency", 1.0, 0.0) + rng.normal(0, 0.8, n)
    if classes == 2:
        label = np.where(risk > 0.3, "sick", "well")
    else:
        label = np.digitize(risk, np.quantile(risk, np.linspace(0, 1, classes + 1)[1:-1])).astype(
            str
        )
    # The note agrees with the label only loosely, as real complaints do.
    words = np.where(
        risk + rng.normal(0, 1.5, n) > 0.3,
        "chest pain and shortness of breath",
        "routine check no complaints",
    )
    frame = pd.DataFrame(
        {
            "patient_id": [f"p{p}" for p in patients],
            "age": age.round(1),
            "sex": sex,
            "obs_8867-4": heart_rate.round(0),
            "obs_8310-5": temperature.round(1),
            "visit_type": visit_type,
            "chief_complaint": [
                f"{w} since {d} days" for w, d in zip(words, rng.integers(1, 9, n), strict=True)
            ],
            "label": label,
        }
    )
    frame.loc[rng.random(n) < 0.1, "obs_8310-5"] = np.nan
    return frame


@pytest.fixture(scope="session")
def make_frame() -> Callable[..., pd.DataFrame]:
    """Factory for small clinical frames (``make_frame(n=..., seed=..., classes=...)``)."""
    return make_clinical_frame
