"""``Idempotency-Key`` for creating POSTs: a retried request creates nothing twice.

The first request with a key runs, and (in the same transaction as what it creates) records
(client, key, sha256 of method + path + body) → (status code, id of the created object). A retry
with the same key and body rebuilds its response from that object; the same key with another
body is a 409. Nothing of the request or response body is stored, so the table holds no PHI.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

from django.db import IntegrityError, transaction
from rest_framework.request import Request
from rest_framework.response import Response

from .api_auth import client_id
from .errors import Conflict, InvalidInput
from .models import IdempotencyRecord

HEADER = "Idempotency-Key"
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces


def request_digest(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    text = f"{request.method} {request.path}\n{body}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def idempotent_create(
    request: Request,
    *,
    create: Callable[[], tuple[int, int]],
    respond: Callable[[int, int], Response],
) -> Response:
    """Run ``create`` once per key; ``create() -> (status, object id)``, ``respond(status, id)``.

    ``create`` runs inside a transaction together with the record, so a failure leaves neither
    the object nor the key behind, and two concurrent requests with one key create one object.
    """
    key = request.headers.get(HEADER)
    if key is None:
        status, object_id = create()
        return respond(status, object_id)
    if not _VALID_KEY.match(key):
        raise InvalidInput(
            f"{HEADER} must be 1–255 printable characters without spaces.",
            fields={HEADER: ["1–255 printable characters, no spaces."]},
        )
    client, digest = client_id(request), request_digest(request)
    record = IdempotencyRecord.objects.filter(client=client, key=key).first()
    if record is None:
        try:
            with transaction.atomic():
                status, object_id = create()
                IdempotencyRecord.objects.create(
                    client=client,
                    key=key,
                    request_hash=digest,
                    status_code=status,
                    object_id=object_id,
                )
        except IntegrityError:
            # Another request with this key committed first; fall through and replay it.
            record = IdempotencyRecord.objects.filter(client=client, key=key).first()
            if record is None:
                raise
        else:
            return respond(status, object_id)
    if record.request_hash != digest:
        raise Conflict(
            f"This {HEADER} was already used for a different request.",
            fields={HEADER: ["Already used with a different request body."]},
        )
    response = respond(record.status_code, record.object_id)
    response["Idempotent-Replayed"] = "true"
    return response
