"""HL7 v2 ORU^R01 lab results: by LOINC and unit through the catalogue onto the patient's open
visit, ACK AA/AE/AR with a reason, quarantine for what cannot be placed, idempotent by control id;
the file command and the MLLP listener."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

import pytest
from django.core.management import call_command

from predictions.interop.hl7_in import MLLP_END, MLLP_START, hl7_receive, split_messages
from predictions.interop.models import Hl7Message
from visits.models import Observation, Visit
from visits.services import visit_record

pytestmark = pytest.mark.django_db


def oru(control="MSG00001", mrn="MRN-A-0001", obx=None, kind="ORU^R01") -> bytes:
    lines = [
        f"MSH|^~\\&|LIS|CITYLAB|MEDAI|HOSP|20240212093000||{kind}|{control}|P|2.5.1",
        f"PID|1||{mrn}^^^HOSP^MR||Lin^Mei||19580517|F",
        "OBR|1||LAB123|24323-8^Metabolic panel^LN",
    ]
    lines += obx or [
        "OBX|1|NM|2823-3^Potassium^LN||4.1|mmol/L|3.5-5.1|N|||F|||20240212090000",
        "OBX|2|NM|2345-7^Glucose^LN||7.2|mmol/L|||||F",
    ]
    return "\r".join(lines).encode() + b"\r"


@pytest.fixture
def open_visit(patient_a, doctor_a):
    return visit_record(actor=doctor_a, patient=patient_a, chief_complaint="review")


def _msa(ack: str) -> list[str]:
    return next(s for s in ack.split("\r") if s.startswith("MSA")).split("|")


def test_results_go_onto_the_open_visit_with_aa(open_visit):
    result = hl7_receive(raw=oru(), actor=None)
    assert result.code == "AA"
    assert _msa(result.ack)[:3] == ["MSA", "AA", "MSG00001"]
    values = {o.definition.code: o for o in open_visit.observations.select_related("definition")}
    assert values["2823-3"].value == 4.1
    assert abs(values["2345-7"].value - 129.72) < 0.01  # mmol/L converted through the catalogue
    assert values["2823-3"].recorded_at.year == 2024
    message = Hl7Message.objects.get()
    assert (message.outcome, message.quarantined, message.observations) == ("AA", False, 2)


def test_same_control_id_again_changes_nothing(open_visit):
    hl7_receive(raw=oru(), actor=None)
    count = Observation.objects.count()
    again = hl7_receive(raw=oru(obx=["OBX|1|NM|2823-3^Potassium^LN||5.9|mmol/L|||||F"]), actor=None)
    assert again.duplicate
    assert again.code == "AA"
    assert Observation.objects.count() == count
    assert Observation.objects.get(definition__code="2823-3").value == 4.1
    assert Hl7Message.objects.count() == 1


def test_implausible_and_unknown_results_are_refused_with_ae(open_visit):
    result = hl7_receive(
        raw=oru(
            obx=[
                "OBX|1|NM|2823-3^Potassium^LN||41|mmol/L|||||F",
                "OBX|2|NM|2951-2^Sodium^LN||139|mmol/L|||||F",
                "OBX|3|NM|9999-9^Unknown^LN||1|mg|||||F",
            ]
        ),
        actor=None,
    )
    assert result.code == "AE"
    assert "possible range" in _msa(result.ack)[3]
    assert "9999-9" in _msa(result.ack)[3]
    assert Observation.objects.filter(visit_id=open_visit.pk).exists()
    assert set(open_visit.observations.values_list("definition__code", flat=True)) == {"2951-2"}


def test_unknown_patient_and_no_open_visit_go_to_quarantine(patient_a, client_admin):
    no_visit = hl7_receive(raw=oru(control="Q1"), actor=None)
    unknown = hl7_receive(raw=oru(control="Q2", mrn="NOPE-0000"), actor=None)
    assert (no_visit.code, unknown.code) == ("AE", "AE")
    assert "no open visit" in no_visit.text
    assert "No patient" in unknown.text
    assert Hl7Message.objects.filter(quarantined=True).count() == 2
    assert Observation.objects.count() == 0
    page = client_admin.get("/admin/interop/hl7message/?quarantined__exact=1")
    assert b"No patient with this MRN" in page.content


@pytest.mark.parametrize(
    "raw",
    [
        b"this is not hl7",
        b"",
        b"\x00\xff\xfe",
        oru(kind="ADT^A01"),
        oru(control=""),
        b"MSH|^~\\&|X" + b"A" * 1_100_000,
    ],
)
def test_malformed_and_unsupported_messages_get_ar(open_visit, raw):
    result = hl7_receive(raw=raw, actor=None)
    assert result.code == "AR"
    assert _msa(result.ack)[1] == "AR"
    assert Observation.objects.count() == 0
    assert Hl7Message.objects.count() == 0


def test_dry_run_answers_but_writes_nothing(open_visit):
    result = hl7_receive(raw=oru(), actor=None, dry_run=True)
    assert result.code == "AA"
    assert Observation.objects.count() == 0
    assert Hl7Message.objects.count() == 0


def test_file_command_reads_mllp_and_plain_files(open_visit, tmp_path, capsys):
    framed = tmp_path / "batch.hl7"
    framed.write_bytes(
        MLLP_START + oru("F1") + MLLP_END + MLLP_START + oru("F2", mrn="NOPE-0000") + MLLP_END
    )
    plain = tmp_path / "plain.hl7"
    plain.write_bytes(oru("P1").replace(b"\r", b"\n"))
    assert len(list(split_messages(framed.read_bytes()))) == 2
    call_command("import_hl7", str(framed), str(plain))
    out = capsys.readouterr().out
    assert "F1 AA" in out
    assert "F2 AE" in out
    assert "P1 AA" in out


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_mllp_listener_answers_each_message_on_the_connection(patient_a, doctor_a):
    from predictions.interop.management.commands.hl7_listener import serve

    visit = visit_record(actor=doctor_a, patient=patient_a)
    ports: list[int] = []
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        with contextlib.suppress(asyncio.CancelledError):  # how the test stops it
            loop.run_until_complete(serve("127.0.0.1", 0, None, ready=ports.append))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not ports and time.monotonic() < deadline:
        time.sleep(0.05)
    with socket.create_connection(("127.0.0.1", ports[0]), timeout=10) as conn:
        acks = []
        for raw in (oru("L1"), b"garbage", oru("L1")):
            conn.sendall(MLLP_START + raw + MLLP_END)
            data = b""
            while not data.endswith(MLLP_END):
                data += conn.recv(4096)
            acks.append(_msa(data[1:-2].decode()))
    assert [a[1] for a in acks] == ["AA", "AR", "AA"]
    assert "Already received" in acks[2][3]
    assert Visit.objects.get(pk=visit.pk).observations.count() == 2
    # The listener's database connection lives in its worker thread: closed there.
    from asgiref.sync import sync_to_async
    from django.db import connections

    closing = sync_to_async(connections.close_all, thread_sensitive=True)()
    asyncio.run_coroutine_threadsafe(closing, loop).result(10)
    for task in asyncio.all_tasks(loop):
        loop.call_soon_threadsafe(task.cancel)
    thread.join(10)
