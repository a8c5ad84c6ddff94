"""Pages of the interop app: a patient's record as a FHIR R4 Bundle, downloaded from the chart."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from medai_site.pages import page

from . import selectors
from .api.fhir import FHIR_JSON, bundle


@page
def patient_fhir_bundle_view(request: HttpRequest, patient_id: int) -> HttpResponse:
    """The chart's "Download record (FHIR)": every resource of the patient MedAI serves, as a
    collection Bundle; each resource read is audited, and the download itself as an export."""
    base = request.build_absolute_uri("/fhir/r4/")
    resources = selectors.fhir_record_export(viewer=request.user, patient_id=patient_id)
    body = bundle(bundle_type="collection", resources=resources, base=base)
    response = HttpResponse(json.dumps(body, indent=1), content_type=FHIR_JSON)
    stamp = timezone.now().strftime("%Y%m%d")
    response["Content-Disposition"] = (
        f'attachment; filename="medai-patient-{patient_id}-{stamp}.fhir.json"'
    )
    response["Cache-Control"] = "no-store"
    return response
