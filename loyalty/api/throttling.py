"""Per-client rate limit: ``ApiClient.rate_limit_per_minute`` requests in each fixed one-minute window.

The count is one cache key per client and window, created with ``cache.add`` and bumped with
``cache.incr`` — both atomic in Redis, so concurrent requests on any number of processes share one exact
count. The embedded default (locmem) counts per process, which is exact for the single web process it
runs; a deployment with several processes or machines needs ``CACHE_URL=redis://…`` for a shared count.
Over the limit: 429 ``rate_limited`` with ``Retry-After`` (seconds to the next window).
"""

import logging
import time

from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from loyalty.models import ApiClient

logger = logging.getLogger(__name__)
WINDOW = 60  # seconds
clock = time.time  # tests move it


class ApiClientRateThrottle(BaseThrottle):
    cache = cache

    def allow_request(self, request, view) -> bool:
        client = request.auth
        if not isinstance(client, ApiClient):
            return True  # unauthenticated requests are refused by authentication/permissions anyway
        limit = client.rate_limit_per_minute
        if not limit:
            return True  # 0: no limit
        now = clock()
        window = int(now // WINDOW)
        self.wait_seconds = (window + 1) * WINDOW - now
        # The key prefix too: a reissued key (or a reused pk in a test database) starts its own count.
        key = f"api-throttle:{client.pk}:{client.key_prefix}:{window}"
        try:
            self.cache.add(key, 0, timeout=WINDOW + 5)
            try:
                count = self.cache.incr(key)
            except ValueError:  # expired between add and incr: start the window again
                self.cache.add(key, 0, timeout=WINDOW + 5)
                count = self.cache.incr(key)
        except Exception:  # the cache is down: serve rather than refuse everyone
            logger.exception("API rate limit: cache unavailable; request let through")
            return True
        return count <= limit

    def wait(self) -> float | None:
        return getattr(self, "wait_seconds", None)
