"""One door per table: no module outside an app's writer modules writes the app's tables.

The scan is tests/single_writer.py (reusable: each app names its writer modules here). Proved to
bite in ``test_the_scan_finds_a_write_outside_the_services``.
"""

from __future__ import annotations

import ast

import pytest

from tests import single_writer
from tests.single_writer import writes_outside

# app -> the modules allowed to write its tables.
WRITERS = {
    "predictions": ("predictions/services/",),
}


@pytest.mark.parametrize("app", sorted(WRITERS))
def test_no_table_has_a_writer_outside_its_apps_services(app):
    outside = writes_outside(app, writers=WRITERS[app])
    assert not outside, "writes outside the services:\n" + "\n".join(map(str, outside))


def test_the_scan_finds_a_write_outside_the_services(tmp_path, monkeypatch):
    """A view that updates an AdviceRequest or creates through a reverse relation is caught."""
    package = tmp_path / "predictions"
    package.mkdir()
    (package / "views.py").write_text(
        "from predictions.models import AdviceRequest\n"
        "def view(visit):\n"
        "    AdviceRequest.objects.filter(pk=1).update(status='done')\n"
        "    visit.advice_requests.create()\n"
        "    return AdviceRequest.objects.filter(pk=1).exists()\n"
    )
    (package / "services").mkdir()
    (package / "services" / "outbox.py").write_text(
        "from ..models import AdviceRequest\nAdviceRequest.objects.create(visit_id=1)\n"
    )
    monkeypatch.setattr(single_writer, "ROOT", tmp_path)
    monkeypatch.setattr(single_writer, "PACKAGES", ("predictions",))
    found = writes_outside("predictions", writers=("predictions/services/",))
    assert [(w.path, w.line) for w in found] == [
        ("predictions/views.py", 3),
        ("predictions/views.py", 4),
    ]
    ast.parse(found[0].code)  # the finding quotes the offending call
