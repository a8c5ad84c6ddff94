"""`make run`'s process manager gives workers time to stop cleanly on Ctrl-C (issue 17)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A stand-in for a Celery worker in its warm shutdown: SIGTERM, then 7 s of work, then a clean
# exit. honcho alone SIGKILLs it after 5 s.
SLOW_STOPPER = """
import signal, sys, time, pathlib
def stop(signum, frame):
    time.sleep(7)
    pathlib.Path(sys.argv[1]).write_text("finished")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


def _run(tmp_path: Path, *, grace: str) -> tuple[str, Path]:
    script = tmp_path / "slow_stopper.py"
    script.write_text(SLOW_STOPPER)
    done = tmp_path / "done.txt"
    # Like `make run`: another process (the web server) stops at once, which starts honcho's
    # countdown to SIGKILL for the rest.
    quick = f"{sys.executable} -c 'import time; time.sleep(600)'"
    (tmp_path / "Procfile").write_text(f"worker: {sys.executable} {script} {done}\nweb: {quick}\n")
    env = {**os.environ, "MEDAI_SHUTDOWN_GRACE_SECONDS": grace}
    process = subprocess.Popen(
        [sys.executable, "-m", "medai_site.procfile_run", "-f", str(tmp_path / "Procfile")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    output = ""
    while time.monotonic() < deadline and "ready" not in output:
        output += process.stdout.readline()
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    output += process.communicate(timeout=60)[0]
    return output, done


def test_ctrl_c_lets_a_worker_finish_its_shutdown(tmp_path):
    output, done = _run(tmp_path, grace="30")
    assert done.exists(), output
    assert done.read_text() == "finished", output
    assert "SIGKILL" not in output


def test_the_grace_period_is_bounded(tmp_path):
    """A worker that takes longer than the grace period is still killed (here: 2 s)."""
    output, done = _run(tmp_path, grace="2")
    assert not done.exists()
    assert "SIGKILL" in output


def test_make_run_starts_the_procfile_through_it():
    makefile = (ROOT / "Makefile").read_text()
    run = makefile[makefile.index("\nrun:") : makefile.index("\ntest:")]
    assert "-m medai_site.procfile_run -f Procfile" in run
    assert "honcho start" not in run
    assert "DJANGO_DEBUG" not in run  # the app's own error pages under make run
