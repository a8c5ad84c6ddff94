"""A queryset's SQL compiled once per process, run with a new parameter on each call.

Building and compiling a queryset costs more Python than the database takes to answer a
primary-key or unique look-up (a token with its user and roles: about 1 ms of compilation for a
statement PostgreSQL answers in 0.1 ms). The hot paths that run the same look-up on every
request (:mod:`medai_site.api_auth`, :mod:`predictions.selectors`, the scoped patient read of
:mod:`patients.selectors`) define the queryset once with
the ORM, as usual, and :class:`CompiledQuery` compiles it the first time, then only executes the
compiled statement and builds the instances the way ``ModelIterable`` does (select_related
objects, deferred fields, annotations, field converters such as JSON decoding).

Nothing is cached but the SQL text: every call reads the database, so a revoked token, a role
removed or a model rolled back counts from the very next request.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators

M = TypeVar("M", bound=Model)


def _placeholder(index: int, kind: type = str) -> Any:
    """Stands for the call's parameter ``index`` while the statement is compiled: found in the
    compiled parameters and replaced on each call. Distinctive, so it cannot collide with a
    constant of the query itself: a string no input holds, an id far below any sequence, an
    instant in 1901."""
    if kind is str:
        return f"\x00medai-compiled-query-parameter-{index}\x00"
    if kind is int:
        return -8_765_432_109_876_543_000 - index
    if kind is dt.datetime:
        return dt.datetime(1901, 2, 3, 4, 5, 6, tzinfo=dt.UTC) + dt.timedelta(
            microseconds=index + 1
        )
    raise TypeError(f"No placeholder for parameters of type {kind.__name__}.")


BIGINT = (-(2**63), 2**63 - 1)


class CompiledQuery(Generic[M]):
    """``build(*values)`` -> a queryset filtering on ``values``; ``first(*values)`` and
    ``many(*values)`` run it.

    ``build`` must use each value as a parameter only (never in the statement's shape): the
    statement is compiled once, with placeholders. ``parameters`` says how many strings, each
    used exactly once; or gives their types (``str``, ``int``, ``datetime``), each then used any
    number of times, even none (a shape that does not need it), but only as itself: a value
    that reached the statement converted (written into the SQL, turned into text) is refused.
    Typed values are checked on each call (an int must fit a bigint: ``ValueError``).
    """

    def __init__(
        self,
        build: Callable[..., QuerySet[M]],
        *,
        parameters: int | Sequence[type] = 1,
        using: str = "default",
    ) -> None:
        self._build = build
        self._typed = not isinstance(parameters, int)
        self._types = [str] * parameters if isinstance(parameters, int) else list(parameters)
        self._parameters = len(self._types)
        self._using = using
        self._compiled: tuple[Any, ...] | None = None
        self._lock = threading.Lock()

    def _compile(self) -> tuple[Any, ...]:
        vendor = connections[self._using].vendor
        if dt.datetime in self._types and vendor != "postgresql":
            # Other backends turn an instant into text as they compile (SQLite: naive, without
            # its offset), so the placeholder would be neither found nor caught as converted and
            # the statement would keep 1901 for good (an expired grant honoured for ever).
            raise ValueError(f"A compiled query cannot take an instant on {vendor}.")
        placeholders = [_placeholder(i, kind) for i, kind in enumerate(self._types)]
        queryset = self._build(*placeholders)
        compiler = queryset.query.get_compiler(using=self._using)
        sql, params = compiler.as_sql()
        positions: list[list[int]] = []
        for placeholder in placeholders:
            found = [
                i for i, p in enumerate(params) if type(p) is type(placeholder) and p == placeholder
            ]
            if not self._typed and len(found) != 1:
                raise ValueError("A compiled query takes each parameter exactly once.")
            positions.append(found)
        if self._typed:
            bound = {i for found in positions for i in found}
            for placeholder in placeholders:
                text = str(placeholder)
                if text in sql or any(
                    i not in bound and text in str(p) for i, p in enumerate(params)
                ):
                    raise ValueError("A parameter reached the statement converted, not as itself.")
        select, klass_info = compiler.select, compiler.klass_info
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        init_list = [column[0].target.attname for column in select[start:end]]
        populators = get_related_populators(klass_info, select, self._using)
        fields = [s[0] for s in select[0 : compiler.col_count]]
        converters = compiler.get_converters(fields)
        return (
            sql,
            list(params),
            positions,
            klass_info["model"],
            start,
            end,
            init_list,
            populators,
            dict(compiler.annotation_col_map or {}),
            list(converters.items()),
        )

    def compiled(self) -> tuple[Any, ...]:
        if self._compiled is None:
            with self._lock:
                if self._compiled is None:
                    self._compiled = self._compile()
        return self._compiled

    def first(self, *values: Any) -> M | None:
        """The first instance the queryset yields for ``values``, or None (one statement)."""
        found = self._run(values, one=True)
        return found[0] if found else None

    def many(self, *values: Any) -> list[M]:
        """Every instance the queryset yields for ``values`` (one statement)."""
        return self._run(values, one=False)

    def _run(self, values: tuple[Any, ...], *, one: bool) -> list[M]:
        (
            sql,
            params,
            positions,
            model,
            start,
            end,
            init_list,
            populators,
            annotations,
            converters,
        ) = self.compiled()
        if len(values) != len(positions):
            raise TypeError(f"This query takes {len(positions)} parameter(s).")
        if self._typed:
            _check_types(values, self._types)
        params = list(params)
        for found, value in zip(positions, values, strict=True):
            for position in found:
                params[position] = value
        connection = connections[self._using]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = [cursor.fetchone()] if one else cursor.fetchall()
        found = []
        for fetched in rows:
            if fetched is None:
                continue
            row = list(fetched)
            # As SQLCompiler.apply_converters, with this thread's connection.
            for index, (functions, expression) in converters:
                for convert in functions:
                    row[index] = convert(row[index], expression, connection)
            obj = model.from_db(self._using, init_list, row[start:end])
            for populator in populators:
                populator.populate(row, obj)
            for name, column in annotations.items():
                setattr(obj, name, row[column])
            found.append(obj)
        return found


def _check_types(values: Sequence[Any], types: Sequence[type]) -> None:
    for value, kind in zip(values, types, strict=True):
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError("An int parameter must be an int.")
            if not BIGINT[0] <= value <= BIGINT[1]:
                raise ValueError("An int parameter is out of range.")
        elif not isinstance(value, kind):
            raise TypeError(f"A {kind.__name__} parameter must be a {kind.__name__}.")


_INSERTS: dict[tuple[type[Model], str], tuple[str, str, list[Any]]] = {}
_CONDITIONAL_INSERTS: dict[tuple[type[Model], str, str], tuple[str, list[Any]]] = {}


def _insert_parts(model: type[Model], connection: Any) -> tuple[str, str, str, list[Any]]:
    """The quoted table, column list and primary key of an INSERT of ``model``, with its fields."""
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    return quote(meta.db_table), columns, quote(meta.pk.column), fields


def mark_saved(obj: M, pk_value: Any, using: str = "default") -> None:
    """``obj`` as ``save()`` leaves it: its key set, no longer adding, bound to ``using`` (for
    rows written by a statement of our own)."""
    obj.pk = pk_value
    obj._state.adding = False
    obj._state.db = using


def insert_returning_pks(objs: Sequence[M], *, using: str = "default") -> list[M]:
    """INSERT ``objs`` (one model) in one statement, built once per model, and set their keys.

    For append-only records written on every request (the prediction API's model-use rows):
    the rows ``obj.save()`` would write, without the save machinery (no signals: the model must
    have no receivers that matter, and values such as ``auto_now_add`` are the caller's).
    PostgreSQL returns the keys in the order of the VALUES rows, as ``bulk_create`` relies on.
    """
    if not objs:
        return []
    model = type(objs[0])
    if any(type(obj) is not model for obj in objs):
        raise TypeError("One model per statement.")
    key = (model, using)
    connection = connections[using]
    if key not in _INSERTS:
        table, columns, pk, fields = _insert_parts(model, connection)
        # B608: table and column names from the model's metadata, quoted; values are parameters.
        head = f"INSERT INTO {table} ({columns}) VALUES "  # noqa: S608  # nosec B608
        _INSERTS[key] = (head, f" RETURNING {pk}", fields)
    head, tail, fields = _INSERTS[key]
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    values = [
        f.get_db_prep_save(getattr(obj, f.attname), connection) for obj in objs for f in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(head + ", ".join([row] * len(objs)) + tail, values)
        keys = [r[0] for r in cursor.fetchall()]
    for obj, pk_value in zip(objs, keys, strict=True):
        mark_saved(obj, pk_value, using)
    return list(objs)


def insert_returning_pk_where(
    obj: M, condition: str, params: Sequence[Any], *, using: str = "default"
) -> M | None:
    """INSERT ``obj`` only if ``condition`` holds when the statement runs: a check and a write
    that must agree, in one round trip (a model-use row only while that model still answers).

    ``condition`` is constant SQL written by the caller, never input; its values are
    ``params``. Returns None, having written nothing, when the condition did not hold.
    """
    model = type(obj)
    key = (model, using, condition)
    connection = connections[using]
    if key not in _CONDITIONAL_INSERTS:
        table, columns, pk, fields = _insert_parts(model, connection)
        # Values in a SELECT list have no column to take their type from: each is cast to its
        # column's type (character columns to text, so that an over-long value is refused by
        # the column as in a plain INSERT, not silently cut by a varchar(n) cast).
        kinds = [f.db_type(connection) for f in fields]
        casts = ", ".join(
            "%s::" + ("text" if kind.startswith("varchar") else kind) for kind in kinds
        )
        # B608: names from the model's metadata, quoted; the caller's constant condition.
        head = f"INSERT INTO {table} ({columns}) SELECT {casts}"  # nosec B608
        sql = f"{head} WHERE {condition} RETURNING {pk}"
        _CONDITIONAL_INSERTS[key] = (sql, fields)
    sql, fields = _CONDITIONAL_INSERTS[key]
    values = [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, *params])
        row = cursor.fetchone()
    if row is None:
        return None
    mark_saved(obj, row[0], using)
    return obj


def insert_returning_pk(obj: M, *, using: str = "default") -> M:
    """:func:`insert_returning_pks` for one row."""
    return insert_returning_pks([obj], using=using)[0]
