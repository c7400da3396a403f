"""Idempotency-Key on API writes: replay, conflicting body, missing header, per-client keys, concurrency."""

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import close_old_connections, connections
from django.utils import timezone
from rest_framework.test import APIClient

from loyalty.models import Purchase, Transfer, TransferCode
from loyalty.services.api_clients import api_client_create
from tests.api.conftest import api_for
from tests.api.test_foundation import assert_error
from tests.conftest import requires_postgres
from tests.factories import MemberFactory, StoreFactory

_n = itertools.count()


def basket():
    return {"member": {"phone": "13800138000"}, "store": "SH001", "external_id": f"POS-{next(_n)}",
            "occurred_at": timezone.now().replace(microsecond=0).isoformat(), "total": "88.00"}


@pytest.fixture
def setup(db):
    StoreFactory(code="SH001")
    return MemberFactory(phone="+8613800138000")


@pytest.mark.django_db
def test_replay_returns_the_same_status_and_body_with_the_replay_header(api, setup):
    body = basket()
    first = api.post("/api/v1/purchases", body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    again = api.post("/api/v1/purchases", body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first.headers
    assert Purchase.objects.count() == 1


@pytest.mark.django_db
def test_an_error_is_replayed_too(api, setup):
    body = {**basket(), "total": "nope"}
    first = api.post("/api/v1/purchases", body, format="json", HTTP_IDEMPOTENCY_KEY="bad-1")
    again = api.post("/api/v1/purchases", body, format="json", HTTP_IDEMPOTENCY_KEY="bad-1")
    assert first.status_code == again.status_code == 400 and first.json() == again.json()


@pytest.mark.django_db
@pytest.mark.parametrize("path, body", [
    ("/api/v1/purchases", None),
    ("/api/v1/members", {"phone": "13900139000", "name": "A"}),
])
def test_a_different_body_with_the_same_key_is_409(api, setup, path, body):
    body = body or basket()
    api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="same")
    other = {**body, "name": "B"} if "name" in body else {**body, "total": "89.00"}
    assert_error(api.post(path, other, format="json", HTTP_IDEMPOTENCY_KEY="same"), 409, "idempotency_key_reused")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/purchases", "/api/v1/members", "/api/v1/purchases/1/refunds",
                                  "/api/v1/members/1/adjustments"])
def test_missing_or_overlong_key_is_400(api, setup, path):
    assert api.post(path, {}, format="json").status_code == 400
    assert api.post(path, {}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 256).status_code == 400
    assert api.post(path, {}, format="json").json()["error"]["details"]["field"] == "Idempotency-Key"


@pytest.mark.django_db
def test_keys_are_per_client(setup):
    one, two = api_for(), api_for()
    body = basket()
    assert one.post("/api/v1/purchases", body, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    # The other client's same key is its own; the same order is then a duplicate, not a replay.
    response = two.post("/api/v1/purchases", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 409 and "Idempotent-Replayed" not in response.headers


@pytest.mark.django_db
def test_preview_needs_no_key(api, setup):
    assert api.post("/api/v1/purchases/preview", basket(), format="json").status_code == 200


@pytest.mark.django_db
def test_refund_and_adjustment_replay(api, setup):
    purchase = api.post("/api/v1/purchases", basket(), format="json", HTTP_IDEMPOTENCY_KEY="p").json()
    url = f"/api/v1/purchases/{purchase['id']}/refunds"
    first = api.post(url, {"amount": "8.00"}, format="json", HTTP_IDEMPOTENCY_KEY="r")
    again = api.post(url, {"amount": "8.00"}, format="json", HTTP_IDEMPOTENCY_KEY="r")
    assert first.status_code == 201 and again.json() == first.json()
    adj = f"/api/v1/members/{setup.pk}/adjustments"
    a = api.post(adj, {"points": 5, "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="a")
    b = api.post(adj, {"points": 5, "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="a")
    assert a.json() == b.json() and Transfer.objects.filter(code=TransferCode.ADJUST).count() == 1


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_identical_purchases_write_once_and_answer_identically():
    StoreFactory(code="SH001")
    MemberFactory(phone="+8613800138000")
    _client, key = api_client_create(name="POS")
    body = basket()
    n = 20
    barrier = threading.Barrier(n)

    def call(_i):
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
            barrier.wait(timeout=30)
            response = client.post("/api/v1/purchases", body, format="json", HTTP_IDEMPOTENCY_KEY="till-7-0001")
            return response.status_code, response.json()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(call, range(n)))
    close_old_connections()
    assert Purchase.objects.count() == 1
    assert Transfer.objects.filter(code=TransferCode.EARN).count() == 1
    assert {status for status, _body in results} == {201}, results
    assert all(body_ == results[0][1] for _s, body_ in results)
