"""The layer contracts (pyproject.toml, run by `make lint`) hold, and each one bites.

`lint-imports` runs on a copy of the four packages in a temporary directory: as they are (every
contract kept), then with one forbidden import added per contract (that contract broken, naming
the offending module). A contract that could never fail would pass the first check alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("medai_site", "patients", "visits", "predictions")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# contract id -> (a new module in the copy, its one forbidden import)
FORBIDDEN = {
    "engine-pure": ("predictions/ml/probe.py", "import django.db\n"),
    "app-layers": ("patients/probe.py", "from visits import models\n"),
    "services-no-pages": ("predictions/services/probe.py", "from predictions import views\n"),
    "base-imports-no-app": ("medai_site/probe.py", "import patients.selectors\n"),
}
ENGINE_IMPORTS_APP = ("predictions/ml/probe.py", "from predictions import payload\n")


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("contracts")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def lint_imports(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    selected = [arg for contract in contracts for arg in ("--contract", contract)]
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *selected],
        cwd=root,
        # The copy comes first on the path, ahead of the editable install of the real packages.
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_every_contract_is_kept_by_the_code_as_it_is(project_copy):
    done = lint_imports(project_copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(FORBIDDEN)} kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("contract", "probe"),
    [*FORBIDDEN.items(), ("engine-pure", ENGINE_IMPORTS_APP)],
    ids=[*FORBIDDEN, "engine-pure-app-module"],
)
def test_a_forbidden_import_breaks_its_contract(project_copy, contract, probe):
    path, line = probe
    module = project_copy / path
    module.write_text(line)
    try:
        done = lint_imports(project_copy, contract)
    finally:
        module.unlink()
    assert done.returncode != 0, done.stdout
    assert "1 broken" in done.stdout, done.stdout
    importer = path.removesuffix(".py").replace("/", ".")
    assert importer in done.stdout, done.stdout  # the finding names the offending module
