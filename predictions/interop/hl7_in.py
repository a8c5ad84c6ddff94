"""HL7 v2 lab results (ORU^R01) in: parsed with the ``hl7`` package, results mapped by LOINC
(OBX-3) and unit (OBX-6) through the catalogue onto the patient's open visit (PID-3 MRN), through
``visits.services.observations_import`` (the rules of entry). Every message is answered with an
ACK: AA (all results stored), AE (an application error: some or all results refused, or no
patient/open visit: the message waits in quarantine), AR (rejected: not HL7, not ORU^R01, no
control id). Idempotent by sending facility + message control id (MSH-4 + MSH-10): a message sent
again gets its first answer back and changes nothing. Written by ``predictions/interop/services``
(:func:`hl7_message_record`) and the visits services only.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hl7
from django.db import transaction
from django.utils import timezone

from medai_site.audit import current_interface
from medai_site.errors import InvalidInput
from medai_site.models import AuditEvent
from patients.access import visible_patients
from patients.models import Patient, normalise_mrn
from visits.models import ObservationDefinition, Visit
from visits.services import (
    ObservationImport,
    ObservationInput,
    observation_validate,
    observations_import,
)

MLLP_START, MLLP_END = b"\x0b", b"\x1c\x0d"
MAX_MESSAGE_BYTES = 1_000_000
LOINC_SYSTEMS = {"LN", "LOINC", "HTTP://LOINC.ORG"}


@dataclass
class Hl7Result:
    """What happened to one message, and the ACK that says so."""

    code: str  # AA, AE or AR
    control_id: str = ""
    text: str = ""
    stored: int = 0
    refused: list[str] = field(default_factory=list)
    quarantined: bool = False
    duplicate: bool = False
    patient_id: int | None = None
    visit_id: int | None = None
    ack: str = ""


def split_messages(data: bytes) -> Iterator[bytes]:
    """Messages of a file: MLLP-framed, or plain text where each message starts with MSH."""
    if MLLP_START in data:
        for frame in data.split(MLLP_START)[1:]:
            yield frame.split(MLLP_END)[0].split(b"\x1c")[0]
        return
    text = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    parts = re.split(rb"\r(?=MSH\|)", text.strip(b"\r"))
    yield from (p for p in parts if p.strip())


def _ack(code: str, control_id: str, text: str, incoming: Any = None) -> str:
    """ACK^R01: MSH (addressed back to the sender) + MSA (code, their control id, reason)."""
    sender_app = sender_facility = ""
    if incoming is not None:
        try:
            sender_app = str(incoming.segment("MSH")[3])
            sender_facility = str(incoming.segment("MSH")[4])
        except (KeyError, IndexError):
            pass
    now = timezone.now().strftime("%Y%m%d%H%M%S")
    clean = re.sub(r"[|^~\\&\r\n]", " ", text)[:200]
    return (
        f"MSH|^~\\&|MEDAI|MEDAI|{sender_app}|{sender_facility}|{now}||ACK^R01^ACK|"
        f"{hl7.generate_message_control_id()}|P|2.5.1\r"
        f"MSA|{code}|{control_id[:50]}|{clean}\r"
    )


def _field(message: Any, path: str) -> str:
    try:
        return str(message[path] or "").strip()
    except (KeyError, IndexError, ValueError):
        return ""


def _when(value: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = hl7.parse_datetime(value)
    except (ValueError, TypeError):
        return None
    if parsed is None:
        return None
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


def hl7_receive(*, raw: bytes, actor: Any, dry_run: bool = False) -> Hl7Result:
    """Process one message (file or MLLP) and return its outcome with the ACK to send."""
    from .services import hl7_message_record, hl7_message_seen

    if len(raw) > MAX_MESSAGE_BYTES:
        result = Hl7Result(code="AR", text="Message larger than 1 MB.")
        result.ack = _ack("AR", "", result.text)
        return result
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")
    try:
        message = hl7.parse(text)
        message.segment("MSH")
    except Exception:  # the hl7 package raises several types for non-HL7 text
        result = Hl7Result(code="AR", text="Not an HL7 v2 message.")
        result.ack = _ack("AR", "", result.text)
        return result
    control_id = _field(message, "MSH.F10")
    kind = (_field(message, "MSH.F9.R1.C1"), _field(message, "MSH.F9.R1.C2"))
    if not control_id:
        result = Hl7Result(code="AR", text="MSH-10 (message control id) is missing.")
    elif kind != ("ORU", "R01"):
        result = Hl7Result(
            code="AR",
            control_id=control_id,
            text=f"Unsupported message type {'^'.join(kind)[:20]}.",
        )
    else:
        result = Hl7Result(code="AA", control_id=control_id)
    if result.code == "AR":
        result.ack = _ack("AR", control_id, result.text, message)
        return result
    facility = _field(message, "MSH.F4")
    earlier = hl7_message_seen(facility=facility, control_id=control_id)
    if earlier is not None:
        result = Hl7Result(
            code=earlier.outcome,
            control_id=control_id,
            text=f"Already received; {earlier.reason or 'processed'}",
            duplicate=True,
        )
        result.ack = _ack(result.code, control_id, result.text, message)
        return result
    interface = current_interface.set(AuditEvent.Interface.IMPORT)
    try:
        with transaction.atomic():
            _process(message, result, actor)
            if not dry_run:
                hl7_message_record(
                    facility=facility, control_id=control_id, raw=text, result=result, actor=actor
                )
            else:
                transaction.set_rollback(True)
    finally:
        current_interface.reset(interface)
    result.ack = _ack(result.code, control_id, result.text, message)
    return result


def _process(message: Any, result: Hl7Result, actor: Any) -> None:
    mrn = ""
    for repetition in range(1, 6):
        value = _field(message, f"PID.F3.R{repetition}.C1")
        if not value:
            break
        kind = _field(message, f"PID.F3.R{repetition}.C5")
        if kind in ("MR", "") and not mrn:
            mrn = value
    if not mrn:
        result.code, result.quarantined = "AE", True
        result.text = "PID-3 carries no MRN."
        return
    patients = visible_patients(actor) if actor is not None else Patient.objects.all()
    patient = patients.filter(mrn=normalise_mrn(mrn)).only("pk").first()
    if patient is None:
        result.code, result.quarantined = "AE", True
        result.text = "No patient with this MRN (PID-3)."
        return
    result.patient_id = patient.pk
    visit = (
        Visit.objects.filter(patient_id=patient.pk, status=Visit.Status.OPEN)
        .order_by("-start")
        .only("pk", "start")
        .first()
    )
    if visit is None:
        result.code, result.quarantined = "AE", True
        result.text = "The patient has no open visit."
        return
    result.visit_id = visit.pk
    definitions = {d.code: d for d in ObservationDefinition.objects.all()}
    message_time = _when(_field(message, "MSH.F7"))
    entries: list[ObservationImport] = []
    for number, obx in enumerate(message.segments("OBX"), start=1):
        code, system = _obx(obx, 3, 1), _obx(obx, 3, 3).upper()
        status = _obx(obx, 11, 1)
        if status in ("X", "D", "W"):  # cancelled, deleted, wrong: nothing to store
            result.refused.append(f"OBX {number}: result status {status}")
            continue
        if system and system not in LOINC_SYSTEMS:
            result.refused.append(f"OBX {number}: code system {system[:10]} is not LOINC")
            continue
        definition = definitions.get(code)
        if definition is None:
            result.refused.append(f"OBX {number}: LOINC {code[:20]} is not in the catalogue")
            continue
        entry = ObservationInput(code, _obx(obx, 5, 1), _obx(obx, 6, 1))
        try:
            observation_validate(entry, definition)
        except InvalidInput as exc:
            result.refused.append(f"OBX {number}: {exc.message}")
            continue
        when = _when(_obx(obx, 14, 1)) or message_time or visit.start
        entries.append(
            ObservationImport(
                visit_id=visit.pk, patient_id=patient.pk, observation=entry, recorded_at=when
            )
        )
    if entries:
        observations_import(entries=entries, actor=actor)
    result.stored = len({(e.visit_id, e.observation.code) for e in entries})
    if not entries:
        result.code, result.quarantined = "AE", True
        result.text = "No result could be stored: " + "; ".join(result.refused or ["no OBX"])
    elif result.refused:
        result.code = "AE"
        result.text = f"{result.stored} result(s) stored; refused: " + "; ".join(result.refused)
    else:
        result.text = f"{result.stored} result(s) stored."


def _obx(segment: Any, field_number: int, component: int) -> str:
    """OBX-n.c of the first repetition, as text ("" when absent)."""
    try:
        text = str(segment[field_number])
    except (IndexError, KeyError):
        return ""
    parts = text.split("~")[0].split("^")
    return parts[component - 1].strip() if component <= len(parts) else ""


def hl7_import_file(*, path: Path, actor: Any, dry_run: bool = False) -> dict[str, Any]:
    """Every message of a file; a report of ACK codes, and each message's answer."""
    data = path.read_bytes()
    answers = []
    counts = {"AA": 0, "AE": 0, "AR": 0}
    for raw in split_messages(data):
        result = hl7_receive(raw=raw, actor=actor, dry_run=dry_run)
        counts[result.code] += 1
        answers.append(
            {
                "control_id": result.control_id,
                "ack": result.code,
                "text": result.text,
                "stored": result.stored,
                "quarantined": result.quarantined,
                "duplicate": result.duplicate,
            }
        )
    return {"dry_run": dry_run, "acks": counts, "messages": answers}
