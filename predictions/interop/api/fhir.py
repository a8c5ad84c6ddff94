"""The FHIR wire format's pieces the read API needs: the media type, OperationOutcome, Bundles,
search-parameter parsing. No database access here."""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from typing import Any
from urllib.parse import urlencode

from django.http import QueryDict
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from medai_site.errors import InvalidInput, api_exception_handler
from predictions.interop.selectors import Search

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
DEFAULT_COUNT = 20
MAX_COUNT = 100  # a page of a search; $everything is not paged
MAX_OFFSET = 1_000_000


class FhirJSONRenderer(JSONRenderer):
    media_type = FHIR_JSON
    format = "fhir"


# The issue type (http://hl7.org/fhir/issue-type) an HTTP status stands for.
_ISSUE_CODE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    413: "too-costly",
    415: "not-supported",
    429: "throttled",
}


def operation_outcome(status: int, diagnostics: str, code: str | None = None) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error" if status < 500 else "fatal",
                "code": code
                or _ISSUE_CODE.get(status, "processing" if status < 500 else "exception"),
                "diagnostics": diagnostics,
            }
        ],
    }


def fhir_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Every error of /fhir/r4 as an OperationOutcome, with the status the API would give it."""
    response = api_exception_handler(exc, context)
    if response is None:
        # Unexpected: the class name only (the message could quote a record).
        logger.error("FHIR API error %s", type(exc).__name__)
        return Response(operation_outcome(500, "The server could not complete this request."), 500)
    message = "Request failed."
    if isinstance(response.data, dict) and isinstance(response.data.get("error"), dict):
        message = str(response.data["error"].get("message") or message)
    response.data = operation_outcome(response.status_code, message)
    return response


def bundle(
    *,
    bundle_type: str,
    resources: list[dict[str, Any]],
    base: str,
    total: int | None = None,
    links: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": timezone.now().isoformat()},
        "type": bundle_type,
        "timestamp": timezone.now().isoformat(),
    }
    if total is not None:
        result["total"] = total
    if links:
        result["link"] = links
    entry: dict[str, Any]
    result["entry"] = []
    for resource in resources:
        entry = {
            "fullUrl": f"{base}{resource['resourceType']}/{resource['id']}",
            "resource": resource,
        }
        if bundle_type == "searchset":
            entry["search"] = {"mode": "match"}
        result["entry"].append(entry)
    if not result["entry"]:
        del result["entry"]
    return result


def paging_links(
    request: Request, params: QueryDict, *, offset: int, count: int, total: int
) -> list[dict[str, str]]:
    """self, first, previous and next, each the same search with another ``_offset``."""
    base = request.build_absolute_uri(request.path)

    def url(at: int) -> str:
        query = params.copy()
        query.setlist("_count", [str(count)])
        query.setlist("_offset", [str(at)])
        return f"{base}?{urlencode(sorted(query.lists()), doseq=True)}"

    links = [{"relation": "self", "url": url(offset)}, {"relation": "first", "url": url(0)}]
    if offset > 0:
        links.append({"relation": "previous", "url": url(max(0, offset - count))})
    if count and offset + count < total:
        links.append({"relation": "next", "url": url(offset + count)})
    return links


# --- search parameters --------------------------------------------------------------------------

COMMON = {"_id", "_count", "_offset", "_format"}
PARAMETERS: dict[str, set[str]] = {
    "Patient": {"identifier"},
    "Encounter": {"patient", "subject", "date"},
    "Observation": {"patient", "subject", "code", "date", "encounter", "category"},
    "Condition": {"patient", "subject", "code", "encounter"},
    "AllergyIntolerance": {"patient"},
    "RiskAssessment": {"patient", "subject", "encounter"},
}
CATEGORIES = {"vital-signs": "vital", "laboratory": "lab"}
_DATE = re.compile(
    r"^(?P<prefix>eq|ne|gt|lt|ge|le)?(?P<value>\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?)$"
)


def _bad(message: str) -> InvalidInput:
    return InvalidInput(message)


def _ids(values: list[str], name: str, resource_type: str = "") -> tuple[int, ...]:
    ids = []
    for value in values:
        text = value.strip()
        if resource_type and text.startswith(f"{resource_type}/"):
            text = text[len(resource_type) + 1 :]
        if not (text.isdigit() and len(text) <= 18):
            # Unknown to this server (not an error): such a search matches nothing.
            ids.append(-1)
            continue
        ids.append(int(text))
    return tuple(ids)


def _tokens(values: list[str]) -> tuple[tuple[str | None, str], ...]:
    tokens = []
    for value in values:
        system, bar, code = value.partition("|")
        if not bar:
            system, code = None, value  # type: ignore[assignment]
        if not code.strip():
            raise _bad("A token search needs a code: [system|]code.")
        tokens.append((system, code.strip()))
    return tuple(tokens)


def parse_date(text: str) -> tuple[str, dt.datetime, dt.datetime]:
    """``ge2024-01-01`` → ("ge", start, end) where [start, end) is the value's precision."""
    match = _DATE.match(text.strip())
    if not match:
        raise _bad(f"'{text[:40]}' is not a FHIR date search value (e.g. ge2024-01-31).")
    prefix, value = match.group("prefix") or "eq", match.group("value")
    zone = timezone.get_current_timezone()
    try:
        if len(value) == 4:
            start = dt.datetime(int(value), 1, 1, tzinfo=zone)
            end = start.replace(year=start.year + 1)
        elif len(value) == 7:
            start = dt.datetime(int(value[:4]), int(value[5:7]), 1, tzinfo=zone)
            end = (start + dt.timedelta(days=32)).replace(day=1)
        elif len(value) == 10:
            start = dt.datetime.fromisoformat(value).replace(tzinfo=zone)
            end = start + dt.timedelta(days=1)
        else:
            start = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if start.tzinfo is None:
                start = start.replace(tzinfo=zone)
            end = start + dt.timedelta(seconds=1)
    except ValueError:
        raise _bad(f"'{text[:40]}' is not a valid date.") from None
    return prefix, start, end


def parse_search(resource_type: str, params: QueryDict) -> tuple[Search, int, int]:
    """The search, offset and page size; an unknown or malformed parameter is a 400."""
    allowed = COMMON | PARAMETERS[resource_type]
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise _bad(
            f"Unsupported search parameter(s) for {resource_type}: {', '.join(unknown)[:200]}. "
            f"Supported: {', '.join(sorted(allowed))}."
        )
    for name in set(params) - {"date"}:
        if len(params.getlist(name)) > 1:
            raise _bad(f"Give '{name}' once (comma-separate alternatives).")

    def values(name: str) -> list[str]:
        raw = params.get(name)
        return list(raw.split(",")) if raw else []

    fmt = params.get("_format", "")
    if fmt and fmt not in ("json", FHIR_JSON, "application/json"):
        raise _bad("Only JSON is served (_format=json).")
    count = _bounded(params.get("_count"), "_count", DEFAULT_COUNT, 0, MAX_COUNT)
    offset = _bounded(params.get("_offset"), "_offset", 0, 0, MAX_OFFSET)
    categories = []
    for category in values("category"):
        code = category.rpartition("|")[2]
        if code not in CATEGORIES:
            raise _bad(f"Unknown category '{code[:40]}'; use vital-signs or laboratory.")
        categories.append(CATEGORIES[code])
    search = Search(
        ids=_ids(values("_id"), "_id"),
        patient_ids=_ids(values("patient") + values("subject"), "patient", "Patient"),
        encounter_ids=_ids(values("encounter"), "encounter", "Encounter"),
        identifiers=_tokens(values("identifier")),
        codes=_tokens(values("code")),
        dates=tuple(parse_date(v) for v in params.getlist("date")),
        categories=tuple(categories),
    )
    return search, offset, count


def _bounded(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise _bad(f"{name} must be a whole number from {low} to {high}.")
    return int(raw)
