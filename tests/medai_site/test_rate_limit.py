"""Request budgets (medai_site.rate_limit): fixed windows counted in the shared cache.

Production's cache is Redis, so the Redis path runs against the real server (the ``live_cache``
fixture); the other backends' generic path runs on the tests' memory cache.
"""

from __future__ import annotations

import time
import uuid

import pytest

from medai_site.checks import rate_limits_parse
from medai_site.rate_limit import Budget, budget_spend


def _redis_key(cache, key: str) -> tuple[object, str]:
    full = cache.make_and_validate_key(key)
    return cache._cache.get_client(full, write=True), full


@pytest.mark.parametrize(
    ("rate", "requests", "seconds"),
    [("600/min", 600, 60), ("3000/m", 3000, 60), ("5/s", 5, 1), ("10/hour", 10, 3600)],
)
def test_rates_parse_in_drf_notation(rate, requests, seconds):
    assert Budget.parse(rate) == Budget(requests=requests, seconds=seconds)


@pytest.mark.parametrize("rate", ["600", "many/min", "600/fortnight", "", "0/min", "-5/min"])
def test_a_mistyped_rate_is_refused_with_its_value_named(rate):
    with pytest.raises(ValueError, match="Invalid rate"):
        Budget.parse(rate)


def test_the_system_check_names_a_mistyped_rate_setting(settings):
    settings.MEDAI_PREDICT_RATE = "3000 per minute"
    errors = rate_limits_parse()
    assert [e.id for e in errors] == ["medai.E003"]
    assert "MEDAI_PREDICT_RATE" in errors[0].msg


def test_redis_counts_a_budget_per_key_and_refuses_the_excess(live_cache):
    budget = Budget(requests=3, seconds=60)
    spends = [budget_spend("client-a", budget) for _ in range(4)]
    assert [s.allowed for s in spends] == [True, True, True, False]
    assert 1 <= spends[-1].retry_after <= 60
    assert budget_spend("client-b", budget).allowed  # another client: its own budget
    client, full = _redis_key(live_cache, "client-a")
    assert int(client.get(full)) == 4
    assert 0 < client.ttl(full) <= 60  # the window ends: a counter never lives forever


def test_redis_spends_a_request_in_one_round_trip(live_cache, monkeypatch):
    from redis.connection import AbstractConnection

    budget_spend("warm", Budget(requests=5, seconds=60))  # connect first
    sent: list[object] = []
    original = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    budget_spend("one-trip", Budget(requests=5, seconds=60))
    assert len(sent) == 1


def test_redis_gives_a_counter_left_without_expiry_its_window(live_cache):
    """A key that expired between SET NX and INCR is recreated by INCR without a TTL."""
    client, full = _redis_key(live_cache, "orphan")
    client.set(full, 7)  # no expiry, as INCR would leave it
    spend = budget_spend("orphan", Budget(requests=10, seconds=30))
    assert spend.allowed
    assert 0 < client.ttl(full) <= 30


def test_the_generic_path_opens_a_new_window_when_the_old_one_ends():
    budget = Budget(requests=2, seconds=1)
    key = f"generic-{uuid.uuid4().hex}"
    assert [budget_spend(key, budget).allowed for _ in range(3)] == [True, True, False]
    time.sleep(1.1)
    assert budget_spend(key, budget).allowed


def test_budgets_do_not_share_drf_s_throttle_keys():
    """During a rolling deploy, workers still on DRF's throttle keep a pickled list of timestamps
    under "throttle_<scope>_<ident>": a counter there would fail (INCR) or be misread."""
    from types import SimpleNamespace

    from medai_site.api_auth import ApiToken, ClientRateThrottle, PredictRateThrottle

    request = SimpleNamespace(auth=ApiToken(pk=5), user=None)
    keys = {t().get_cache_key(request, None) for t in (ClientRateThrottle, PredictRateThrottle)}
    assert keys == {"budget:client:token:5", "budget:predict:token:5"}
