"""Patients over the REST API: list/search, register, read, update.

Thin views (STYLE.md): validate → selector/service → serialize. Scoping to the caller's care
teams is the selectors' job; a patient outside it is a 404.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from medai_site.api_auth import Scope
from medai_site.api_fields import IdField, StrictCharField
from medai_site.api_output import represent
from medai_site.api_pagination import page_parameters, paginated, paginated_response
from medai_site.idempotency import idempotent_create
from patients.models import MRN_INPUT_PATTERN, Allergy, Patient
from patients.selectors import patient_get, patient_list
from patients.services import (
    AllergyInput,
    patient_create,
    patient_update,
    registration_care_teams,
)

# What a list row returns, and so the only encrypted columns a list decrypts.
LIST_FIELDS = ("id", "mrn", "sex", "given_name", "family_name", "birth_date")


class AllergySerializer(serializers.Serializer):
    substance = StrictCharField(max_length=100)
    reaction = StrictCharField(max_length=2000, required=False, allow_blank=True)
    severity = serializers.ChoiceField(
        choices=Allergy.Severity.choices, required=False, default=Allergy.Severity.MODERATE
    )

    class Meta:
        ref_name = "Allergy"


class CareTeamSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = StrictCharField()

    class Meta:
        ref_name = "CareTeam"


class PatientSummarySerializer(serializers.Serializer):
    """A list row: enough to identify the patient, nothing more is decrypted."""

    id = serializers.IntegerField()
    mrn = StrictCharField()
    name = StrictCharField(source="full_name")
    sex = serializers.ChoiceField(choices=Patient.Sex.choices)
    birth_date = serializers.DateField()

    class Meta:
        ref_name = "PatientSummary"


class PatientDetailSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    mrn = StrictCharField()
    sex = serializers.ChoiceField(choices=Patient.Sex.choices)
    given_name = StrictCharField()
    family_name = StrictCharField()
    birth_date = serializers.DateField()
    phone = StrictCharField()
    email = StrictCharField()
    address = StrictCharField()
    national_id = StrictCharField()
    emergency_contact = StrictCharField()
    allergies = AllergySerializer(many=True)
    care_teams = CareTeamSerializer(many=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    class Meta:
        ref_name = "PatientDetail"


class _PatientFieldsSerializer(serializers.Serializer):
    """The writable fields (limits mirror the model, so a too-long value is a 400)."""

    mrn = serializers.RegexField(
        MRN_INPUT_PATTERN,
        max_length=32,
        help_text="4–32 letters, digits or hyphens; stored in capitals.",
    )
    sex = serializers.ChoiceField(choices=Patient.Sex.choices)
    given_name = StrictCharField(max_length=100)
    family_name = StrictCharField(max_length=100)
    birth_date = serializers.DateField()
    phone = StrictCharField(max_length=40, required=False, allow_blank=True)
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)
    address = StrictCharField(max_length=2000, required=False, allow_blank=True)
    national_id = StrictCharField(max_length=40, required=False, allow_blank=True)
    emergency_contact = StrictCharField(max_length=2000, required=False, allow_blank=True)


def _detail(request: Request, patient_id: int, status: int = 200) -> Response:
    patient = patient_get(viewer=request.user, patient_id=patient_id, audit=False)
    return Response(represent(PatientDetailSerializer, patient), status=status)


class PatientListCreateApi(APIView):
    required_scopes = {"GET": Scope.PATIENTS_READ, "POST": Scope.PATIENTS_WRITE}
    idempotent = True

    class InputSerializer(_PatientFieldsSerializer):
        allergies = AllergySerializer(many=True, required=False)
        care_team_ids = serializers.ListField(child=IdField(), required=False, max_length=50)

        class Meta:
            ref_name = "PatientCreate"

    @extend_schema(
        operation_id="patients_list",
        tags=["patients"],
        summary="List patients",
        description=(
            "Patients of the caller's care teams, by id. To search, POST to "
            "/api/v1/patients/search: search terms are PHI and must not travel in URLs."
        ),
        parameters=[*page_parameters()],
        responses={200: paginated(PatientSummarySerializer, "PatientPage")},
    )
    def get(self, request: Request) -> Response:
        patients = patient_list(viewer=request.user).prefetch_related(None).only(*LIST_FIELDS)
        return paginated_response(
            queryset=patients,
            serializer_class=PatientSummarySerializer,
            request=request,
            view=self,
            audit_patients=True,
        )

    @extend_schema(
        operation_id="patients_create",
        tags=["patients"],
        summary="Register a patient",
        description=(
            "`care_team_ids` defaults to all of the caller's care teams (admins: none). "
            "A duplicate MRN is a 409."
        ),
        request=InputSerializer,
        responses={201: PatientDetailSerializer},
    )
    def post(self, request: Request) -> Response:
        def create() -> tuple[int, int]:
            serializer = self.InputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = dict(serializer.validated_data)
            allergies = [AllergyInput(**a) for a in data.pop("allergies", [])]
            teams = registration_care_teams(
                actor=request.user, team_ids=data.pop("care_team_ids", None)
            )
            patient = patient_create(
                **data, care_teams=teams, allergies=allergies, actor=request.user
            )
            return 201, patient.pk

        return idempotent_create(
            request, create=create, respond=lambda status, pk: _detail(request, pk, status)
        )


class PatientSearchApi(APIView):
    """Search in the request body: names, phones and ids are PHI and stay out of URLs and logs."""

    required_scopes = {"POST": Scope.PATIENTS_READ}

    class InputSerializer(serializers.Serializer):
        q = StrictCharField(
            max_length=200, help_text="MRN, full/given/family name, phone or national id."
        )

    @extend_schema(
        operation_id="patients_search",
        tags=["patients"],
        summary="Search patients",
        description=(
            "Exact search by MRN, full, given or family name, phone or national id, through blind "
            "indexes, among the caller's care teams. At most 200 matches."
        ),
        request=InputSerializer,
        responses={200: PatientSummarySerializer(many=True)},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        patients = patient_list(viewer=request.user, query=serializer.validated_data["q"])
        patients = patients.prefetch_related(None).only(*LIST_FIELDS).order_by("pk")
        return Response(PatientSummarySerializer(patients, many=True).data)


class PatientDetailApi(APIView):
    required_scopes = {"GET": Scope.PATIENTS_READ, "PATCH": Scope.PATIENTS_WRITE}

    class UpdateInputSerializer(_PatientFieldsSerializer):
        class Meta:
            ref_name = "PatientUpdate"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, partial=True, **kwargs)

    @extend_schema(
        operation_id="patients_retrieve",
        tags=["patients"],
        summary="Read a patient",
        responses={200: PatientDetailSerializer},
    )
    def get(self, request: Request, patient_id: int) -> Response:
        patient = patient_get(viewer=request.user, patient_id=patient_id)
        return Response(represent(PatientDetailSerializer, patient))

    @extend_schema(
        operation_id="patients_update",
        tags=["patients"],
        summary="Update a patient",
        description="Only the fields sent change. Changing the MRN to one in use is a 409.",
        request=UpdateInputSerializer,
        responses={200: PatientDetailSerializer},
    )
    def patch(self, request: Request, patient_id: int) -> Response:
        patient = patient_get(viewer=request.user, patient_id=patient_id, audit=False)
        serializer = self.UpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        patient_update(patient=patient, actor=request.user, **serializer.validated_data)
        return _detail(request, patient.pk)
