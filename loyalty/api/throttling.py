"""Per-client rate limit: ``ApiClient.rate_limit_per_minute`` requests in each fixed one-minute window.

The count is one cache key per client and window, created with ``cache.add`` and bumped with
``cache.incr`` — both atomic in Redis, so concurrent requests on any number of processes share one exact
count. The embedded default (locmem) counts per process, which is exact for the single web process it
runs; a deployment with several processes or machines needs ``CACHE_URL=redis://…`` for a shared count.
Over the limit: 429 ``rate_limited`` with ``Retry-After`` (seconds to the next window).

Requests without a valid key are limited per address (``auth_failures_check``): after
``API_AUTH_FAILURES_PER_MINUTE`` bad or missing keys in a minute, that address gets 429 until the next window.
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from loyalty.models import ApiClient

logger = logging.getLogger(__name__)
WINDOW = 60  # seconds
clock = time.time  # tests move it


def window_count(key: str, *, bump: bool = True) -> tuple[int | None, float]:
    """Count one hit (or, ``bump=False``, only read the count) in the current one-minute window of ``key``.

    Returns ``(count, seconds to the next window)``; the count is None when the cache is down (callers let
    the request through rather than refuse everyone).
    """
    now = clock()
    window = int(now // WINDOW)
    wait = (window + 1) * WINDOW - now
    full_key = f"{key}:{window}"
    try:
        if not bump:
            return cache.get(full_key, 0), wait
        cache.add(full_key, 0, timeout=WINDOW + 5)
        try:
            return cache.incr(full_key), wait
        except ValueError:  # expired between add and incr: start the window again
            cache.add(full_key, 0, timeout=WINDOW + 5)
            return cache.incr(full_key), wait
    except Exception:
        logger.exception("API rate limit: cache unavailable; request let through")
        return None, wait


# WSGI environ key: the earn fast lane (loyalty/api/fastlane.py) counted this request already and, when it hands
# the request on to Django, leaves its verdict here so that it is not counted twice.
COUNTED = "loyalty.api.rate_counted"


def client_rate_check(client: ApiClient) -> tuple[bool, float | None]:
    """Count one request of ``client``: (allowed, seconds to the next window)."""
    limit = client.rate_limit_per_minute
    if not limit:
        return True, None  # 0: no limit
    # The key prefix too: a reissued key (or a reused pk in a test database) starts its own count.
    count, wait = window_count(f"api-throttle:{client.pk}:{client.key_prefix}")
    return count is None or count <= limit, wait


class ApiClientRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        client = request.auth
        if not isinstance(client, ApiClient):
            return True  # unauthenticated requests are refused by authentication/permissions anyway
        verdict = request.META.get(COUNTED) or client_rate_check(client)
        allowed, self.wait_seconds = verdict
        return allowed

    def wait(self) -> float | None:
        return getattr(self, "wait_seconds", None)


def auth_failures_check(request) -> None:
    """Refuse (429) an address that sent too many bad or missing API keys this minute: keys are long and
    random, but nobody gets to guess at full speed. ``API_AUTH_FAILURES_PER_MINUTE`` (0: no limit)."""
    limit = settings.API_AUTH_FAILURES_PER_MINUTE
    if not limit:
        return
    count, wait = window_count(f"api-auth-failures:{client_address(request)}", bump=False)
    if count is not None and count >= limit:
        raise exceptions.Throttled(wait=wait)


def auth_failure_record(request) -> None:
    if settings.API_AUTH_FAILURES_PER_MINUTE:
        window_count(f"api-auth-failures:{client_address(request)}")


def client_address(request) -> str:
    """The caller's address as the web server saw it. Behind a proxy, set the proxy to pass the client's address
    in REMOTE_ADDR (docs/operations.md); X-Forwarded-For is not trusted here, since anyone can send it."""
    return request.META.get("REMOTE_ADDR") or "unknown"
