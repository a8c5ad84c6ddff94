"""Fault injection against real processes in production's shape: gunicorn (2 workers), the
advice worker (``MEDAI_ADVICE_WORKER=1``), the relay (``manage.py relay_outbox``), a private Redis
with AOF, and a private PostgreSQL cluster the tests may crash (tests/integration/
postgres_cluster.py: a copy of the test database on a free port). Faults are real: ``pg_ctl stop
-m immediate`` then a start with crash recovery, ``kill -9`` of process groups and of Redis.

Asserted throughout: every visit a client sent is stored exactly once (none lost, none
duplicated, no 2xx without the stored visit); clients see only 201, 503 + ``Retry-After`` with
the transient error code (while the database is down), or a connection error (a killed gunicorn
worker); every advice is stored once and audited once, within 15 s of the recovery.

Load is open loop (tests/integration/visit_load.py): a new visit every 1/rate seconds whatever
the server answers, each client retrying with its Idempotency-Key as told.

Recovery times are printed (``-s`` shows them): ``make faults`` runs this module alone.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import threading
import time
from dataclasses import dataclass

import pytest
import requests
from django.db import connection
from django.db.models import Count
from django.test import Client as DjangoClient

from medai_site.models import AuditEvent
from predictions.models import Advice, AdviceRequest
from predictions.tasks import advice_compute
from tests.factories import CareTeamFactory, DoctorFactory, PatientFactory
from visits.models import Visit
from visits.services import ObservationInput, visit_create

from .conftest import wait_for, wait_ready
from .cpu_meter import CpuMeter
from .visit_load import Client, SentVisit, VisitLoad, send_until_stored, visit_body

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("private_postgres"),
]

RECOVERY_BOUND = 15.0  # seconds from recovery to every advice stored (issue 18)
ADVICE_WORKER = {"queues": "advice", "MEDAI_ADVICE_WORKER": "1"}  # production's advice worker
RETRY_AFTER = "5"
CONNECTION_ERRORS = ("ConnectionError", "ChunkedEncodingError")  # requests' names


@pytest.fixture
def doctor(db):
    doctor = DoctorFactory()
    CareTeamFactory(members=[doctor])
    return doctor


def save_visit(doctor) -> AdviceRequest:
    visit: Visit = visit_create(
        patient=PatientFactory(care_teams=[doctor.care_teams.get()]),
        attending=doctor,
        actor=doctor,
        chief_complaint="chest pain",
        observations=[ObservationInput("8867-4", 131, "/min"), ObservationInput("2708-6", 86, "%")],
    )
    return visit.advice_requests.get()


def status_of(request: AdviceRequest) -> str:
    request.refresh_from_db()
    return request.status


def all_done(requests: list[AdviceRequest]) -> bool:
    return not AdviceRequest.objects.filter(pk__in=[r.pk for r in requests]).exclude(
        status=AdviceRequest.Status.DONE
    )


def wait_all_done(requests: list[AdviceRequest], what: str, *processes) -> None:
    """Wait for every request to be done; on a timeout, fail with their states and the logs."""
    try:
        wait_for(lambda: all_done(requests), what, timeout=90)
    except pytest.fail.Exception:
        states = list(
            AdviceRequest.objects.filter(pk__in=[r.pk for r in requests]).values_list(
                "pk", "status", "claimed_by", "compute_attempts", "dispatch_attempts"
            )
        )
        logs = "\n".join(p.output()[-4000:] for p in processes)
        pytest.fail(f"timed out waiting for {what}: {states}\n{logs}")


def assert_one_advice_and_one_audit_each(requests: list[AdviceRequest]) -> None:
    for request in requests:
        request.refresh_from_db()
        assert request.status == AdviceRequest.Status.DONE, (request.pk, request.error)
        visit_id = request.visit_id
        assert Advice.objects.filter(visit_id=visit_id).count() == 1, visit_id
        audits = AuditEvent.objects.filter(
            action=AuditEvent.Action.ADVICE, object_id=str(request.advice_id)
        )
        assert audits.count() == 1, visit_id


def queued_ids(broker) -> list[int]:
    return [_request_id(raw) for raw in broker.client().lrange("advice", 0, -1)]


def _request_id(raw: bytes) -> int:
    body = json.loads(base64.b64decode(json.loads(raw)["body"]))
    return body[0][0]


def take_from_queue(broker, request: AdviceRequest) -> None:
    """What a worker's fetch does; with the worker dead before it recorded the message as
    unacknowledged, the message is in neither the queue nor Redis's unacknowledged set."""
    client = broker.client()
    for raw in client.lrange("advice", 0, -1):
        if _request_id(raw) == request.pk:
            assert client.lrem("advice", 1, raw) == 1
            return
    pytest.fail(f"request {request.pk} not in the queue")


def report(what: str, seconds: float) -> None:
    print(f"\n[recovery] {what}: {seconds:.1f} s")  # the figure make faults shows


def written_not_committed() -> bool:
    """A worker's connection sits in its storing transaction (advice row not committed)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'idle in transaction' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0] >= 1


# --- advice workers killed at each point of a request's life --------------------------------------


def test_a_worker_killed_with_requests_queued_fetched_computing_and_storing_loses_none(
    workers, relay, broker, doctor
):
    the_relay = relay()
    # Two advice worker processes, one slow before computing, one inside its storing
    # transaction; neither fetches while busy (no prefetch). Whichever claims the first request,
    # the second goes to the other: one request is computing and one storing when they die.
    slow_compute = workers(**ADVICE_WORKER, MEDAI_ITEST_COMPUTE_DELAY="120", wait=False)
    slow_store = workers(**ADVICE_WORKER, MEDAI_ITEST_STORE_DELAY="120", wait=False)
    wait_ready(slow_compute)
    wait_ready(slow_store)

    first = save_visit(doctor)
    wait_for(lambda: status_of(first) == "computing", "a worker to claim the first request")
    second = save_visit(doctor)
    wait_for(lambda: status_of(second) == "computing", "the other to claim the second request")
    wait_for(written_not_committed, "one worker to be inside its storing transaction")
    queued = save_visit(doctor)  # waits in Redis: both workers are busy
    fetched = save_visit(doctor)
    wait_for(
        lambda: sorted(queued_ids(broker)) == sorted([queued.pk, fetched.pk]),
        "both messages to wait in the queue",
    )
    take_from_queue(broker, fetched)  # in flight to a worker when it dies

    slow_compute.kill()
    slow_store.kill()
    killed = time.monotonic()
    assert not Advice.objects.exists()  # the storing transaction rolled back with its connection
    restarted = workers(**ADVICE_WORKER, wait=False)  # its supervisor restarts it
    # The relay notices the silent heartbeats and re-sends: the claims are released.
    wait_for(
        lambda: status_of(first) != "computing" and status_of(second) != "computing",
        "the relay to release the claims",
    )
    resent = time.monotonic()
    report("worker killed, kill -> its requests re-sent by the relay", resent - killed)
    assert resent - killed <= 10
    wait_ready(restarted)
    recovered = time.monotonic()
    requests_ = [first, second, queued, fetched]
    logs = (restarted, the_relay, slow_compute, slow_store)
    wait_all_done(requests_, "every request after the restart", *logs)
    done = time.monotonic()
    report("worker killed (queued, fetched, computing, storing), kill -> all advice", done - killed)
    report(
        "worker killed (queued, fetched, computing, storing), ready -> all advice", done - recovered
    )
    assert done - recovered <= RECOVERY_BOUND
    assert_one_advice_and_one_audit_each(requests_)
    for claimed in (first, second):
        claimed.refresh_from_db()
        assert claimed.compute_attempts == 2  # claimed by a dead worker, released, recomputed


def test_two_workers_given_each_request_three_times_compute_and_audit_it_once(
    workers, relay, broker, doctor
):
    """The hand-over is a claim: duplicates (web and relay both sending, a re-send beside a
    redelivery) reach both workers at once and only one computes."""
    relay()
    first = workers(**ADVICE_WORKER, MEDAI_ITEST_COMPUTE_DELAY="1", wait=False)
    second = workers(**ADVICE_WORKER, MEDAI_ITEST_COMPUTE_DELAY="1", wait=False)
    wait_ready(first)
    wait_ready(second)
    requests_ = []
    for _ in range(4):
        request = save_visit(doctor)  # sent once by the web after the commit
        for _copy in range(2):
            advice_compute.apply_async(args=[request.pk])  # and twice more
        requests_.append(request)
    wait_all_done(requests_, "every request", first, second)
    assert_one_advice_and_one_audit_each(requests_)
    skipped = (first.output() + second.output()).count("being computed elsewhere; skipped")
    assert skipped >= 1  # the two workers did meet on one request


# --- gunicorn workers killed mid-request ---------------------------------------------------------


def api_client(doctor, name: str) -> Client:
    from medai_site.api_auth import Scope, api_token_create

    scopes = [s for s in Scope if s != Scope.MODELS_MANAGE]
    token = api_token_create(user=doctor, name=name, scopes=scopes, days=1, actor=doctor)[1]
    patient = PatientFactory(care_teams=[doctor.care_teams.get()])
    return Client(auth={"Authorization": f"Bearer {token}"}, patient_id=patient.pk)


def post_visit(url: str, client: Client, key: str, timeout: float = 30, **headers: str):
    return requests.post(
        f"{url}/api/v1/patients/{client.patient_id}/visits",
        json=visit_body(0),
        headers={**client.auth, "Idempotency-Key": key, **headers},
        timeout=timeout,
    )


def store(url: str, client: Client, key: str, **first_headers: str) -> SentVisit:
    """A careful client (retries on a connection error, and on a 503 after its Retry-After)."""
    visit = SentVisit(key=key, due=time.time())
    send_until_stored(url, client, visit, visit_body(0), time.time() + 60, first_headers)
    return visit


def test_gunicorn_workers_killed_mid_request_never_acknowledge_an_unstored_visit(web, doctor):
    server = web()
    client = api_client(doctor, "gunicorn-kill")
    outcomes: dict[str, object] = {}

    def send(key: str, **headers: str) -> None:
        try:
            outcomes[key] = post_visit(server.url, client, key, **headers).status_code
        except requests.RequestException as exc:
            outcomes[key] = type(exc).__name__

    # One request killed after its visit was committed (the answer never leaves), one before
    # Django saw it: both workers busy with them when they die.
    threads = [
        threading.Thread(
            target=send, args=("committed",), kwargs={"X-MedAI-ITest-Delay-After": "30"}
        ),
        threading.Thread(
            target=send, args=("unseen",), kwargs={"X-MedAI-ITest-Delay-Before": "30"}
        ),
    ]
    for thread in threads:
        thread.start()
    wait_for(lambda: server.process.output().count("itest: request held") == 2, "both held")
    assert Visit.objects.filter(patient_id=client.patient_id).count() == 1  # "committed"
    killed = server.workers()
    assert len(killed) == 2
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    for thread in threads:
        thread.join(timeout=60)
    # The client saw a failure for both, never a 2xx.
    assert set(outcomes) == {"committed", "unseen"}
    assert all(o not in (200, 201) for o in outcomes.values()), outcomes

    acknowledged = {key: store(server.url, client, key).visit_id for key in outcomes}
    assert None not in acknowledged.values(), "a retry was not stored within 60 s"
    assert set(server.workers()).isdisjoint(killed)  # the master respawned them
    visits = Visit.objects.filter(patient_id=client.patient_id)
    assert sorted(visits.values_list("pk", flat=True)) == sorted(acknowledged.values())


# --- the issue's scenario: four faults under a steady 8 visits/s ---------------------------------


@dataclass
class Fault:
    name: str
    injected: float  # time.time()
    recovered: float  # time.time() the failed part was back (ready to work)
    # Whether advice waits on the failed part (a gunicorn worker's death does not touch the
    # advice pipeline: its recovery gives no request more time).
    delays_advice: bool = True


VISIT_FORM = {
    "visit_type": "outpatient",
    "chief_complaint": "crushing chest pain <since dawn>",
    "unit_8310_5": "Cel",
    "unit_29463_7": "kg",
    "unit_2345_7": "mg/dL",
    "unit_2093_3": "mg/dL",
    "obs_8867_4": "131",
}


class SignedInPage:
    """A doctor's browser session on the real server (cookies sent by hand: plain HTTP)."""

    def __init__(self, url: str, doctor, patient_id: int) -> None:
        django_client = DjangoClient()
        django_client.force_login(doctor)
        self.session = django_client.cookies["sessionid"].value
        self.form_url = f"{url}/patients/{patient_id}/visits/new/"
        page = requests.get(self.form_url, headers=self._cookies(), timeout=30)
        assert page.status_code == 200, page.status_code
        self.csrf_cookie = page.cookies["csrftoken"]
        self.csrf_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]

    def _cookies(self, csrf: str = "") -> dict[str, str]:
        cookie = f"sessionid={self.session}" + (f"; csrftoken={csrf}" if csrf else "")
        return {"Cookie": cookie}

    def submit(self, form: dict[str, str]) -> requests.Response:
        return requests.post(
            self.form_url,
            data={**form, "csrfmiddlewaretoken": self.csrf_token},
            headers={**self._cookies(self.csrf_cookie), "Referer": self.form_url},
            timeout=30,
            allow_redirects=False,
        )


def readiness(url: str) -> tuple[int, dict]:
    response = requests.get(f"{url}/readyz", timeout=15)
    return response.status_code, response.json()


def settle(what: str, *processes, steady: float = 2.0) -> None:
    """Every advice requested so far is done; then a little steady load before the next fault."""
    mark = AdviceRequest.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    pending = AdviceRequest.objects.filter(pk__lte=mark).exclude(status=AdviceRequest.Status.DONE)
    try:
        wait_for(lambda: not pending.exists(), f"every advice after {what}", timeout=60)
    except pytest.fail.Exception:
        logs = "\n".join(p.output()[-3000:] for p in processes)
        pytest.fail(
            f"advice not done after {what}: {list(pending.values_list('pk', 'status'))}\n{logs}"
        )
    time.sleep(steady)


def crash_postgres(cluster, server, page: SignedInPage, probe: Client) -> Fault:
    """``pg_ctl stop -m immediate``; the outage's signals checked; started again 5 s later."""
    injected = time.time()
    cluster.crash()
    connection.close()  # this process's connection died with the server too
    # The API: 503, Retry-After, the transient code in the error shape, no internals.
    refused = post_visit(server.url, probe, "outage-probe", timeout=15)
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == RETRY_AFTER
    assert refused.json()["error"]["code"] == "temporarily_unavailable"
    assert str(cluster.port) not in refused.text
    # Readiness: this web process cannot serve; anonymous callers learn no more than that.
    assert readiness(server.url) == (
        503,
        {"status": "unavailable", "checks": {"database": "failed"}},
    )
    # The page: "please try again", the form input kept in a form re-sending it.
    answer = page.submit(VISIT_FORM)
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == RETRY_AFTER
    assert "please try again" in answer.text
    assert 'value="crushing chest pain &lt;since dawn&gt;"' in answer.text
    assert 'name="obs_8867_4" value="131"' in answer.text
    assert str(cluster.port) not in answer.text
    time.sleep(max(0.0, injected + 5 - time.time()))
    cluster.start()  # replays the WAL first: "the database system is starting up" meanwhile
    recovered = time.time()
    assert cluster.recovered_from_crash(), cluster.server_log()[-3000:]
    return Fault("PostgreSQL crashed (immediate stop), started 5 s later", injected, recovered)


def advice_deadline(created: float, faults: list[Fault], finished: float) -> float:
    """15 s after the visit, or after the recovery of every fault the request lived through."""
    lived_through = [
        f.recovered
        for f in faults
        if f.delays_advice and created <= f.recovered and finished >= f.injected
    ]
    return max([created, *lived_through]) + RECOVERY_BOUND


def assert_answers_expected(
    visits: list[SentVisit], database: Fault | None, gunicorn: Fault | None
):
    """Clients saw 201s; 503 + Retry-After + the transient code while the database was down; a
    connection error from the killed gunicorn worker; nothing else, and none gave up."""
    for visit in visits:
        assert visit.acknowledged is not None, (visit.key, visit.attempts)
        for attempt in visit.attempts[:-1]:
            if attempt.outcome == "503":
                assert (attempt.retry_after, attempt.code) == (
                    RETRY_AFTER,
                    "temporarily_unavailable",
                )
                assert database is not None, attempt
                assert database.injected <= attempt.answered <= database.recovered + 2, attempt
            else:
                assert attempt.outcome in CONNECTION_ERRORS, attempt
                assert gunicorn is not None, attempt
                assert gunicorn.injected <= attempt.answered <= gunicorn.injected + 5, attempt


def assert_stored_once(visits: list[SentVisit], patient_ids: list[int]) -> set[int]:
    """Every visit sent is stored once: none lost, none duplicated, no 2xx without it."""
    acknowledged = {v.visit_id for v in visits}
    stored = Visit.objects.filter(patient_id__in=patient_ids).values_list("pk", flat=True)
    assert sorted(stored) == sorted(acknowledged)
    return acknowledged


def assert_advice_once_in_time(
    acknowledged: set[int], faults: list[Fault], *processes
) -> list[tuple[float, float]]:
    """Every advice stored once, audited once, within 15 s of its visit or of the recovery of
    every fault it lived through. Returns (created, finished) per request."""
    settle("the load", *processes, steady=0)
    requests_ = AdviceRequest.objects.filter(visit_id__in=acknowledged)
    assert requests_.count() == len(acknowledged)
    assert not requests_.exclude(status=AdviceRequest.Status.DONE).exists()
    per_visit = (
        Advice.objects.filter(visit_id__in=acknowledged).values("visit_id").annotate(n=Count("pk"))
    )
    assert {row["visit_id"]: row["n"] for row in per_visit} == dict.fromkeys(acknowledged, 1)
    advice_ids = [str(pk) for pk in requests_.values_list("advice_id", flat=True)]
    audited = (
        AuditEvent.objects.filter(action=AuditEvent.Action.ADVICE, object_id__in=advice_ids)
        .values("object_id")
        .annotate(n=Count("pk"))
    )
    assert {row["object_id"]: row["n"] for row in audited} == dict.fromkeys(advice_ids, 1)
    timings = [
        (r.created_at.timestamp(), r.finished_at.timestamp())
        for r in requests_.only("created_at", "finished_at")
    ]
    late = [
        round(finished - advice_deadline(created, faults, finished), 1)
        for created, finished in timings
        if finished > advice_deadline(created, faults, finished)
    ]
    report_recoveries(timings, faults)
    assert not late, f"{len(late)} advice later than 15 s after visit or recovery (s over): {late}"
    return timings


def report_recoveries(timings: list[tuple[float, float]], faults: list[Fault]) -> None:
    for fault in faults:
        affected = [f for c, f in timings if c <= fault.recovered and f >= fault.injected]
        if affected:
            report(f"{fault.name}, recovery -> all advice", max(affected) - fault.recovered)
            report(f"{fault.name}, fault -> all advice", max(affected) - fault.injected)
    after_visit = sorted(f - c for c, f in timings)
    print(
        f"\n[advice] after its visit: median {after_visit[len(after_visit) // 2]:.2f} s, "
        f"max {after_visit[-1]:.2f} s ({len(after_visit)} visits)"
    )


def report_visits(load: VisitLoad, faults: list[Fault]) -> None:
    print(
        f"\n[load] {len(load.visits)} visits, sent at {load.achieved_rate():.1f}/s "
        f"(target {load.rate}/s), worst start lag {load.worst_start_lag():.2f} s"
    )
    # How long the web took to answer a first attempt (whatever the answer): the web tier's
    # own capacity shows here (an open loop queues in gunicorn's backlog when it falls behind).
    answer = sorted(v.attempts[0].answered - v.started for v in load.visits if v.attempts)
    outcomes: dict[str, int] = {}
    for visit in load.visits:
        for attempt in visit.attempts:
            outcomes[attempt.outcome] = outcomes.get(attempt.outcome, 0) + 1
    if answer:
        print(
            f"\n[load] first answer: median {answer[len(answer) // 2]:.2f} s, "
            f"p95 {answer[int(len(answer) * 0.95)]:.2f} s, max {answer[-1]:.2f} s; "
            f"attempts by outcome {dict(sorted(outcomes.items()))}; "
            f"{sum(v.acknowledged is None for v in load.visits)} never acknowledged"
        )
    for fault in faults:
        retried = [
            v.acknowledged
            for v in load.visits
            if v.acknowledged is not None
            and v.due <= fault.recovered <= v.acknowledged
            and len(v.attempts) > 1
        ]
        if retried:
            report(
                f"{fault.name}, recovery -> every visit retried meanwhile stored",
                max(retried) - fault.recovered,
            )


def test_postgres_crashed_under_load_answers_503_with_retry_after_and_loses_nothing(
    web, workers, relay, broker, private_postgres, doctor
):
    the_relay = relay()
    worker = workers(**ADVICE_WORKER, wait=False)  # starts while gunicorn does
    server = web()
    wait_ready(worker)
    clients = [api_client(doctor, f"load-{n}") for n in range(2)]
    probe = api_client(doctor, "probe")
    page = SignedInPage(server.url, doctor, probe.patient_id)
    load = VisitLoad(server.url, clients, rate=2)
    load.start()
    try:
        time.sleep(2)
        fault = crash_postgres(private_postgres, server, page, probe)
        time.sleep(3)
    finally:
        load.stop()
        load.finish(timeout=120)
    report_visits(load, [fault])
    assert_answers_expected(load.visits, database=fault, gunicorn=None)
    assert any(v.attempts[0].outcome == "503" for v in load.visits)
    acknowledged = assert_stored_once(load.visits, [c.patient_id for c in clients])
    assert not Visit.objects.filter(patient_id=probe.patient_id).exists()  # 503s stored nothing
    assert_advice_once_in_time(acknowledged, [fault], the_relay, worker, server.process)


def test_redis_killed_and_restarted_loses_no_visit_and_no_advice(workers, relay, broker, doctor):
    the_relay = relay()
    worker = workers(**ADVICE_WORKER, MEDAI_ITEST_COMPUTE_DELAY="0.5")
    before = [save_visit(doctor) for _ in range(4)]  # some computed, some waiting in the queue
    wait_for(lambda: any(status_of(r) == "done" for r in before), "the first advice")

    broker.kill()  # kill -9
    during = [save_visit(doctor) for _ in range(4)]  # every save succeeds: the outbox
    assert all(status_of(r) == "pending" for r in during)
    # A real restart loses the AOF's last second while Redis loads it, before any client can
    # connect. Here the loss is made after the start, so the relay (polling every 0.5 s) is held
    # meanwhile: otherwise it could re-send into the queue the next line empties, a loss no real
    # restart causes, and the request would wait for the 120 s last resort.
    os.killpg(the_relay.process.pid, signal.SIGSTOP)
    try:
        broker.start()  # from its append-only file...
        broker.client().delete("advice")  # ...which lost its last second: the queued messages
    finally:
        os.killpg(the_relay.process.pid, signal.SIGCONT)
    restarted = time.monotonic()
    requests_ = before + during
    wait_all_done(requests_, "every request after Redis restarted", worker, the_relay)
    done = time.monotonic()
    report("Redis killed, restart -> all advice", done - restarted)
    assert done - restarted <= RECOVERY_BOUND
    assert_one_advice_and_one_audit_each(requests_)


# --- the issue's full scenario: four faults, one after another, under a steady load -------------

# Two loads. ``make faults-load`` runs it as the issue states it (8 visits/s, 20 s of steady load
# between faults; ``MEDAI_FAULTS_RATE`` / ``MEDAI_FAULTS_GAP`` override them), marked
# ``faults_load`` so that ``make test`` (CI) deselects it: on the shared 2-core machine the web
# tier alone cannot take 8 visits/s (README, "Advice pipeline"). The suite (CI) runs the same
# four faults at 2 visits/s with 6 s of steady load between them (about a minute: each fault's
# own down time, 5 to 10 s, comes on top; the assertions are per fault, not per gap).
SUITE_LOAD = pytest.param(2.0, 6.0, id="2-per-s")
ISSUE_LOAD = pytest.param(
    float(os.environ.get("MEDAI_FAULTS_RATE", "8")),
    float(os.environ.get("MEDAI_FAULTS_GAP", "20")),
    id="issue-8-per-s",
    marks=pytest.mark.faults_load,
)
# The advice worker's pool processes in this scenario: 1 as the Procfile's default; docker-compose
# runs 2 (CELERY_CONCURRENCY there).
SCENARIO_CONCURRENCY = int(os.environ.get("MEDAI_FAULTS_CONCURRENCY", "1"))
RESTART_AFTER = 10.0  # seconds a killed advice worker or Redis stays down (issue 18)


def kill_advice_worker(workers, worker) -> tuple[Fault, object]:
    """``kill -9`` of the worker's process group; its supervisor restarts it 10 s later."""
    injected = time.time()
    worker.kill()
    time.sleep(RESTART_AFTER)
    restarted = workers(**ADVICE_WORKER, concurrency=SCENARIO_CONCURRENCY, wait=False)
    wait_ready(restarted)
    fault = Fault("advice worker killed (kill -9), restarted 10 s later", injected, time.time())
    return fault, restarted


def kill_redis(broker) -> Fault:
    """``kill -9`` of Redis; started again from its append-only file 10 s later."""
    injected = time.time()
    broker.kill()
    time.sleep(RESTART_AFTER)
    broker.start()  # returns once it answers
    return Fault("Redis killed (kill -9), restarted from its AOF 10 s later", injected, time.time())


def kill_gunicorn_worker(server) -> Fault:
    """``kill -9`` of one gunicorn worker mid-load; recovered when the master has two again."""
    victim = server.workers()[0]
    injected = time.time()
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: len(server.workers()) == 2 and victim not in server.workers(),
        "the gunicorn master to replace the killed worker",
    )
    return Fault("one gunicorn worker killed (kill -9)", injected, time.time(), delays_advice=False)


def report_advice_progress(faults: list[Fault]) -> None:
    """Advice lateness so far (requests done or not), per fault: what the worker achieved."""
    rows = list(AdviceRequest.objects.values_list("created_at", "finished_at", "status"))
    now = time.time()
    timings = [(c.timestamp(), f.timestamp() if f else now) for c, f, _ in rows]
    undone = sum(status != AdviceRequest.Status.DONE for *_, status in rows)
    print(f"\n[advice] {len(rows)} requests, {undone} not done when the load ended")
    if timings:
        report_recoveries(timings, faults)


@pytest.mark.parametrize(("rate", "gap"), [SUITE_LOAD, ISSUE_LOAD])
def test_four_faults_under_a_steady_load_lose_nothing_and_advice_is_late_at_most_15_s(
    web, workers, relay, broker, private_postgres, doctor, rate, gap
):
    """Issue 18's scenario: a steady open-loop load through a PostgreSQL crash, an advice worker
    killed, Redis killed and a gunicorn worker killed, one after another."""
    the_relay = relay()
    worker = workers(**ADVICE_WORKER, concurrency=SCENARIO_CONCURRENCY, wait=False)
    server = web()
    wait_ready(worker)
    clients = [api_client(doctor, f"load-{n}") for n in range(4)]
    probe = api_client(doctor, "probe")
    page = SignedInPage(server.url, doctor, probe.patient_id)
    load = VisitLoad(server.url, clients, rate=rate)
    faults: list[Fault] = []
    processes = [the_relay, server.process, worker]
    cpu = CpuMeter(
        {
            "web (gunicorn)": lambda: server.process.process.pid,
            "advice worker": lambda: processes[-1].process.pid,
            "relay": lambda: the_relay.process.pid,
            "PostgreSQL": private_postgres.postmaster_pid,
            "Redis": lambda: broker.process.pid if broker.process else None,
            "load generator (this test)": os.getpid,
        }
    )
    cpu.start()
    load.start()
    try:
        time.sleep(gap / 2)
        faults.append(crash_postgres(private_postgres, server, page, probe))
        time.sleep(gap)
        fault, worker = kill_advice_worker(workers, worker)
        faults.append(fault)
        processes.append(worker)
        time.sleep(gap)
        faults.append(kill_redis(broker))
        time.sleep(gap)
        faults.append(kill_gunicorn_worker(server))
        time.sleep(gap / 2)
    finally:
        load.stop()
        load.finish(timeout=180)
        cpu.stop()
    report_visits(load, faults)
    print(f"\n{cpu.report(len(load.visits))}")
    database, gunicorn = faults[0], faults[3]
    report_advice_progress(faults)  # before any assertion: a failed run still shows its figures
    assert_answers_expected(load.visits, database=database, gunicorn=gunicorn)
    assert any(v.attempts[0].outcome == "503" for v in load.visits)  # the outage was seen
    acknowledged = assert_stored_once(load.visits, [c.patient_id for c in clients])
    assert not Visit.objects.filter(patient_id=probe.patient_id).exists()  # 503s stored nothing
    assert len(acknowledged) == len(load.visits)
    assert_advice_once_in_time(acknowledged, faults, *processes)
