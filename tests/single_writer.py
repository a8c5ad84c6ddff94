"""Who writes an app's tables: an AST scan of the project's source, reusable by every app.

STYLE.md: every change to a model goes through the app's services. :func:`writes_outside` lists
the calls that write one of ``app``'s models from a module that is not one of its writer modules:

- a manager or queryset write on one of the app's model classes, however chained
  (``AdviceRequest.objects.filter(...).update(...)``, ``Advice.objects.create(...)``,
  ``ModelAlert.objects.bulk_create(...)``, ``Feedback(...).save()``);
- a write through a reverse relation the app's models declare (``visit.advice_requests.create``,
  ``task.versions.all().delete()``), whichever object it hangs from.

It cannot know the type of an arbitrary variable, so ``instance.save()`` on a model instance held
in a variable is not seen; writes of that kind are rare outside services, and reviews catch them.
"""

from __future__ import annotations

import ast
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


def _app_vocabulary(app: str) -> tuple[set[str], set[str]]:
    """The app's model class names, and the reverse-relation names its models declare."""
    from django.apps import apps

    config = apps.get_app_config(app)
    names, relations = set(), set()
    for model in config.get_models():
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


def writes_outside(app: str, *, writers: Iterable[str]) -> list[Write]:
    """Calls writing ``app``'s tables from modules not under ``writers`` (paths from the root)."""
    models, relations = _app_vocabulary(app)
    allowed = tuple(writers)
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" in relative or relative.startswith(allowed):
                continue
            source = path.read_text()
            tree = ast.parse(source)
            bound = _imported_models(tree, app, models)
            for node in ast.walk(tree):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in WRITE_METHODS
                ):
                    continue
                receiver = list(_chain(node.func.value))
                hits_model = any(isinstance(n, ast.Name) and n.id in bound for n in receiver)
                hits_relation = any(
                    isinstance(n, ast.Attribute) and n.attr in relations for n in receiver
                )
                if hits_model or hits_relation:
                    found.append(Write(relative, node.lineno, ast.get_source_segment(source, node)))
    return found
