"""The MEDS export: command output, the meds schemas, pseudonyms only, the audit trail."""

from __future__ import annotations

import json
from io import StringIO

import meds
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command

from medai_site.models import AuditEvent
from predictions.ml.timeline.events import read_events
from predictions.services.meds_export import meds_export, patient_events, subject_id_for

N_VISITS = 120


@pytest.fixture
def small_population(db, team_a, doctor_a):
    from visits.demo import generate_population
    from visits.demo_import import population_import

    return population_import(
        population=generate_population(n_visits=N_VISITS, seed=3),
        teams=[team_a],
        attendings=[doctor_a],
    )


def test_command_writes_a_meds_dataset_with_the_schemas(small_population, tmp_path):
    out = StringIO()
    call_command("export_meds", str(tmp_path / "meds"), stdout=out)
    root = tmp_path / "meds"
    assert f"{small_population.patients} subjects" in out.getvalue()
    data = pq.read_table(root / "data" / "0.parquet")
    # The file fits meds' own schema (align refuses a wrong type or a missing column).
    meds.DataSchema.align(data)
    assert data.schema.field("subject_id").type == meds.DataSchema.schema().field("subject_id").type
    events = read_events(root / "data" / "0.parquet")
    codes = set(events["code"])
    assert {"GENDER/F", "GENDER/M"} & codes
    assert meds.birth_code in codes
    assert any(c.startswith("LOINC/") for c in codes)
    assert any(c.startswith("ICD10/") for c in codes)
    assert any(c.startswith("VISIT/") for c in codes)
    assert all(
        c.split("/")[0] in {"GENDER", "LOINC", "ICD10", "VISIT", "MEDS_BIRTH"} for c in codes
    )
    # Static facts have no time; every LOINC event carries its value.
    statics = events[events["time"].isna()]
    assert set(statics["code"].str.split("/").str[0]) == {"GENDER"}
    assert events[events["code"].str.startswith("LOINC/")]["numeric_value"].notna().all()
    assert events["subject_id"].nunique() == small_population.patients
    metadata = json.loads((root / "metadata" / "dataset.json").read_text())
    assert metadata["etl_name"] == "medai.meds_export"
    assert metadata["meds_version"] == meds.__version__
    code_table = pq.read_table(root / "metadata" / "codes.parquet")
    meds.CodeMetadataSchema.align(code_table)
    assert set(code_table["code"].to_pylist()) == codes
    splits = pq.read_table(root / "metadata" / "subject_splits.parquet")
    meds.SubjectSplitSchema.align(splits)
    assert set(splits["subject_id"].to_pylist()) == set(events["subject_id"])


def test_export_has_pseudonyms_and_no_identifiers(small_population, tmp_path):
    from patients.models import Patient

    meds_export(out_dir=tmp_path / "m", actor=None)
    root = tmp_path / "m"
    data = pq.read_table(root / "data" / "0.parquet")
    assert data.column_names == ["subject_id", "time", "code", "numeric_value"]  # no free text
    text = "\n".join(
        [(root / "metadata" / "dataset.json").read_text()]
        + [str(v) for v in data["code"].to_pylist()]
        + [str(v) for v in pq.read_table(root / "metadata" / "codes.parquet").to_pylist()]
    )
    events = read_events(root / "data" / "0.parquet")
    patients = list(Patient.objects.all())
    pks = {p.pk for p in patients}
    assert set(events["subject_id"]) == {subject_id_for(p.pk) for p in patients}
    assert not set(events["subject_id"]) & pks  # not the database ids
    codes = set(events["code"])
    for p in patients:
        for secret in (p.mrn, p.national_id, p.phone, p.email, p.birth_date.isoformat()):
            assert not secret or secret not in text, "an identifier leaked into the export"
        for name in (p.given_name, p.family_name):
            assert not any(name in c.split("/") for c in codes)
    births = events[events["code"] == meds.birth_code]["time"]
    assert (births.dt.month == 7).all()  # birth year only
    assert (births.dt.day == 1).all()


def test_export_is_audited_per_patient(small_population, tmp_path, admin_user):
    before = AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT).count()
    meds_export(out_dir=tmp_path / "m", actor=admin_user)
    rows = AuditEvent.objects.filter(
        action=AuditEvent.Action.EXPORT, object_type="predictions.meds_export"
    )
    assert rows.count() - before == small_population.patients
    assert set(rows.values_list("actor_id", flat=True)) == {admin_user.pk}
    assert set(rows.values_list("interface", flat=True)) == {AuditEvent.Interface.COMMAND}


def test_command_refuses_a_non_empty_directory_and_writes_nothing(small_population, tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(CommandError, match="not empty"):
        call_command("export_meds", str(target))
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert not AuditEvent.objects.filter(object_type="predictions.meds_export").exists()
    with pytest.raises(CommandError, match="No active user"):
        call_command("export_meds", str(tmp_path / "new"), "--actor", "nobody")
    assert not (tmp_path / "new").exists()


def test_command_with_no_visits_is_a_clear_error(db, tmp_path):
    with pytest.raises(CommandError, match="no visits"):
        call_command("export_meds", str(tmp_path / "empty"))
    assert not (tmp_path / "empty").exists()


def test_patient_events_match_the_export(small_population, tmp_path):
    from patients.models import Patient

    meds_export(out_dir=tmp_path / "m", actor=None)
    events = read_events(tmp_path / "m" / "data" / "0.parquet")
    patient = Patient.objects.order_by("pk").first()
    mine = patient_events(patient.pk)
    exported = events[events["subject_id"] == subject_id_for(patient.pk)]
    assert sorted(mine["code"]) == sorted(exported["code"])


def test_diagnoses_from_advice_are_not_exported(small_population):
    from visits.models import Diagnosis, Visit

    visit = Visit.objects.filter(diagnoses__status=Diagnosis.Status.CONFIRMED).first()
    diagnosis = visit.diagnoses.filter(status=Diagnosis.Status.CONFIRMED).first()
    code = f"ICD10/{diagnosis.code}"
    before = (patient_events(visit.patient_id)["code"] == code).sum()
    Diagnosis.objects.filter(pk=diagnosis.pk).update(source=Diagnosis.Source.ADVICE)
    after = (patient_events(visit.patient_id)["code"] == code).sum()
    assert after == before - 1


def test_command_shifts_each_subjects_dates_and_keeps_intervals(small_population, tmp_path):
    """A research extract carries no real date of service: every event of a subject moves back
    by the same keyed 1-365 days, so intervals (and ages) survive; --real-dates keeps them."""
    from patients.models import Patient
    from predictions.services.meds_export import date_shift_days

    call_command("export_meds", str(tmp_path / "shifted"), stdout=StringIO())
    call_command("export_meds", str(tmp_path / "real"), "--real-dates", stdout=StringIO())
    shifted = read_events(tmp_path / "shifted" / "data" / "0.parquet")
    real = read_events(tmp_path / "real" / "data" / "0.parquet")
    assert len(shifted) == len(real)
    moved = 0
    for patient in Patient.objects.all():
        subject = subject_id_for(patient.pk)
        s = shifted[shifted["subject_id"] == subject].dropna(subset=["time"])
        r = real[real["subject_id"] == subject].dropna(subset=["time"])
        # Birth keeps its 1 July: shifted, that known day would give the offset away.
        s_birth, r_birth = (f[f["code"] == meds.birth_code]["time"].tolist() for f in (s, r))
        assert s_birth == r_birth
        assert all((t.month, t.day) == (7, 1) for t in s_birth)
        s, r = s[s["code"] != meds.birth_code], r[r["code"] != meds.birth_code]
        offsets = (r["time"].to_numpy() - s["time"].to_numpy()).astype("timedelta64[D]")
        assert len(set(offsets.tolist())) == 1  # one offset per subject: intervals are kept
        days = int(offsets[0].astype(int))
        assert days == date_shift_days(subject)
        assert 1 <= days <= 365
        moved += 1
        # No event keeps its own date of service. (A shifted date may still equal another of
        # the subject's real dates: two visits exactly ``days`` apart; seen once in CI.)
        assert (s["time"].dt.date.to_numpy() != r["time"].dt.date.to_numpy()).all()
    assert moved == small_population.patients
    # Subjects do not share one offset (it would be undone by one known visit).
    assert len({date_shift_days(subject_id_for(p.pk)) for p in Patient.objects.all()}) > 1
