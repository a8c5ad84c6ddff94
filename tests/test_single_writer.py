"""One door per table: no module outside a table's writer modules writes it, in every app.

The scan is tests/single_writer.py (an AST scan of the four packages: manager/queryset writes on
a model class, writes through a reverse relation, save()/delete() on a name assigned from a model
class; its blind spots are listed there). Each table's writers are its app's services, or — for a
few tables — the one service module named for the table's concept (below, with the reason).
Django's admin writes on the project's behalf, so its pages are checked separately. Proved to
bite in ``test_the_scan_finds_a_write_outside_the_services``.
"""

from __future__ import annotations

import ast

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.options import ModelAdmin
from django.contrib.auth import get_user_model
from django.test import RequestFactory

from tests import single_writer
from tests.single_writer import writes_outside

# app -> its services: the writers of each of its tables unless CONCEPT_WRITERS names others.
SERVICES = {
    "medai_site": (),  # the base has no services module: each table's writer is named below
    "patients": ("patients/services.py",),
    "visits": ("visits/services.py",),
    "predictions": ("predictions/services/",),
    "interop": ("predictions/interop/services.py",),  # predictions/interop, its own app label
}
# Tables whose one door is a service module named for the table's concept (STYLE.md: modules
# named for concepts). Each module is that table's only writer, with typed keyword-only
# functions that validate, write, audit; nothing else in the app may write the table.
CONCEPT_WRITERS = {
    # The keyed hash chain has one appender (audit_record/audit_record_many), by design.
    "medai_site.AuditEvent": ("medai_site/audit.py",),
    # api_token_create/api_token_revoke, and the authenticator's last-used stamp beside them.
    "medai_site.ApiToken": ("medai_site/api_auth.py",),
    "medai_site.IdempotencyRecord": ("medai_site/idempotency.py",),
    # break_glass_grant/break_glass_review: the emergency-access rule with its reads
    # (emergency_grant, used by both apps' selectors), kept whole in one security module.
    "patients.BreakGlassGrant": ("patients/break_glass.py",),
    # The outbox: visit_event_record, called by the visit services in their transaction.
    "visits.VisitEvent": ("visits/events.py",),
}
# Admin pages where a superuser (who holds every Django permission) may delete rows through
# Django's own delete view: no delete service exists yet (records are retained; MedaiAdminMixin
# gives hospital admins no delete). A new page that deletes must be added here knowingly.
ADMIN_DELETES = {
    "patients.Patient",
    "patients.Allergy",
    "patients.CareTeam",
    "visits.Visit",
    "visits.Observation",
    "visits.Diagnosis",
}


def tables() -> list[tuple[str, str]]:
    return [
        (app, model.__name__)
        for app in sorted(SERVICES)
        for model in apps.get_app_config(app).get_models()
    ]


@pytest.mark.parametrize(("app", "model"), tables(), ids=[f"{a}.{m}" for a, m in tables()])
def test_no_table_has_a_writer_outside_its_services(app, model):
    writers = CONCEPT_WRITERS.get(f"{app}.{model}", SERVICES[app])
    outside = writes_outside(app, writers=writers, models=[model])
    assert not outside, "writes outside the services:\n" + "\n".join(map(str, outside))


def test_concept_writers_name_real_tables():
    labels = {f"{app}.{model}" for app, model in tables()}
    assert set(CONCEPT_WRITERS) <= labels
    assert labels >= ADMIN_DELETES


def _overrides(admin_class: type, name: str, base: type) -> bool:
    return getattr(admin_class, name) is not getattr(base, name)


def test_admin_pages_save_through_services():
    """An admin page that lets anyone add or change rows overrides save_model (and save_related
    or save_formset for inlines that edit): Django's defaults would save the row themselves."""
    superuser = get_user_model()(username="probe", is_superuser=True, is_staff=True)
    request = RequestFactory().get("/admin/")
    request.user = superuser
    problems = []
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label
        if model._meta.app_label not in SERVICES:
            continue
        admin_class = type(model_admin)
        writable = model_admin.has_add_permission(request) or model_admin.has_change_permission(
            request
        )
        if writable and not _overrides(admin_class, "save_model", ModelAdmin):
            problems.append(f"{label}: {admin_class.__name__} saves without a service")
        for inline in model_admin.get_inline_instances(request):
            edits = (
                inline.has_add_permission(request, None)
                or inline.has_change_permission(request)
                or inline.has_delete_permission(request)
            )
            if edits and not (
                _overrides(admin_class, "save_related", ModelAdmin)
                or _overrides(admin_class, "save_formset", ModelAdmin)
            ):
                problems.append(f"{label}: inline {type(inline).__name__} writes its rows")
        if model_admin.has_delete_permission(request) and label not in ADMIN_DELETES:
            problems.append(f"{label}: {admin_class.__name__} deletes without a service")
    assert problems == []


def test_the_scan_finds_a_write_outside_the_services(tmp_path, monkeypatch):
    """A view that updates an AdviceRequest, creates through a reverse relation or saves an
    instance it built is caught; the same writes inside the services are not."""
    package = tmp_path / "predictions"
    package.mkdir()
    (package / "views.py").write_text(
        "from predictions.models import AdviceRequest, Feedback\n"
        "def view(visit):\n"
        "    AdviceRequest.objects.filter(pk=1).update(status='done')\n"
        "    visit.advice_requests.create()\n"
        "    feedback = Feedback(advice_id=1)\n"
        "    feedback.save()\n"
        "    return AdviceRequest.objects.filter(pk=1).exists()\n"
    )
    (package / "services").mkdir()
    (package / "services" / "outbox.py").write_text(
        "from ..models import AdviceRequest\nAdviceRequest.objects.create(visit_id=1)\n"
    )
    monkeypatch.setattr(single_writer, "ROOT", tmp_path)
    monkeypatch.setattr(single_writer, "PACKAGES", ("predictions",))
    found = writes_outside("predictions", writers=("predictions/services/",))
    assert sorted((w.path, w.line) for w in found) == [
        ("predictions/views.py", 3),
        ("predictions/views.py", 4),
        ("predictions/views.py", 6),
    ]
    ast.parse(found[0].code)  # the finding quotes the offending call
    # Limited to one table, the scan reports only that table's writes.
    only_feedback = writes_outside(
        "predictions", writers=("predictions/services/",), models=["Feedback"]
    )
    assert [(w.path, w.line) for w in only_feedback] == [("predictions/views.py", 6)]
