"""Webhook endpoints and the event log through the API, and the admin delivery log."""

import pytest

from loyalty.models import Event, WebhookDelivery, WebhookEndpoint
from loyalty.services.events import events_dispatch
from tests.api.conftest import api_for

pytestmark = pytest.mark.django_db


def post(client, path, body, key):
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_subscribe_list_and_delete(api):
    created = post(api, "/api/v1/webhook-endpoints", {"url": "https://pos.example.com/hook",
                                                       "event_types": ["points.earned"]}, "w1")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["event_types"] == ["points.earned"]

    listed = api.get("/api/v1/webhook-endpoints").json()
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]

    assert api.delete(f"/api/v1/webhook-endpoints/{body['id']}").status_code == 204
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("payload", [{"url": "not a url"}, {"url": "ftp://x.example.com"}, {},
                                     {"url": "https://x.example.com", "event_types": ["nope"]}, []])
def test_bad_subscriptions_are_400(api, payload):
    response = post(api, "/api/v1/webhook-endpoints", payload, "bad")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"
    assert not WebhookEndpoint.objects.exists()


def test_a_client_cannot_see_or_delete_another_clients_endpoint(api):
    other = api_for(scopes=["webhooks:manage"])
    theirs = post(other, "/api/v1/webhook-endpoints", {"url": "https://other.example.com/h"}, "k").json()

    assert api.get("/api/v1/webhook-endpoints").json() == []
    assert api.delete(f"/api/v1/webhook-endpoints/{theirs['id']}").status_code == 404
    assert WebhookEndpoint.objects.count() == 1


def test_scope_is_required():
    limited = api_for(scopes=["members:read"])
    assert limited.get("/api/v1/events").status_code == 403
    assert limited.get("/api/v1/webhook-endpoints").json()["error"]["code"] == "insufficient_scope"


def test_event_log_is_paginated_and_filterable(api, member, store, now):
    from tests.loyalty.helpers import buy

    buy(member, store, "10.00", at=now)
    page = api.get("/api/v1/events?type=points.earned").json()
    assert [e["type"] for e in page["results"]] == ["points.earned"]
    assert page["results"][0]["data"]["points"] == 10
    everything = api.get("/api/v1/events?page_size=1").json()
    assert len(everything["results"]) == 1 and everything["next"]


def test_admin_delivery_log_and_replay(admin_client, member, now):
    endpoint = WebhookEndpoint.objects.create(url="https://x.example.com/h", secret="whsec_x")
    events_dispatch(now=now)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="GAVE_UP", attempts=8)

    assert admin_client.get("/admin/loyalty/webhookdelivery/").status_code == 200
    assert admin_client.get(f"/admin/loyalty/event/{Event.objects.first().pk}/change/").status_code == 200
    response = admin_client.post("/admin/loyalty/webhookdelivery/", {"action": "replay", "_selected_action": [delivery.pk]})
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("PENDING", 0)
