"""Per-client rate limit (ApiClient.rate_limit_per_minute, fixed one-minute window, atomic cache count)."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import close_old_connections, connections
from rest_framework.test import APIClient

from loyalty.api import throttling
from loyalty.models import ApiClient, Scope
from loyalty.services.api_clients import api_client_create
from members.models import Member
from tests.api.test_foundation import assert_error
from tests.conftest import requires_postgres

URL = "/api/v1/stores"


def client_with_limit(limit: int) -> tuple[ApiClient, APIClient]:
    client, key = api_client_create(name="POS", scopes=list(Scope.values))
    ApiClient.objects.filter(pk=client.pk).update(rate_limit_per_minute=limit)
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client, http


@pytest.fixture
def clock(monkeypatch):
    """A clock the test moves: starts 10 s into a window."""
    now = [1_800_000_010.0]
    monkeypatch.setattr(throttling, "clock", lambda: now[0])
    return now


def test_the_request_over_the_limit_is_429_with_retry_after(db, clock):
    _client, http = client_with_limit(3)
    assert [http.get(URL).status_code for _ in range(3)] == [200, 200, 200]
    response = http.get(URL)
    assert_error(response, 429, "rate_limited")
    assert response["Retry-After"] == "51"  # 50 s left in the window, rounded up


def test_other_clients_are_not_affected(db, clock):
    _a, first = client_with_limit(1)
    _b, second = client_with_limit(1)
    assert first.get(URL).status_code == 200
    assert first.get(URL).status_code == 429
    assert second.get(URL).status_code == 200


def test_the_count_starts_again_in_the_next_window(db, clock):
    _client, http = client_with_limit(2)
    assert [http.get(URL).status_code for _ in range(3)] == [200, 200, 429]
    clock[0] += 49  # still the same minute
    assert http.get(URL).status_code == 429
    clock[0] += 1  # the next minute
    assert [http.get(URL).status_code for _ in range(3)] == [200, 200, 429]


def test_refused_requests_are_not_served(db, clock):
    """A 429 is decided before the view runs: nothing is written (checked on a write)."""
    _client, http = client_with_limit(1)
    http.get(URL)
    response = http.post("/api/v1/members", {"phone": "13800138000", "name": "Li"}, format="json",
                         HTTP_IDEMPOTENCY_KEY="m-1")
    assert_error(response, 429, "rate_limited")
    assert not Member.objects.exists()


@requires_postgres
@pytest.mark.skipif(not settings.CACHES["default"]["BACKEND"].endswith("RedisCache"),
                    reason="a shared atomic count needs CACHE_URL=redis://… (CI sets it); locmem counts per process")
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_requests_against_a_limit_of_ten_let_exactly_ten_through():
    _client, key = api_client_create(name="POS", scopes=list(Scope.values))
    ApiClient.objects.filter(key_prefix=_client.key_prefix).update(rate_limit_per_minute=10)
    n = 20
    barrier = threading.Barrier(n)

    def call(_i):
        try:
            http = APIClient()
            http.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
            barrier.wait(timeout=30)
            return http.get(URL).status_code
        finally:
            connections.close_all()

    # Not across a window boundary: wait for a fresh minute if fewer than 5 s are left.
    if 60 - time.time() % 60 < 5:
        time.sleep(60 - time.time() % 60 + 0.1)
    with ThreadPoolExecutor(max_workers=n) as pool:
        statuses = list(pool.map(call, range(n)))
    close_old_connections()
    assert sorted(statuses) == [200] * 10 + [429] * 10


def test_an_address_sending_bad_keys_is_slowed_down(db, clock, settings):
    settings.API_AUTH_FAILURES_PER_MINUTE = 5
    _client, good = client_with_limit(0)
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION="Bearer lk_guess_nothing")

    answers = [guesser.get(URL).status_code for _ in range(5)] + [APIClient().get(URL).status_code]

    assert answers == [401] * 5 + [429]  # no key at all counts too, and the sixth is refused before any look-up
    refused = good.get(URL, REMOTE_ADDR="127.0.0.1")
    assert_error(refused, 429, "rate_limited")  # the address, not the key, is limited: even a good key waits
    assert good.get(URL, REMOTE_ADDR="10.0.0.7").status_code == 200  # another address is not affected
    clock[0] += 60
    assert guesser.get(URL).status_code == 401  # a new window: guessing is possible again, slowly
