"""Who writes an app's tables: an AST scan of the project's source, reusable by every app.

STYLE.md: every change to a model goes through the app's services. :func:`writes_outside` lists
the calls that write one of ``app``'s models from a module that is not one of its writer modules:

- a manager or queryset write on one of the app's model classes, however chained
  (``AdviceRequest.objects.filter(...).update(...)``, ``Advice.objects.create(...)``,
  ``ModelAlert.objects.bulk_create(...)``, ``Feedback(...).save()``);
- a write through a reverse relation the app's models declare (``visit.advice_requests.create``,
  ``task.versions.all().delete()``), whichever object it hangs from.

- ``save()``/``delete()`` on a name the same module assigned from one of the app's model classes
  (``grant = BreakGlassGrant(...)``, ``job = TrainingJob.objects.get(...)``; the assignment and
  the call may sit in different functions of the module, so a shared name can over-report).

Blind spots (it is an AST scan, not a type checker): an instance reached any other way — a
parameter (``def f(visit): visit.save()``), an attribute (``advice.request.save()``), a loop
variable, ``self.model``, ``apps.get_model``; raw SQL (``cursor.execute``); migrations and
tests (not scanned); Django's own writes on the project's behalf (an admin page that saves
without overriding ``save_model``, cascading deletes) — tests/test_single_writer.py checks the
admin pages separately.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("medai_site", "patients", "visits", "predictions")
WRITE_METHODS = frozenset(
    {
        "save",
        "delete",
        "update",
        "create",
        "bulk_create",
        "bulk_update",
        "get_or_create",
        "update_or_create",
    }
)


@dataclass(frozen=True)
class Write:
    path: str
    line: int
    code: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.code}"


def _app_vocabulary(app: str, only: Iterable[str] | None = None) -> tuple[set[str], set[str]]:
    """The app's model class names (or those in ``only``), and the reverse-relation names those
    models declare."""
    from django.apps import apps

    config = apps.get_app_config(app)
    names, relations = set(), set()
    wanted = set(only) if only is not None else None
    for model in config.get_models():
        if wanted is not None and model.__name__ not in wanted:
            continue
        names.add(model.__name__)
        for field in model._meta.get_fields(include_hidden=False):
            remote = getattr(field, "remote_field", None)
            if field.concrete and remote is not None:
                related = remote.related_name
                if related and not related.endswith("+"):
                    relations.add(related)
    return names, relations


def _imported_models(tree: ast.Module, app: str, models: set[str]) -> set[str]:
    """Names this module binds to the app's model classes (``from <app>.models import X``)."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            module = ("." * node.level) + node.module
            if module in (f"{app}.models", ".models", "..models") or module.endswith(
                f"{app}.models"
            ):
                bound |= {a.asname or a.name for a in node.names if a.name in models}
    return bound


@functools.lru_cache(maxsize=2048)
def _parsed(path: str, mtime_ns: int) -> tuple[str, ast.Module]:
    """Each file parsed once per version (the test scans every table over the same files)."""
    source = Path(path).read_text()
    return source, ast.parse(source)


def _chain(node: ast.expr) -> Iterator[ast.expr]:
    """The receiver chain of a call, outermost first: a.b(...).c -> c, b(...), b, a."""
    while True:
        yield node
        if isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        else:
            return


def _instances(tree: ast.Module, bound: set[str]) -> set[str]:
    """Names the module assigns from one of the bound model classes: ``x = Model(...)``,
    ``x = Model.objects.get(...)``, ``x, created = Model.objects.get_or_create(...)``."""
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
            continue
        if not any(isinstance(n, ast.Name) and n.id in bound for n in _chain(node.value)):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            first = target.elts[0] if isinstance(target, ast.Tuple) and target.elts else target
            if isinstance(first, ast.Name):
                names.add(first.id)
    return names


def writes_outside(
    app: str, *, writers: Iterable[str], models: Iterable[str] | None = None
) -> list[Write]:
    """Calls writing ``app``'s tables (or only those of ``models``, class names) from modules not
    under ``writers`` (paths from the root)."""
    models, relations = _app_vocabulary(app, models)
    allowed = tuple(writers)
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" in relative or relative.startswith(allowed):
                continue
            source, tree = _parsed(str(path), path.stat().st_mtime_ns)
            bound = _imported_models(tree, app, models)
            instances = _instances(tree, bound)
            for node in ast.walk(tree):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in WRITE_METHODS
                ):
                    continue
                receiver = list(_chain(node.func.value))
                hits_model = any(isinstance(n, ast.Name) and n.id in bound for n in receiver)
                hits_instance = (
                    node.func.attr in ("save", "delete")
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in instances
                )
                hits_relation = any(
                    isinstance(n, ast.Attribute) and n.attr in relations for n in receiver
                )
                if hits_model or hits_relation or hits_instance:
                    found.append(Write(relative, node.lineno, ast.get_source_segment(source, node)))
    return found
