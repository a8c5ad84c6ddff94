"""Open-loop visit load for the fault suite: a new visit every ``1/rate`` seconds whatever the
server answers. A closed loop (the next visit after the last answer) would slow down exactly
when the server struggles and hide the backlog a ward builds up during an outage.

Each visit is sent by its own client thread behaving like a careful integration: the same
``Idempotency-Key`` on every attempt, retried after ``Retry-After`` on a 503 and after 0.5 s on a
connection error, until a 201. Any other answer ends that client (it is what the test asserts
never happens). Every attempt is recorded with its wall-clock time, so a test can tell what the
clients saw during each fault.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import requests

RETRYABLE_CONNECTION_PAUSE = 0.5  # seconds a client waits after a connection error


@dataclass
class Attempt:
    answered: float  # time.time() of the answer or the error
    outcome: str  # the status code ("201", "503"), or the exception's name
    retry_after: str | None = None
    code: str | None = None  # the API error code of an error answer


@dataclass
class SentVisit:
    key: str
    due: float  # time.time() the open loop scheduled it for
    started: float = 0.0  # time.time() of its first attempt
    attempts: list[Attempt] = field(default_factory=list)
    visit_id: int | None = None
    acknowledged: float | None = None  # time.time() of the 201


@dataclass
class Client:
    auth: dict[str, str]  # the Authorization header of one API token
    patient_id: int


def visit_body(n: int) -> dict:
    """Vital signs varying with ``n`` (some critical: low SpO2, fast heart rate)."""
    return {
        "chief_complaint": "chest pain",
        "observations": [
            {"code": "8867-4", "value": 60 + (n * 7) % 80},
            {"code": "2708-6", "value": 86 + n % 14},
        ],
    }


def send_until_stored(
    url: str,
    client: Client,
    visit: SentVisit,
    body: dict,
    give_up_at: float,
    first_headers: dict[str, str] | None = None,
) -> None:
    """One careful client: retry the same key until a 201, or until ``give_up_at``."""
    headers = {**client.auth, "Idempotency-Key": visit.key, **(first_headers or {})}
    visit.started = time.time()
    while time.time() < give_up_at:
        pause = RETRYABLE_CONNECTION_PAUSE
        try:
            response = requests.post(
                f"{url}/api/v1/patients/{client.patient_id}/visits",
                json=body,
                headers=headers,
                timeout=60,
            )
        except requests.RequestException as exc:
            visit.attempts.append(Attempt(time.time(), type(exc).__name__))
        else:
            attempt = Attempt(time.time(), str(response.status_code))
            visit.attempts.append(attempt)
            if response.status_code == 201:
                visit.visit_id = response.json()["id"]
                visit.acknowledged = attempt.answered
                return
            try:
                attempt.code = response.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                attempt.code = None
            if response.status_code != 503:
                return  # not retryable: the test fails on it
            attempt.retry_after = response.headers.get("Retry-After")
            pause = float(attempt.retry_after or 5)
        headers = {**client.auth, "Idempotency-Key": visit.key}  # test headers: first try only
        time.sleep(pause)


class VisitLoad:
    """``rate`` visits per second over ``clients`` in turn, from ``start()`` to ``stop()``."""

    def __init__(self, url: str, clients: list[Client], rate: float, give_up_after: float = 120):
        self.url = url
        self.clients = clients
        self.rate = rate
        self.give_up_after = give_up_after
        self.visits: list[SentVisit] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._scheduler = threading.Thread(target=self._schedule, daemon=True)

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        """No new visits; those sent keep retrying until stored."""
        self._stopping.set()
        self._scheduler.join()

    def finish(self, timeout: float) -> None:
        """Wait for every client to be done (stored, or given up)."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))

    def _schedule(self) -> None:
        began = time.time()
        n = 0
        while True:
            due = began + n / self.rate
            # Late (a loaded machine): send at once; the count stays rate x duration.
            if self._stopping.wait(max(0.0, due - time.time())):
                return
            visit = SentVisit(key=f"load-{n}", due=due)
            self.visits.append(visit)
            thread = threading.Thread(
                target=send_until_stored,
                args=(
                    self.url,
                    self.clients[n % len(self.clients)],
                    visit,
                    visit_body(n),
                    time.time() + self.give_up_after,
                ),
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()
            n += 1

    def achieved_rate(self) -> float:
        """Visits per second actually sent (first attempts), over the run."""
        if len(self.visits) < 2:
            return 0.0
        return (len(self.visits) - 1) / (self.visits[-1].started - self.visits[0].started)

    def worst_start_lag(self) -> float:
        """The longest a visit's first attempt started after it was due (scheduling lag)."""
        return max(v.started - v.due for v in self.visits)
