"""Blind indexes: HMAC-SHA256 of the normalised value under BLIND_INDEX_KEY, one digest per kind."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from django.conf import settings
from django.test import override_settings

from medai_site.blind_index import blind_index, normalise

OTHER_KEY = "00" * 32


@pytest.mark.parametrize(
    ("raw", "kind", "expected"),
    [
        ("Ａｄａ　Ｌｏｖｅｌａｃｅ", "name", "ada lovelace"),
        ("  ADA   Lovelace\t", "name", "ada lovelace"),  # trimmed, inner whitespace collapsed
        ("STRASSE", "name", "strasse"),
        ("Straße", "name", "strasse"),  # case-folding, not just lower(): ß folds to ss
        ("ﬁona", "name", "fiona"),  # NFKC expands the ligature
        ("+44 (20) 7946-0958", "phone", "442079460958"),  # phones keep digits only
        ("０２０ ７９４６", "phone", "0207946"),
        ("ab-12.34 56/c", "national_id", "ab123456c"),  # ids keep letters and digits
    ],
)
def test_normalise(raw, kind, expected):
    assert normalise(raw, kind) == expected


def test_digest_is_hmac_sha256_of_kind_and_normalised_value_under_the_blind_index_key():
    expected = hmac.new(
        bytes.fromhex(settings.BLIND_INDEX_KEY), b"name:ada lovelace", hashlib.sha256
    ).hexdigest()
    assert blind_index(" ADA  Lovelace ", "name") == expected
    assert len(expected) == 64


def test_equivalent_spellings_share_a_digest():
    assert (
        blind_index("Ａｄａ", "name") == blind_index("ada", "name") == blind_index(" ADA ", "name")
    )
    assert blind_index("+1 (555) 010-0001", "phone") == blind_index("15550100001", "phone")
    assert blind_index("AB 12 34 56 C", "national_id") == blind_index("ab123456c", "national_id")


def test_changing_the_key_changes_the_digest():
    """The digest depends on BLIND_INDEX_KEY: a leaked index cannot be brute-forced without it."""
    before = blind_index("Ada", "name")
    with override_settings(BLIND_INDEX_KEY=OTHER_KEY):
        assert blind_index("Ada", "name") != before
    assert blind_index("Ada", "name") == before


def test_the_blind_index_key_is_not_an_encryption_key():
    assert settings.BLIND_INDEX_KEY not in settings.FIELD_ENCRYPTION_KEY
    assert len(bytes.fromhex(settings.BLIND_INDEX_KEY)) >= 32


def test_kinds_are_separated():
    """The same text as a phone and as a national id never shares a digest."""
    assert blind_index("12345678", "phone") != blind_index("12345678", "national_id")
    assert blind_index("12345678", "name") != blind_index("12345678", "phone")


def test_empty_values_have_no_digest():
    assert blind_index(None, "name") is None
    assert blind_index("   ", "name") is None
    assert blind_index("no digits", "phone") is None
