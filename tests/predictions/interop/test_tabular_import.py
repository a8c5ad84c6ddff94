"""CSV/Excel import in the admin (django-import-export): column names matched loosely, a dry-run
preview with row-level errors that writes nothing, then the import through the services
(encryption, blind indexes, audit, the entry rules)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from medai_site.models import AuditEvent
from patients.models import Patient
from visits.models import Observation, Visit

pytestmark = pytest.mark.django_db
DATA = Path(__file__).parent / "data"


def _format_value(page: bytes, name: str) -> str:
    match = re.search(rb'<option value="(\w+)"[^>]*>\s*' + name.encode(), page)
    assert match, page[:2000]
    return match.group(1).decode()


def _preview(client, url: str, content: bytes, filename: str, fmt: str):
    form = client.get(url)
    assert form.status_code == 200
    upload = io.BytesIO(content)
    upload.name = filename
    return client.post(url, {"import_file": upload, "format": _format_value(form.content, fmt)})


def _confirm(client, url: str, preview) -> None:
    fields = dict(re.findall(rb'name="(\w+)" value="([^"]*)"', preview.content))
    data = {k.decode(): v.decode() for k, v in fields.items()}
    response = client.post(url.replace("/import/", "/process_import/"), data)
    assert response.status_code == 302, response.content[:1000]


def test_patients_csv_preview_then_import(client_admin, team_a):
    url = "/admin/interop/patientrow/import/"
    before = AuditEvent.objects.count()
    preview = _preview(client_admin, url, (DATA / "patients.csv").read_bytes(), "p.csv", "csv")
    assert preview.status_code == 200
    assert b"Date of birth is in the future" in preview.content  # row 3, its own error
    assert Patient.objects.count() == 0  # the preview is a dry run
    assert AuditEvent.objects.count() == before

    good = b"\n".join((DATA / "patients.csv").read_bytes().splitlines()[:3]) + b"\n"
    preview = _preview(client_admin, url, good, "p.csv", "csv")
    assert b"CSV-0001" in preview.content
    _confirm(client_admin, url, preview)
    ana = Patient.objects.get(mrn="CSV-0001")
    assert (ana.given_name, ana.family_name, str(ana.birth_date), ana.sex) == (
        "Ana",
        "Souza",
        "1972-03-04",
        "female",
    )
    assert list(ana.care_teams.all()) == [team_a]
    assert Patient.objects.filter(phone_bidx__isnull=False, mrn="CSV-0001").exists()
    assert AuditEvent.objects.filter(action="create", patient_id=ana.pk).exists()

    again = _preview(client_admin, url, good, "p.csv", "csv")
    assert b"Skip" in again.content or b"skip" in again.content
    _confirm(client_admin, url, again)
    assert Patient.objects.count() == 2


def test_visits_with_observation_columns_through_the_entry_rules(client_admin, team_a):
    patients = "/admin/interop/patientrow/import/"
    good = b"\n".join((DATA / "patients.csv").read_bytes().splitlines()[:3]) + b"\n"
    _confirm(client_admin, patients, _preview(client_admin, patients, good, "p.csv", "csv"))

    url = "/admin/interop/visitrow/import/"
    preview = _preview(client_admin, url, (DATA / "visits.csv").read_bytes(), "v.csv", "csv")
    assert b"outside the possible range" in preview.content  # 420 Cel on row 2
    assert b"No patient with this MRN" in preview.content
    assert Visit.objects.count() == 0

    ok = b"\n".join((DATA / "visits.csv").read_bytes().splitlines()[:2]) + b"\n"
    _confirm(client_admin, url, _preview(client_admin, url, ok, "v.csv", "csv"))
    visit = Visit.objects.get(patient__mrn="CSV-0001")
    assert visit.chief_complaint == "palpitations"
    values = {o.definition.code: o.value for o in Observation.objects.select_related("definition")}
    assert values == {"8867-4": 112, "8310-5": 37.1}


def test_excel_file(client_admin):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["MRN", "Given name", "Family name", "Date of birth", "Sex"])
    sheet.append(["XLS-0001", "Dora", "Field", "1966-06-06", "female"])
    buffer = io.BytesIO()
    book.save(buffer)
    url = "/admin/interop/patientrow/import/"
    preview = _preview(client_admin, url, buffer.getvalue(), "p.xlsx", "xlsx")
    assert preview.status_code == 200
    _confirm(client_admin, url, preview)
    assert Patient.objects.get(mrn="XLS-0001").family_name == "Field"


def test_hostile_files_are_row_errors_not_tracebacks(client_admin):
    url = "/admin/interop/patientrow/import/"
    for content in (
        b"\x00\xff\xfe garbage",
        b"mrn\n" + b"A" * 5000 + b"\n",
        b"=cmd|' /C calc'!A0\n",
    ):
        response = _preview(client_admin, url, content, "x.csv", "csv")
        assert response.status_code == 200
        assert b"Traceback" not in response.content
    assert Patient.objects.count() == 0


def test_doctors_cannot_import(client, doctor_a):
    client.force_login(doctor_a)
    assert client.get("/admin/interop/patientrow/import/").status_code in (302, 403)
