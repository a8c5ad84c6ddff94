"""The admin's import door: upload a file, a dry run in a worker with its progress and report,
then "run for real"; the broker carries the run id only; the quarantine list is read-only."""

from __future__ import annotations

from pathlib import Path

import pytest

from patients.models import Patient
from predictions.interop.models import ImportRun
from predictions.interop.services import import_run_execute

pytestmark = pytest.mark.django_db
BUNDLE = Path(__file__).parent / "data" / "hospital_transaction.json"


@pytest.fixture
def queued(monkeypatch, settings, tmp_path):
    settings.MEDAI_IMPORT_DIR = tmp_path / "imports"
    sent: list[int] = []
    monkeypatch.setattr(
        "predictions.interop.tasks.import_run_execute.delay", lambda run_id: sent.append(run_id)
    )
    return sent


def _upload(client, team, dry_run=True):
    with BUNDLE.open("rb") as handle:
        data = {"upload": handle, "kind": "fhir", "source": "ehr", "care_team": team.pk}
        if dry_run:
            data["dry_run"] = "on"
        return client.post("/admin/interop/importrun/add/", data)


def test_dry_run_then_run_for_real(
    client_admin, team_a, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(client_admin, team_a)
    assert response.status_code == 302, response.content[:400]
    run = ImportRun.objects.get()
    assert queued == [run.pk]  # the broker gets the id, nothing else
    assert (run.status, run.dry_run, run.file_name) == ("queued", True, "hospital_transaction.json")
    assert Path(run.path).exists()

    page = client_admin.get(f"/admin/interop/importrun/{run.pk}/change/")
    assert page.status_code == 200
    assert page["Refresh"] == "3"
    assert b"<progress" in page.content

    run = import_run_execute(run_id=run.pk)
    assert (run.status, run.progress) == ("succeeded", 1.0)
    assert run.report["counts"]["Patient"]["created"] == 3
    assert Patient.objects.count() == 0  # a dry run writes nothing
    page = client_admin.get(f"/admin/interop/importrun/{run.pk}/change/")
    assert "Refresh" not in page
    assert b"implausible_value" in page.content
    assert import_run_execute(run_id=run.pk).report == run.report  # a redelivery does nothing

    with django_capture_on_commit_callbacks(execute=True):
        client_admin.post(
            "/admin/interop/importrun/",
            {"action": "run_for_real", "_selected_action": [run.pk]},
        )
    real = ImportRun.objects.get(dry_run=False)
    assert queued == [run.pk, real.pk]
    real = import_run_execute(run_id=real.pk)
    assert real.status == "succeeded"
    assert Patient.objects.filter(care_teams=team_a).count() == 3
    assert not Path(real.path).exists()  # imported: the upload is deleted


def test_doctors_cannot_reach_the_import_admin(client, doctor_a, queued):
    client.force_login(doctor_a)
    assert client.get("/admin/interop/importrun/add/").status_code in (302, 403)
    assert ImportRun.objects.count() == 0


def test_failed_run_says_so_without_a_traceback(
    client_admin, team_a, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _upload(client_admin, team_a)
    run = ImportRun.objects.get()
    Path(run.path).write_bytes(b"\x00\xff garbage")
    run = import_run_execute(run_id=run.pk)
    assert run.status == "succeeded"
    assert run.report["skip_reasons"] == {"unreadable": 1}


def test_quarantine_list_is_read_only(client_admin):
    assert client_admin.get("/admin/interop/hl7message/?quarantined__exact=1").status_code == 200
    assert client_admin.get("/admin/interop/hl7message/add/").status_code == 403
