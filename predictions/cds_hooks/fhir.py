"""FHIR R4 prefetch of a CDS Hooks request -> the prediction service's typed inputs.

Each prefetched resource is validated with ``fhir.resources`` (R4B models) before anything reads
it; a resource that does not validate is refused with the prefetch key named (never its
content). Observations are read by their LOINC coding (``http://loinc.org``) with their UCUM
quantity; the catalogue validates them afterwards exactly as a visit's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

from medai_site.errors import InvalidInput
from visits.models import Visit
from visits.services import ObservationInput

LOINC = "http://loinc.org"
ICD10_SYSTEMS = ("http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm")
# FHIR Encounter.class codes (v3 ActCode) -> MedAI visit types.
ENCOUNTER_CLASS = {
    "AMB": Visit.Type.OUTPATIENT,
    "IMP": Visit.Type.INPATIENT,
    "ACUTE": Visit.Type.INPATIENT,
    "EMER": Visit.Type.EMERGENCY,
    "VR": Visit.Type.TELEMEDICINE,
}
SEXES = {"male", "female", "other", "unknown"}
MAX_ENTRIES = 500  # per prefetched bundle; an encounter's observations, not a whole record


@dataclass
class Prefetch:
    """What MedAI reads of a prefetch, in its own terms."""

    sex: str = ""
    age: float | None = None
    visit_type: str = ""
    observations: list[ObservationInput] = field(default_factory=list)
    condition_codes: list[str] = field(default_factory=list)
    condition_text: list[str] = field(default_factory=list)
    allergies: list[str] = field(default_factory=list)


def _validated(model: type, data: Any, key: str) -> Any:
    if not isinstance(data, dict):
        raise InvalidInput(
            f"prefetch.{key} must be a FHIR resource.",
            fields={f"prefetch.{key}": ["Not a resource."]},
        )
    try:
        return model.model_validate(data)
    except (ValidationError, ValueError, TypeError) as exc:
        count = len(exc.errors()) if isinstance(exc, ValidationError) else 1
        raise InvalidInput(
            f"prefetch.{key} is not a valid FHIR R4 {model.__name__} ({count} problem(s)).",
            fields={f"prefetch.{key}": [f"Invalid FHIR {model.__name__}."]},
        ) from None


def _resources(bundle_data: Any, key: str, model: type) -> list[Any]:
    """The ``model`` resources of a prefetched searchset Bundle (or a single resource)."""
    if bundle_data is None:
        return []
    if isinstance(bundle_data, dict) and bundle_data.get("resourceType") == model.__name__:
        return [_validated(model, bundle_data, key)]
    found = _entries_of_one_type(bundle_data, model)
    if found is None:
        bundle = _validated(Bundle, bundle_data, key)
        entries = bundle.entry or []
        found = [e.resource for e in entries if isinstance(e.resource, model)]
    else:
        entries = found
    if len(entries) > MAX_ENTRIES:
        raise InvalidInput(
            f"prefetch.{key} has more than {MAX_ENTRIES} entries.",
            fields={f"prefetch.{key}": [f"At most {MAX_ENTRIES} entries."]},
        )
    return found


def _entries_of_one_type(bundle_data: Any, model: type) -> list[Any] | None:
    """The usual searchset, every entry a ``model`` resource, validated as the whole Bundle
    would be but cheaper: the Bundle without its entries' resources, then each resource with
    ``model`` itself (the Bundle finds each entry's model by its resourceType, importing it by
    name, on every entry). None for anything else, or anything that does not validate: the
    caller then validates the whole Bundle, which accepts and refuses exactly as before and
    names the problem the same way."""
    if not isinstance(bundle_data, dict) or bundle_data.get("resourceType") != "Bundle":
        return None
    entries = bundle_data.get("entry")
    if not isinstance(entries, list) or not all(
        isinstance(e, dict)
        and isinstance(e.get("resource"), dict)
        and e["resource"].get("resourceType") == model.__name__
        for e in entries
    ):
        return None
    shell = {
        **bundle_data,
        "entry": [{k: v for k, v in e.items() if k != "resource"} for e in entries],
    }
    try:
        Bundle.model_validate(shell)
        return [model.model_validate(e["resource"]) for e in entries]
    except (ValidationError, ValueError, TypeError):
        return None


def age_on(birth_date: dt.date, day: dt.date) -> int:
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def read_prefetch(prefetch: dict[str, Any], *, today: dt.date) -> Prefetch:
    """Patient (sex, age), encounter (visit type), observations, conditions, allergies."""
    out = Prefetch()
    patient_data = prefetch.get("patient")
    if patient_data is not None:
        patient = _validated(Patient, patient_data, "patient")
        gender = (patient.gender or "").lower()
        out.sex = gender if gender in SEXES else ""
        birth = patient.birthDate
        if isinstance(birth, dt.date):
            out.age = float(max(0, age_on(birth, today)))
    encounter_data = prefetch.get("encounter")
    if encounter_data is not None:
        encounter = _validated(Encounter, encounter_data, "encounter")
        code = getattr(encounter.class_fhir, "code", None) if encounter.class_fhir else None
        out.visit_type = ENCOUNTER_CLASS.get(code or "", "")
    for observation in _resources(prefetch.get("observations"), "observations", Observation):
        if observation.status in ("entered-in-error", "cancelled"):
            continue
        out.observations.extend(_observation_inputs(observation))
    for condition in _resources(prefetch.get("conditions"), "conditions", Condition):
        codes = [
            c.code
            for c in (condition.code.coding or [] if condition.code else [])
            if c.system in ICD10_SYSTEMS and c.code
        ]
        out.condition_codes.extend(c.upper()[:3] for c in codes)
        text = (condition.code.text if condition.code else None) or ""
        if text:
            out.condition_text.append(text)
    for allergy in _resources(prefetch.get("allergies"), "allergies", AllergyIntolerance):
        out.allergies.extend(_allergy_names(allergy))
    return out


def _loinc(concept: Any) -> str | None:
    for coding in (concept.coding or []) if concept else []:
        if coding.system == LOINC and coding.code:
            return str(coding.code)
    return None


def _quantity(code: str | None, quantity: Any) -> list[ObservationInput]:
    if code is None or quantity is None or quantity.value is None:
        return []
    unit = quantity.code or quantity.unit or ""
    return [ObservationInput(code=code, value=float(quantity.value), unit=str(unit))]


def _observation_inputs(observation: Any) -> list[ObservationInput]:
    """The observation's own value and its components' (a blood-pressure panel has two)."""
    found = _quantity(_loinc(observation.code), observation.valueQuantity)
    for component in observation.component or []:
        found.extend(_quantity(_loinc(component.code), component.valueQuantity))
    return found


def _allergy_names(allergy: Any) -> list[str]:
    status = allergy.verificationStatus
    codes = {c.code for c in (status.coding or [])} if status else set()
    if codes & {"refuted", "entered-in-error"}:
        return []
    concept = allergy.code
    if concept is None:
        return []
    names = [concept.text] if concept.text else []
    names += [c.display for c in concept.coding or [] if c.display]
    return [n for n in names if n]


def medication_names(draft_orders: Any) -> list[tuple[str, str]]:
    """(resource reference, medication name) of each MedicationRequest in ``draftOrders``."""
    from fhir.resources.R4B.medicationrequest import MedicationRequest

    orders = []
    for request in _resources(draft_orders, "draftOrders", MedicationRequest):
        concept = request.medicationCodeableConcept
        names = []
        if concept is not None:
            names = [concept.text] if concept.text else []
            names += [c.display for c in concept.coding or [] if c.display]
        names = list(dict.fromkeys(n.strip() for n in names if n.strip()))  # text = display, often
        if names:
            orders.append((f"MedicationRequest/{request.id or ''}", " / ".join(names)))
    return orders
