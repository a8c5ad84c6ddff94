"""A queryset's SQL compiled once per process, run with a new parameter on each call.

Building and compiling a queryset costs more Python than the database takes to answer a
primary-key or unique look-up (a token with its user and roles: about 1 ms of compilation for a
statement PostgreSQL answers in 0.1 ms). The hot paths that run the same look-up on every
request (:mod:`medai_site.api_auth`, :mod:`predictions.selectors`) define the queryset once with
the ORM, as usual, and :class:`CompiledQuery` compiles it the first time, then only executes the
compiled statement and builds the instances the way ``ModelIterable`` does (select_related
objects, deferred fields, annotations, field converters such as JSON decoding).

Nothing is cached but the SQL text: every call reads the database, so a revoked token, a role
removed or a model rolled back counts from the very next request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators

M = TypeVar("M", bound=Model)


def _placeholder(index: int) -> str:
    """Stands for the call's parameter ``index`` while the statement is compiled: found in the
    compiled parameters and replaced on each call. Distinctive, so it cannot collide with a
    constant of the query itself."""
    return f"\x00medai-compiled-query-parameter-{index}\x00"


class CompiledQuery(Generic[M]):
    """``build(*values)`` -> a queryset filtering on ``values``; ``first(*values)`` and
    ``many(*values)`` run it.

    ``build`` must use each value exactly once, as a filter parameter (not in the statement's
    shape): the statement is compiled once, with placeholders. ``parameters`` says how many.
    """

    def __init__(
        self,
        build: Callable[..., QuerySet[M]],
        *,
        parameters: int = 1,
        using: str = "default",
    ) -> None:
        self._build = build
        self._parameters = parameters
        self._using = using
        self._compiled: tuple[Any, ...] | None = None
        self._lock = threading.Lock()

    def _compile(self) -> tuple[Any, ...]:
        placeholders = [_placeholder(i) for i in range(self._parameters)]
        queryset = self._build(*placeholders)
        compiler = queryset.query.get_compiler(using=self._using)
        sql, params = compiler.as_sql()
        positions = []
        for placeholder in placeholders:
            found = [i for i, p in enumerate(params) if p == placeholder]
            if len(found) != 1:
                raise ValueError("A compiled query takes each parameter exactly once.")
            positions.append(found[0])
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
        params = list(params)
        for position, value in zip(positions, values, strict=True):
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


_INSERTS: dict[tuple[type[Model], str], tuple[str, str, list[Any]]] = {}


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
        meta = model._meta
        fields = [f for f in meta.concrete_fields if not f.primary_key]
        quote = connection.ops.quote_name
        # Names from the model's own metadata, quoted; values are parameters (S608/B608).
        columns = ", ".join(quote(f.column) for f in fields)
        table, pk = quote(meta.db_table), quote(meta.pk.column)
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
        obj.pk = pk_value
        obj._state.adding = False
        obj._state.db = using
    return list(objs)


def insert_returning_pk(obj: M, *, using: str = "default") -> M:
    """:func:`insert_returning_pks` for one row."""
    return insert_returning_pks([obj], using=using)[0]
