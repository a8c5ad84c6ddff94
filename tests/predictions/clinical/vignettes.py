"""The clinical vignettes (``vignettes.json``) as engine records and rule inputs."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

PATH = Path(__file__).resolve().parent / "vignettes.json"

# The vignettes' readable vital names -> LOINC codes of the clinical catalogue (canonical units).
VITAL_CODES = {
    "temperature_c": "8310-5",
    "heart_rate": "8867-4",
    "respiratory_rate": "9279-1",
    "systolic_bp": "8480-6",
    "diastolic_bp": "8462-4",
    "spo2": "2708-6",
}
# The only labs a vignette may carry: the result that defines a lab-defined category (prediabetes,
# CKD), brought to the follow-up visit about it ("labs_why" in the vignette says so).
LAB_CODES = {
    "hba1c_percent": "4548-4",
    "creatinine_mg_dl": "2160-0",
}
RED_FLAG_RULES = (
    "possible_acs",
    "stroke_fast",
    "anaphylaxis",
    "dka_pattern",
    "meningism",
    "gi_bleed",
)


@cache
def document() -> dict[str, Any]:
    return json.loads(PATH.read_text(encoding="utf-8"))


def vignettes() -> list[dict[str, Any]]:
    return list(document()["vignettes"])


def scored() -> list[dict[str, Any]]:
    """Vignettes of a category MedAI predicts, acute and followed-up alike (the gated top-3 figure
    is computed over all of these)."""
    return [v for v in vignettes() if v["expected"]]


def unseen_while_tuning() -> list[dict[str, Any]]:
    """The scored vignettes written before the last change to the demo's notes and not run until
    it was done (``unseen_while_tuning`` in the file): their rate is reported on its own."""
    ids = set(document()["unseen_while_tuning"]["ids"])
    return [v for v in scored() if v["id"] in ids]


def vitals(vignette: dict[str, Any]) -> dict[str, float]:
    return {VITAL_CODES[name]: float(value) for name, value in vignette["vitals"].items()}


def labs(vignette: dict[str, Any]) -> dict[str, float]:
    return {LAB_CODES[name]: float(value) for name, value in vignette.get("labs", {}).items()}


def record(vignette: dict[str, Any]) -> dict[str, Any]:
    """The engine record the app builds for such a visit (predictions.visit_records.visit_record):
    the complaint typed at the front door, no history yet, triage vitals, and no labs but the
    defining result a follow-up visit about a lab-defined category brings."""
    return {
        "patient_id": f"vignette-{vignette['id']}",
        "age": float(vignette["age"]),
        "sex": vignette["sex"],
        "visit_type": vignette["visit_type"],
        "chief_complaint": vignette["complaint"],
        "history": "",
        **{f"obs_{code}": value for code, value in vitals(vignette).items()},
        **{f"obs_{code}": value for code, value in labs(vignette).items()},
    }
