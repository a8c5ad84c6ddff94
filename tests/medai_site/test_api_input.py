"""Input serializers built once per thread (medai_site.api_input): the same validated data and
the same errors as a serializer built for the request."""

from __future__ import annotations

import copy
import threading

import pytest
from rest_framework import serializers

from medai_site.api_input import validate_input
from predictions.cds_hooks.views import FeedbackRequestSerializer, HookRequestSerializer

HOOK = {
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "fhirServer": "https://launch.smarthealthit.org/v/r4/fhir",
    "hook": "patient-view",
    "fhirAuthorization": {"access_token": "x", "token_type": "Bearer"},
    "context": {"userId": "Practitioner/1", "patientId": "smart-1288992"},
    "prefetch": {"patient": {"resourceType": "Patient"}},
}


def _variants():
    yield HOOK
    yield {**HOOK, "prefetch": None}
    yield {k: v for k, v in HOOK.items() if k not in ("fhirServer", "prefetch")}
    yield {**HOOK, "hook": "  patient-view  "}  # trimmed as DRF trims
    yield {**HOOK, "unknown": 1}  # ignored
    yield None  # a null body: DRF says "No data provided"
    yield []
    yield "text"
    yield {}
    yield {**HOOK, "hook": 5}
    yield {**HOOK, "hook": ""}
    yield {**HOOK, "hook": "x" * 65}
    yield {**HOOK, "fhirServer": "not a url"}
    yield {**HOOK, "context": []}
    yield {**HOOK, "context": {"patientId": {"$ne": 1}}}
    yield {**HOOK, "context": {"patientId": "p", "selections": [1]}}
    yield {**HOOK, "prefetch": "Patient/1"}
    yield {**HOOK, "fhirAuthorization": None}


def _reference(serializer_class, data):
    serializer = serializer_class(data=copy.deepcopy(data))
    if serializer.is_valid():
        return ("valid", serializer.validated_data)
    return ("invalid", serializer.errors)


def _cached(serializer_class, data):
    try:
        return ("valid", validate_input(serializer_class, copy.deepcopy(data)))
    except serializers.ValidationError as exc:
        return ("invalid", exc.detail)


@pytest.mark.parametrize("data", list(_variants()))
def test_the_same_verdict_as_a_serializer_built_for_the_request(data):
    expected = _reference(HookRequestSerializer, data)
    # Twice: what the first call left in the kept serializer must not change the second.
    assert _cached(HookRequestSerializer, data) == expected
    assert _cached(HookRequestSerializer, data) == expected


def test_nested_and_many_serializers_too():
    item = {"card": "0b5c8a2e-4d0a-4f5e-9d6a-2f1b9d0c7e11", "outcome": "accepted"}
    item["outcomeTimestamp"] = "2025-01-31T09:30:00Z"
    for data in (
        {"feedback": [item]},
        {"feedback": []},
        {"feedback": [{**item, "outcome": "maybe"}, item]},
        {"feedback": [{**item, "overrideReason": {"reason": {"code": 5}}}]},
    ):
        assert _cached(FeedbackRequestSerializer, data) == _reference(
            FeedbackRequestSerializer, data
        )


def test_one_serializer_per_class_and_thread(monkeypatch):
    built = []
    original = HookRequestSerializer.__init__

    def counting(self, *args, **kwargs):
        built.append(threading.get_ident())
        original(self, *args, **kwargs)

    monkeypatch.setattr(HookRequestSerializer, "__init__", counting)
    monkeypatch.setattr("medai_site.api_output._local", threading.local())
    for _ in range(3):
        validate_input(HookRequestSerializer, HOOK)
    thread = threading.Thread(target=lambda: validate_input(HookRequestSerializer, HOOK))
    thread.start()
    thread.join()
    assert len(built) == 2
    assert len(set(built)) == 2
