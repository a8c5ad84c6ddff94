"""Visits, their observations and diagnoses, the observation catalogue and ICD-10 look-up.

Thin views (STYLE.md): every rule (plausible ranges, units, closed visits, one primary
diagnosis, ICD-10 validity, care-team scoping) lives in the services and selectors called here.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from medai_site.api_auth import NO_SCOPE, Scope
from medai_site.api_fields import (
    AwareDateTimeField,
    FiniteFloatField,
    StrictCharField,
    UserSummarySerializer,
)
from medai_site.api_output import represent
from medai_site.api_pagination import page_parameters, paginated, paginated_response
from medai_site.errors import InvalidInput, NotFound
from medai_site.idempotency import idempotent_create
from patients.api.views import AllergySerializer
from patients.models import Patient
from patients.selectors import patient_get
from visits.icd10 import icd10_lookup, icd10_search
from visits.models import Diagnosis, Observation, ObservationDefinition, Visit
from visits.selectors import observation_definitions, visit_get, visit_list
from visits.services import (
    VISIT_TEXT_LIMITS,
    DiagnosisInput,
    ObservationInput,
    diagnosis_add,
    diagnosis_set_status,
    visit_close,
    visit_record,
)

# Contact data the visit detail does not return, so it is never decrypted for it.
VISIT_DETAIL_DEFERRED_PATIENT_FIELDS = (
    "phone",
    "email",
    "address",
    "national_id",
    "emergency_contact",
)
LIST_FIELDS = (
    "id",
    "patient_id",
    "attending_id",
    "attending__id",
    "attending__username",
    "start",
    "end",
    "visit_type",
    "status",
    "age_years",
    "created_at",
    "updated_at",
)


# --- shared output shapes --------------------------------------------------------------------
class ObservationSerializer(serializers.Serializer):
    code = StrictCharField(source="definition.code")
    display = StrictCharField(source="definition.display")
    category = serializers.ChoiceField(
        source="definition.category", choices=ObservationDefinition.Category.choices
    )
    value = serializers.FloatField(help_text="In the canonical unit.")
    unit = StrictCharField(source="definition.unit")
    entered_value = serializers.FloatField()
    entered_unit = StrictCharField()
    interpretation = serializers.ChoiceField(
        choices=Observation.Interpretation.choices,
        allow_blank=True,
        help_text="N normal, L/H low/high, LL/HH critical, empty: no reference range.",
    )
    recorded_at = serializers.DateTimeField()

    class Meta:
        ref_name = "Observation"


class DiagnosisSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = StrictCharField()
    display = StrictCharField()
    rank = serializers.ChoiceField(choices=Diagnosis.Rank.choices)
    status = serializers.ChoiceField(choices=Diagnosis.Status.choices)
    source = serializers.ChoiceField(choices=Diagnosis.Source.choices)
    suggested_by = StrictCharField(
        help_text="For a diagnosis from advice: the model version that suggested it."
    )
    confirmed_at = serializers.DateTimeField(
        allow_null=True, help_text="When a doctor confirmed it (null: not confirmed)."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    class Meta:
        ref_name = "Diagnosis"


class VisitPatientSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    mrn = StrictCharField()
    name = StrictCharField(source="full_name")
    sex = serializers.ChoiceField(choices=Patient.Sex.choices)
    birth_date = serializers.DateField()
    allergies = AllergySerializer(many=True)

    class Meta:
        ref_name = "VisitPatient"


class VisitSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    patient_id = serializers.IntegerField()
    attending = UserSummarySerializer()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(allow_null=True)
    visit_type = serializers.ChoiceField(choices=Visit.Type.choices)
    status = serializers.ChoiceField(choices=Visit.Status.choices)
    age_years = serializers.IntegerField(help_text="Age at the visit, capped at 90.")
    url = serializers.SerializerMethodField()

    class Meta:
        ref_name = "VisitSummary"

    def get_url(self, visit: Visit) -> str:
        return reverse("api:visit-detail", kwargs={"visit_id": visit.pk})


class VisitDetailSerializer(VisitSummarySerializer):
    patient = VisitPatientSerializer()
    chief_complaint = StrictCharField()
    history_present_illness = StrictCharField()
    past_history = StrictCharField()
    allergy_history = StrictCharField()
    physical_exam = StrictCharField()
    plan = StrictCharField()
    medications = StrictCharField(help_text="One medicine per line (name, dose, how often).")
    observations = ObservationSerializer(many=True)
    diagnoses = DiagnosisSerializer(many=True)
    advice_url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    class Meta:
        ref_name = "VisitDetail"

    def get_advice_url(self, visit: Visit) -> str:
        return reverse("api:visit-advice", kwargs={"visit_id": visit.pk})


# --- shared input shapes ---------------------------------------------------------------------
class ObservationInputSerializer(serializers.Serializer):
    code = StrictCharField(
        max_length=20, help_text="LOINC or local code, see /observation-definitions."
    )
    value = FiniteFloatField()
    unit = StrictCharField(
        max_length=20, required=False, allow_blank=True, help_text="Default: the canonical unit."
    )

    class Meta:
        ref_name = "ObservationInput"


class DiagnosisInputSerializer(serializers.Serializer):
    code = StrictCharField(max_length=10, help_text="ICD-10 category or subcategory.")
    rank = serializers.ChoiceField(choices=Diagnosis.Rank.choices, default=Diagnosis.Rank.PRIMARY)
    status = serializers.ChoiceField(
        choices=Diagnosis.Status.choices, default=Diagnosis.Status.PROVISIONAL
    )

    class Meta:
        ref_name = "DiagnosisInput"


def _text_field(name: str) -> StrictCharField:
    limit = VISIT_TEXT_LIMITS[name]
    return StrictCharField(
        max_length=limit,
        required=False,
        allow_blank=True,
        help_text=f"At most {limit} characters.",
        error_messages={"max_length": f"Too long: at most {limit} characters."},
    )


class _VisitTextSerializer(serializers.Serializer):
    visit_type = serializers.ChoiceField(choices=Visit.Type.choices, required=False)
    start = AwareDateTimeField(required=False)
    # The services' one limit per field (the page's too): VISIT_TEXT_LIMITS.
    chief_complaint = _text_field("chief_complaint")
    history_present_illness = _text_field("history_present_illness")
    past_history = _text_field("past_history")
    allergy_history = _text_field("allergy_history")
    physical_exam = _text_field("physical_exam")
    plan = _text_field("plan")
    medications = _text_field("medications")
    observations = ObservationInputSerializer(many=True, required=False, max_length=200)


def _observation_inputs(entries: list[dict[str, Any]]) -> list[ObservationInput]:
    codes = [e["code"] for e in entries]
    if len(codes) != len(set(codes)):
        raise InvalidInput(
            "Each observation code may appear once per request.",
            fields={"observations": ["Duplicate code."]},
        )
    return [
        ObservationInput(code=e["code"], value=e["value"], unit=e.get("unit", "")) for e in entries
    ]


def _detail(request: Request, visit_id: int, status: int = 200) -> Response:
    visit = visit_get(
        viewer=request.user,
        visit_id=visit_id,
        audit=False,
        defer_patient_fields=VISIT_DETAIL_DEFERRED_PATIENT_FIELDS,
    )
    return Response(represent(VisitDetailSerializer, visit), status=status)


# --- visits --------------------------------------------------------------------------------------
class PatientVisitListCreateApi(APIView):
    required_scopes = {"GET": Scope.PATIENTS_READ, "POST": Scope.VISITS_WRITE}
    idempotent = True

    class FilterSerializer(serializers.Serializer):
        start_from = AwareDateTimeField(required=False)
        start_to = AwareDateTimeField(required=False)
        visit_type = serializers.ChoiceField(choices=Visit.Type.choices, required=False)
        status = serializers.ChoiceField(choices=Visit.Status.choices, required=False)

    class CreateInputSerializer(_VisitTextSerializer):
        diagnoses = DiagnosisInputSerializer(many=True, required=False, max_length=20)

        class Meta:
            ref_name = "VisitCreate"

    @extend_schema(
        operation_id="patient_visits_list",
        tags=["visits"],
        summary="List a patient's visits",
        description="Newest first. `start_from` is inclusive, `start_to` exclusive.",
        parameters=[FilterSerializer, *page_parameters()],
        responses={200: paginated(VisitSummarySerializer, "VisitPage")},
    )
    def get(self, request: Request, patient_id: int) -> Response:
        patient = patient_get(
            viewer=request.user, patient_id=patient_id
        )  # audited: a read of the record
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        visits = (
            visit_list(viewer=request.user, patient_id=patient.pk, **filters.validated_data)
            .select_related(None)
            .select_related("attending")
            .only(*LIST_FIELDS)
        )
        return paginated_response(
            queryset=visits,
            serializer_class=VisitSummarySerializer,
            request=request,
            view=self,
            ordering="-start",
        )

    @extend_schema(
        operation_id="patient_visits_create",
        tags=["visits"],
        summary="Record a visit with its vitals, labs and diagnoses",
        description=(
            "One request, one transaction: every observation is checked against its plausible "
            "range (an impossible value is a 400 naming the code), converted to its canonical "
            "unit and flagged; diagnoses are validated against ICD-10. The caller is the "
            "attending clinician. Advice is requested automatically."
        ),
        request=CreateInputSerializer,
        responses={201: VisitDetailSerializer},
    )
    def post(self, request: Request, patient_id: int) -> Response:
        patient = patient_get(viewer=request.user, patient_id=patient_id, audit=False)
        created: dict[int, Visit] = {}

        def create() -> tuple[int, int]:
            serializer = self.CreateInputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = dict(serializer.validated_data)
            observations = _observation_inputs(data.pop("observations", []))
            diagnoses = [DiagnosisInput(**entry) for entry in data.pop("diagnoses", [])]
            visit = visit_record(
                patient=patient,
                actor=request.user,
                observations=observations,
                diagnoses=diagnoses,
                **data,
            )
            created[visit.pk] = visit
            return 201, visit.pk

        def respond(status: int, pk: int) -> Response:
            # The new visit carries its patient, observations and diagnoses (visit_record):
            # answering with it saves re-reading what this request has just written. A replay
            # of an earlier request reads the visit as stored.
            visit = created.get(pk)
            if visit is None:
                return _detail(request, pk, status)
            return Response(represent(VisitDetailSerializer, visit), status=status)

        return idempotent_create(request, create=create, respond=respond)


class VisitDetailApi(APIView):
    required_scopes = {"GET": Scope.PATIENTS_READ, "PATCH": Scope.VISITS_WRITE}

    class UpdateInputSerializer(_VisitTextSerializer):
        end = AwareDateTimeField(required=False, allow_null=True)

        class Meta:
            ref_name = "VisitUpdate"

    @extend_schema(
        operation_id="visits_retrieve",
        tags=["visits"],
        summary="Read a visit with observations and diagnoses",
        responses={200: VisitDetailSerializer},
    )
    def get(self, request: Request, visit_id: int) -> Response:
        visit = visit_get(
            viewer=request.user,
            visit_id=visit_id,
            defer_patient_fields=VISIT_DETAIL_DEFERRED_PATIENT_FIELDS,
        )
        return Response(represent(VisitDetailSerializer, visit))

    @extend_schema(
        operation_id="visits_update",
        tags=["visits"],
        summary="Update an open visit",
        description=(
            "Only the fields sent change; observations sent replace the stored value of their "
            "code. A closed visit is a 409. Advice is requested again."
        ),
        request=UpdateInputSerializer,
        responses={200: VisitDetailSerializer},
    )
    def patch(self, request: Request, visit_id: int) -> Response:
        visit = visit_get(viewer=request.user, visit_id=visit_id, audit=False)
        serializer = self.UpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        observations = _observation_inputs(data.pop("observations", []))
        visit_record(visit=visit, actor=request.user, observations=observations, **data)
        return _detail(request, visit.pk)


class VisitCloseApi(APIView):
    required_scopes = {"POST": Scope.VISITS_WRITE}

    class InputSerializer(serializers.Serializer):
        end = AwareDateTimeField(required=False, help_text="Default: now.")
        final_diagnoses = serializers.ListField(
            child=serializers.IntegerField(min_value=1),
            required=False,
            max_length=20,
            help_text="Ids of this visit's diagnoses to confirm as final as it closes.",
        )

        class Meta:
            ref_name = "VisitClose"

    @extend_schema(
        operation_id="visits_close",
        tags=["visits"],
        summary="Close a visit",
        description=(
            "Closing an already closed visit is a 409. Advice is requested again. "
            "`final_diagnoses` are confirmed as the visit closes (a diagnosis accepted from "
            "advice is provisional until confirmed so)."
        ),
        request=InputSerializer,
        responses={200: VisitDetailSerializer},
    )
    def post(self, request: Request, visit_id: int) -> Response:
        visit = visit_get(viewer=request.user, visit_id=visit_id, audit=False)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        visit_close(visit=visit, actor=request.user, **serializer.validated_data)
        return _detail(request, visit.pk)


# --- diagnoses ---------------------------------------------------------------------------------
def _diagnosis_response(
    request: Request, visit_id: int, diagnosis_id: int, status: int
) -> Response:
    visit = visit_get(viewer=request.user, visit_id=visit_id, audit=False)
    diagnosis = next((d for d in visit.diagnoses.all() if d.pk == diagnosis_id), None)
    if diagnosis is None:
        raise NotFound("Diagnosis not found.")
    return Response(represent(DiagnosisSerializer, diagnosis), status=status)


class VisitDiagnosisCreateApi(APIView):
    required_scopes = {"POST": Scope.VISITS_WRITE}
    idempotent = True

    @extend_schema(
        operation_id="visit_diagnoses_create",
        tags=["visits"],
        summary="Add a diagnosis to a visit",
        description=(
            "A code already on the visit, or a second standing primary diagnosis, is a 409."
        ),
        request=DiagnosisInputSerializer,
        responses={201: DiagnosisSerializer},
    )
    def post(self, request: Request, visit_id: int) -> Response:
        visit = visit_get(viewer=request.user, visit_id=visit_id, audit=False)

        def create() -> tuple[int, int]:
            serializer = DiagnosisInputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            diagnosis = diagnosis_add(visit=visit, actor=request.user, **serializer.validated_data)
            return 201, diagnosis.pk

        return idempotent_create(
            request,
            create=create,
            respond=lambda status, pk: _diagnosis_response(request, visit.pk, pk, status),
        )


class VisitDiagnosisUpdateApi(APIView):
    required_scopes = {"PATCH": Scope.VISITS_WRITE}

    class InputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Diagnosis.Status.choices)

        class Meta:
            ref_name = "DiagnosisStatusUpdate"

    @extend_schema(
        operation_id="visit_diagnoses_update",
        tags=["visits"],
        summary="Confirm or refute a diagnosis",
        request=InputSerializer,
        responses={200: DiagnosisSerializer},
    )
    def patch(self, request: Request, visit_id: int, diagnosis_id: int) -> Response:
        visit = visit_get(viewer=request.user, visit_id=visit_id, audit=False)
        diagnosis = next((d for d in visit.diagnoses.all() if d.pk == diagnosis_id), None)
        if diagnosis is None:
            raise NotFound("Diagnosis not found.")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        diagnosis_set_status(
            diagnosis=diagnosis, status=serializer.validated_data["status"], actor=request.user
        )
        return _diagnosis_response(request, visit.pk, diagnosis.pk, 200)


# --- reference data ------------------------------------------------------------------------------
class ObservationDefinitionListApi(APIView):
    required_scopes = {"GET": NO_SCOPE}  # reference data, no PHI

    class OutputSerializer(serializers.Serializer):
        code = StrictCharField()
        display = StrictCharField()
        category = serializers.ChoiceField(choices=ObservationDefinition.Category.choices)
        unit = StrictCharField(help_text="Canonical UCUM unit; values are stored in it.")
        alternative_units = serializers.ListField(child=StrictCharField())
        decimals = serializers.IntegerField()
        plausible_low = serializers.FloatField(allow_null=True)
        plausible_high = serializers.FloatField(allow_null=True)
        normal_low = serializers.FloatField(allow_null=True)
        normal_high = serializers.FloatField(allow_null=True)
        critical_low = serializers.FloatField(allow_null=True)
        critical_high = serializers.FloatField(allow_null=True)

        class Meta:
            ref_name = "ObservationDefinition"

    @extend_schema(
        operation_id="observation_definitions_list",
        tags=["reference"],
        summary="The observation catalogue: codes, units and ranges",
        description="Values outside the plausible range are rejected; normal and critical only flag.",
        responses={200: OutputSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(observation_definitions(), many=True).data)


class Icd10CodeSerializer(serializers.Serializer):
    code = StrictCharField()
    display = StrictCharField()

    class Meta:
        ref_name = "Icd10Code"


class Icd10SearchApi(APIView):
    required_scopes = {"GET": NO_SCOPE}  # reference data, no PHI

    class FilterSerializer(serializers.Serializer):
        q = StrictCharField(max_length=100, allow_blank=True, help_text="Code or words.")
        limit = serializers.IntegerField(min_value=1, max_value=100, default=20)

    @extend_schema(
        operation_id="icd10_search",
        tags=["reference"],
        summary="Search ICD-10 by code prefix or words of the description",
        parameters=[FilterSerializer],
        responses={200: Icd10CodeSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        hits = icd10_search(filters.validated_data["q"], limit=filters.validated_data["limit"])
        data = [{"code": code, "display": display} for code, display in hits]
        return Response(Icd10CodeSerializer(data, many=True).data)


class Icd10LookupApi(APIView):
    required_scopes = {"GET": NO_SCOPE}  # reference data, no PHI

    @extend_schema(
        operation_id="icd10_retrieve",
        tags=["reference"],
        summary="Look up one ICD-10 code",
        responses={200: Icd10CodeSerializer},
    )
    def get(self, request: Request, code: str) -> Response:
        try:
            normalised, display = icd10_lookup(code)
        except InvalidInput:
            raise NotFound("No such ICD-10 category or subcategory.") from None
        return Response(Icd10CodeSerializer({"code": normalised, "display": display}).data)
