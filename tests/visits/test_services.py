"""Visits, observations and diagnoses: validation, flags, unit conversion, ICD-10, lifecycle."""

from __future__ import annotations

import pytest

from medai_site.errors import Conflict, InvalidInput
from medai_site.models import AuditEvent
from predictions.models import AdviceRequest
from tests.factories import PatientFactory
from visits.models import Diagnosis, Observation, Visit
from visits.services import (
    DiagnosisInput,
    ObservationInput,
    diagnosis_add,
    diagnosis_set_status,
    visit_close,
    visit_create,
    visit_record,
    visit_update,
)

pytestmark = pytest.mark.django_db

TEMPERATURE, SPO2, HEART_RATE, WEIGHT = "8310-5", "2708-6", "8867-4", "29463-7"
GLUCOSE, CHOLESTEROL = "2345-7", "2093-3"


@pytest.fixture
def patient(team_a):
    return PatientFactory(care_teams=[team_a])


def create(patient, doctor, *observations, **text):
    return visit_create(
        patient=patient,
        attending=doctor,
        actor=doctor,
        request_advice=False,
        observations=[ObservationInput(*o) for o in observations],
        **text,
    )


def observation(visit, code):
    return Observation.objects.get(visit=visit, definition__code=code)


# --- plausible ranges ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        (
            (TEMPERATURE, 420, "Cel"),
            ["Body temperature", "420", "outside the possible range", "25–45"],
        ),
        ((SPO2, 130, "%"), ["Oxygen saturation", "130", "outside the possible range", "50–100"]),
        (
            (TEMPERATURE, 420, "[degF]"),
            ["Body temperature", "420", "[degF]"],
        ),  # checked after conversion
    ],
)
def test_impossible_values_are_rejected_with_a_clear_message(patient, doctor_a, entry, words):
    with pytest.raises(InvalidInput) as excinfo:
        create(patient, doctor_a, entry)
    for word in words:
        assert word in excinfo.value.message
    assert entry[0] in excinfo.value.fields


def test_nothing_is_saved_when_any_observation_is_invalid(patient, doctor_a):
    with pytest.raises(InvalidInput) as excinfo:
        create(
            patient,
            doctor_a,
            (HEART_RATE, 80, "/min"),
            (SPO2, 130, "%"),
            (TEMPERATURE, "abc", "Cel"),
            chief_complaint="fever",
        )
    assert set(excinfo.value.fields) == {SPO2, TEMPERATURE}  # every error reported at once
    assert not Visit.objects.exists()
    assert not Observation.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CREATE).exists()


def test_an_invalid_update_changes_nothing(patient, doctor_a):
    visit = create(patient, doctor_a, (HEART_RATE, 80, "/min"), chief_complaint="fever")
    with pytest.raises(InvalidInput):
        visit_update(
            visit=visit,
            actor=doctor_a,
            request_advice=False,
            chief_complaint="changed",
            observations=[ObservationInput(HEART_RATE, 90), ObservationInput(SPO2, 130)],
        )
    visit.refresh_from_db()
    assert visit.chief_complaint == "fever"
    assert observation(visit, HEART_RATE).value == 80


def test_unknown_code_and_non_numeric_values_are_rejected(patient, doctor_a):
    with pytest.raises(InvalidInput, match="Unknown observation code"):
        create(patient, doctor_a, ("0000-0", 1, ""))
    with pytest.raises(InvalidInput, match="not a number"):
        create(patient, doctor_a, (HEART_RATE, "eighty", "/min"))
    with pytest.raises(InvalidInput, match="not a finite number"):
        create(patient, doctor_a, (HEART_RATE, "nan", "/min"))


# --- flags ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "value", "interpretation"),
    [
        (TEMPERATURE, 36.8, "N"),
        (TEMPERATURE, 38.2, "H"),
        (TEMPERATURE, 40.5, "HH"),
        (TEMPERATURE, 34.0, "LL"),
        (HEART_RATE, 52, "L"),
        (HEART_RATE, 140, "HH"),
        (SPO2, 93, "L"),
        (SPO2, 85, "LL"),
        (WEIGHT, 70, ""),  # no reference range: not flagged either way
    ],
)
def test_values_are_flagged_normal_abnormal_or_critical_not_rejected(
    patient, doctor_a, code, value, interpretation
):
    visit = create(patient, doctor_a, (code, value, ""))
    saved = observation(visit, code)
    assert saved.interpretation == interpretation
    assert saved.is_abnormal == (interpretation not in ("", "N"))
    assert saved.is_critical == (interpretation in ("LL", "HH"))


# --- unit conversion -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "value", "unit", "canonical"),
    [
        (TEMPERATURE, 98.6, "[degF]", 37.0),
        (TEMPERATURE, 101.3, "°F", 38.5),
        (TEMPERATURE, 37.2, "°C", 37.2),
        (WEIGHT, 154, "lb", 69.85),
        (WEIGHT, 70, "kg", 70.0),
        (GLUCOSE, 5.5, "mmol/L", 99.09),
        (GLUCOSE, 110, "mg/dL", 110.0),
        (CHOLESTEROL, 5.2, "mmol/l", 201.08),
    ],
)
def test_units_are_converted_on_entry_and_the_entered_unit_is_kept(
    patient, doctor_a, code, value, unit, canonical
):
    visit = create(patient, doctor_a, (code, value, unit))
    saved = observation(visit, code)
    assert saved.value == pytest.approx(canonical, abs=0.01)
    assert (saved.entered_value, saved.entered_unit) == (value, unit)


@pytest.mark.parametrize(
    ("code", "unit"),
    [(TEMPERATURE, "K"), (HEART_RATE, "mmol/L"), (WEIGHT, "stone"), (SPO2, "mg/dL")],
)
def test_a_unit_the_code_cannot_take_is_rejected(patient, doctor_a, code, unit):
    with pytest.raises(InvalidInput, match="is not accepted") as excinfo:
        create(patient, doctor_a, (code, 50, unit))
    assert code in excinfo.value.fields
    assert not Visit.objects.exists()


# --- ICD-10 ---------------------------------------------------------------------------------------


@pytest.fixture
def visit(patient, doctor_a):
    return create(patient, doctor_a, chief_complaint="chest pain")


@pytest.mark.parametrize("code", ["I21.9", "i219", " I21.9 ", "I21"])
def test_valid_icd10_codes_are_accepted_and_normalised(visit, doctor_a, code):
    diagnosis = diagnosis_add(visit=visit, code=code, actor=doctor_a)
    assert diagnosis.code == code.strip().upper().replace("I219", "I21.9")
    assert "myocardial infarction" in diagnosis.display.lower()
    assert diagnosis.recorded_by == doctor_a
    assert diagnosis.source == Diagnosis.Source.DOCTOR


@pytest.mark.parametrize("code", ["XYZ", "Z99.99", "I20-I25", "IX", "", "I21.99"])
def test_invalid_icd10_codes_are_rejected(visit, doctor_a, code):
    with pytest.raises(InvalidInput, match="not a valid ICD-10 code"):
        diagnosis_add(visit=visit, code=code, actor=doctor_a)
    assert not Diagnosis.objects.exists()


def test_one_standing_primary_diagnosis_per_visit(visit, doctor_a):
    first = diagnosis_add(visit=visit, code="I21.9", actor=doctor_a)
    with pytest.raises(Conflict, match="primary"):
        diagnosis_add(visit=visit, code="I20.0", actor=doctor_a)
    diagnosis_add(visit=visit, code="E11.9", rank=Diagnosis.Rank.SECONDARY, actor=doctor_a)
    with pytest.raises(Conflict, match="already recorded"):
        diagnosis_add(visit=visit, code="i219", rank=Diagnosis.Rank.SECONDARY, actor=doctor_a)
    # Refuting the primary frees the slot; un-refuting it while another stands is refused.
    diagnosis_set_status(diagnosis=first, status=Diagnosis.Status.REFUTED, actor=doctor_a)
    diagnosis_add(visit=visit, code="I20.0", actor=doctor_a)
    with pytest.raises(Conflict, match="primary"):
        diagnosis_set_status(diagnosis=first, status=Diagnosis.Status.CONFIRMED, actor=doctor_a)
    with pytest.raises(InvalidInput):
        diagnosis_set_status(diagnosis=first, status="maybe", actor=doctor_a)


# --- visit_record: a visit with its observations and diagnoses, the pages' and the API's door ----


def test_visit_record_writes_visit_observations_and_diagnoses_with_one_advice_request(
    patient, doctor_a, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        visit = visit_record(
            patient=patient,
            actor=doctor_a,
            observations=[ObservationInput(HEART_RATE, 88)],
            diagnoses=[DiagnosisInput("J18.9"), DiagnosisInput("E11.9")],
            chief_complaint="cough",
        )
    assert visit.attending == doctor_a
    assert observation(visit, HEART_RATE).value == 88
    ranks = dict(visit.diagnoses.values_list("code", "rank"))
    # Without a rank: the first is primary, the next secondary (one primary may stand).
    assert ranks == {"J18.9": Diagnosis.Rank.PRIMARY, "E11.9": Diagnosis.Rank.SECONDARY}
    assert AdviceRequest.objects.filter(visit=visit).count() == 1


def test_visit_record_update_keeps_recorded_codes_and_ranks_new_ones_after_the_primary(
    visit, doctor_a, django_capture_on_commit_callbacks
):
    diagnosis_add(visit=visit, code="I21.9", actor=doctor_a)
    with django_capture_on_commit_callbacks(execute=False):
        visit_record(
            visit=visit,
            actor=doctor_a,
            diagnoses=[DiagnosisInput("i219"), DiagnosisInput("I10")],
            plan="serial ECGs",
        )
    visit.refresh_from_db()
    assert visit.plan == "serial ECGs"
    ranks = dict(visit.diagnoses.values_list("code", "rank"))
    assert ranks == {"I21.9": Diagnosis.Rank.PRIMARY, "I10": Diagnosis.Rank.SECONDARY}
    assert AdviceRequest.objects.filter(visit=visit).count() == 1


def test_visit_record_ranks_primary_again_once_the_primary_is_refuted(visit, doctor_a):
    first = diagnosis_add(visit=visit, code="I21.9", actor=doctor_a)
    diagnosis_set_status(diagnosis=first, status=Diagnosis.Status.REFUTED, actor=doctor_a)
    visit_record(
        visit=visit, actor=doctor_a, request_advice=False, diagnoses=[DiagnosisInput("I20.0")]
    )
    assert visit.diagnoses.get(code="I20.0").rank == Diagnosis.Rank.PRIMARY


def test_visit_record_is_all_or_nothing(patient, doctor_a):
    with pytest.raises(Conflict, match="already recorded"):
        visit_record(
            patient=patient,
            actor=doctor_a,
            observations=[ObservationInput(HEART_RATE, 88)],
            diagnoses=[
                DiagnosisInput("J18.9", rank=Diagnosis.Rank.PRIMARY),
                DiagnosisInput("J18.9", rank=Diagnosis.Rank.SECONDARY),
            ],
        )
    with pytest.raises(InvalidInput, match="not a valid ICD-10 code"):
        visit_record(patient=patient, actor=doctor_a, diagnoses=[DiagnosisInput("XYZ")])
    assert not Visit.objects.exists()
    assert not Observation.objects.exists()
    assert not AdviceRequest.objects.exists()


def test_visit_record_needs_exactly_one_of_patient_and_visit(patient, visit, doctor_a):
    with pytest.raises(InvalidInput, match="either"):
        visit_record(patient=patient, visit=visit, actor=doctor_a)
    with pytest.raises(InvalidInput, match="either"):
        visit_record(actor=doctor_a)


# --- lifecycle -----------------------------------------------------------------------------------


def test_visit_create_stores_age_capped_and_encrypted_text(team_a, doctor_a):
    import datetime as dt

    old = PatientFactory(birth_date=dt.date(1920, 1, 1), care_teams=[team_a])
    visit = create(old, doctor_a, chief_complaint="fall at home")
    visit.refresh_from_db()
    assert visit.age_years == 90
    assert visit.status == Visit.Status.OPEN
    assert visit.end is None
    assert visit.chief_complaint == "fall at home"


def test_visit_save_writes_an_advice_request_in_the_same_transaction(
    patient, doctor_a, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        visit = visit_create(patient=patient, attending=doctor_a, actor=doctor_a)
    assert AdviceRequest.objects.filter(visit=visit).count() == 1
    # The audit lane's own marker (medai_site.audit._lane_lock) is registered too; it sends nothing.
    dispatches = [c for c in callbacks if c.__qualname__ != "_lane_lock.<locals>.marker"]
    assert len(dispatches) == 1  # the broker is only told after commit


def test_open_visit_closes_once_and_is_then_read_only(
    visit, doctor_a, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        closed = visit_close(visit=visit, actor=doctor_a)
    assert closed.status == Visit.Status.CLOSED
    assert closed.end is not None
    assert closed.end >= closed.start
    assert AdviceRequest.objects.filter(visit=visit).exists()
    with pytest.raises(Conflict, match="already closed"):
        visit_close(visit=visit, actor=doctor_a)
    with pytest.raises(Conflict, match="closed"):
        visit_update(visit=visit, actor=doctor_a, request_advice=False, plan="changed")
    with pytest.raises(Conflict, match="closed"):
        visit_update(
            visit=visit,
            actor=doctor_a,
            request_advice=False,
            observations=[ObservationInput(HEART_RATE, 70)],
        )
    visit.refresh_from_db()
    assert visit.plan == ""
    assert not visit.observations.exists()


def test_reentering_a_vital_replaces_it(visit, doctor_a):
    visit_update(
        visit=visit,
        actor=doctor_a,
        request_advice=False,
        observations=[ObservationInput(HEART_RATE, 80)],
    )
    visit_update(
        visit=visit,
        actor=doctor_a,
        request_advice=False,
        observations=[ObservationInput(HEART_RATE, 95)],
    )
    assert observation(visit, HEART_RATE).value == 95


def test_unknown_visit_fields_are_refused(patient, doctor_a, visit):
    with pytest.raises(InvalidInput, match="Unknown visit field"):
        create(patient, doctor_a, diagnosis="flu")
    with pytest.raises(InvalidInput, match="Unknown visit field"):
        visit_update(visit=visit, actor=doctor_a, request_advice=False, status="closed")


def test_thousands_separator_is_refused_not_guessed():
    """'1,200' is ambiguous (1200 or 1.2): refused with a clear message; '38,5' is a decimal comma."""
    from visits.models import ObservationDefinition
    from visits.services import ObservationInput, observation_validate

    glucose = ObservationDefinition.objects.get(code="2345-7")
    with pytest.raises(InvalidInput, match="ambiguous"):
        observation_validate(ObservationInput("2345-7", "1,200", "mg/dL"), glucose)
    temperature = ObservationDefinition.objects.get(code="8310-5")
    assert (
        observation_validate(ObservationInput("8310-5", "38,5", "Cel"), temperature).value == 38.5
    )


# --- bulk import of past visits --------------------------------------------------------------


def past_visit(patient, doctor, **overrides):
    import datetime as dt

    from django.utils import timezone

    from visits.services import VisitImport

    start = timezone.now() - dt.timedelta(days=30)
    values = {
        "patient": patient,
        "attending": doctor,
        "start": start,
        "end": start + dt.timedelta(minutes=20),
        "visit_type": Visit.Type.OUTPATIENT,
        "status": Visit.Status.CLOSED,
        "observations": (ObservationInput(TEMPERATURE, 101.3, "[degF]"),),
        "diagnoses": (
            DiagnosisInput("j189", Diagnosis.Rank.PRIMARY, Diagnosis.Status.CONFIRMED),
            DiagnosisInput("E11.9", Diagnosis.Rank.SECONDARY, Diagnosis.Status.CONFIRMED),
        ),
        "text": {"chief_complaint": "cough", "plan": "amoxicillin"},
    }
    return VisitImport(**{**values, **overrides})


def test_visits_bulk_import_validates_converts_flags_and_audits(patient, doctor_a):
    from visits.services import visits_bulk_import

    report = visits_bulk_import(visits=[past_visit(patient, doctor_a)], actor=None)
    (visit,) = report.visits
    visit = Visit.objects.get(pk=visit.pk)
    assert (visit.status, visit.chief_complaint, visit.plan) == ("closed", "cough", "amoxicillin")
    temperature = observation(visit, TEMPERATURE)
    assert temperature.value == pytest.approx(38.5)
    assert temperature.interpretation == Observation.Interpretation.HIGH
    assert temperature.recorded_at == visit.start  # history is dated when it was measured
    assert dict(visit.diagnoses.values_list("code", "rank")) == {
        "J18.9": Diagnosis.Rank.PRIMARY,
        "E11.9": Diagnosis.Rank.SECONDARY,
    }
    assert (report.observations, report.diagnoses) == (1, 2)
    assert AuditEvent.objects.filter(
        action=AuditEvent.Action.CREATE,
        object_type="visits.visit",
        object_id=str(visit.pk),
        patient_id=patient.pk,
    ).exists()
    assert not AdviceRequest.objects.exists()  # history asks for no advice


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"observations": (ObservationInput(HEART_RATE, 900),)}, "Visit 2: Heart rate 900"),
        ({"visit_type": "house call"}, "Visit 2:"),
        (
            {
                "diagnoses": (
                    DiagnosisInput("I10", Diagnosis.Rank.PRIMARY),
                    DiagnosisInput("I21.9", Diagnosis.Rank.PRIMARY),
                )
            },
            "Visit 2: A visit may have one primary",
        ),
        ({"diagnoses": (DiagnosisInput("XYZ"),)}, "Visit 2: .*not a valid ICD-10 code"),
        ({"text": {"diagnosis": "flu"}}, "Visit 2: Unknown visit field"),
    ],
)
def test_visits_bulk_import_refuses_a_bad_visit_and_writes_nothing(
    patient, doctor_a, overrides, message
):
    from visits.services import visits_bulk_import

    with pytest.raises((InvalidInput, Conflict), match=message):
        visits_bulk_import(
            visits=[past_visit(patient, doctor_a), past_visit(patient, doctor_a, **overrides)],
            actor=None,
        )
    assert not Visit.objects.exists()
    assert not Observation.objects.exists()
    assert not Diagnosis.objects.exists()


# --- limits and what an emergency visit needs (issue 17) ------------------------------------------


def test_each_free_text_field_has_one_limit_with_a_clear_message(doctor_a, team_a):
    from visits.services import VISIT_TEXT_LIMITS

    patient = PatientFactory(care_teams=[team_a])
    limit = VISIT_TEXT_LIMITS["chief_complaint"]
    visit = visit_create(
        patient=patient, attending=doctor_a, actor=doctor_a, chief_complaint="x" * limit
    )
    with pytest.raises(InvalidInput) as refused:
        visit_update(
            visit=visit, actor=doctor_a, chief_complaint="x" * (limit + 1), plan="y" * 5001
        )
    assert refused.value.message == (
        f"Chief complaint is too long: {limit + 1:,} characters, at most {limit:,}."
    )
    assert set(refused.value.fields) == {"chief_complaint", "plan"}
    visit.refresh_from_db()
    assert visit.chief_complaint == "x" * limit  # nothing changed


def test_a_new_emergency_visit_needs_its_triage_vital_signs(doctor_a, team_a):
    from visits.services import TRIAGE_VITALS

    patient = PatientFactory(care_teams=[team_a])
    with pytest.raises(InvalidInput, match="triage vital signs: respiratory rate") as refused:
        visit_record(
            actor=doctor_a,
            patient=patient,
            visit_type="emergency",
            chief_complaint="chest pain",
            observations=[ObservationInput("8867-4", 118)],
        )
    assert set(refused.value.fields) == set(TRIAGE_VITALS) - {"8867-4"}
    assert not patient.visits.exists()
    triage = [
        ObservationInput("9279-1", 22),
        ObservationInput("2708-6", 91),
        ObservationInput("8480-6", 165),
        ObservationInput("8867-4", 118),
        ObservationInput("8310-5", 37.2),
    ]
    visit = visit_record(
        actor=doctor_a, patient=patient, visit_type="emergency", observations=triage
    )
    assert visit.visit_type == "emergency"
    # Its later edits are not asked again; an outpatient visit never is.
    visit_record(actor=doctor_a, visit=visit, plan="aspirin 300 mg")
    visit_record(actor=doctor_a, patient=patient, visit_type="outpatient", chief_complaint="cough")


def test_the_python_visit_checks_decide_as_the_database_constraints_do(patient, doctor_a):
    """visit_record decides the visit's check constraints in Python (no query each); a constraint
    changed in the model without its rule would drift silently: here each rule meets the
    constraint's own database check on the same visits."""
    import datetime as dt

    from django.core.exceptions import ValidationError
    from django.db.models import CheckConstraint
    from django.utils import timezone

    from visits.services import _VISIT_CHECKS

    checks = [c for c in Visit._meta.constraints if isinstance(c, CheckConstraint)]
    assert {c.name for c in checks} == set(_VISIT_CHECKS)
    start = timezone.now()
    hour = dt.timedelta(hours=1)
    samples = [
        (end, age)
        for end in (None, start - hour, start, start + hour)
        for age in (0, 40, 90, 91, 120)
    ]
    for end, age in samples:
        visit = Visit(patient=patient, attending=doctor_a, start=start, end=end, age_years=age)
        for constraint in checks:
            try:
                constraint.validate(Visit, visit)
                database_allows = True
            except ValidationError:
                database_allows = False
            assert _VISIT_CHECKS[constraint.name][1](visit) == database_allows, (
                constraint.name,
                end,
                age,
            )


def test_an_update_with_a_naive_end_is_refused_clearly_and_changes_nothing(patient, doctor_a):
    import datetime as dt

    visit = create(patient, doctor_a)
    naive = dt.datetime(2030, 1, 1)  # noqa: DTZ001 (naive on purpose: what is refused)
    with pytest.raises(InvalidInput, match="end must include a time zone"):
        visit_update(visit=visit, actor=doctor_a, request_advice=False, end=naive)
    visit.refresh_from_db()
    assert visit.end is None


def test_the_catalogue_is_read_once_per_process_until_forgotten(django_assert_num_queries):
    """Issue 15: validating observations reads the catalogue from the process cache
    (visits.selectors.observation_definitions_by_code), not once per visit saved."""
    from visits.selectors import observation_definitions_forget
    from visits.services import ObservationInput, observations_validate

    entries = [ObservationInput("8867-4", 80), ObservationInput("8310-5", 37.2)]
    with django_assert_num_queries(1):
        first = observations_validate(entries)
    with django_assert_num_queries(0):
        again = observations_validate(entries)
    assert [v.definition.code for v in again] == [v.definition.code for v in first]
    with pytest.raises(InvalidInput, match="Unknown observation code"):
        observations_validate([ObservationInput("0000-0", 1)])
    observation_definitions_forget()
    with django_assert_num_queries(1):
        observations_validate(entries)
