"""``make run``'s process manager: honcho, with time for the Celery workers to stop cleanly.

On Ctrl-C honcho sends SIGTERM to every process (each runs in its own session, so only honcho
sees the terminal's SIGINT) and SIGKILLs whatever still runs 5 seconds later, a constant of
honcho's. A Celery worker's SIGTERM is its warm shutdown: it finishes the task in hand (an advice
in milliseconds, a training job in minutes) and exits; killed after 5 s, a task on the
filesystem broker was lost. Here the wait is ``MEDAI_SHUTDOWN_GRACE_SECONDS`` (default 60), after
which what still runs is killed as before.

Usage: ``python -m medai_site.procfile_run [honcho start arguments]``.
"""

from __future__ import annotations

import os
import sys

from honcho import command, manager

DEFAULT_GRACE_SECONDS = 60


def main(argv: list[str] | None = None) -> None:
    grace = int(os.environ.get("MEDAI_SHUTDOWN_GRACE_SECONDS", DEFAULT_GRACE_SECONDS))
    manager.KILL_WAIT = grace  # read by honcho's manager loop when it decides to SIGKILL
    command.main(["start", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
