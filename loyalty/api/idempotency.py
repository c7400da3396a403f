"""HTTP idempotency for API writes (``Idempotency-Key`` header), scoped per API client.

Same key + same request within 7 days → the first response replayed exactly (status and body); same key +
another request → 409 ``idempotency_key_reused``. A duplicate that arrives while the first is still running
waits for it (up to ``WAIT``) and then replays it, else 409 ``idempotency_key_in_use``. A record left in
flight by a crashed process is taken over after ``STALE``; the domain services are idempotent on the same
key, so the retried write is not repeated. Responses of 5xx are not kept.
"""

import datetime as dt
import functools
import hashlib
import json
import time
from contextlib import nullcontext

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework.response import Response

from loyalty.exceptions import IdempotencyKeyInUse, IdempotencyKeyReused, InvalidInput
from loyalty.models import IdempotencyRecord, IdempotencyState

HEADER = "Idempotency-Key"
RETENTION = dt.timedelta(days=7)
STALE = dt.timedelta(seconds=60)
WAIT = 10.0  # seconds a duplicate waits for the first request to finish


def request_fingerprint(request) -> str:
    return fingerprint_of(request.method, request.path, request.data)


def fingerprint_of(method: str, path: str, data) -> str:
    """What makes two requests "the same" for a key: method, path and the parsed JSON body."""
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{body}".encode()).hexdigest()


def api_idempotency_key(request) -> str:
    """The client's key, namespaced for the domain services (their own idempotency keys)."""
    return f"api:{request.auth.pk}:{request.headers.get(HEADER, '').strip()}"


def _claim(*, client, key: str, fingerprint: str) -> tuple[IdempotencyRecord | None, Response | None]:
    deadline = time.monotonic() + WAIT
    pause = 0.02
    while True:
        try:
            # One INSERT commits by itself in autocommit mode; inside a transaction (tests, ATOMIC_REQUESTS)
            # a savepoint keeps a refused insert from breaking it.
            with transaction.atomic() if transaction.get_connection().in_atomic_block else nullcontext():
                return IdempotencyRecord.objects.create(client=client, key=key, fingerprint=fingerprint), None
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(client=client, key=key).first()
        if existing is None:
            continue  # deleted meanwhile (a 5xx, or expired): claim again
        now = timezone.now()
        if existing.created_at < now - RETENTION:
            IdempotencyRecord.objects.filter(pk=existing.pk, created_at=existing.created_at).delete()
            continue
        if existing.fingerprint != fingerprint:
            raise IdempotencyKeyReused()
        if existing.state == IdempotencyState.DONE:
            return None, Response(existing.body, status=existing.status_code, headers={"Idempotent-Replayed": "true"})
        if existing.created_at < now - STALE and IdempotencyRecord.objects.filter(
                pk=existing.pk, created_at=existing.created_at, state=IdempotencyState.IN_FLIGHT).update(created_at=now):
            existing.created_at = now
            return existing, None
        if time.monotonic() >= deadline:
            raise IdempotencyKeyInUse()
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def idempotent(handler):
    """Decorate an APIView write method (``post``): runs after authentication, so ``request.auth`` is set."""

    @functools.wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get(HEADER, "").strip()
        if not key:
            raise InvalidInput(_("The Idempotency-Key header is required on every write."), field=HEADER)
        if len(key) > 255:
            raise InvalidInput(_("The Idempotency-Key header is longer than 255 characters."), field=HEADER)
        record, replay = _claim(client=request.auth, key=key, fingerprint=request_fingerprint(request))
        if replay is not None:
            return replay
        try:
            response = handler(view, request, *args, **kwargs)
        except Exception as exc:  # rendered by the API error handler, then kept like any answer
            response = view.handle_exception(exc)
        if response.status_code >= 500:
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
            return response
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            state=IdempotencyState.DONE, status_code=response.status_code, body=response.data)
        return response

    return wrapper
