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
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators

M = TypeVar("M", bound=Model)

# Stands for the call's parameter while the statement is compiled: found in the compiled
# parameters and replaced on each call. Distinctive, so it cannot collide with a constant of the
# query itself.
_PLACEHOLDER = "\x00medai-compiled-query-parameter\x00"


class CompiledQuery(Generic[M]):
    """``build(value)`` -> a queryset filtering on ``value``; ``first(value)`` runs it.

    ``build`` must use ``value`` exactly once, as a filter parameter (not in the statement's
    shape): the statement is compiled once, with a placeholder.
    """

    def __init__(self, build: Callable[[Any], QuerySet[M]], *, using: str = "default") -> None:
        self._build = build
        self._using = using
        self._compiled: tuple[Any, ...] | None = None
        self._lock = threading.Lock()

    def _compile(self) -> tuple[Any, ...]:
        queryset = self._build(_PLACEHOLDER)
        compiler = queryset.query.get_compiler(using=self._using)
        sql, params = compiler.as_sql()
        positions = [i for i, p in enumerate(params) if p == _PLACEHOLDER]
        if len(positions) != 1:
            raise ValueError("A compiled query takes its parameter exactly once.")
        select, klass_info = compiler.select, compiler.klass_info
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        init_list = [column[0].target.attname for column in select[start:end]]
        populators = get_related_populators(klass_info, select, self._using)
        fields = [s[0] for s in select[0 : compiler.col_count]]
        converters = compiler.get_converters(fields)
        return (
            sql,
            list(params),
            positions[0],
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

    def first(self, value: Any) -> M | None:
        """The first instance the queryset yields for ``value``, or None (one statement)."""
        (
            sql,
            params,
            position,
            model,
            start,
            end,
            init_list,
            populators,
            annotations,
            converters,
        ) = self.compiled()
        params = list(params)
        params[position] = value
        connection = connections[self._using]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        if converters:  # as SQLCompiler.apply_converters, with this thread's connection
            row = list(row)
            for index, (functions, expression) in converters:
                for convert in functions:
                    row[index] = convert(row[index], expression, connection)
        obj = model.from_db(self._using, init_list, row[start:end])
        for populator in populators:
            populator.populate(row, obj)
        for name, position_ in annotations.items():
            setattr(obj, name, row[position_])
        return obj


_INSERTS: dict[tuple[type[Model], str], tuple[str, list[Any]]] = {}


def insert_returning_pk(obj: M, *, using: str = "default") -> M:
    """INSERT ``obj`` in one statement compiled once per model, and set its primary key.

    For append-only records written on every request (the prediction API's model-use row):
    the same row ``obj.save()`` would write, without the save machinery (no signals: the model
    must have no receivers that matter, and values such as ``auto_now_add`` are the caller's).
    """
    model = type(obj)
    key = (model, using)
    connection = connections[using]
    if key not in _INSERTS:
        meta = model._meta
        fields = [f for f in meta.concrete_fields if not f.primary_key]
        quote = connection.ops.quote_name
        # Names from the model's own metadata, quoted; values are parameters (S608/B608).
        columns = ", ".join(quote(f.column) for f in fields)
        slots = ", ".join(["%s"] * len(fields))
        table, pk = quote(meta.db_table), quote(meta.pk.column)
        sql = f"INSERT INTO {table} ({columns}) VALUES ({slots}) RETURNING {pk}"  # noqa: S608  # nosec B608
        _INSERTS[key] = (sql, fields)
    sql, fields = _INSERTS[key]
    values = [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = using
    return obj
