"""Panels other apps add to the visit page and the patient chart, rendered by them: visits imports
none of them.

An app registers ``panel(request, visit) -> html`` (visit page) or ``panel(request, patient) ->
html`` (chart, :func:`chart_panel_register`) in its ``AppConfig.ready``: predictions adds its
advice panel to the visit page and its "Course and outlook" panel to the chart. Each page shows
every registered panel's HTML, in registration order, in its side column. A panel renders its own
template with its own reads, scoped to ``request.user`` like any page.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest
from django.utils.safestring import SafeString

from patients.models import Patient

from .models import Visit

VisitPanel = Callable[[HttpRequest, Visit], SafeString]
ChartPanel = Callable[[HttpRequest, Patient], SafeString]
_panels: list[VisitPanel] = []
_chart_panels: list[ChartPanel] = []


def panel_register(panel: VisitPanel) -> None:
    if panel not in _panels:
        _panels.append(panel)


def panels_render(request: HttpRequest, visit: Visit) -> list[SafeString]:
    return [panel(request, visit) for panel in _panels]


def chart_panel_register(panel: ChartPanel) -> None:
    if panel not in _chart_panels:
        _chart_panels.append(panel)


def chart_panels_render(request: HttpRequest, patient: Patient) -> list[SafeString]:
    return [panel(request, patient) for panel in _chart_panels]
