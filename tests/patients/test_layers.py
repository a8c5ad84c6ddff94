"""patients sits below visits and predictions: it imports neither (the chart page is visits')."""

from __future__ import annotations

import ast
from pathlib import Path

import patients

FORBIDDEN = {"visits", "predictions"}


def test_patients_imports_neither_visits_nor_predictions():
    package = Path(patients.__file__).parent
    offending = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offending += [
                f"{path.relative_to(package.parent)}:{node.lineno} {name}"
                for name in names
                if name.split(".")[0] in FORBIDDEN
            ]
    assert offending == []
