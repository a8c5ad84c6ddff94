"""Visit pages: the patient's chart over time; record, view, edit and close a visit; ICD-10
search-as-you-type."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from medai_site.errors import Conflict, InvalidInput
from medai_site.pages import page
from patients.selectors import patient_get
from visits.charts import patient_series, patient_timeline, problem_entries, series_svg

from .forms import VisitForm
from .icd10 import icd10_search
from .panels import chart_panels_render, panels_render
from .selectors import observation_definitions, problem_list, visit_get
from .services import diagnosis_confirm, visit_close


def _problems(request: HttpRequest, patient_id: int) -> list[dict[str, object]]:
    return problem_entries(problem_list(viewer=request.user, patient_id=patient_id))


@page
@require_GET
def patient_chart_view(request: HttpRequest, patient_id: int) -> HttpResponse:
    """The patient's chart: problems, visit timeline, vital and lab series drawn over time."""
    patient = patient_get(viewer=request.user, patient_id=patient_id)
    show_all = request.GET.get("visits") == "all"
    visits, visit_count = patient_timeline(
        viewer=request.user, patient_id=patient.pk, limit=None if show_all else 25
    )
    vitals, labs = patient_series(viewer=request.user, patient_id=patient.pk)
    return render(
        request,
        "visits/chart.html",
        {
            "patient": patient,
            "problems": _problems(request, patient.pk),
            "visits": visits,
            "visit_count": visit_count,
            "show_all": show_all,
            "vital_charts": [(s, series_svg(s, chart_id=f"v{i}")) for i, s in enumerate(vitals)],
            "lab_charts": [(s, series_svg(s, chart_id=f"l{i}")) for i, s in enumerate(labs)],
            # Other apps' panels (predictions' course and outlook), rendered by them.
            "panels": chart_panels_render(request, patient),
        },
    )


@page
@require_http_methods(["GET", "POST"])
def visit_new_view(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = patient_get(viewer=request.user, patient_id=patient_id)
    form = VisitForm(
        request.POST or None, definitions=list(observation_definitions()), user=request.user
    )
    if request.method == "POST" and form.is_valid():
        visit = form.save(patient=patient)
        if visit is not None:
            messages.success(request, _("Visit recorded. Advice is being computed."))
            return redirect("visit_detail", visit_id=visit.pk)
    return render(
        request,
        "visits/form.html",
        {"form": form, "patient": patient, "visit": None},
        status=400 if form.is_bound and form.errors else 200,
    )


@page
@require_GET
def visit_detail_view(request: HttpRequest, visit_id: int) -> HttpResponse:
    visit = visit_get(viewer=request.user, visit_id=visit_id)
    return render(
        request,
        "visits/detail.html",
        {
            "visit": visit,
            "patient": visit.patient,
            "problems": _problems(request, visit.patient_id),
            # Other apps' panels (predictions' advice), rendered by them: no import of theirs.
            "panels": panels_render(request, visit),
        },
    )


@page
@require_http_methods(["GET", "POST"])
def visit_edit_view(request: HttpRequest, visit_id: int) -> HttpResponse:
    visit = visit_get(viewer=request.user, visit_id=visit_id)
    if visit.status == visit.Status.CLOSED:
        messages.error(request, _("This visit is closed; it can no longer be edited."))
        return redirect("visit_detail", visit_id=visit.pk)
    form = VisitForm(
        request.POST or None,
        definitions=list(observation_definitions()),
        user=request.user,
        visit=visit,
    )
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        if saved is not None:
            messages.success(request, _("Visit updated. Advice is being recomputed."))
            return redirect("visit_detail", visit_id=visit.pk)
    return render(
        request,
        "visits/form.html",
        {"form": form, "patient": visit.patient, "visit": visit},
        status=400 if form.is_bound and form.errors else 200,
    )


@page
@require_POST
def visit_close_view(request: HttpRequest, visit_id: int) -> HttpResponse:
    """Close the visit; the diagnoses ticked as final are confirmed as it closes."""
    visit = visit_get(viewer=request.user, visit_id=visit_id)
    final = [int(v) for v in request.POST.getlist("final") if v.isdigit()]
    try:
        visit_close(visit=visit, actor=request.user, final_diagnoses=final)
    except Conflict:
        messages.error(request, _("This visit is already closed."))
    except InvalidInput:
        messages.error(request, _("A final diagnosis must be one of this visit's diagnoses."))
    else:
        messages.success(request, _("Visit closed."))
    return redirect("visit_detail", visit_id=visit.pk)


@page
@require_POST
def diagnosis_confirm_view(request: HttpRequest, visit_id: int, diagnosis_id: int) -> HttpResponse:
    """The doctor's explicit confirmation of one diagnosis (agreement with advice is not one)."""
    visit = visit_get(viewer=request.user, visit_id=visit_id, audit=False)
    diagnosis = next((d for d in visit.diagnoses.all() if d.pk == diagnosis_id), None)
    if diagnosis is None:
        messages.error(request, _("This diagnosis is not on this visit."))
        return redirect("visit_detail", visit_id=visit.pk)
    try:
        diagnosis_confirm(diagnosis=diagnosis, actor=request.user)
    except (Conflict, InvalidInput) as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Diagnosis %(code)s confirmed.") % {"code": diagnosis.code})
    return redirect("visit_detail", visit_id=visit.pk)


def _most_relevant(
    query: str, hits: list[tuple[str, str]], limit: int = 12
) -> list[tuple[str, str]]:
    """Code-prefix hits first; then descriptions that start with the words, shorter first."""
    text = query.strip().casefold()
    code_like = text[:1].isalpha() and text[1:2].isdigit()

    def key(hit: tuple[str, str]) -> tuple[int, str, int, int]:
        code, description = hit
        if code_like and code.casefold().startswith(text[:3]):
            return (0, code, 0, 0)
        starts = description.casefold().startswith(text)
        return (1, "", 0 if starts else 1, len(description))

    return sorted(hits, key=key)[:limit]


@page
@require_GET
def icd10_search_view(request: HttpRequest) -> HttpResponse:
    """htmx partial: up to 12 ICD-10 codes matching what the doctor has typed so far."""
    query = request.GET.get("diagnosis_code", request.GET.get("q", ""))[:100]
    results = (
        _most_relevant(query, icd10_search(query, limit=400)) if len(query.strip()) >= 2 else []
    )
    return render(request, "visits/_icd10_results.html", {"results": results, "query": query})
