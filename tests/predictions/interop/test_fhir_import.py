"""import_fhir: realistic bundles (transaction with urn:uuid references, NDJSON bulk export),
validated before writing, written through the services, idempotent, every skip with its reason,
audited as an import; hostile files change nothing they should not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from medai_site.models import AuditEvent
from patients.models import Allergy, Patient
from predictions.interop.models import SourceCondition, SourceRecord
from predictions.interop.services import fhir_import
from visits.models import Diagnosis, Observation, Visit

pytestmark = pytest.mark.django_db
DATA = Path(__file__).parent / "data"
BUNDLE = DATA / "hospital_transaction.json"


def _import(paths, actor, team, **kwargs):
    return fhir_import(paths=[Path(p) for p in paths], actor=actor, care_teams=[team], **kwargs)


def _state():
    return (
        Patient.objects.count(),
        Visit.objects.count(),
        Observation.objects.count(),
        Diagnosis.objects.count(),
        Allergy.objects.count(),
        SourceCondition.objects.count(),
        SourceRecord.objects.count(),
    )


def test_transaction_bundle_imports_through_the_services(admin_user, team_a):
    report = _import([BUNDLE], admin_user, team_a).as_dict()
    counts = report["counts"]
    assert counts["Patient"] == {"created": 3, "updated": 0, "unchanged": 0, "skipped": 0}
    assert counts["Encounter"]["created"] == 4
    assert counts["Observation"]["created"] == 9
    assert counts["Observation"]["skipped"] == 4
    assert counts["Condition"]["created"] == 4
    assert counts["AllergyIntolerance"]["created"] == 2
    assert counts["MedicationRequest"]["skipped"] == 1
    assert report["skip_reasons"] == {
        "implausible_value": 1,
        "invalid_resource": 1,
        "missing_reference": 1,
        "unknown_code": 1,
        "unsupported_resource_type": 1,
    }
    reasons = {s["id"]: (s["reason"], s["detail"]) for s in report["skipped"]}
    assert "outside the possible range" in reasons["obs-8"][1]
    assert "2339-0" in reasons["obs-11"][1]
    assert reasons["obs-12"][0] == "invalid_resource"
    assert "fast" not in reasons["obs-12"][1]  # the offending value is never echoed
    assert reasons["med-1"][0] == "unsupported_resource_type"

    amelia = Patient.objects.get(mrn="H-100234")
    assert (amelia.given_name, amelia.family_name, amelia.sex) == (
        "Amelia Rose",
        "Hartmann",
        "female",
    )
    assert amelia.national_id == "999-12-3456"
    assert list(amelia.care_teams.all()) == [team_a]
    assert Patient.objects.filter(phone_bidx__isnull=False, mrn="H-100234").exists()
    visit = Visit.objects.get(patient=amelia, start__date="2024-02-10")
    assert (visit.visit_type, visit.status, visit.chief_complaint) == (
        "outpatient",
        "closed",
        "Chest pain",
    )
    values = {
        o.definition_id and o.definition.code: o
        for o in visit.observations.select_related("definition")
    }
    assert (values["8480-6"].value, values["8462-4"].value) == (148, 92)  # BP panel split
    assert abs(values["2345-7"].value - 140.52) < 0.01  # 7.8 mmol/L -> mg/dL via the catalogue
    assert values["2345-7"].entered_unit == "mmol/L"
    fever = Observation.objects.get(definition__code="8310-5", visit__patient__mrn="H-100235")
    assert fever.value == 39.0
    assert fever.interpretation == "H"
    open_visit = Visit.objects.get(patient=amelia, start__date="2024-03-01")
    assert open_visit.status == "open"

    diagnoses = {d.code: d for d in Diagnosis.objects.filter(visit=visit)}
    assert set(diagnoses) == {"I20.9", "I10"}  # ICD-10 direct; SNOMED + ICD-10 takes the ICD-10
    assert diagnoses["I20.9"].rank == "primary"
    assert diagnoses["I10"].rank == "secondary"
    kept = {c.code: c for c in SourceCondition.objects.all()}
    assert set(kept) == {"233604007", "13645005"}  # SNOMED only: kept as given, not guessed
    assert kept["233604007"].system == "http://snomed.info/sct"
    assert kept["233604007"].display == "Pneumonia"
    assert report["unmapped_conditions"] == 2
    assert Allergy.objects.get(patient__mrn="H-100235").severity == "severe"


def test_reimport_changes_nothing(admin_user, team_a):
    _import([BUNDLE], admin_user, team_a)
    before, audit = _state(), AuditEvent.objects.count()
    report = _import([BUNDLE], admin_user, team_a).as_dict()
    assert _state() == before
    assert AuditEvent.objects.count() == audit
    assert report["totals"]["created"] == report["totals"]["updated"] == 0
    assert report["totals"]["unchanged"] == 22
    assert report["totals"]["skipped"] == 5  # the same five, for the same reasons


def test_updated_resource_updates_through_the_services_audited_as_import(
    admin_user, team_a, tmp_path
):
    _import([BUNDLE], admin_user, team_a)
    bundle = json.loads(BUNDLE.read_text())
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["id"] == "pat-2":
            resource["telecom"][0]["value"] = "+1 413 555 0000"
        if resource["id"] == "obs-2":
            resource["valueQuantity"]["value"] = 131
        if resource["id"] == "cond-3":
            resource["verificationStatus"]["coding"][0]["code"] = "confirmed"
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(bundle))
    last = AuditEvent.objects.order_by("-id").first().pk
    report = _import([changed], admin_user, team_a).as_dict()
    assert report["counts"]["Patient"]["updated"] == 1
    assert report["counts"]["Observation"]["updated"] == 1
    assert report["counts"]["Condition"]["updated"] == 1
    assert Patient.objects.get(mrn="H-100235").phone == "+1 413 555 0000"
    heart = Observation.objects.get(definition__code="8867-4", visit__patient__mrn="H-100234")
    assert (heart.value, heart.interpretation) == (131, "HH")
    events = AuditEvent.objects.filter(pk__gt=last)
    assert events.exists()
    assert set(events.values_list("interface", flat=True)) == {"import"}
    assert set(events.values_list("actor_id", flat=True)) == {admin_user.pk}


def test_dry_run_counts_exactly_and_writes_nothing(admin_user, team_a):
    before, audit = _state(), AuditEvent.objects.count()
    dry = _import([BUNDLE], admin_user, team_a, dry_run=True).as_dict()
    assert _state() == before
    assert AuditEvent.objects.count() == audit
    real = _import([BUNDLE], admin_user, team_a).as_dict()
    assert dry["counts"] == real["counts"]
    assert dry["dry_run"] is True


def test_ndjson_bulk_directory_with_relative_references(admin_user, team_a):
    report = _import([DATA / "bulk"], admin_user, team_a).as_dict()
    assert report["files"] == ["Patient.ndjson", "Encounter.ndjson", "Observation.ndjson"]
    assert report["totals"] == {"created": 7, "updated": 0, "unchanged": 0, "skipped": 0}
    weight = Observation.objects.get(definition__code="29463-7")
    assert abs(weight.value - 69.85) < 0.01  # 154 lb
    assert Visit.objects.get(patient__mrn="BULK-0002").visit_type == "telemedicine"


def test_references_resolve_when_the_patient_comes_later(admin_user, team_a, tmp_path):
    (tmp_path / "a.ndjson").write_text(
        (DATA / "bulk" / "Observation.ndjson").read_text()
        + (DATA / "bulk" / "Encounter.ndjson").read_text()
        + (DATA / "bulk" / "Patient.ndjson").read_text()
    )
    report = _import([tmp_path / "a.ndjson"], admin_user, team_a).as_dict()
    assert report["totals"]["created"] == 7


def test_doctor_imports_into_own_team_and_cannot_touch_other_teams_patients(
    doctor_a, team_a, patient_b, tmp_path
):
    resource = {
        "resourceType": "Patient",
        "id": "x1",
        "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": patient_b.mrn}],
        "name": [{"family": "Mallory", "given": ["Eve"]}],
        "birthDate": "1970-01-02",
    }
    path = tmp_path / "p.json"
    path.write_text(json.dumps(resource))
    report = _import([path], doctor_a, team_a).as_dict()
    assert report["skip_reasons"] == {"outside_scope": 1}
    patient_b.refresh_from_db()
    assert patient_b.family_name == "Berg"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            '{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient", "id": "1"',
            "unreadable",
        ),
        ("not json at all", "unreadable"),
        (
            '{"resourceType": "Bundle", "type": "batch", "entry": [{"resource": {"resourceType": "Observation", "id": "o", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}, "subject": {"reference": "Patient/ghost"}, "valueQuantity": {"value": 80, "unit": "/min"}}}]}',
            "missing_reference",
        ),
        (
            '{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient", "id": "p", "gender": 7}}]}',
            "invalid_resource",
        ),
        (
            '{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"id": "p"}}]}',
            "invalid_resource",
        ),
        (
            '{"resourceType": "Bundle", "type": "collection", "entry": [42, {"resource": "x"}]}',
            "unreadable",
        ),
        (
            '{"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Patient", "id": "p"}, "request": {"method": "DELETE", "url": "Patient/p"}}]}',
            "unsupported_request",
        ),
    ],
)
def test_hostile_files_are_reported_not_raised(admin_user, team_a, tmp_path, content, reason):
    path = tmp_path / "hostile.json"
    path.write_text(content)
    before = _state()
    report = _import([path], admin_user, team_a).as_dict()
    assert reason in report["skip_reasons"]
    assert _state() == before


def test_duplicated_ids_in_one_import(admin_user, team_a, tmp_path):
    bundle = json.loads(BUNDLE.read_text())
    first = bundle["entry"][0]
    twin = json.loads(json.dumps(first))
    twin["fullUrl"] = "urn:uuid:twin"
    twin["resource"]["name"][0]["family"] = "Other"
    bundle["entry"] += [json.loads(json.dumps(first)), twin]
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(bundle))
    report = _import([path], admin_user, team_a).as_dict()
    assert report["skip_reasons"]["duplicate"] == 1
    assert report["skip_reasons"]["duplicate_conflict"] == 1
    assert Patient.objects.get(mrn="H-100234").family_name == "Hartmann"


def test_code_map_maps_snomed_to_icd10(admin_user, team_a, tmp_path):
    mapping = tmp_path / "map.csv"
    mapping.write_text("system,code,icd10\nhttp://snomed.info/sct,233604007,J18.9\n")
    report_path = tmp_path / "report.json"
    call_command(
        "import_fhir",
        str(BUNDLE),
        "--as",
        admin_user.username,
        "--care-team",
        team_a.name,
        "--code-map",
        str(mapping),
        "--report",
        str(report_path),
        "--no-progress",
    )
    report = json.loads(report_path.read_text())
    assert report["unmapped_conditions"] == 1
    assert Diagnosis.objects.filter(code="J18.9", visit__patient__mrn="H-100235").exists()


def test_command_refuses_unknown_user_team_and_path(admin_user, team_a, doctor_b):
    with pytest.raises(CommandError, match="No active user"):
        call_command("import_fhir", str(BUNDLE), "--as", "nobody")
    with pytest.raises(CommandError, match="Unknown care team"):
        call_command(
            "import_fhir", str(BUNDLE), "--as", doctor_b.username, "--care-team", team_a.name
        )
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_fhir", "/nonexistent.json", "--as", admin_user.username)
    assert Patient.objects.count() == 0


def test_source_coded_conditions_are_shown_through_the_fhir_api(
    admin_user, team_a, doctor_a, fhir_client_for
):
    from tests.predictions.interop.conftest import fhir_validate

    _import([BUNDLE], admin_user, team_a)
    bilal = Patient.objects.get(mrn="H-100235")
    api = fhir_client_for(doctor_a)  # doctor A's care team is the one the import named
    body = api.get(f"/fhir/r4/Patient/{bilal.pk}/$everything").json()
    kept = [
        e["resource"]
        for e in body["entry"]
        if e["resource"]["resourceType"] == "Condition"
        and e["resource"]["id"].startswith("source-")
    ]
    assert len(kept) == 1
    assert kept[0]["code"]["coding"][0] == {
        "system": "http://snomed.info/sct",
        "code": "233604007",
        "display": "Pneumonia",
    }
    fhir_validate(kept[0])
    read = api.get(f"/fhir/r4/Condition/{kept[0]['id']}")
    assert read.status_code == 200
    assert read.json() == kept[0]
    assert AuditEvent.objects.filter(
        object_type="interop.sourcecondition", action="view", patient_id=bilal.pk
    ).exists()
    assert api.get("/fhir/r4/Condition/source-999999").status_code == 404
    assert api.get("/fhir/r4/Condition/source-x").status_code == 404
