"""medai_site.compiled_query: statements compiled once per process, data read fresh each call.

The API's token look-up and the prediction API's task look-up run through it on every request;
only the SQL text is kept, so a revoked token, a role removed, a scope narrowed or a model
switched off counts from the very next request (no revocation delay).
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.test import APIClient

from medai_site import roles
from medai_site.api_auth import Scope, api_token_create, api_token_revoke, token_hash
from medai_site.compiled_query import CompiledQuery, insert_returning_pk, insert_returning_pk_where
from medai_site.models import ApiToken
from predictions.models import ModelUse, ModelVersion, PredictionTask
from predictions.selectors import servable_tasks

pytestmark = pytest.mark.django_db

PATIENTS = "/api/v1/patients"


def _bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _token(user, scopes=(Scope.PATIENTS_READ,)):
    return api_token_create(user=user, name="lab", scopes=list(scopes), days=1, actor=user)


def test_compiled_query_builds_what_the_orm_builds(doctor_a):
    """select_related user, the role-names annotation and JSON scopes decoded as the ORM does."""
    token, secret = _token(doctor_a, [Scope.PATIENTS_READ, Scope.MODELS_PREDICT])
    query = CompiledQuery(
        lambda hashed: roles.with_role_names(
            ApiToken.objects.select_related("user").filter(token_hash=hashed), "user_id"
        )
    )
    got = query.first(token_hash(secret))
    orm = roles.with_role_names(
        ApiToken.objects.select_related("user").filter(token_hash=token_hash(secret)), "user_id"
    ).get()
    assert got is not None
    assert got.pk == token.pk
    assert got.scopes == orm.scopes == sorted([Scope.PATIENTS_READ, Scope.MODELS_PREDICT])
    assert got.user.username == orm.user.username == doctor_a.username
    assert got.role_names == orm.role_names == [roles.DOCTOR]
    assert got.expires_at == orm.expires_at
    assert got.expires_at.tzinfo is not None
    assert query.first("no such hash") is None


def test_compiled_query_keeps_deferred_fields_deferred(db):
    task = PredictionTask.objects.first()
    query = CompiledQuery(lambda slug: servable_tasks().filter(slug=slug))
    got = query.first(task.slug)
    assert got is not None
    assert got.pk == task.pk
    assert got.config == task.config
    assert got.get_deferred_fields() == servable_tasks().get(pk=task.pk).get_deferred_fields()


def test_compiled_query_refuses_a_parameter_used_twice(db):
    query = CompiledQuery(lambda v: PredictionTask.objects.filter(slug=v, name=v))
    with pytest.raises(ValueError, match="each parameter exactly once"):
        query.first("x")


def test_a_token_revoked_after_use_is_refused_on_the_next_request(doctor_a):
    token, secret = _token(doctor_a)
    client = _bearer(secret)
    assert client.get(PATIENTS).status_code == 200
    api_token_revoke(token=token, actor=None)
    assert client.get(PATIENTS).status_code == 401


def test_a_token_expiring_after_use_is_refused_on_the_next_request(doctor_a):
    token, secret = _token(doctor_a)
    client = _bearer(secret)
    assert client.get(PATIENTS).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = client.get(PATIENTS)
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_a_scope_removed_after_use_counts_on_the_next_request(doctor_a):
    token, secret = _token(doctor_a, [Scope.PATIENTS_READ, Scope.MODELS_PREDICT])
    client = _bearer(secret)
    assert client.get(PATIENTS).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(scopes=[Scope.MODELS_PREDICT])
    assert client.get(PATIENTS).status_code == 403


def test_a_role_removed_after_use_counts_on_the_next_request(doctor_a):
    _, secret = _token(doctor_a)
    client = _bearer(secret)
    assert client.get(PATIENTS).status_code == 200
    # Straight in the table, as another process would: nothing in this process is told.
    doctor_a.groups.through.objects.filter(
        user_id=doctor_a.pk, group__in=Group.objects.filter(name=roles.DOCTOR)
    ).delete()
    assert client.get(PATIENTS).status_code == 403


def _version() -> ModelVersion:
    return ModelVersion.objects.create(
        task=PredictionTask.objects.first(),
        number=1,
        algorithm="logistic_regression",
        artifact_path="/nonexistent/v1.joblib",
        artifact_sha256="0" * 64,
        artifact_size=1,
        data_hash="1" * 64,
    )


def test_insert_returning_pk_writes_the_row_save_would(doctor_a):
    version = _version()
    now = timezone.now()
    use = insert_returning_pk(
        ModelUse(
            at=now,
            version=version,
            actor=doctor_a,
            client="ehr",
            interface=ModelUse.Interface.API,
            input_hash="a" * 64,
            rows=3,
            request_id="req-1",
        )
    )
    stored = ModelUse.objects.get(pk=use.pk)
    assert not use._state.adding
    assert (stored.at, stored.actor_id, stored.version_id, stored.rows, stored.input_hash) == (
        now,
        doctor_a.pk,
        version.pk,
        3,
        "a" * 64,
    )
    assert (stored.client, stored.interface, stored.request_id, stored.api_token_id) == (
        "ehr",
        "api",
        "req-1",
        None,
    )


def _use(version: ModelVersion, **fields) -> ModelUse:
    values = {
        "at": timezone.now(),
        "version": version,
        "interface": ModelUse.Interface.API,
        "input_hash": "a" * 64,
        **fields,
    }
    return ModelUse(**values)


def test_insert_where_writes_only_while_its_condition_holds(doctor_a):
    version = _version()
    condition = "EXISTS (SELECT 1 FROM predictions_modelversion WHERE id = %s AND number = %s)"
    use = insert_returning_pk_where(_use(version, actor=doctor_a), condition, [version.pk, 1])
    assert use is not None
    assert not use._state.adding
    stored = ModelUse.objects.get(pk=use.pk)
    assert (stored.actor_id, stored.version_id, stored.api_token_id, stored.rows) == (
        doctor_a.pk,
        version.pk,
        None,  # a NULL foreign key goes in typed, as a plain INSERT's would
        1,
    )
    refused = _use(version)
    assert insert_returning_pk_where(refused, condition, [version.pk, 2]) is None
    assert refused.pk is None
    assert ModelUse.objects.count() == 1


def test_insert_where_refuses_an_over_long_value_rather_than_cutting_it(db):
    from django.db import DataError, transaction

    version = _version()
    with pytest.raises(DataError), transaction.atomic():
        insert_returning_pk_where(_use(version, client="x" * 201), "TRUE", [])
    assert not ModelUse.objects.exists()


def test_compiled_query_many_without_parameters_reads_every_row_each_call(db):
    query = CompiledQuery(lambda: PredictionTask.objects.order_by("slug"), parameters=0)
    assert [t.slug for t in query.many()] == list(
        PredictionTask.objects.order_by("slug").values_list("slug", flat=True)
    )
    first = PredictionTask.objects.order_by("slug").first()
    PredictionTask.objects.filter(pk=first.pk).update(slug="zzz-renamed")
    assert query.many()[-1].slug == "zzz-renamed"
    with pytest.raises(TypeError, match="0 parameter"):
        query.many("unexpected")


# --- typed parameters (issue 15: the scoped patient read, patients.selectors) ------------------


def _granted(shape, patient_id, now):
    """Patients by id, the "grant" shape also needing an unexpired grant (a datetime)."""
    from django.db.models import Exists, OuterRef

    from patients.models import BreakGlassGrant, Patient

    patients = Patient.objects.filter(pk=patient_id)
    if shape == "grant":
        patients = patients.filter(
            Exists(BreakGlassGrant.objects.filter(patient_id=OuterRef("pk"), expires_at__gt=now))
        )
    return patients.order_by()


def _typed(shape):
    return CompiledQuery(lambda pid, now: _granted(shape, pid, now), parameters=(int, dt.datetime))


def test_typed_values_are_parameters_not_baked_into_the_statement():
    """An int and a datetime (an unused one too) reach the statement as themselves: two ids, two
    answers, one compile; instances as the ORM loads them (encrypted fields decrypted)."""
    from tests.factories import PatientFactory

    first, second = PatientFactory(), PatientFactory()
    query = _typed("plain")  # ``now`` unused by this shape
    now = timezone.now()
    assert [p.pk for p in query.many(first.pk, now)] == [first.pk]
    assert query.first(second.pk, now).pk == second.pk
    loaded = query.first(first.pk, now)
    assert (loaded.given_name, loaded.birth_date) == (first.given_name, first.birth_date)
    assert query.compiled()[0] == _granted("plain", 1, now).query.sql_with_params()[0]


def test_a_datetime_parameter_decides_as_the_orm_does(doctor_a):
    from tests.factories import BreakGlassGrantFactory, PatientFactory

    patient = PatientFactory()
    grant = BreakGlassGrantFactory(patient=patient, grantee=doctor_a)
    after = grant.expires_at + dt.timedelta(seconds=1)
    query = _typed("grant")
    for at in (timezone.now(), after):
        assert query.many(patient.pk, at) == list(_granted("grant", patient.pk, at))
    assert query.first(patient.pk, timezone.now()) == patient
    assert query.first(patient.pk, after) is None


def test_a_typed_parameter_may_be_used_several_times(doctor_a, team_a):
    from patients.access import care_team_member
    from patients.models import Patient
    from tests.factories import PatientFactory

    mine, other = PatientFactory(care_teams=[team_a]), PatientFactory()
    query = CompiledQuery(
        lambda viewer, pid: Patient.objects.filter(care_team_member(viewer), pk=pid).annotate(
            mine=care_team_member(viewer)
        ),
        parameters=(int, int),
    )
    assert query.first(doctor_a.pk, mine.pk).mine is True
    assert query.first(doctor_a.pk, other.pk) is None


@pytest.mark.parametrize(
    ("value", "error"),
    [(2**63, ValueError), (-(2**63) - 1, ValueError), ("1", TypeError), (True, TypeError)],
)
def test_typed_values_of_the_wrong_type_or_range_are_refused(value, error):
    with pytest.raises(error):
        _typed("plain").first(value, timezone.now())


def test_a_typed_parameter_converted_on_its_way_is_refused(db):
    from patients.models import Patient

    as_text = CompiledQuery(lambda pid: Patient.objects.filter(mrn=str(pid)), parameters=(int,))
    with pytest.raises(ValueError, match="converted"):
        as_text.first(1)


def test_an_instant_parameter_is_refused_off_postgresql(monkeypatch):
    """SQLite compiles an instant into naive text: the placeholder would be frozen into the
    statement (an expired grant honoured for ever), so compiling one there is refused."""
    from django.db import connection

    query = CompiledQuery(
        lambda pk, when: ApiToken.objects.filter(pk=pk, expires_at__gt=when),
        parameters=[int, dt.datetime],
    )
    monkeypatch.setattr(connection, "vendor", "sqlite")
    with pytest.raises(ValueError, match="cannot take an instant on sqlite"):
        query.first(1, timezone.now())
    monkeypatch.undo()
    assert query.first(-1, timezone.now()) is None  # on PostgreSQL it compiles and runs
