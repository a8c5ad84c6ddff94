"""docs/architecture.md matches the code: its contracts, paths and hooks exist, the README links it."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def test_the_doc_lists_exactly_the_import_contracts_that_lint_runs():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    ids = {c["id"] for c in config["tool"]["importlinter"]["contracts"]}
    # The contract table's rows: "| `engine-pure` | ... |" (ids have hyphens; package names do not).
    listed = set(re.findall(r"^\| `([a-z]+(?:-[a-z]+)+)` \|", DOC, flags=re.MULTILINE))
    assert listed == ids


def test_every_path_the_doc_names_exists():
    paths = {
        p
        for p in re.findall(r"`([\w./-]+\.(?:py|json|md|toml))`", DOC)
        if "/" in p and "<" not in p and not p[0].isupper()  # not a placeholder (DIR/report.json)
    }
    assert paths, "the doc names files"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert missing == []


def test_every_hook_and_its_registered_function_exist():
    rows = re.findall(r"^\| `([\w.]+)\([^)]*\)` \| `(\w+)` \(`([\w.]+)`\)", DOC, re.MULTILINE)
    assert len(rows) == 5  # the panel hook has two registrations, the chart panel hook one
    for hook, app, registered in rows:
        module, _, name = hook.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name)), hook
        module, _, name = f"{app}.{registered}".rpartition(".")
        assert callable(getattr(importlib.import_module(module), name)), registered


def test_the_readme_sends_readers_to_the_projects_own_document():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/architecture.md" in readme
    assert "../shared" not in readme
