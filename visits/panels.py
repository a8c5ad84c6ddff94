"""Panels other apps add to the visit page, rendered by them: visits imports none of them.

An app registers ``panel(request, visit) -> html`` in its ``AppConfig.ready`` (predictions adds
its advice panel); the visit page shows every registered panel's HTML, in registration order, in
its side column. A panel renders its own template with its own reads, scoped to
``request.user`` like any page.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest
from django.utils.safestring import SafeString

from .models import Visit

VisitPanel = Callable[[HttpRequest, Visit], SafeString]
_panels: list[VisitPanel] = []


def panel_register(panel: VisitPanel) -> None:
    if panel not in _panels:
        _panels.append(panel)


def panels_render(request: HttpRequest, visit: Visit) -> list[SafeString]:
    return [panel(request, visit) for panel in _panels]
