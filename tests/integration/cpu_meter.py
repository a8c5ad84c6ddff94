"""CPU time per role of a fault-suite run (web, advice worker, relay, PostgreSQL, the load
generator), sampled from /proc: what limited a run when it could not keep up.

A role is named with a callable returning its current root process id (a killed advice worker or
a crashed PostgreSQL is replaced by a new root; the sampler follows). A root's figure is its own
CPU plus that of the children it reaped (``cutime``/``cstime``: gunicorn's killed workers,
PostgreSQL's ended backends) plus its live descendants'. A root's CPU since its last sample is
lost when it is killed (at most one sampling interval).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid``, the children it reaped and its live descendants."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total = sum(int(f) for f in fields[11:15]) / TICK  # utime, stime, cutime, cstime
    for task in _tasks(pid):
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        total += sum(tree_cpu_seconds(int(child)) for child in children)
    return total


def _current_pid(current: Callable[[], int | None]) -> int | None:
    """The role's root now; None between processes (PostgreSQL down: no postmaster.pid)."""
    try:
        return current()
    except (OSError, ValueError, IndexError):  # IndexError: postmaster.pid empty mid-restart
        return None


def _tasks(pid: int) -> list[str]:
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


class CpuMeter:
    """``CpuMeter({"web": lambda: pid, ...}).start()`` ... ``.stop()``; ``report(visits)``."""

    def __init__(self, roles: dict[str, Callable[[], int | None]], interval: float = 1.0):
        self.roles = roles
        self.interval = interval
        self.used: dict[str, float] = dict.fromkeys(roles, 0.0)
        self._last: dict[tuple[str, int], float] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.began = 0.0
        self.ended = 0.0
        self.load_averages: list[tuple[float, float, float]] = []

    def start(self) -> None:
        self.began = time.monotonic()
        self._sample()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        self._sample()
        self.ended = time.monotonic()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        self.load_averages.append(os.getloadavg())
        for role, current in self.roles.items():
            pid = _current_pid(current)
            if not pid:
                continue
            now = tree_cpu_seconds(pid)
            previous = self._last.get((role, pid))
            if previous is not None and now >= previous:
                self.used[role] += now - previous
            self._last[(role, pid)] = now

    def report(self, visits: int) -> str:
        wall = max(self.ended - self.began, 1e-9)
        parts = [
            f"{role} {seconds / wall:.2f} cores ({1000 * seconds / max(visits, 1):.0f} ms/visit)"
            for role, seconds in self.used.items()
        ]
        loads = [one for one, _, _ in self.load_averages]
        return (
            f"[cpu] over {wall:.0f} s: " + ", ".join(parts) + f"; sum "
            f"{sum(self.used.values()) / wall:.2f} of {os.cpu_count()} cores; load average (1 min) "
            f"median {sorted(loads)[len(loads) // 2]:.1f}, max {max(loads):.1f}"
        )
