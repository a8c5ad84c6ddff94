"""MEDS export: the hospital's records as patient timelines in the Medical Event Data Standard.

One module serves every consumer: ``manage.py export_meds OUT_DIR`` (a dataset on disk), the
forecast training job's snapshot (the events it trains on) and the chart's "Course and outlook"
panel (one patient's events, built in memory). FHIR interoperability (issue 16) may reuse
:func:`meds_events_frame` for the same code mapping.

What is exported (and what never is):

* ``subject_id`` is a pseudonym: HMAC-SHA256 of the patient's database id under a key derived from
  ``BLIND_INDEX_KEY`` (context ``meds-subject``), truncated to a positive int64. Stable across
  exports (so a re-export and a training snapshot agree); not reversible without the key.
* No name, MRN, contact, address, national id, free text or exact birth date. Birth is one
  ``MEDS_BIRTH`` event on 1 July of the birth year estimated from the first visit's recorded age
  (ages are capped at 90 like the visit's own field), sex one static ``GENDER/F|M|O|U`` event.
* Dates: a dataset written for use outside MedAI (``export_meds``) moves every event of a subject
  but birth by the same keyed offset of 1-365 days into the past (``date_shift_days``), the usual
  de-identification of research extracts (MIMIC shifts the same way): intervals, ages, order and
  trends are kept, the real dates of service are not. The training snapshot and the chart's
  panel stay on the server and use real dates (``shift_dates=False``).
* Per visit, at its start time: ``VISIT/<type>``, one ``LOINC/<code>`` per observation with its
  value in the catalogue's canonical unit, one ``ICD10/<code>`` per confirmed diagnosis (primary and
  secondary; provisional and refuted diagnoses are not facts yet; diagnoses that came from advice
  are left out, so a model's suggestion never becomes a forecast's training label).

The dataset layout follows MEDS: ``data/0.parquet`` (aligned to ``meds.DataSchema`` by the engine's
``write_events``), ``metadata/dataset.json`` (``meds.DatasetMetadataSchema``),
``metadata/codes.parquet`` (``meds.CodeMetadataSchema``: code, description, parent codes) and
``metadata/subject_splits.parquet`` (``meds.SubjectSplitSchema``; 80/10/10 by pseudonym).

An export to disk is audited: one ``export`` AuditEvent per exported patient, with the actor and
interface (command, worker), in one insert.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import meds
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.db.models import QuerySet

from medai_site.audit import audit_record_many
from medai_site.errors import InvalidInput
from medai_site.models import AuditEvent
from patients.models import Patient
from predictions.ml.timeline.events import write_events
from visits.catalogue import BY_CODE
from visits.models import Diagnosis, Observation, Visit

ETL_NAME = "medai.meds_export"
ETL_VERSION = "1"
SEX_CODES = {
    Patient.Sex.FEMALE: "GENDER/F",
    Patient.Sex.MALE: "GENDER/M",
    Patient.Sex.OTHER: "GENDER/O",
    Patient.Sex.UNKNOWN: "GENDER/U",
}
MAX_AGE = 90  # ages above are recorded as 90 (the visit's own cap; HIPAA safe-harbour style)
SPLITS = ((meds.train_split, 80), (meds.tuning_split, 10), (meds.held_out_split, 10))
EVENT_COLUMNS = ["subject_id", "time", "code", "numeric_value"]


def subject_id_for(patient_id: int) -> int:
    """The pseudonymous MEDS subject id of a patient (positive int64, keyed, stable)."""
    key = bytes.fromhex(settings.BLIND_INDEX_KEY)
    digest = hmac.new(key, f"meds-subject:{int(patient_id)}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


MAX_DATE_SHIFT_DAYS = 365


def date_shift_days(subject_id: int) -> int:
    """The subject's date shift in a research export: 1-365 days back, keyed, stable.

    Keyed (not derivable from the pseudonym without ``BLIND_INDEX_KEY``) so nobody holding the
    dataset can undo it; stable so two exports of the same patient line up.
    """
    key = bytes.fromhex(settings.BLIND_INDEX_KEY)
    digest = hmac.new(key, f"meds-date-shift:{int(subject_id)}".encode(), hashlib.sha256).digest()
    return 1 + int.from_bytes(digest[:4], "big") % MAX_DATE_SHIFT_DAYS


def _shift_dates(frame: pd.DataFrame) -> pd.DataFrame:
    """Every event of a subject moved back by its ``date_shift_days``, except birth.

    Birth stays on 1 July of its year: shifted, that known day would give the offset away (and
    with it every real date). Birth is an estimate to the year anyway, so ages move by less
    than the estimate's own error. Static facts keep NaT.
    """
    shifts = {s: date_shift_days(s) for s in frame["subject_id"].unique().tolist()}
    days = frame["subject_id"].map(shifts).to_numpy().astype("timedelta64[D]")
    days[(frame["code"] == meds.birth_code).to_numpy()] = np.timedelta64(0, "D")
    shifted = frame.copy()
    shifted["time"] = (frame["time"].to_numpy() - days).astype("datetime64[us]")
    return shifted


def observation_code(loinc: str) -> str:
    return f"LOINC/{loinc}"


def diagnosis_code(icd10: str) -> str:
    return f"ICD10/{icd10}"


def _naive_utc(values: Iterable[datetime]) -> np.ndarray:
    return np.array(
        [v.astimezone(UTC).replace(tzinfo=None) for v in values], dtype="datetime64[us]"
    )


def meds_events_frame(visits: QuerySet[Visit]) -> pd.DataFrame:
    """MEDS events of the patients owning ``visits`` (their events on those visits only).

    Columns ``subject_id`` (pseudonym), ``time`` (naive UTC; NaT for static facts), ``code``,
    ``numeric_value``; sorted by subject and time. Four queries whatever the size; nothing is
    decrypted.
    """
    rows = list(
        visits.order_by("patient_id", "start", "pk").values_list(
            "pk", "patient_id", "start", "visit_type", "age_years", "patient__sex"
        )
    )
    if not rows:
        return pd.DataFrame(
            {
                "subject_id": np.zeros(0, np.int64),
                "time": np.zeros(0, "datetime64[us]"),
                "code": np.zeros(0, object),
                "numeric_value": np.zeros(0, float),
            }
        )
    visit_ids = [r[0] for r in rows]
    subject = {pid: subject_id_for(pid) for pid in {r[1] for r in rows}}
    visit_subject = {r[0]: subject[r[1]] for r in rows}
    visit_time = dict(zip(visit_ids, _naive_utc(r[2] for r in rows), strict=True))
    frames = []
    # Static facts and birth, from each patient's first visit in the set.
    first: dict[int, tuple[Any, ...]] = {}
    for row in rows:
        first.setdefault(row[1], row)
    statics, births = [], []
    for pid, (_, _, start, _, age, sex) in first.items():
        statics.append((subject[pid], SEX_CODES.get(sex, "GENDER/U")))
        births.append((subject[pid], start.astimezone(UTC).year - min(int(age), MAX_AGE)))
    frames.append(
        pd.DataFrame(
            {
                "subject_id": [s for s, _ in statics],
                "time": np.full(len(statics), np.datetime64("NaT"), "datetime64[us]"),
                "code": [c for _, c in statics],
                "numeric_value": np.nan,
            }
        )
    )
    frames.append(
        pd.DataFrame(
            {
                "subject_id": [s for s, _ in births],
                "time": np.array([f"{y:04d}-07-01" for _, y in births], dtype="datetime64[us]"),
                "code": meds.birth_code,
                "numeric_value": np.nan,
            }
        )
    )
    frames.append(
        pd.DataFrame(
            {
                "subject_id": [visit_subject[r[0]] for r in rows],
                "time": [visit_time[r[0]] for r in rows],
                "code": [f"VISIT/{r[3]}" for r in rows],
                "numeric_value": np.nan,
            }
        )
    )
    observations = list(
        Observation.objects.filter(visit_id__in=visit_ids).values_list(
            "visit_id", "definition__code", "value"
        )
    )
    if observations:
        frames.append(
            pd.DataFrame(
                {
                    "subject_id": [visit_subject[v] for v, _, _ in observations],
                    "time": [visit_time[v] for v, _, _ in observations],
                    "code": [observation_code(c) for _, c, _ in observations],
                    "numeric_value": [float(x) for _, _, x in observations],
                }
            )
        )
    # A diagnosis that came from advice is left out even once confirmed: a model's suggestion
    # must never teach the next model (the same rule as predictions.visit_records).
    diagnoses = list(
        Diagnosis.objects.filter(visit_id__in=visit_ids, status=Diagnosis.Status.CONFIRMED)
        .exclude(source=Diagnosis.Source.ADVICE)
        .values_list("visit_id", "code")
    )
    if diagnoses:
        frames.append(
            pd.DataFrame(
                {
                    "subject_id": [visit_subject[v] for v, _ in diagnoses],
                    "time": [visit_time[v] for v, _ in diagnoses],
                    "code": [diagnosis_code(c) for _, c in diagnoses],
                    "numeric_value": np.nan,
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    frame["subject_id"] = frame["subject_id"].astype(np.int64)
    frame["time"] = pd.to_datetime(frame["time"]).astype("datetime64[us]")
    frame["numeric_value"] = frame["numeric_value"].astype(float)
    key = frame["time"].to_numpy().view(np.int64)  # NaT is the smallest: statics first
    order = np.lexsort((key, frame["subject_id"].to_numpy()))
    return frame.iloc[order].reset_index(drop=True)


def patient_events(patient_id: int) -> pd.DataFrame:
    """One patient's MEDS events (the chart's forecast input; the caller audits the view)."""
    return meds_events_frame(Visit.objects.filter(patient_id=patient_id))


@dataclass(frozen=True)
class MedsExport:
    path: Path
    subjects: int
    events: int
    codes: int
    sha256: str  # of data/0.parquet


def _code_metadata(codes: Iterable[str]) -> pa.Table:
    from visits.icd10 import icd10_lookup

    rows = []
    for code in sorted(set(codes)):
        vocabulary, _, value = code.partition("/")
        description, parents = "", []
        if vocabulary == "LOINC" and value in BY_CODE:
            definition = BY_CODE[value]
            description = f"{definition.display} [{definition.unit}]"
        elif vocabulary == "ICD10":
            try:
                description = icd10_lookup(value)[1]
            except InvalidInput:  # a code no longer in the list keeps an empty description
                description = ""
            if "." in value:
                parents = [f"ICD10/{value.split('.')[0]}"]
        rows.append({"code": code, "description": description, "parent_codes": parents})
    return pa.Table.from_pylist(rows, schema=meds.CodeMetadataSchema.schema())


def _subject_splits(subjects: np.ndarray) -> pa.Table:
    buckets = subjects % 100
    split = np.where(
        buckets < SPLITS[0][1],
        SPLITS[0][0],
        np.where(buckets < SPLITS[0][1] + SPLITS[1][1], SPLITS[1][0], SPLITS[2][0]),
    )
    return pa.Table.from_pydict(
        {"subject_id": subjects.astype(np.int64), "split": split.astype(str)},
        schema=meds.SubjectSplitSchema.schema(),
    )


def meds_export(
    *,
    out_dir: Path | str,
    actor: object | None,
    visits: QuerySet[Visit] | None = None,
    overwrite: bool = False,
    dataset_name: str = "MedAI",
    shift_dates: bool = False,
) -> MedsExport:
    """Write a MEDS dataset of ``visits`` (default: every visit) to ``out_dir`` and audit it.

    Refuses (``InvalidInput``, nothing written) when ``out_dir`` is a file, or a non-empty
    directory without ``overwrite``, or there is nothing to export. The dataset is built in a
    sibling temporary directory and moved into place, so a failed export leaves nothing behind.
    ``shift_dates`` moves each subject's events by its keyed offset (a dataset leaving MedAI).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"{out} is a file, not a directory.", fields={"out_dir": ["Not a dir."]})
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InvalidInput(
            f"{out} is not empty; choose an empty directory or overwrite it explicitly.",
            fields={"out_dir": ["Not empty."]},
        )
    visits = Visit.objects.all() if visits is None else visits
    frame = meds_events_frame(visits)
    if frame.empty:
        raise InvalidInput("There are no visits to export.", fields={"out_dir": ["No data."]})
    if shift_dates:
        frame = _shift_dates(frame)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        data = write_events(frame, staging / meds.data_subdirectory / "0.parquet")
        (staging / "metadata").mkdir(exist_ok=True)
        pq.write_table(_code_metadata(frame["code"]), staging / meds.code_metadata_filepath)
        subjects = np.unique(frame["subject_id"].to_numpy())
        pq.write_table(_subject_splits(subjects), staging / meds.subject_splits_filepath)
        metadata = {
            "dataset_name": dataset_name,
            "dataset_version": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
            "etl_name": ETL_NAME,
            "etl_version": ETL_VERSION,
            "meds_version": meds.__version__,
            "created_at": datetime.now(UTC).isoformat(),
        }
        (staging / meds.dataset_metadata_filepath).write_text(json.dumps(metadata, indent=2))
        digest = hashlib.sha256(data.read_bytes()).hexdigest()
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    patient_ids = sorted(set(visits.values_list("patient_id", flat=True)))
    audit_record_many(
        actor=actor,
        action=AuditEvent.Action.EXPORT,
        patient_ids=patient_ids,
        object_type="predictions.meds_export",
        object_ids=patient_ids,  # the pseudonyms stay out of the audit trail
    )
    return MedsExport(
        path=out,
        subjects=len(subjects),
        events=len(frame),
        codes=int(frame["code"].nunique()),
        sha256=digest,
    )
