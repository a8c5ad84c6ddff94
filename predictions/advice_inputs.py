"""The visit as advice reads it: one statement on PostgreSQL (a read, for the advice worker).

Advice needs the visit's scalar fields and the texts it scores or checks (the only ciphertext
decrypted: no name, no contact, no allergy reactions), the patient's sex, the observations with
their catalogue definitions, and the patient's allergy list. The ORM reads them in three
statements (the visit with its patient, then two prefetches) and spends more CPU building and
compiling those queries than the worker spends on the models (tests/bench/
bench_advice_throughput.py). On PostgreSQL one fixed statement, written once per process from the
models' own tables and columns, returns the visit's row with its observations and allergies
aggregated as JSON; the instances are built exactly as the ORM builds them (prefetch caches set)
so every reader (visit_record, why, medication_safety, the rules) sees the same objects.
Other databases (the local profile's SQLite) take the ORM path; tests hold both to the same
result (tests/predictions/test_advice_inputs.py).
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

from django.db import connection, models
from django.db.models import Prefetch

from patients.models import Allergy, Patient
from visits.models import Observation, ObservationDefinition, Visit

# The visit's columns advice reads (everything else stays deferred, its ciphertext unread).
VISIT_FIELDS = (
    "id",
    "patient_id",
    "age_years",
    "visit_type",
    "chief_complaint",
    "history_present_illness",
    "physical_exam",
    "plan",
    "medications",
    "allergy_history",
)
# The allergy list's columns the advice reads (the reaction, PHI, stays ciphertext).
ALLERGY_FIELDS = ("id", "patient_id", "substance", "severity")
M = TypeVar("M", bound=models.Model)


def visit_for_advice_orm(visit_id: int) -> Visit:
    """The visit through the ORM: three statements (any database)."""
    return (
        Visit.objects.select_related("patient")
        .only(*VISIT_FIELDS, "patient__id", "patient__sex")
        .prefetch_related(
            Prefetch("observations", queryset=Observation.objects.select_related("definition")),
            Prefetch("patient__allergies", queryset=Allergy.objects.only(*ALLERGY_FIELDS)),
        )
        .get(pk=visit_id)
    )


def visit_for_advice(visit_id: int) -> Visit:
    """The visit with its patient, observations (with definitions) and allergies."""
    visit = visits_for_advice([visit_id]).get(visit_id)
    if visit is None:
        raise Visit.DoesNotExist(f"visit {visit_id} does not exist")
    return visit


def visits_for_advice(visit_ids: list[int]) -> dict[int, Visit]:
    """Several visits as :func:`visit_for_advice` reads one, by id, in the same one statement
    (an advice batch, predictions/services/advice.py); a missing visit is left out."""
    if connection.vendor != "postgresql":
        found = {}
        for visit_id in dict.fromkeys(visit_ids):
            try:
                found[visit_id] = visit_for_advice_orm(visit_id)
            except Visit.DoesNotExist:
                continue
        return found
    with connection.cursor() as cursor:
        cursor.execute(_sql(), [list(visit_ids)])
        rows = cursor.fetchall()
    return {visit.pk: visit for visit in map(_visit_from_row, rows)}


def _visit_from_row(row: tuple) -> Visit:
    n = len(VISIT_FIELDS)
    visit_values, (sex, observations, allergies) = row[:n], row[n:]
    converted = [_from_db(Visit, n, v) for n, v in zip(VISIT_FIELDS, visit_values, strict=True)]
    visit = _build(Visit, VISIT_FIELDS, converted)
    patient = _build(Patient, ("id", "sex"), [visit.patient_id, sex])
    Visit.patient.field.set_cached_value(visit, patient)
    obs_fields, def_fields = _concrete(Observation), _concrete(ObservationDefinition)
    built = []
    for values in _json_rows(observations):
        obs = Observation.from_db(
            connection.alias,
            [f.attname for f in obs_fields],
            [_from_json(f, v) for f, v in zip(obs_fields, values[: len(obs_fields)], strict=True)],
        )
        definition = ObservationDefinition.from_db(
            connection.alias,
            [f.attname for f in def_fields],
            [_from_json(f, v) for f, v in zip(def_fields, values[len(obs_fields) :], strict=True)],
        )
        Observation.definition.field.set_cached_value(obs, definition)
        Observation.visit.field.set_cached_value(obs, visit)
        built.append(obs)
    _prefetched(visit, "observations", built)
    listed = [_build(Allergy, ALLERGY_FIELDS, values) for values in _json_rows(allergies)]
    for allergy in listed:
        Allergy.patient.field.set_cached_value(allergy, patient)
    _prefetched(patient, "allergies", listed)
    return visit


def _build(model: type[M], names: tuple[str, ...], values: list[Any]) -> M:
    """An instance with only ``names`` loaded (the rest deferred), as ``only()`` builds it:
    Model.from_db takes a subset's values in the model's field order."""
    given = dict(zip(names, values, strict=True))
    order = [f.attname for f in model._meta.concrete_fields if f.attname in given]
    return model.from_db(connection.alias, order, [given[name] for name in order])


def _prefetched(instance: models.Model, name: str, rows: list[Any]) -> None:
    """What prefetch_related leaves behind: ``instance.<name>.all()`` returns ``rows``."""
    queryset = getattr(instance, name).get_queryset()
    queryset._result_cache = rows
    queryset._prefetch_done = True
    if not hasattr(instance, "_prefetched_objects_cache"):
        instance._prefetched_objects_cache = {}
    instance._prefetched_objects_cache[name] = queryset


def _concrete(model: type[models.Model]) -> list[models.Field]:
    return list(model._meta.concrete_fields)


def _json_rows(value: Any) -> list[list[Any]]:
    if value is None:
        return []
    return json.loads(value) if isinstance(value, str | bytes) else value


def _from_db(model: type[models.Model], name: str, value: Any) -> Any:
    """A column as the ORM converts it (decrypts the encrypted texts)."""
    field = model._meta.get_field(name.removesuffix("_id"))
    convert = getattr(field, "from_db_value", None)
    return value if convert is None or value is None else convert(value, None, connection)


def _from_json(field: models.Field, value: Any) -> Any:
    """A JSON-aggregated column as the ORM would have read it from its own column."""
    if value is None:
        return None
    if isinstance(field, models.DateTimeField):
        return datetime.fromisoformat(value)
    if isinstance(field, models.FloatField):
        return float(value)
    return value


@lru_cache(maxsize=1)
def _sql() -> str:
    """The one statement, built from the models' tables and columns."""
    q = connection.ops.quote_name
    v, p = Visit._meta, Patient._meta
    o, d, a = Observation._meta, ObservationDefinition._meta, Allergy._meta

    def col(meta: Any, name: str) -> str:
        return q(meta.get_field(name).column)

    obs = ", ".join(f"o.{q(f.column)}" for f in _concrete(Observation))
    defs = ", ".join(f"d.{q(f.column)}" for f in _concrete(ObservationDefinition))
    allergy = ", ".join(f"a.{col(a, n.removesuffix('_id'))}" for n in ALLERGY_FIELDS)
    visit = ", ".join(f"v.{col(v, n.removesuffix('_id'))}" for n in VISIT_FIELDS)
    # Observations in their model's order (definition code), allergies in theirs (substance),
    # as the ORM's prefetches order them: the same lists, the same input hash.
    return (
        f"SELECT {visit}, p.{col(p, 'sex')}, "  # noqa: S608  # nosec B608  # names only; values are parameters
        f"(SELECT json_agg(json_build_array({obs}, {defs}) ORDER BY d.{col(d, 'code')}) "
        f"FROM {q(o.db_table)} o JOIN {q(d.db_table)} d "
        f"ON d.{q(d.pk.column)} = o.{col(o, 'definition')} "
        f"WHERE o.{col(o, 'visit')} = v.{q(v.pk.column)}), "
        f"(SELECT json_agg(json_build_array({allergy}) ORDER BY a.{col(a, 'substance')}) "
        f"FROM {q(a.db_table)} a WHERE a.{col(a, 'patient')} = v.{col(v, 'patient')}) "
        f"FROM {q(v.db_table)} v JOIN {q(p.db_table)} p "
        f"ON p.{q(p.pk.column)} = v.{col(v, 'patient')} "
        f"WHERE v.{q(v.pk.column)} = ANY(%s)"
    )
