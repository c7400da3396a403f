"""The outbox and webhook delivery: events written with the change, signed deliveries, retries, disabling."""

import datetime as dt
import hashlib
import hmac
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.db import transaction

from loyalty.models import DeliveryStatus, Event, EventType, WebhookDelivery, WebhookEndpoint
from loyalty.services import points_redeem
from loyalty.services.events import (
    DISABLE_AFTER,
    MAX_ATTEMPTS,
    SIGNATURE_HEADER,
    events_dispatch,
    webhook_delivery_replay,
    webhook_secret_new,
    webhook_sign,
    webhook_verify,
    webhooks_deliver_due,
)
from tests.factories import MemberFactory
from tests.loyalty.helpers import buy

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]


def independent_verify(*, secret: str, body: bytes, header: str, now: float) -> bool:
    """What a partner writes from the docs, without our code: parse, recompute, compare, check age."""
    fields = {}
    for part in header.split(","):
        name, _, value = part.partition("=")
        fields[name] = value
    if not fields.get("t", "").isdigit() or abs(now - int(fields["t"])) > 300:
        return False
    signed = fields["t"].encode() + b"." + body
    return hmac.compare_digest(hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest(), fields.get("v1", ""))


class Receiver:
    """A real HTTP server on 127.0.0.1 that records what it receives and answers with ``status``."""

    def __init__(self, status=200):
        self.status, self.received = status, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def endpoint_for(url, **fields):
    return WebhookEndpoint.objects.create(url=url, secret=webhook_secret_new(), **fields)


def test_events_are_written_with_the_change_and_not_without_it(member, store, now):
    buy(member, store, "68.90", at=now)
    assert Event.objects.filter(type=EventType.POINTS_EARNED, member=member).count() == 1

    with pytest.raises(RuntimeError), transaction.atomic():
        buy(member, store, "10.00", at=now)
        raise RuntimeError("the purchase rolls back")
    assert Event.objects.filter(type=EventType.POINTS_EARNED, member=member).count() == 1


def test_each_kind_of_change_records_its_event(member, store, now, staff):
    from loyalty.services import points_adjust

    points_adjust(member=member, points=50, reason="thanks", staff_user=staff, idempotency_key="a", now=now)
    points_redeem(member=member, points=20, reason="cup", idempotency_key="r", now=now)
    types = set(Event.objects.filter(member=member).values_list("type", flat=True))
    assert {EventType.MEMBER_CREATED, EventType.POINTS_ADJUSTED, EventType.POINTS_REDEEMED} <= types


def test_a_delivery_is_signed_and_an_independent_verifier_accepts_it(member, store, now, receiver):
    endpoint = endpoint_for(receiver.url)
    buy(member, store, "68.90", at=now)

    events_dispatch(now=now)
    counts = webhooks_deliver_due(now=now)

    assert counts["delivered"] == WebhookDelivery.objects.filter(endpoint=endpoint).count() >= 1
    headers, body = next((h, b) for h, b in receiver.received if h["Loyalty-Event"] == EventType.POINTS_EARNED)
    payload = json.loads(body)
    assert payload["type"] == "points.earned" and payload["data"]["points"] == 68
    assert independent_verify(secret=endpoint.secret, body=body, header=headers[SIGNATURE_HEADER], now=now.timestamp())
    assert webhook_verify(secret=endpoint.secret, body=body, header=headers[SIGNATURE_HEADER], now=now)


def test_a_tampered_or_stale_delivery_fails_verification(now):
    secret, body = webhook_secret_new(), b'{"type":"points.earned","data":{"points":68}}'
    header = webhook_sign(secret=secret, body=body, timestamp=int(now.timestamp()))

    assert independent_verify(secret=secret, body=body, header=header, now=now.timestamp())
    assert not independent_verify(secret=secret, body=body.replace(b"68", b"99"), header=header, now=now.timestamp())
    assert not independent_verify(secret="whsec_other", body=body, header=header, now=now.timestamp())
    stale = now + dt.timedelta(minutes=5, seconds=1)
    assert not independent_verify(secret=secret, body=body, header=header, now=stale.timestamp())
    assert not webhook_verify(secret=secret, body=body, header=header, now=stale)
    assert not webhook_verify(secret=secret, body=body, header="garbage", now=now)


def test_endpoints_get_only_the_events_they_asked_for(member, store, now, receiver):
    endpoint_for(receiver.url, event_types=[EventType.TIER_CHANGED])
    buy(member, store, "10.00", at=now)
    events_dispatch(now=now)
    assert not WebhookDelivery.objects.exists()


def test_failures_back_off_then_give_up_and_repeated_give_ups_disable_the_endpoint(now):
    endpoint = endpoint_for("http://127.0.0.1:9/unreachable")
    members = [MemberFactory() for _ in range(DISABLE_AFTER)]  # one member.created event each
    events_dispatch(now=now)
    statuses = iter([500] * 1000)

    def failing(url, body, headers):
        return next(statuses)

    clock = now
    for _attempt in range(MAX_ATTEMPTS):
        webhooks_deliver_due(now=clock, send=failing)
        clock += dt.timedelta(hours=3)  # past every backoff (1, 2, 4 … 64 minutes)
    assert members
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.GAVE_UP}
    assert WebhookDelivery.objects.first().attempts == MAX_ATTEMPTS
    endpoint.refresh_from_db()
    assert not endpoint.is_active and endpoint.disabled_reason


def test_backoff_doubles(now):
    endpoint_for("http://127.0.0.1:9/x")
    MemberFactory()
    events_dispatch(now=now)
    webhooks_deliver_due(now=now, send=lambda *a: 503)
    delivery = WebhookDelivery.objects.get()
    assert delivery.next_attempt_at == now + dt.timedelta(minutes=1)
    assert webhooks_deliver_due(now=now + dt.timedelta(seconds=59), send=lambda *a: 503) == {
        "delivered": 0, "retrying": 0, "gave_up": 0}
    webhooks_deliver_due(now=now + dt.timedelta(minutes=1), send=lambda *a: 503)
    delivery.refresh_from_db()
    assert delivery.next_attempt_at == now + dt.timedelta(minutes=1) + dt.timedelta(minutes=2)


def test_replay_sends_a_delivery_again(member, now, receiver):
    endpoint_for(receiver.url)
    events_dispatch(now=now)
    webhooks_deliver_due(now=now)
    delivery = WebhookDelivery.objects.get(event__type=EventType.MEMBER_CREATED, event__member=member)
    sent = len(receiver.received)

    webhook_delivery_replay(delivery=delivery, now=now)
    webhooks_deliver_due(now=now)

    assert len(receiver.received) == sent + 1


def test_dispatch_is_safe_to_rerun(member, now, receiver):
    endpoint_for(receiver.url)
    events_dispatch(now=now)
    count = WebhookDelivery.objects.count()
    assert events_dispatch(now=now) == 0
    assert WebhookDelivery.objects.count() == count


def test_expiry_records_one_event_per_lot(member, store, now):
    from loyalty.services import points_expire_due

    buy(member, store, "50.00", at=now)
    points_expire_due(now=now + dt.timedelta(days=400))
    (event,) = Event.objects.filter(type=EventType.POINTS_EXPIRED)
    assert event.payload["points"] == 50 and Decimal(event.payload["points"]) == 50


def test_points_expiring_soon_is_recorded_once_per_member_and_horizon(member, store, now):
    from loyalty.services.schedules import points_expiring_soon_record
    from tests.loyalty.helpers import program_set

    program_set(expiry_months=1)
    buy(member, store, "40.00", at=now)  # expires at the end of the day one month later
    thirty_before = now.replace(day=5)  # bought 2026-03-04 → expires 2026-04-04, 30 days after 03-05

    assert points_expiring_soon_record(now=thirty_before) == 1
    assert points_expiring_soon_record(now=thirty_before) == 0  # a rerun records nothing new
    (event,) = Event.objects.filter(type=EventType.POINTS_EXPIRING_SOON)
    assert event.payload == {"points": 40, "expires_on": "2026-04-04", "days": 30}
    assert points_expiring_soon_record(now=thirty_before + dt.timedelta(days=1)) == 0  # 29 days: nothing
    assert points_expiring_soon_record(now=now.replace(month=3, day=28)) == 1  # 7 days before
