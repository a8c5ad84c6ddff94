"""MedAI rows as FHIR R4 resources (plain dicts, ``application/fhir+json``): the one outbound
mapping, used by the read API, ``$everything`` and the chart's record download.

Ids are MedAI's own primary keys (``Patient/12``, ``Encounter/345``); a stored blood pressure is
two Observations (systolic 8480-6 and diastolic 8462-4), as MedAI records it. Advice is a
RiskAssessment: one ``prediction`` per risk and per ranked diagnosis, ``method`` naming the model
versions, ``basis`` the visit's observations. Every resource validates against the R4B classes
of ``fhir.resources`` (tests/predictions/interop).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from patients.models import Allergy, Patient
from predictions.models import Advice
from predictions.payload import advice_payload
from visits.models import Diagnosis, Observation, Visit

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
SNOMED = "http://snomed.info/sct"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"

# MedAI visit type <-> FHIR Encounter.class (v3 ActCode); the import reads the same table.
ENCOUNTER_CLASS = {
    Visit.Type.OUTPATIENT: ("AMB", "ambulatory"),
    Visit.Type.INPATIENT: ("IMP", "inpatient encounter"),
    Visit.Type.EMERGENCY: ("EMER", "emergency"),
    Visit.Type.TELEMEDICINE: ("VR", "virtual"),
}
CATEGORY = {"vital": ("vital-signs", "Vital Signs"), "lab": ("laboratory", "Laboratory")}


def mrn_system() -> str:
    """The identifier system of MedAI's MRNs (a deployment names its own)."""
    return str(settings.MEDAI_FHIR_MRN_SYSTEM)


def national_id_system() -> str:
    return str(settings.MEDAI_FHIR_NATIONAL_ID_SYSTEM)


def instant(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def reference(resource_type: str, pk: object) -> dict[str, str]:
    return {"reference": f"{resource_type}/{pk}"}


def _subject(row: Observation | Diagnosis | Advice) -> int:
    """The patient of a row hanging off a visit: the selectors annotate it (``subject_id``) so a
    page of rows needs no visit query each."""
    annotated = row.__dict__.get("subject_id")
    return int(annotated) if annotated is not None else row.visit.patient_id


def _meta(updated: dt.datetime | None) -> dict[str, Any]:
    return {"lastUpdated": instant(updated)} if updated is not None else {}


def patient_resource(patient: Patient) -> dict[str, Any]:
    identifiers: list[dict[str, Any]] = [
        {
            "use": "usual",
            "type": {"coding": [{"system": V2_0203, "code": "MR"}], "text": "MRN"},
            "system": mrn_system(),
            "value": patient.mrn,
        }
    ]
    if patient.national_id:
        identifiers.append(
            {
                "use": "official",
                "type": {"coding": [{"system": V2_0203, "code": "NI"}]},
                "system": national_id_system(),
                "value": patient.national_id,
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(patient.pk),
        "meta": _meta(patient.updated_at),
        "identifier": identifiers,
        "name": [{"use": "official", "family": patient.family_name, "given": [patient.given_name]}],
        "gender": patient.sex,
        "birthDate": patient.birth_date.isoformat(),
    }
    telecom = []
    if patient.phone:
        telecom.append({"system": "phone", "value": patient.phone})
    if patient.email:
        telecom.append({"system": "email", "value": patient.email})
    if telecom:
        resource["telecom"] = telecom
    if patient.address:
        resource["address"] = [{"text": patient.address}]
    return resource


def encounter_resource(visit: Visit) -> dict[str, Any]:
    code, display = ENCOUNTER_CLASS.get(visit.visit_type, ("AMB", "ambulatory"))
    period = {"start": instant(visit.start)}
    if visit.end is not None:
        period["end"] = instant(visit.end)
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": str(visit.pk),
        "meta": _meta(visit.updated_at),
        "status": "finished" if visit.status == Visit.Status.CLOSED else "in-progress",
        "class": {"system": V3_ACT_CODE, "code": code, "display": display},
        "subject": reference("Patient", visit.patient_id),
        "period": period,
    }
    if visit.chief_complaint:
        resource["reasonCode"] = [{"text": visit.chief_complaint}]
    return resource


def observation_resource(observation: Observation) -> dict[str, Any]:
    definition = observation.definition
    category, category_display = CATEGORY.get(definition.category, ("exam", "Exam"))
    quantity = {
        "value": observation.value,
        "unit": definition.unit,
        "system": UCUM,
        "code": definition.unit,
    }
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(observation.pk),
        "status": "final",
        "category": [
            {
                "coding": [
                    {"system": OBSERVATION_CATEGORY, "code": category, "display": category_display}
                ]
            }
        ],
        "code": {
            "coding": [{"system": LOINC, "code": definition.code, "display": definition.display}],
            "text": definition.display,
        },
        "subject": reference("Patient", _subject(observation)),
        "encounter": reference("Encounter", observation.visit_id),
        "effectiveDateTime": instant(observation.recorded_at),
        "valueQuantity": quantity,
    }
    if observation.interpretation:
        resource["interpretation"] = [
            {
                "coding": [
                    {
                        "system": V3_INTERPRETATION,
                        "code": observation.interpretation,
                        "display": observation.get_interpretation_display(),
                    }
                ]
            }
        ]
    if definition.normal_low is not None or definition.normal_high is not None:
        bounds = {}
        for name, bound in (("low", definition.normal_low), ("high", definition.normal_high)):
            if bound is not None:
                bounds[name] = {
                    "value": bound,
                    "unit": definition.unit,
                    "system": UCUM,
                    "code": definition.unit,
                }
        resource["referenceRange"] = [bounds]
    return resource


def condition_resource(diagnosis: Diagnosis) -> dict[str, Any]:
    refuted = diagnosis.status == Diagnosis.Status.REFUTED
    verification = {
        Diagnosis.Status.PROVISIONAL: "provisional",
        Diagnosis.Status.CONFIRMED: "confirmed",
        Diagnosis.Status.REFUTED: "refuted",
    }[Diagnosis.Status(diagnosis.status)]
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": str(diagnosis.pk),
        "meta": _meta(diagnosis.updated_at),
        "verificationStatus": {
            "coding": [{"system": CONDITION_VERIFICATION, "code": verification}]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": CONDITION_CATEGORY,
                        "code": "encounter-diagnosis",
                        "display": "Encounter Diagnosis",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": ICD10, "code": diagnosis.code, "display": diagnosis.display}],
            "text": diagnosis.display,
        },
        "subject": reference("Patient", _subject(diagnosis)),
        "encounter": reference("Encounter", diagnosis.visit_id),
        "recordedDate": instant(diagnosis.created_at),
    }
    if not refuted:  # con-5: a refuted condition carries no clinical status
        resource["clinicalStatus"] = {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]}
    return resource


def allergy_resource(allergy: Allergy) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "id": str(allergy.pk),
        "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
        "code": {"text": allergy.substance},
        "patient": reference("Patient", allergy.patient_id),
        "recordedDate": instant(allergy.recorded_at),
        "reaction": [
            {
                "manifestation": [{"text": allergy.reaction or "reaction not recorded"}],
                "severity": allergy.severity,
            }
        ],
    }
    return resource


def risk_assessment_resource(advice: Advice, basis: Iterable[int] = ()) -> dict[str, Any]:
    """``basis``: the ids of the visit's observations the advice was computed from."""
    payload = advice_payload(advice)
    predictions: list[dict[str, Any]] = []
    for risk in payload.risks:
        if risk.abstain:
            continue
        predictions.append(
            {
                "outcome": {"text": risk.label or risk.name or risk.task},
                "probabilityDecimal": round(float(risk.probability), 6),
            }
        )
    for ranked in payload.diagnoses:
        outcome: dict[str, Any] = {"text": ranked.display or ranked.code}
        if ranked.code and ranked.code != "other":
            outcome["coding"] = [{"system": ICD10, "code": ranked.code, "display": ranked.display}]
        predictions.append(
            {"outcome": outcome, "probabilityDecimal": round(float(ranked.probability), 6)}
        )
    models = "; ".join(
        f"{m.task_name or m.task} model version {m.version}"
        + (f" ({m.algorithm})" if m.algorithm else "")
        for m in payload.models
    )
    resource: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "id": str(advice.pk),
        "status": "amended" if advice.superseded else "final",
        "subject": reference("Patient", _subject(advice)),
        "encounter": reference("Encounter", advice.visit_id),
        "occurrenceDateTime": instant(advice.created_at),
        "method": {
            "coding": [
                {"system": "urn:medai:model", "code": m.task, "display": f"version {m.version}"}
                for m in payload.models
            ],
            "text": models or "clinical rules only",
        },
        "basis": [reference("Observation", pk) for pk in basis],
    }
    if predictions:
        resource["prediction"] = predictions
    if not resource["basis"]:
        del resource["basis"]
    if payload.abstained:
        resource["note"] = [{"text": "The models abstained: " + "; ".join(payload.abstain_reasons)}]
    return resource


def source_condition_resource(condition: Any) -> dict[str, Any]:
    """A condition kept in its source coding (e.g. SNOMED CT), as the source gave it: id
    ``source-<n>`` so it never collides with a MedAI diagnosis."""
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": f"source-{condition.pk}",
        "code": {
            "coding": [
                {
                    "system": condition.system,
                    "code": condition.code,
                    **({"display": condition.display} if condition.display else {}),
                }
            ],
            **({"text": condition.display} if condition.display else {}),
        },
        "subject": reference("Patient", condition.patient_id),
        "recordedDate": instant(condition.recorded_at),
        "note": [{"text": "Kept in its source coding; not mapped to ICD-10."}],
    }
    if condition.visit_id:
        resource["encounter"] = reference("Encounter", condition.visit_id)
    verification = {"confirmed": "confirmed", "refuted": "refuted"}.get(
        condition.verification_status, "provisional"
    )
    resource["verificationStatus"] = {
        "coding": [{"system": CONDITION_VERIFICATION, "code": verification}]
    }
    if condition.clinical_status and verification != "refuted":
        resource["clinicalStatus"] = {
            "coding": [{"system": CONDITION_CLINICAL, "code": condition.clinical_status}]
        }
    if condition.onset is not None:
        resource["onsetDateTime"] = instant(condition.onset)
    return resource
