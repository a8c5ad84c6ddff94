"""The WSGI application module (medai_site/wsgi.py): what a web worker has once it has loaded it.

Run in a fresh interpreter, as a gunicorn worker loads it (the collector's state is per process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json, sys
import medai_site.wsgi
print(json.dumps({
    "frozen": gc.get_freeze_count(),
    "tracked": len(gc.get_objects()),
    "views_loaded": "predictions.cds_hooks.views" in sys.modules,
}))
"""


def test_loading_the_application_imports_every_view_and_freezes_what_it_loaded():
    """Everything loaded at start-up is out of the cyclic collector's reach (a full collection
    otherwise walks it all, ~160 ms every few hundred requests), the views included: Django
    would import them on the first request, after the freeze."""
    env = {**os.environ, "MEDAI_PROFILE": "test", "DJANGO_SETTINGS_MODULE": "medai_site.settings"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert state["views_loaded"]
    assert state["frozen"] > 100_000
    assert state["tracked"] - state["frozen"] < 1_000  # what the collector still walks
