"""The serving floor: what an authenticated, rate-limited, recorded prediction costs before any
framework, validation or model (a benchmark aid, never part of the product).

A bare WSGI application served by the same gunicorn settings as MedAI
(``medai_site/gunicorn_conf.py``: 2 gthread workers, the access log) that does, per request,
only the three round trips every MedAI prediction must make: count the request against the
token's budget in Redis (the pipeline of :mod:`medai_site.rate_limit`), read the token by its
hash from PostgreSQL, and write the model-use row durably (autocommit INSERT ... RETURNING);
then it answers a fixed JSON body. No Django, no validation, no model, no rules: whatever
MedAI's predict adds on top of this is the framework and the clinical work.

``tests/bench/bench_serving.py`` starts it beside MedAI and MLflow; settings come from the
environment (``FLOOR_DATABASE_URL``, ``FLOOR_REDIS_URL``, ``FLOOR_TOKEN_HASH``,
``FLOOR_VERSION_ID``). Connections are kept per thread, as MedAI's are.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
import redis

_local = threading.local()
ANSWER = json.dumps({"predicted": "floor", "probabilities": [{"label": "floor", "p": 1.0}]})
TOKEN_SQL = (
    "SELECT t.id, t.user_id, t.scopes, t.expires_at, t.revoked_at, u.is_active "
    "FROM medai_site_apitoken t JOIN auth_user u ON u.id = t.user_id WHERE t.token_hash = %s"
)
INSERT_SQL = (
    "INSERT INTO predictions_modeluse (at, actor_id, api_token_id, client, interface, "
    "version_id, input_hash, rows, request_id) VALUES (%s, %s, %s, '', 'api', %s, %s, 1, %s) "
    "RETURNING id"
)


def _connections() -> tuple[psycopg.Connection, redis.Redis]:
    if not hasattr(_local, "pg"):
        _local.pg = psycopg.connect(os.environ["FLOOR_DATABASE_URL"], autocommit=True)
        _local.redis = redis.Redis.from_url(os.environ["FLOOR_REDIS_URL"])
    return _local.pg, _local.redis


def application(
    environ: dict[str, Any], start_response: Callable[[str, list[tuple[str, str]]], Any]
) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(length) or b"{}")
    pg, cache = _connections()
    key = "floor-budget"
    pipe = cache.pipeline(transaction=True)
    pipe.set(key, 0, ex=60, nx=True)
    pipe.incr(key)
    pipe.ttl(key)
    pipe.execute()
    token = pg.execute(TOKEN_SQL, [os.environ["FLOOR_TOKEN_HASH"]]).fetchone()
    if token is None:
        start_response("401 Unauthorized", [("Content-Type", "application/json")])
        return [b'{"error": "token"}']
    pg.execute(
        INSERT_SQL,
        [
            dt.datetime.now(dt.UTC),
            token[1],
            token[0],
            int(os.environ["FLOOR_VERSION_ID"]),
            str(hash(json.dumps(body, sort_keys=True)))[:64],
            uuid.uuid4().hex,
        ],
    ).fetchone()
    payload = ANSWER.encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    )
    return [payload]
