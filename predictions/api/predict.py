"""The synchronous prediction API: score inputs sent inline and answer in the same request.

``POST /api/v1/models/{slug}/predict`` (one row), ``POST .../predict:batch`` (up to 1,000 rows)
and ``GET .../schema`` (the inputs as JSON Schema, so a client can build a form). Thin views:
validation through the catalogue, scoring, rules and the model-use record live in
:mod:`predictions.services.serving`.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from medai_site.api_auth import ApiToken, PredictRateThrottle, Scope
from medai_site.api_fields import FiniteFloatField, StrictCharField
from medai_site.api_schema import ErrorSerializer
from patients.models import Patient
from predictions.api.payload import serializer_for
from predictions.models import PredictionTask
from predictions.selectors import task_for_serving
from predictions.services.serving import (
    MAX_BATCH_ROWS,
    PredictionInput,
    PredictionResult,
    RowPrediction,
    ServingChanged,
    observation_definitions,
    predictions_make,
    servable_version,
)
from visits.models import Visit
from visits.services import MAX_AGE_YEARS, VISIT_TEXT_LIMITS, ObservationInput

# The same limits as a visit's own fields (visits.services.VISIT_TEXT_LIMITS).
TEXT_LIMITS = {
    "chief_complaint": VISIT_TEXT_LIMITS["chief_complaint"],
    "history": VISIT_TEXT_LIMITS["history_present_illness"],
    "physical_exam": VISIT_TEXT_LIMITS["physical_exam"],
}
MAX_OBSERVATIONS = 200
MAX_ALLERGIES = 50
AGE_MAX = 130  # older is a typo; ages over 89 are scored as 90, as visits store them


# --- input -------------------------------------------------------------------------------------------
class PredictObservationSerializer(serializers.Serializer):
    code = StrictCharField(
        max_length=20, required=False, help_text="LOINC (or local) code of the catalogue."
    )
    name = StrictCharField(
        max_length=120,
        required=False,
        help_text="Or the catalogue's name for it, e.g. 'Heart rate' (case-insensitive).",
    )
    value = FiniteFloatField()
    unit = StrictCharField(
        max_length=20, required=False, allow_blank=True, help_text="Default: the canonical unit."
    )

    class Meta:
        ref_name = "PredictObservation"

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("code")) == bool(attrs.get("name")):
            raise serializers.ValidationError("Give either a code or a name.")
        return attrs


class PredictInputSerializer(serializers.Serializer):
    age = FiniteFloatField(
        required=False, allow_null=True, min_value=0, max_value=AGE_MAX, help_text="Years."
    )
    sex = serializers.ChoiceField(choices=Patient.Sex.choices, required=False, allow_blank=True)
    visit_type = serializers.ChoiceField(
        choices=Visit.Type.choices, required=False, allow_blank=True
    )
    chief_complaint = StrictCharField(
        max_length=TEXT_LIMITS["chief_complaint"], required=False, allow_blank=True
    )
    history = StrictCharField(
        max_length=TEXT_LIMITS["history"],
        required=False,
        allow_blank=True,
        help_text="History of present illness.",
    )
    physical_exam = StrictCharField(
        max_length=TEXT_LIMITS["physical_exam"],
        required=False,
        allow_blank=True,
        help_text="Read by the clinical rules only.",
    )
    observations = PredictObservationSerializer(
        many=True, required=False, max_length=MAX_OBSERVATIONS
    )
    allergies = serializers.ListField(
        child=StrictCharField(max_length=200),
        required=False,
        max_length=MAX_ALLERGIES,
        help_text="Allergy substances, for the allergy-conflict rule.",
    )

    class Meta:
        ref_name = "PredictInput"


class PredictBatchInputSerializer(serializers.Serializer):
    rows = PredictInputSerializer(many=True, min_length=1, max_length=MAX_BATCH_ROWS)

    class Meta:
        ref_name = "PredictBatchInput"


def _inputs(row: dict[str, Any]) -> PredictionInput:
    return PredictionInput(
        age=row.get("age"),
        sex=row.get("sex", ""),
        visit_type=row.get("visit_type", ""),
        chief_complaint=row.get("chief_complaint", ""),
        history=row.get("history", ""),
        physical_exam=row.get("physical_exam", ""),
        observations=tuple(
            ObservationInput(
                code=o.get("code") or o["name"], value=o["value"], unit=o.get("unit", "")
            )
            for o in row.get("observations", [])
        ),
        allergies=tuple(row.get("allergies", [])),
    )


# --- output ------------------------------------------------------------------------------------------
RowPredictionSerializer = serializer_for(RowPrediction, name="RowPrediction")


class ServingModelSerializer(serializers.Serializer):
    task = serializers.SlugField()
    name = StrictCharField()
    kind = serializers.ChoiceField(choices=PredictionTask.Kind.choices)
    version = serializers.IntegerField()
    version_id = serializers.IntegerField()
    algorithm = StrictCharField()
    sha256 = StrictCharField(help_text="sha256 of the model artifact that answered.")
    report_url = StrictCharField(help_text="The model's report page.")

    class Meta:
        ref_name = "ServingModel"


class PredictOutputSerializer(serializers.Serializer):
    model = ServingModelSerializer()
    classes = serializers.ListField(child=StrictCharField())
    prediction = RowPredictionSerializer()
    input_hash = StrictCharField(help_text="sha256 of the validated inputs (what was audited).")

    class Meta:
        ref_name = "PredictOutput"


class PredictBatchOutputSerializer(serializers.Serializer):
    model = ServingModelSerializer()
    classes = serializers.ListField(child=StrictCharField())
    predictions = RowPredictionSerializer(many=True)
    input_hash = StrictCharField(help_text="sha256 over the rows' input hashes.")

    class Meta:
        ref_name = "PredictBatchOutput"


class InputSchemaSerializer(serializers.Serializer):
    model = ServingModelSerializer()
    json_schema = serializers.DictField(help_text="JSON Schema (2020-12) of one input row.")

    class Meta:
        ref_name = "ModelInputSchema"


# One instance of each serializer per process. Building a serializer deep-copies every declared
# field (a third of the prediction view's Python time); ``run_validation`` and
# ``to_representation`` keep no state on the instance (``is_valid`` and ``.data`` would), so the
# threads of a worker share these. Validation is the same serializer's, so the same rules and
# the same error details (tests/api/test_predict.py).
_SHARED_INPUT = PredictInputSerializer()
_SHARED_BATCH_INPUT = PredictBatchInputSerializer()
_SHARED_OUTPUT = PredictOutputSerializer()
_SHARED_BATCH_OUTPUT = PredictBatchOutputSerializer()
for _shared in (_SHARED_INPUT, _SHARED_BATCH_INPUT, _SHARED_OUTPUT, _SHARED_BATCH_OUTPUT):
    _ = _shared.fields  # bind the fields now, not concurrently in the first requests


def _model(result_task: PredictionTask) -> dict[str, Any]:
    version = result_task.active_version
    assert version is not None  # noqa: S101 - servable_version() checked it
    return {
        "task": result_task.slug,
        "name": result_task.name,
        "kind": result_task.kind,
        "version": version.number,
        "version_id": version.pk,
        "algorithm": version.algorithm,
        "sha256": version.artifact_sha256,
        "report_url": reverse("version_report", kwargs={"version_id": version.pk}),
    }


def _token_id(request: Request) -> int | None:
    return request.auth.pk if isinstance(request.auth, ApiToken) else None


def _predict(
    request: Request, slug: str, rows: list[dict[str, Any]], batch: bool
) -> PredictionResult:
    inputs = [_inputs(r) for r in rows]
    task = task_for_serving(viewer=request.user, slug=slug)
    try:
        return _predict_with(request, task, inputs, batch)
    except ServingChanged:
        # The task kept by this process is out of date: read it now and answer from it (a
        # second change within this request is a 409 the client can retry).
        task = task_for_serving(viewer=request.user, slug=slug, fresh=True)
        return _predict_with(request, task, inputs, batch)


def _predict_with(
    request: Request, task: PredictionTask, inputs: list[PredictionInput], batch: bool
) -> PredictionResult:
    return predictions_make(
        task=task, inputs=inputs, actor=request.user, api_token_id=_token_id(request), batch=batch
    )


_DESCRIPTION = (
    "Scores the inputs with the task's active model in this request. Observations are given by "
    "LOINC code or catalogue name, with units; they are validated exactly as a visit's (units "
    "converted, impossible values refused with the code named). The answer carries calibrated "
    "probabilities per class, the top feature contributions, abstention with its reasons, the "
    "clinical rules' alerts, and the model version with its artifact's sha256. Nothing is "
    "stored but a model-use record (caller, version, a hash of the inputs, time). A model that "
    "is switched off or not yet trained is a 409 `model_unavailable`."
)


class ModelPredictApi(APIView):
    required_scopes = {"POST": Scope.MODELS_PREDICT}
    throttle_classes = [PredictRateThrottle]

    @extend_schema(
        operation_id="models_predict",
        tags=["prediction"],
        summary="Predict for one set of inputs (synchronous)",
        description=_DESCRIPTION,
        request=PredictInputSerializer,
        responses={200: PredictOutputSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        validated = _SHARED_INPUT.run_validation(request.data)
        result = _predict(request, slug, [validated], batch=False)
        return Response(
            _SHARED_OUTPUT.to_representation(
                {
                    "model": _model(result.task),
                    "classes": result.classes,
                    "prediction": result.rows[0],
                    "input_hash": result.input_hash,
                }
            )
        )


class ModelPredictBatchApi(APIView):
    required_scopes = {"POST": Scope.MODELS_PREDICT}
    throttle_classes = [PredictRateThrottle]

    @extend_schema(
        operation_id="models_predict_batch",
        tags=["prediction"],
        summary=f"Predict for up to {MAX_BATCH_ROWS} rows (synchronous)",
        description=_DESCRIPTION
        + " Errors name the row (`rows[3].8867-4`); one invalid row refuses the whole batch.",
        request=PredictBatchInputSerializer,
        responses={200: PredictBatchOutputSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        validated = _SHARED_BATCH_INPUT.run_validation(request.data)
        result = _predict(request, slug, validated["rows"], batch=True)
        return Response(
            _SHARED_BATCH_OUTPUT.to_representation(
                {
                    "model": _model(result.task),
                    "classes": result.classes,
                    "predictions": result.rows,
                    "input_hash": result.input_hash,
                }
            )
        )


class ModelInputSchemaApi(APIView):
    required_scopes = {"GET": Scope.MODELS_PREDICT}

    @extend_schema(
        operation_id="models_input_schema",
        tags=["prediction"],
        summary="The inputs the active model takes, as JSON Schema",
        description=(
            "One input row of `predict` as JSON Schema (draft 2020-12), with the observation "
            "catalogue (code, name, canonical and accepted units, possible range) under "
            "`x-observations`; `x-used-by-model` lists the observation codes the model reads "
            "(the others still reach the clinical rules)."
        ),
        responses={
            200: InputSchemaSerializer,
            409: OpenApiResponse(
                ErrorSerializer,
                description="The model is switched off or has no active version yet.",
            ),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        task = task_for_serving(viewer=request.user, slug=slug, fresh=True)
        version = servable_version(task)
        return Response(
            InputSchemaSerializer(
                {"model": _model(task), "json_schema": input_json_schema(task, version)}
            ).data
        )


def input_json_schema(task: PredictionTask, version: Any) -> dict[str, Any]:
    """One input row of ``task``'s active ``version`` as JSON Schema (2020-12)."""
    schema = version.feature_schema or {}
    columns = schema.get("columns", {})
    levels = schema.get("categorical", {})
    used = sorted(c[4:] for c in columns if c.startswith("obs_"))
    definitions = sorted(observation_definitions().values(), key=lambda d: d.code)
    catalogue = [
        {
            "code": d.code,
            "name": d.display,
            "unit": d.unit,
            "units": [d.unit, *d.alternative_units],
            "minimum": d.plausible_low,
            "maximum": d.plausible_high,
        }
        for d in definitions
    ]
    text = {name: {"type": "string", "maxLength": n} for name, n in TEXT_LIMITS.items()}
    sex_levels = [s for s in Patient.Sex.values if s in levels.get("sex", Patient.Sex.values)]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{task.name}: inputs of version {version.number}",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "age": {
                "type": ["number", "null"],
                "minimum": 0,
                "maximum": AGE_MAX,
                "description": f"Years; over {MAX_AGE_YEARS - 1} is scored as {MAX_AGE_YEARS}.",
            },
            "sex": {"enum": [*sex_levels, ""]},
            "visit_type": {"enum": [*Visit.Type.values, ""]},
            "chief_complaint": {
                **text["chief_complaint"],
                "x-used-by-model": "chief_complaint" in columns,
            },
            "history": {**text["history"], "x-used-by-model": "history" in columns},
            "physical_exam": {**text["physical_exam"], "x-used-by-model": False},
            "observations": {
                "type": "array",
                "maxItems": MAX_OBSERVATIONS,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "code": {"enum": [d.code for d in definitions]},
                        "name": {"type": "string", "maxLength": 120},
                        "value": {"type": "number"},
                        "unit": {"type": "string", "maxLength": 20},
                    },
                    "required": ["value"],
                    "oneOf": [{"required": ["code"]}, {"required": ["name"]}],
                },
            },
            "allergies": {
                "type": "array",
                "maxItems": MAX_ALLERGIES,
                "items": {"type": "string", "maxLength": 200},
            },
        },
        "x-observations": catalogue,
        "x-used-by-model": used,
    }
