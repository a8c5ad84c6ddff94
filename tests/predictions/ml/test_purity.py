"""The engine is pure: importing every module loads no Django (or Celery)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import predictions.ml

REPO = Path(__file__).resolve().parents[3]  # the repository root


def test_engine_modules_import_without_django() -> None:
    modules = [
        f"predictions.ml.{m.name}"
        for m in pkgutil.iter_modules(predictions.ml.__path__)
        if m.name != "__main__"
    ]
    assert {"predictions.ml.dataset", "predictions.ml.artifacts", "predictions.ml.cli"} <= set(
        modules
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'celery', 'rest_framework'})\n"
        "print(bad); raise SystemExit(1 if bad else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "", "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
