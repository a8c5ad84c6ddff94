"""Reading FHIR R4 for import: files streamed resource by resource, each validated with the R4B
classes of ``fhir.resources``, and mapped to the services' typed inputs. No database writes here
(``predictions/interop/services.py`` writes, through the owning apps' services).

Accepted input: a Bundle (transaction, batch, collection, searchset) as one JSON file, read
entry by entry with ``ijson`` (a file is never loaded whole); NDJSON (one resource per line, as
FHIR Bulk Data exports write, ``*.ndjson``/``*.jsonl``); a single resource as a JSON file; a
directory of any of these (Patient files first, so references resolve in one pass).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import ijson
from django.utils import timezone
from pydantic import ValidationError

from patients.models import Patient
from visits.models import Diagnosis, Visit

from .fhir_out import ICD10, LOINC, UCUM

SUPPORTED = ("Patient", "Encounter", "Condition", "Observation", "AllergyIntolerance")
RANK = {name: i for i, name in enumerate(SUPPORTED)}
ICD10_SYSTEMS = {ICD10, "http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10-who"}
BP_PANELS = {"85354-9", "55284-4", "35094-2"}  # blood pressure panels: split into components
NATIONAL_ID_TYPES = {"NI", "SS", "NH", "NNCHN"}
MAX_RESOURCE_BYTES = 1_000_000  # one resource larger than this is refused (a hostile file)
# Encounter.class (v3 ActCode) -> MedAI's visit type; unknown classes are outpatient.
VISIT_TYPE = {
    "AMB": Visit.Type.OUTPATIENT,
    "IMP": Visit.Type.INPATIENT,
    "ACUTE": Visit.Type.INPATIENT,
    "NONAC": Visit.Type.INPATIENT,
    "OBSENC": Visit.Type.INPATIENT,
    "SS": Visit.Type.INPATIENT,
    "EMER": Visit.Type.EMERGENCY,
    "VR": Visit.Type.TELEMEDICINE,
}
VERIFICATION = {
    "confirmed": Diagnosis.Status.CONFIRMED,
    "provisional": Diagnosis.Status.PROVISIONAL,
    "differential": Diagnosis.Status.PROVISIONAL,
    "unconfirmed": Diagnosis.Status.PROVISIONAL,
    "refuted": Diagnosis.Status.REFUTED,
}


class Skip(Exception):
    """A resource that is not imported, with the report's reason code and a sentence."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass
class SourceResource:
    """One resource as read from a file (``data``), or why it could not be read (``error``)."""

    file: str
    position: int
    data: dict[str, Any] = field(default_factory=dict)
    full_url: str = ""
    method: str = ""
    error: str = ""

    @property
    def resource_type(self) -> str:
        value = self.data.get("resourceType")
        return value if isinstance(value, str) else ""

    @property
    def source_id(self) -> str:
        """The id the sender gave it; a transaction's urn:uuid fullUrl when it has none."""
        rid = self.data.get("id")
        return str(rid) if rid else self.full_url


@dataclass
class ReadProgress:
    done: int = 0  # bytes read of all files
    total: int = 0


# --- reading -------------------------------------------------------------------------------------


def input_files(paths: list[Path]) -> list[Path]:
    """The files to read, directories expanded; Patient files first so references resolve."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = [
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix.lower() in (".json", ".ndjson", ".jsonl")
            ]
            files.extend(sorted(found, key=_file_rank))
        else:
            files.append(path)
    return files


def _file_rank(path: Path) -> tuple[int, str]:
    stem = path.name.split(".")[0]
    return (RANK.get(stem, len(RANK)), path.name)


def read_resources(files: list[Path], progress: ReadProgress) -> Iterator[SourceResource]:
    progress.total = sum(f.stat().st_size for f in files if f.is_file())
    base = 0
    for path in files:
        if not path.is_file():
            yield SourceResource(file=path.name, position=0, error="No such file.")
            continue
        size = path.stat().st_size
        with path.open("rb") as handle:
            if path.suffix.lower() in (".ndjson", ".jsonl"):
                reader = _ndjson(handle, path.name)
            else:
                reader = _json(handle, path.name)
            for item in reader:
                progress.done = base + handle.tell()
                yield item
        base += size
        progress.done = base


def _ndjson(handle: IO[bytes], name: str) -> Iterator[SourceResource]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        if len(line) > MAX_RESOURCE_BYTES:
            yield SourceResource(file=name, position=number, error="Line larger than 1 MB.")
            continue
        try:
            data = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            yield SourceResource(file=name, position=number, error="Line is not valid JSON.")
            continue
        if not isinstance(data, dict):
            yield SourceResource(file=name, position=number, error="Line is not a JSON object.")
            continue
        yield SourceResource(file=name, position=number, data=data)


def _json(handle: IO[bytes], name: str) -> Iterator[SourceResource]:
    """A Bundle's entries one by one (streamed by ijson's C parser), or the file's one resource."""
    position = 0
    try:
        for entry in ijson.items(handle, "entry.item", use_float=True):
            position += 1
            yield _entry(entry, name, position)
    except (ijson.JSONError, ijson.IncompleteJSONError, UnicodeDecodeError):
        yield SourceResource(
            file=name,
            position=position + 1,
            error="Malformed JSON; the rest of this file was not read.",
        )
        return
    if position:
        return
    # No entries: an empty Bundle, or one resource on its own (read whole, so kept small).
    handle.seek(0)
    raw = handle.read(MAX_RESOURCE_BYTES + 1)
    if len(raw) > MAX_RESOURCE_BYTES:
        yield SourceResource(file=name, position=1, error="A single resource larger than 1 MB.")
        return
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        yield SourceResource(file=name, position=1, error="Malformed JSON.")
        return
    if not isinstance(data, dict):
        yield SourceResource(file=name, position=1, error="The file holds no JSON object.")
        return
    if data.get("resourceType") != "Bundle":
        yield SourceResource(file=name, position=1, data=data)


def _entry(entry: Any, name: str, position: int) -> SourceResource:
    if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
        return SourceResource(file=name, position=position, error="Bundle entry has no resource.")
    request = entry.get("request") if isinstance(entry.get("request"), dict) else {}
    return SourceResource(
        file=name,
        position=position,
        data=entry["resource"],
        full_url=str(entry.get("fullUrl") or ""),
        method=str(request.get("method") or "").upper(),
    )


# --- validation ----------------------------------------------------------------------------------


def validate(resource: SourceResource) -> Any:
    """The resource parsed by its R4B class; Skip with the first problems (never the values)."""
    from fhir.resources.R4B import get_fhir_model_class

    kind = resource.resource_type
    if not kind:
        raise Skip("invalid_resource", "No resourceType.")
    if kind not in SUPPORTED:
        raise Skip("unsupported_resource_type", f"{kind[:40]} is not imported.")
    if resource.method == "DELETE":
        raise Skip("unsupported_request", "DELETE requests are not applied.")
    if not resource.source_id:
        raise Skip("invalid_resource", "The resource has neither an id nor a fullUrl.")
    try:
        return get_fhir_model_class(kind).model_validate(resource.data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in error['loc'])}: {error['type']}"
            for error in exc.errors(include_input=False, include_url=False)[:3]
        ]
        raise Skip("invalid_resource", "Invalid FHIR: " + "; ".join(problems)) from None
    except (TypeError, ValueError, KeyError) as exc:
        raise Skip("invalid_resource", f"Invalid FHIR ({type(exc).__name__}).") from None


def content_hash(data: dict[str, Any]) -> str:
    """Of the resource without ``meta`` (servers bump lastUpdated on every export)."""
    body = {k: v for k, v in data.items() if k != "meta"}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


_REFERENCE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


def reference_key(reference: Any, full_urls: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """(type, id) a Reference points at: ``Patient/12``, an absolute URL, or a urn:uuid fullUrl."""
    text = getattr(reference, "reference", None) if reference is not None else None
    if not text:
        return None
    if text in full_urls:
        return full_urls[text]
    match = _REFERENCE.search(text)
    return (match.group(1), match.group(2)) if match else None


def aware(value: Any) -> dt.datetime | None:
    """A FHIR dateTime/instant as an aware datetime (a date alone is midnight, server zone)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if timezone.is_aware(value) else timezone.make_aware(value)
    zone = timezone.get_current_timezone()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=zone)
    text = str(value)
    try:
        if len(text) == 4:
            return dt.datetime(int(text), 1, 1, tzinfo=zone)
        if len(text) == 7:
            return dt.datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=zone)
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


# --- mapping to the services' inputs ------------------------------------------------------------


@dataclass(frozen=True)
class PatientFields:
    mrn: str
    sex: str
    given_name: str
    family_name: str
    birth_date: dt.date
    phone: str = ""
    email: str = ""
    address: str = ""
    national_id: str = ""


_MRN_CHARS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{3,31}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _codes(concept: Any) -> list[tuple[str, str, str]]:
    """(system, code, display) of a CodeableConcept's codings."""
    if concept is None:
        return []
    return [
        (str(c.system or ""), str(c.code or ""), str(c.display or ""))
        for c in (concept.coding or [])
        if c.code
    ]


def patient_fields(model: Any, national_id_system: str) -> PatientFields:
    mrn = ""
    national_id = ""
    for identifier in model.identifier or []:
        types = {code for _, code, _ in _codes(identifier.type)}
        value = str(identifier.value or "").strip()
        if not value:
            continue
        if "MR" in types and not mrn:
            mrn = value
        elif not national_id and (
            types & NATIONAL_ID_TYPES or identifier.system == national_id_system
        ):
            national_id = value
    if not mrn:
        raise Skip("missing_field", "No MRN: no identifier with type MR.")
    if _UUID.match(mrn):
        mrn = mrn.replace("-", "")  # a UUID MRN (e.g. Synthea's) as its 32 hex digits
    if not _MRN_CHARS.match(mrn):
        raise Skip("invalid_value", "The MRN is not 4–32 letters, digits or hyphens.")
    names = model.name or []
    name = next((n for n in names if n.use == "official"), names[0] if names else None)
    given = " ".join(str(g) for g in (name.given or [])) if name else ""
    family = str(name.family or "") if name else ""
    if not given.strip() or not family.strip():
        raise Skip("missing_field", "The patient needs a given and a family name.")
    if model.birthDate is None:
        raise Skip("missing_field", "No birth date.")
    gender = str(model.gender or "unknown")
    telecom = model.telecom or []
    phone = next((str(t.value) for t in telecom if t.system == "phone" and t.value), "")
    email = next((str(t.value) for t in telecom if t.system == "email" and t.value), "")
    address = ""
    if model.address:
        a = model.address[0]
        parts = [*(a.line or []), a.city, a.district, a.state, a.postalCode, a.country]
        address = str(a.text or ", ".join(str(p) for p in parts if p))
    return PatientFields(
        mrn=mrn.upper(),
        sex=gender if gender in Patient.Sex.values else Patient.Sex.UNKNOWN,
        given_name=given.strip()[:100],
        family_name=family.strip()[:100],
        birth_date=model.birthDate,
        phone=phone[:40],
        email=email[:254],
        address=address[:2000],
        national_id=national_id[:40],
    )


@dataclass(frozen=True)
class EncounterFields:
    start: dt.datetime
    end: dt.datetime | None
    visit_type: str
    closed: bool
    reason: str


def encounter_fields(model: Any) -> EncounterFields:
    status = str(model.status or "")
    if status in ("cancelled", "entered-in-error"):
        raise Skip("not_applicable", f"Encounter status {status}.")
    period = model.period
    start = aware(period.start) if period is not None else None
    if start is None:
        raise Skip("missing_field", "No period.start.")
    end = aware(period.end) if period is not None else None
    if end is not None and end < start:
        raise Skip("invalid_value", "period.end is before period.start.")
    klass = model.class_fhir if hasattr(model, "class_fhir") else getattr(model, "class", None)
    code = str(getattr(klass, "code", "") or "").upper()
    reasons = []
    for concept in model.reasonCode or []:
        text = concept.text or next((d for _, _, d in _codes(concept) if d), "")
        if text:
            reasons.append(str(text))
    closed = status == "finished"
    return EncounterFields(
        start=start,
        end=(end or start) if closed else None,
        visit_type=VISIT_TYPE.get(code, Visit.Type.OUTPATIENT),
        closed=closed,
        reason="; ".join(reasons)[:2000],
    )


@dataclass(frozen=True)
class ObservationValue:
    code: str
    value: float
    unit: str


def observation_values(model: Any, known_codes: set[str]) -> list[ObservationValue]:
    """The catalogue values an Observation carries: its own, or a panel's components (BP)."""
    status = str(model.status or "")
    if status in ("cancelled", "entered-in-error"):
        raise Skip("not_applicable", f"Observation status {status}.")
    loinc = [code for system, code, _ in _codes(model.code) if system == LOINC]
    if not loinc:
        raise Skip("unknown_code", "No LOINC coding.")
    values: list[ObservationValue] = []
    if model.component and (set(loinc) & BP_PANELS or model.valueQuantity is None):
        for component in model.component:
            codes = [c for s, c, _ in _codes(component.code) if s == LOINC]
            code = next((c for c in codes if c in known_codes), None)
            if code is None:
                continue
            values.append(_quantity(code, component.valueQuantity))
        if not values:
            raise Skip("unknown_code", f"No component with a catalogued LOINC code ({loinc[0]}).")
        return values
    code = next((c for c in loinc if c in known_codes), None)
    if code is None:
        raise Skip("unknown_code", f"LOINC {loinc[0][:20]} is not in the catalogue.")
    return [_quantity(code, model.valueQuantity)]


def _quantity(code: str, quantity: Any) -> ObservationValue:
    if quantity is None or quantity.value is None:
        raise Skip("missing_field", f"LOINC {code}: no valueQuantity.")
    unit = str(quantity.code or "") if quantity.system == UCUM and quantity.code else ""
    unit = unit or str(quantity.unit or quantity.code or "")
    return ObservationValue(code=code, value=float(quantity.value), unit=unit)


def observation_time(model: Any) -> dt.datetime | None:
    if model.effectiveDateTime is not None:
        return aware(model.effectiveDateTime)
    if model.effectivePeriod is not None and model.effectivePeriod.start is not None:
        return aware(model.effectivePeriod.start)
    if model.effectiveInstant is not None:
        return aware(model.effectiveInstant)
    return aware(model.issued)


@dataclass(frozen=True)
class ConditionFields:
    icd10: str  # "" when only a source coding is known
    system: str
    code: str
    display: str
    status: str
    clinical_status: str
    onset: dt.datetime | None


def condition_fields(model: Any, code_map: dict[tuple[str, str], str]) -> ConditionFields:
    verification = next((c for _, c, _ in _codes(model.verificationStatus)), "")
    if verification == "entered-in-error":
        raise Skip("not_applicable", "Condition entered in error.")
    codings = _codes(model.code)
    if not codings:
        raise Skip("missing_field", "The condition has no coding.")
    icd10 = next((code for system, code, _ in codings if system in ICD10_SYSTEMS), "")
    if not icd10:
        icd10 = next((code_map[(s, c)] for s, c, _ in codings if (s, c) in code_map), "")
    system, code, display = codings[0]
    if not display and model.code is not None and model.code.text:
        display = str(model.code.text)
    onset = aware(model.onsetDateTime) if getattr(model, "onsetDateTime", None) else None
    return ConditionFields(
        icd10=icd10,
        system=system[:255],
        code=code[:64],
        display=display[:255],
        status=VERIFICATION.get(verification, Diagnosis.Status.CONFIRMED),
        clinical_status=next((c for _, c, _ in _codes(model.clinicalStatus)), "")[:20],
        onset=onset,
    )


@dataclass(frozen=True)
class AllergyFields:
    substance: str
    reaction: str
    severity: str


def allergy_fields(model: Any) -> AllergyFields:
    verification = next((c for _, c, _ in _codes(model.verificationStatus)), "")
    if verification in ("entered-in-error", "refuted"):
        raise Skip("not_applicable", f"Allergy {verification}.")
    substance = ""
    if model.code is not None:
        substance = str(model.code.text or next((d for _, _, d in _codes(model.code) if d), ""))
    if not substance.strip():
        raise Skip("missing_field", "The allergy names no substance (code.text or a display).")
    reaction, severity = "", ""
    for entry in model.reaction or []:
        words = [
            str(m.text or next((d for _, _, d in _codes(m) if d), ""))
            for m in entry.manifestation or []
        ]
        reaction = reaction or ", ".join(w for w in words if w)
        severity = severity or str(entry.severity or "")
    if not severity:
        severity = {"high": "severe", "low": "mild"}.get(str(model.criticality or ""), "moderate")
    return AllergyFields(
        substance=substance.strip()[:100], reaction=reaction[:2000], severity=severity
    )
