"""The command line parses its arguments and reads its inputs before importing the heavy engine;
library versions are read without importing torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from predictions.ml.names import check_registry

REPO = Path(__file__).resolve().parents[3]
HEAVY = ("sklearn", "scipy", "torch", "onnxruntime")


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


MAIN = (
    "import json, sys\n"
    "from predictions.ml.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    f"print(json.dumps([rc, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "--data", "{tmp}/none.csv", "--target", "y"], "data file not found"),
        (["evaluate", "--data", "{tmp}/empty.csv", "--target", "y"], "data file is empty"),
        (
            ["evaluate", "--data", "{tmp}/data.csv", "--target", "nope"],
            "target column 'nope' not found",
        ),
        (["evaluate", "--data", "{tmp}/one.csv", "--target", "y"], "has one class only (1)"),
        (["evaluate", "--data", "{tmp}/data.csv", "--target", "y", "--group", "g"], "group column"),
        (  # the fold count is checked before the target, as train() does
            ["evaluate", "--data", "{tmp}/data.csv", "--target", "nope", "--cv", "1"],
            "--cv must be at least 2",
        ),
        (
            ["forecast", "--events", "{tmp}/none.parquet", "--labels", "{tmp}/none.parquet"],
            "events file not found",
        ),
        (
            ["forecast", "--events", "{tmp}/events.json", "--labels", "{tmp}/none.parquet"],
            "must be .parquet or .csv",
        ),
    ],
)
def test_bad_input_fails_before_the_engine_is_imported(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "data.csv").write_text("x,y\n1,0\n2,1\n3,0\n4,1\n")
    (tmp_path / "one.csv").write_text("x,y\n1,1\n2,1\n")
    (tmp_path / "events.json").write_text("{}")
    done = _python(MAIN, *(a.format(tmp=tmp_path) for a in args))
    assert done.stderr.startswith("error: "), done.stderr
    assert message in done.stderr
    rc, heavy = json.loads(done.stdout)
    assert rc == 2
    assert heavy == []


def test_library_versions_reads_torch_without_importing_it() -> None:
    import torch

    done = _python(
        "import json, sys\n"
        "from predictions.ml.pipeline import library_versions\n"
        "print(json.dumps([library_versions(), 'torch' in sys.modules]))\n"
    )
    assert done.returncode == 0, done.stderr
    versions, torch_imported = json.loads(done.stdout)
    assert versions["torch"] == torch.__version__
    assert torch_imported is False
    from predictions.ml.pipeline import library_versions

    assert library_versions()["torch"] == torch.__version__  # torch imported here: same string


def test_a_registry_that_drifts_from_the_command_line_choices_is_refused() -> None:
    check_registry("algorithm", {"a": 1, "b": 2}, ("a", "b"))
    with pytest.raises(RuntimeError, match="differs"):
        check_registry("algorithm", {"a": 1, "c": 2}, ("a", "b"))
    with pytest.raises(RuntimeError, match="differs"):
        check_registry("algorithm", {"b": 1, "a": 2}, ("a", "b"))
