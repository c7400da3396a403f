"""The earn fast lane: a plain ``POST /api/v1/purchases`` answered below Django's request stack.

A POS posts one purchase per sale, so this one request is the API's hot path (issue 5 measures it against raw
SQL under pgbench). Measured on the bench machine, Django's middleware and request/response machinery alone
cost more CPU per request than the whole earn's SQL (docs/decisions/0008-earn-fast-lane.md). So the WSGI
application (``config.wsgi``) is wrapped by ``EarnFastLane``, which takes that one path and:

* checks what the middleware would (allowed host, HTTPS redirect) and what DRF would (API key, scope, the
  client's rate limit, the ``Idempotency-Key`` header), with the same functions the DRF view uses;
* accepts only a **plain, valid earn** in the strict shape the serializer would accept without changes
  (no coupons or points payment, no unknown fields, values already in canonical form);
* records it with the same service, ``purchase_record``, and stores the answer as the idempotency record, all
  in one transaction, and answers 201 with the body and headers the DRF view would give (tests compare them).

Anything else — a missing or bad key, a validation error, a business refusal, a replay or a concurrent
duplicate of the key, an unexpected error — is **declined**: the transaction (if any) is rolled back and the
untouched request goes to Django, which gives the full answer (the rate-limit count taken here is handed on,
so it is not counted twice). The fast lane therefore never answers anything but a fresh 201; every error code
and message comes from the one DRF implementation. ``API_FAST_LANE=false`` turns it off.
"""

import io
import json
import logging
from types import SimpleNamespace

from django.conf import settings
from django.core import signals
from django.core.handlers.wsgi import WSGIRequest
from django.db import connection, connections, transaction
from django.utils import timezone, translation
from rest_framework.utils.encoders import JSONEncoder

from loyalty.api.auth import api_client_touch, api_client_verify
from loyalty.api.idempotency import HEADER, fingerprint_of
from loyalty.api.lookups import store_for
from loyalty.api.plain import plain_purchase
from loyalty.api.throttling import COUNTED, auth_failures_check, client_rate_check
from loyalty.db import hot_fetch, insert_row
from loyalty.exceptions import LoyaltyError
from loyalty.models import IdempotencyRecord, IdempotencyState, Scope
from loyalty.services.ledger import MemberRef

logger = logging.getLogger(__name__)

PATH = "/api/v1/purchases"
_encoder = JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # DRF's JSONRenderer, compact


class _Decline(Exception):
    """Not for the fast lane: roll back and let Django answer."""


class EarnFastLane:
    """WSGI middleware: ``POST /api/v1/purchases`` through the fast lane, everything else to ``app``."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if (environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != PATH or not settings.API_FAST_LANE
                or connection.vendor != "postgresql"):  # its statements are PostgreSQL's (loyalty/db.py)
            return self.app(environ, start_response)
        signals.request_started.send(sender=self.__class__, environ=environ)  # Django's per-request housekeeping
        for conn in connections.all(initialized_only=True):
            # No "SELECT 1" health check first: a dead connection fails the lane's first statement, and the
            # request goes to Django, whose own check then reconnects.
            conn.health_check_done = True
        request = WSGIRequest(environ)
        answer = None
        try:
            body = request.body
        except Exception:  # too large, or a broken stream: Django gives the answer
            return self.app(environ, start_response)
        try:
            answer = fast_earn(request, body)
        except _Decline:
            pass
        except Exception:  # never a 500 from here: Django answers (a write that committed is replayed there)
            logger.exception("earn fast lane: unexpected error; the request was handed to Django")
        environ["wsgi.input"] = io.BytesIO(body)  # the request, unread, for Django
        if answer is None:
            return self.app(environ, start_response)
        status, headers, payload = answer
        start_response(status, headers)
        signals.request_finished.send(sender=self.__class__)
        return [payload]


def fast_earn(request: WSGIRequest, body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    """The 201 answer of a plain earn, written; raises ``_Decline`` for anything else."""
    if settings.SECURE_SSL_REDIRECT and not request.is_secure():
        raise _Decline
    request.get_host()  # DisallowedHost for a host not in ALLOWED_HOSTS: Django answers 400
    if request.content_type != "application/json":
        raise _Decline
    auth_failures_check(request)  # Throttled: Django answers 429
    client, _refusal = api_client_verify(request.META.get("HTTP_AUTHORIZATION", "").strip())
    if client is None or not client.has_scope(Scope.PURCHASES_WRITE):
        raise _Decline
    api_client_touch(client)
    verdict = request.META[COUNTED] = client_rate_check(client)
    if not verdict[0]:
        raise _Decline
    key = request.headers.get(HEADER, "").strip()
    if not key or len(key) > 255:
        raise _Decline
    try:
        data = json.loads(body.decode(), parse_constant=_refuse)  # UTF-8 only, as DRF's parser reads it
    except ValueError:  # not UTF-8, not JSON, NaN or Infinity: Django answers 400
        raise _Decline from None
    earn = plain_purchase(data)
    if earn is None:
        raise _Decline
    language = translation.get_language_from_request(request)
    translation.activate(language)
    store = store_for(SimpleNamespace(auth=client), earn["store"], cached=True)
    # Imported here: the API's view modules import the service layer, which is only ready once apps are loaded.
    from loyalty.api.purchases import purchase_data
    from loyalty.services import purchase_record

    try:
        with transaction.atomic():
            purchase = purchase_record.__wrapped__(  # in this transaction: no savepoint of its own
                member=MemberRef(**earn["member"]), store=store, external_id=earn["external_id"],
                occurred_at=earn["occurred_at"], total=earn["total"], lines=earn["lines"], channel=earn["channel"],
                promo_codes=earn.get("promo_codes"), idempotency_key=f"api:{client.pk}:{key}", now=timezone.now(),
                partner_account=client.partner_account,
            )
            if purchase.points_balance is None:  # an earlier purchase under this key, replayed: Django answers
                raise _Decline
            text = _encoder.encode(purchase_data(purchase, coupons=False))  # encoded once: stored and sent
            if not _answer_keep(client=client, key=key, fingerprint=fingerprint_of("POST", request.path, data),
                                text=text):
                raise _Decline  # the key was taken meanwhile: Django replays or refuses it
    except LoyaltyError:
        raise _Decline from None
    payload = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()
    return "201 Created", _headers(request, language, len(payload)), payload


def _refuse(constant: str):
    raise ValueError(f"{constant} is not JSON")


def _answer_keep(*, client, key: str, fingerprint: str, text: str) -> bool:
    """Store the 201 (``text``: its JSON) as the key's idempotency record, in the write's transaction; False when
    the key has one (a request with this key the lane did not see, maybe still running: Django answers it)."""
    sql, params = insert_row(IdempotencyRecord, {
        "client_id": client.pk, "key": key, "fingerprint": fingerprint, "state": IdempotencyState.DONE,
        "status_code": 201}, refs={"body": ("%s::jsonb", [text])}, source=None)
    return bool(hot_fetch(f"{sql} ON CONFLICT DO NOTHING RETURNING id", params))


def _headers(request: WSGIRequest, language: str, length: int) -> list[tuple[str, str]]:
    """What the DRF view and the middleware put on a 201 (tests/api/test_fastlane.py compares them)."""
    headers = [("Content-Type", "application/json"), ("Allow", "POST, OPTIONS"),
               ("X-Frame-Options", settings.X_FRAME_OPTIONS), ("Content-Length", str(length)),
               ("Vary", "Accept-Language"), ("Content-Language", language)]
    if settings.SECURE_HSTS_SECONDS and request.is_secure():
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            hsts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            hsts += "; preload"
        headers.append(("Strict-Transport-Security", hsts))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        headers.append(("Referrer-Policy", policy if isinstance(policy, str) else ",".join(policy)))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    return headers
