"""Advice (asynchronous), feedback on it, and the model registry over the REST API.

Thin views (STYLE.md): the outbox, the worker's computation, feedback and promotion rules live
in predictions/services/; reads in predictions/selectors.py; the views validate and serialize.
The advice's serializer is derived from the typed payload (predictions/api/payload.py).
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from medai_site.api_auth import NO_SCOPE, IsHospitalAdmin, Scope, require_scope
from medai_site.api_fields import IdField, StrictCharField
from medai_site.errors import NotFound
from medai_site.idempotency import idempotent_create
from predictions.api.payload import AdviceSerializer
from predictions.models import (
    ActivationEvent,
    AdviceRequest,
    Feedback,
    PredictionTask,
    TrainingJob,
)
from predictions.selectors import (
    advice_get,
    advice_request_get,
    advice_state,
    task_get,
    task_list,
    training_job_get,
    version_get,
)
from predictions.services.feedback import feedback_record
from predictions.services.outbox import advice_request_create
from predictions.services.registry import version_promote, version_rollback
from predictions.services.training import training_job_start
from visits.selectors import visit_get


# --- advice --------------------------------------------------------------------------------------
class AdviceRequestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    visit_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=AdviceRequest.Status.choices)
    created_at = serializers.DateTimeField()
    dispatched_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    error = StrictCharField(help_text="Why it failed (empty unless failed); never PHI.")
    advice_id = serializers.IntegerField(allow_null=True)
    poll_url = serializers.SerializerMethodField()
    advice_url = serializers.SerializerMethodField()

    class Meta:
        ref_name = "AdviceRequest"

    def get_poll_url(self, request: AdviceRequest) -> str:
        return reverse("api:advice-request-detail", kwargs={"request_id": request.pk})

    def get_advice_url(self, request: AdviceRequest) -> str:
        return reverse("api:visit-advice", kwargs={"visit_id": request.visit_id})


class FeedbackSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    advice_id = serializers.IntegerField()
    suggestion = StrictCharField()
    decision = serializers.ChoiceField(choices=Feedback.Decision.choices)
    reason = serializers.ChoiceField(choices=Feedback.Reason.choices, allow_blank=True)
    comment = StrictCharField()
    rank = serializers.IntegerField(allow_null=True)
    diagnosis_id = serializers.IntegerField(allow_null=True)
    at = serializers.DateTimeField()

    class Meta:
        ref_name = "Feedback"


class AdviceStateSerializer(serializers.Serializer):
    visit_id = serializers.IntegerField()
    status = serializers.ChoiceField(
        choices=["none", "pending", "done", "failed", "insufficient"],
        help_text=(
            "none: never requested; pending: queued or computing; done; failed (see error); "
            "insufficient: the visit records neither a chief complaint nor a vital sign, so no "
            "advice is computed (see missing)."
        ),
    )
    error = StrictCharField()
    missing = serializers.ListField(
        child=StrictCharField(), help_text="What the visit lacks before advice is computed."
    )
    request = AdviceRequestSerializer(allow_null=True)
    advice = AdviceSerializer(allow_null=True)
    feedback = FeedbackSerializer(many=True)

    class Meta:
        ref_name = "AdviceState"


def _advice_request_response(request: Request, request_id: int, status: int) -> Response:
    advice_request = advice_request_get(viewer=request.user, request_id=request_id)
    data = AdviceRequestSerializer(advice_request).data
    return Response(data, status=status, headers={"Location": data["poll_url"]})


class VisitAdviceApi(APIView):
    required_scopes = {"GET": Scope.PATIENTS_READ, "POST": Scope.ADVICE_REQUEST}
    idempotent = True

    @extend_schema(
        operation_id="visit_advice_retrieve",
        tags=["advice"],
        summary="The visit's current advice and the state of its newest request",
        responses={200: AdviceStateSerializer},
    )
    def get(self, request: Request, visit_id: int) -> Response:
        state = advice_state(viewer=request.user, visit_id=visit_id)
        advice = None
        if state.advice is not None and state.payload is not None:
            advice = {
                **state.payload.as_dict(),
                "id": state.advice.pk,
                "created_at": state.advice.created_at,
            }
        data = {
            "visit_id": visit_id,
            "status": state.status,
            "error": state.error,
            "missing": list(state.missing),
            "request": state.request,
            "advice": advice,
            "feedback": list(state.feedback.values()),
        }
        return Response(AdviceStateSerializer(data).data)

    @extend_schema(
        operation_id="visit_advice_request",
        tags=["advice"],
        summary="Request advice for a visit (asynchronous)",
        description=(
            "Queues an advice request and answers 202 at once, with a `poll_url` "
            "(also in the Location header). A worker computes the advice; poll the request, "
            "then read it at `advice_url`."
        ),
        request=None,
        responses={202: AdviceRequestSerializer},
    )
    def post(self, request: Request, visit_id: int) -> Response:
        visit = visit_get(viewer=request.user, visit_id=visit_id, audit=False)

        def create() -> tuple[int, int]:
            advice_request = advice_request_create(visit=visit, actor=request.user)
            return 202, advice_request.pk

        return idempotent_create(
            request,
            create=create,
            respond=lambda status, pk: _advice_request_response(request, pk, status),
        )


class AdviceRequestDetailApi(APIView):
    required_scopes = {"GET": Scope.PATIENTS_READ}

    @extend_schema(
        operation_id="advice_requests_retrieve",
        tags=["advice"],
        summary="Poll an advice request",
        responses={200: AdviceRequestSerializer},
    )
    def get(self, request: Request, request_id: int) -> Response:
        advice_request = advice_request_get(viewer=request.user, request_id=request_id)
        return Response(AdviceRequestSerializer(advice_request).data)


class AdviceFeedbackCreateApi(APIView):
    # Accepting also needs visits:write (checked in post: it depends on the decision).
    required_scopes = {"POST": Scope.ADVICE_REQUEST}
    idempotent = True

    class InputSerializer(serializers.Serializer):
        suggestion = StrictCharField(
            max_length=40, help_text="A suggested ICD-10 category, or a risk task's slug."
        )
        decision = serializers.ChoiceField(choices=Feedback.Decision.choices)
        reason = serializers.ChoiceField(
            choices=Feedback.Reason.choices,
            required=False,
            allow_blank=True,
            help_text="Required to override (or a comment).",
        )
        comment = StrictCharField(max_length=2000, required=False, allow_blank=True)

        class Meta:
            ref_name = "FeedbackInput"

    @extend_schema(
        operation_id="advice_feedback_create",
        tags=["advice"],
        summary="Accept or override one suggestion",
        description=(
            "Accepting a suggested diagnosis records the doctor's agreement as a provisional "
            "diagnosis of the visit (marked with the model version that suggested it); it is "
            "confirmed only explicitly (diagnosis update, or closing the visit with it as a final "
            "diagnosis). It is a clinical write, so it also needs the `visits:write` scope. Overriding needs a reason. Feedback on a suggestion is recorded once (409 after)."
        ),
        request=InputSerializer,
        responses={201: FeedbackSerializer},
    )
    def post(self, request: Request, advice_id: int) -> Response:
        # Accepting records a provisional diagnosis on the visit: a clinical write, so it also
        # needs visits:write (advice:request alone may only request advice and override it).
        data = request.data if isinstance(request.data, dict) else {}
        if data.get("decision") == Feedback.Decision.ACCEPT:
            require_scope(request, Scope.VISITS_WRITE)
        advice = advice_get(viewer=request.user, advice_id=advice_id)

        def create() -> tuple[int, int]:
            serializer = self.InputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            feedback = feedback_record(
                advice=advice, actor=request.user, **serializer.validated_data
            )
            return 201, feedback.pk

        def respond(status: int, pk: int) -> Response:
            feedback = advice.feedback.filter(pk=pk).first()
            if feedback is None:
                raise NotFound("Feedback not found.")
            return Response(FeedbackSerializer(feedback).data, status=status)

        return idempotent_create(request, create=create, respond=respond)


# --- models ------------------------------------------------------------------------------------
class ModelVersionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    algorithm = StrictCharField()
    created_at = serializers.DateTimeField()
    is_active = serializers.SerializerMethodField()
    training_job_id = serializers.IntegerField(allow_null=True)
    artifact_sha256 = StrictCharField()
    data_hash = StrictCharField()
    library_versions = serializers.DictField(child=StrictCharField())
    metrics = serializers.DictField(help_text="Cross-validated metrics on the training data.")
    holdout_metrics = serializers.DictField(help_text="Metrics on the held-out patients.")
    comparison = serializers.DictField(help_text="Challenger vs champion on the same hold-out.")

    class Meta:
        ref_name = "ModelVersion"

    def get_is_active(self, version: Any) -> bool:
        return version.task.active_version_id == version.pk


class PredictionTaskSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = StrictCharField()
    kind = serializers.ChoiceField(choices=PredictionTask.Kind.choices)
    enabled = serializers.BooleanField()
    disabled_reason = StrictCharField()
    intended_use = StrictCharField()
    limitations = StrictCharField()
    active_version_id = serializers.IntegerField(allow_null=True)
    versions = ModelVersionSerializer(many=True)

    class Meta:
        ref_name = "PredictionTask"


class TrainingJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    task = serializers.SlugField(source="task.slug")
    status = serializers.ChoiceField(choices=TrainingJob.Status.choices)
    trigger = serializers.ChoiceField(choices=TrainingJob.Trigger.choices)
    stage = StrictCharField()
    percent = serializers.IntegerField()
    error = StrictCharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    model_version_id = serializers.SerializerMethodField()
    poll_url = serializers.SerializerMethodField()

    class Meta:
        ref_name = "TrainingJob"

    def get_model_version_id(self, job: TrainingJob) -> int | None:
        version = getattr(job, "model_version", None)
        return version.pk if version is not None else None

    def get_poll_url(self, job: TrainingJob) -> str:
        return reverse("api:training-job-detail", kwargs={"job_id": job.pk})


class ActivationEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    task = serializers.SlugField(source="task.slug")
    action = serializers.ChoiceField(choices=ActivationEvent.Action.choices)
    from_version_id = serializers.IntegerField(allow_null=True)
    to_version_id = serializers.IntegerField(allow_null=True)
    reason = StrictCharField()
    actor = StrictCharField(source="actor.username", allow_null=True, default=None)
    at = serializers.DateTimeField()

    class Meta:
        ref_name = "ActivationEvent"


class ModelListApi(APIView):
    required_scopes = {"GET": NO_SCOPE}  # reference data, no PHI

    @extend_schema(
        operation_id="models_list",
        tags=["models"],
        summary="Prediction tasks with their versions and metrics",
        responses={200: PredictionTaskSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        return Response(PredictionTaskSerializer(task_list(viewer=request.user), many=True).data)


class ModelDetailApi(APIView):
    required_scopes = {"GET": NO_SCOPE}  # reference data, no PHI

    @extend_schema(
        operation_id="models_retrieve",
        tags=["models"],
        summary="One prediction task with its versions and metrics",
        responses={200: PredictionTaskSerializer},
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(PredictionTaskSerializer(task_get(viewer=request.user, slug=slug)).data)


def _training_job_response(request: Request, job_id: int, status: int) -> Response:
    data = TrainingJobSerializer(training_job_get(viewer=request.user, job_id=job_id)).data
    return Response(data, status=status, headers={"Location": data["poll_url"]})


class TrainingJobStartApi(APIView):
    required_scopes = {"POST": Scope.MODELS_MANAGE}
    idempotent = True

    @extend_schema(
        operation_id="models_training_start",
        tags=["models"],
        summary="Start a training job (asynchronous)",
        description="202 with the job and its `poll_url`; a job already queued or running is a 409.",
        request=None,
        responses={202: TrainingJobSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        task = task_get(viewer=request.user, slug=slug)

        def create() -> tuple[int, int]:
            job = training_job_start(task=task, actor=request.user, trigger=TrainingJob.Trigger.API)
            return 202, job.pk

        return idempotent_create(
            request,
            create=create,
            respond=lambda status, pk: _training_job_response(request, pk, status),
        )


class TrainingJobDetailApi(APIView):
    required_scopes = {"GET": Scope.MODELS_MANAGE}

    @extend_schema(
        operation_id="training_jobs_retrieve",
        tags=["models"],
        summary="Poll a training job",
        responses={200: TrainingJobSerializer},
    )
    def get(self, request: Request, job_id: int) -> Response:
        return Response(
            TrainingJobSerializer(training_job_get(viewer=request.user, job_id=job_id)).data
        )


class ModelPromoteApi(APIView):
    permission_classes = [*APIView.permission_classes, IsHospitalAdmin]
    required_scopes = {"POST": Scope.MODELS_MANAGE}

    class InputSerializer(serializers.Serializer):
        version_id = IdField()
        reason = StrictCharField(max_length=2000)

        class Meta:
            ref_name = "ModelPromote"

    @extend_schema(
        operation_id="models_promote",
        tags=["models"],
        summary="Make a version the active one (admins)",
        description="Overrides the automatic champion/challenger comparison; the reason is recorded.",
        request=InputSerializer,
        responses={200: ActivationEventSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        task = task_get(viewer=request.user, slug=slug)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = version_get(
            viewer=request.user, version_id=serializer.validated_data["version_id"]
        )
        if version.task_id != task.pk:
            raise NotFound("Model version not found.")
        event = version_promote(
            version=version, reason=serializer.validated_data["reason"], actor=request.user
        )
        return Response(ActivationEventSerializer(event).data)


class ModelRollbackApi(APIView):
    permission_classes = [*APIView.permission_classes, IsHospitalAdmin]
    required_scopes = {"POST": Scope.MODELS_MANAGE}

    class InputSerializer(serializers.Serializer):
        reason = StrictCharField(max_length=2000)

        class Meta:
            ref_name = "ModelRollback"

    @extend_schema(
        operation_id="models_rollback",
        tags=["models"],
        summary="Re-activate the previously active version (admins)",
        description="No earlier version to return to is a 409.",
        request=InputSerializer,
        responses={200: ActivationEventSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        task = task_get(viewer=request.user, slug=slug)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        event = version_rollback(
            task=task, reason=serializer.validated_data["reason"], actor=request.user
        )
        return Response(ActivationEventSerializer(event).data)
