"""Patient pages: search, register, emergency access. Thin: forms validate, selectors read,
services write. The chart, which draws the patient's visits, is a visits page (visits/views.py)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from medai_site.pages import page
from medai_site.roles import is_doctor

from .forms import BreakGlassForm, PatientRegisterForm, PatientSearchForm
from .selectors import patient_search


@page
@require_http_methods(["GET", "POST"])
def patient_search_view(request: HttpRequest) -> HttpResponse:
    # POST, not GET: names, phones and ids are PHI and must not end up in URLs, browser history
    # or proxy logs. A GET shows the empty form.
    form = PatientSearchForm(request.POST if request.method == "POST" else None)
    results = None
    if form.is_bound and form.is_valid() and form.cleaned_data["q"].strip():
        results = list(patient_search(viewer=request.user, query=form.cleaned_data["q"]))
    return render(
        request,
        "patients/search.html",
        {"form": form, "results": results, "may_break_glass": is_doctor(request.user)},
    )


@page(allowed=is_doctor)
@require_http_methods(["GET", "POST"])
def break_glass_view(request: HttpRequest) -> HttpResponse:
    """Emergency access outside the care team: MRN + stated reason, time-limited, reviewed."""
    form = BreakGlassForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        grant = form.save()
        if grant is not None:
            messages.warning(
                request, _("Emergency access opened. It is recorded and will be reviewed.")
            )
            return redirect("patient_chart", patient_id=grant.patient_id)
    return render(
        request,
        "patients/break_glass.html",
        {"form": form, "minutes": settings.MEDAI_BREAK_GLASS_MINUTES},
        status=400 if form.is_bound and form.errors else 200,
    )


@page
@require_http_methods(["GET", "POST"])
def patient_register_view(request: HttpRequest) -> HttpResponse:
    form = PatientRegisterForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        patient = form.save()
        if patient is not None:
            messages.success(request, _("Patient registered."))
            return redirect("patient_chart", patient_id=patient.pk)
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "patients/register.html", {"form": form}, status=status)
