"""PHI stays where it belongs on every import door (issue 16, extending the canary scan of
issue 7): a run-unique name, phone and national id are planted through the FHIR import (valid,
malformed and implausible resources), an HL7 v2 message (stored, and quarantined) and the admin's
CSV import (a good row and a refused one); then this process's log output at DEBUG, the import
reports, the ACKs, and every plain-text column of the interop tables are scanned. Zero hits."""

from __future__ import annotations

import io
import json
import re
import uuid
from pathlib import Path

import pytest
from django.db import connection

from predictions.interop.hl7_in import hl7_receive
from predictions.interop.services import fhir_import
from visits.services import visit_record

pytestmark = pytest.mark.django_db

TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb")


def _patient(marker: str, phone: str, number: int, **extra) -> dict:
    return {
        "resourceType": "Patient",
        "id": f"canary-{number}",
        "identifier": [
            {"type": {"coding": [{"code": "MR"}]}, "value": f"CAN-{number:04d}"},
            {"type": {"coding": [{"code": "NI"}]}, "value": f"NI{marker}"},
        ],
        "name": [{"family": f"{marker}Family", "given": [f"{marker}Given"]}],
        "telecom": [{"system": "phone", "value": phone}],
        "birthDate": "1970-01-01",
        **extra,
    }


def test_no_import_door_writes_phi_where_it_must_not_go(
    tmp_path, admin_user, team_a, doctor_a, client_admin, captured_logs
):
    marker = "Qzk" + uuid.uuid4().hex[:10]
    phone = f"+99 {uuid.uuid4().int % 10**10:010d}"
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": _patient(marker, phone, 1)},
            # malformed: the canary sits in a field of the wrong type
            {"resource": _patient(marker, phone, 2, gender={"bad": marker})},
            # no MRN: skipped with a reason that must not quote the name
            {"resource": {**_patient(marker, phone, 3), "identifier": []}},
            {
                "resource": {
                    "resourceType": "Encounter",
                    "id": "e1",
                    "status": "finished",
                    "class": {"code": "AMB"},
                    "subject": {"reference": "Patient/canary-1"},
                    "period": {"start": "2024-01-01T10:00:00+00:00"},
                    "reasonCode": [{"text": f"{marker} complaint"}],
                }
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": "o1",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
                    "subject": {"reference": "Patient/canary-1"},
                    "encounter": {"reference": "Encounter/e1"},
                    "valueQuantity": {"value": 420, "unit": "Cel"},
                    "note": [{"text": marker}],
                }
            },
        ],
    }
    path = tmp_path / "canary.json"
    path.write_text(json.dumps(bundle))
    report = fhir_import(paths=[path], actor=admin_user, care_teams=[team_a]).as_dict()
    assert report["counts"]["Patient"]["created"] == 1  # the door was really exercised
    assert report["skip_reasons"].keys() >= {
        "invalid_resource",
        "missing_field",
        "implausible_value",
    }

    from patients.models import Patient

    patient = Patient.objects.get(mrn="CAN-0001")
    visit_record(actor=doctor_a, patient=patient)
    hl7_name = f"{marker}Hl7^{marker}"
    acks = []
    for mrn, control in (("CAN-0001", "C1"), ("NOPE-0001", "C2")):
        message = (
            f"MSH|^~\\&|LIS|LAB|MEDAI|HOSP|20240101||ORU^R01|{control}|P|2.5.1\r"
            f"PID|1||{mrn}^^^HOSP^MR||{hl7_name}||19700101|F|||||{phone}\r"
            f"OBX|1|NM|8867-4^Heart rate^LN||80|/min|||||F\r"
            f"OBX|2|NM|8310-5^Temp^LN||420|Cel|||||F\r"
            f"NTE|1||{marker} note\r"
        )
        acks.append(hl7_receive(raw=message.encode(), actor=None).ack)
    assert "AE" in acks[0]  # one value stored, one refused
    assert "AE" in acks[1]  # unknown MRN: quarantined

    csv = f"mrn,given_name,family_name,birth_date,sex,phone\nCAN-0100,{marker}Csv,{marker}Csv,1980-02-02,F,{phone}\nCAN-0101,{marker}Bad,{marker}Bad,2999-01-01,F,{phone}\n"
    url = "/admin/interop/patientrow/import/"
    form = client_admin.get(url)
    fmt = re.search(rb'<option value="(\w+)"[^>]*>\s*csv', form.content).group(1).decode()
    upload = io.BytesIO(csv.encode())
    upload.name = "canary.csv"
    preview = client_admin.post(url, {"import_file": upload, "format": fmt})
    assert preview.status_code == 200

    patterns = [re.compile(re.escape(marker), re.IGNORECASE), re.compile(re.escape(phone[4:]))]

    def hits(text: str) -> list[str]:
        return [p.pattern for p in patterns if p.search(text)]

    assert hits(captured_logs.getvalue()) == [], "PHI in the logs"
    assert hits(json.dumps(report)) == [], "PHI in the FHIR import report"
    assert hits("".join(acks)) == [], "PHI in an ACK"
    with connection.cursor() as cursor:
        for table in ("interop_sourcerecord", "interop_hl7message", "interop_importrun"):
            cursor.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "AND data_type = ANY(%s)",
                [table, list(TEXT_TYPES)],
            )
            for (column,) in cursor.fetchall():
                if (table, column) == ("interop_hl7message", "raw"):
                    continue  # encrypted at rest (checked below)
                cursor.execute(f'SELECT "{column}"::text FROM {table}')  # noqa: S608 (names from the catalogue)
                values = " ".join(str(v) for (v,) in cursor.fetchall())
                assert hits(values) == [], f"PHI in clear in {table}.{column}"
        cursor.execute("SELECT raw FROM interop_hl7message")
        raws = [r for (r,) in cursor.fetchall()]
    assert len(raws) == 2
    assert all(r.startswith("gAAAAA") for r in raws)  # Fernet ciphertext, never the message
    assert hits(" ".join(raws)) == []
    assert Path(tmp_path / "canary.json").exists()
