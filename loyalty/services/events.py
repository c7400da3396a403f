"""The outbox and webhooks: record events with the change, fan them out, deliver them signed.

Signature header (documented in docs/api.md): ``Loyalty-Signature: t=<unix seconds>,v1=<hex>`` where
``v1 = HMAC-SHA256(secret, f"{t}.{raw body}")``. Receivers reject a signature older than 5 minutes.
"""

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction

from loyalty.models import DeliveryStatus, Event, WebhookDelivery, WebhookEndpoint
from members.models import Member

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Loyalty-Signature"
TOLERANCE = dt.timedelta(minutes=5)
MAX_ATTEMPTS = 8
DISABLE_AFTER = 5  # deliveries given up in a row
TIMEOUT_SECONDS = 5
LEASE = dt.timedelta(minutes=2)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def event_record(*, type: str, payload: dict, occurred_at: dt.datetime, member: Member | None = None,
                 member_id: int | None = None) -> Event:
    """Write an event in the caller's transaction (the outbox): it exists exactly when the change does."""
    return Event.objects.create(type=type, member_id=member.pk if member is not None else member_id,
                                payload=_jsonable(payload), occurred_at=occurred_at)


def event_body(event: Event) -> bytes:
    return json.dumps({
        "id": event.pk, "type": event.type, "occurred_at": event.occurred_at.isoformat(),
        "created_at": event.created_at.isoformat(), "member": event.member_id, "data": event.payload,
    }, separators=(",", ":"), ensure_ascii=False).encode()


def webhook_secret_new() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def webhook_sign(*, secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def webhook_verify(*, secret: str, body: bytes, header: str, now: dt.datetime) -> bool:
    """The receiver's check, as documented: a matching v1 signature made within the last 5 minutes."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now.timestamp() - timestamp) > TOLERANCE.total_seconds():
        return False
    expected = webhook_sign(secret=secret, body=body, timestamp=timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def events_dispatch(*, now: dt.datetime, batch_size: int = 1000) -> int:
    """Fan undispatched events out to the active endpoints that want them. Safe to rerun."""
    fanned = 0
    while True:
        with transaction.atomic():
            events = list(Event.objects.select_for_update(**_skip_locked()).filter(dispatched=False).order_by("pk")[:batch_size])
            if not events:
                return fanned
            endpoints = list(WebhookEndpoint.objects.filter(is_active=True))
            deliveries = [WebhookDelivery(endpoint=e, event=ev, next_attempt_at=now)
                          for ev in events for e in endpoints if e.wants(ev.type)]
            WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
            Event.objects.filter(pk__in=[ev.pk for ev in events]).update(dispatched=True)
            fanned += len(events)


def _skip_locked() -> dict:
    return {"skip_locked": True} if connection.features.has_select_for_update_skip_locked else {}


Sender = Callable[[str, bytes, dict[str, str]], int]


def http_send(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def webhooks_deliver_due(*, now: dt.datetime, limit: int = 200, send: Sender = http_send) -> dict[str, int]:
    """Send due deliveries. Each is leased first (so two workers never send one twice at once), sent outside
    any transaction, then settled: delivered, retried later (1 min, 2, 4, … doubling) or given up."""
    with transaction.atomic():
        due = list(WebhookDelivery.objects.select_for_update(**_skip_locked())
                   .filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now).order_by("next_attempt_at", "pk")[:limit])
        WebhookDelivery.objects.filter(pk__in=[d.pk for d in due]).update(next_attempt_at=now + LEASE)
    counts = {"delivered": 0, "retrying": 0, "gave_up": 0}
    for delivery in WebhookDelivery.objects.filter(pk__in=[d.pk for d in due]).select_related("endpoint", "event"):
        body = event_body(delivery.event)
        headers = {"Content-Type": "application/json", "User-Agent": "loyalty-webhooks/1",
                   "Loyalty-Event": delivery.event.type, "Loyalty-Delivery": str(delivery.pk),
                   SIGNATURE_HEADER: webhook_sign(secret=delivery.endpoint.secret, body=body, timestamp=int(now.timestamp()))}
        try:
            status, error = send(delivery.endpoint.url, body, headers), ""
        except (OSError, ValueError) as exc:  # refused, timeout, bad URL
            status, error = None, str(exc)[:500]
        counts[_settle(delivery=delivery, status=status, error=error, now=now)] += 1
    return counts


@transaction.atomic
def _settle(*, delivery: WebhookDelivery, status: int | None, error: str, now: dt.datetime) -> str:
    delivery.attempts += 1
    delivery.last_status_code = status
    delivery.last_error = error or ("" if status and 200 <= status < 300 else f"HTTP {status}")
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
    if status is not None and 200 <= status < 300:
        delivery.status, delivery.delivered_at, outcome = DeliveryStatus.SUCCEEDED, now, "delivered"
        if endpoint.consecutive_failures:
            endpoint.consecutive_failures = 0
            endpoint.save(update_fields=["consecutive_failures", "updated_at"])
    elif delivery.attempts >= MAX_ATTEMPTS:
        delivery.status, outcome = DeliveryStatus.GAVE_UP, "gave_up"
        endpoint.consecutive_failures += 1
        fields = ["consecutive_failures", "updated_at"]
        if endpoint.consecutive_failures >= DISABLE_AFTER and endpoint.is_active:
            endpoint.is_active, endpoint.disabled_at = False, now
            endpoint.disabled_reason = f"{endpoint.consecutive_failures} deliveries in a row failed {MAX_ATTEMPTS} times"
            fields += ["is_active", "disabled_at", "disabled_reason"]
            logger.warning("webhook endpoint %s disabled: %s", endpoint.url, endpoint.disabled_reason)
        endpoint.save(update_fields=fields)
    else:
        delivery.next_attempt_at = now + dt.timedelta(minutes=2 ** (delivery.attempts - 1))
        outcome = "retrying"
    delivery.save(update_fields=["attempts", "last_status_code", "last_error", "status", "delivered_at",
                                 "next_attempt_at", "updated_at"])
    return outcome


def webhook_delivery_replay(*, delivery: WebhookDelivery, now: dt.datetime) -> WebhookDelivery:
    """Send a delivery again from scratch (staff action), whatever its status."""
    delivery.status, delivery.attempts, delivery.next_attempt_at = DeliveryStatus.PENDING, 0, now
    delivery.save(update_fields=["status", "attempts", "next_attempt_at", "updated_at"])
    return delivery


def webhook_endpoint_enable(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    endpoint.is_active, endpoint.disabled_at, endpoint.disabled_reason, endpoint.consecutive_failures = True, None, "", 0
    endpoint.save(update_fields=["is_active", "disabled_at", "disabled_reason", "consecutive_failures", "updated_at"])
    return endpoint
