"""API: POST /purchases/batch — per-item results, exactly once, whole-batch refusals, scope and store binding."""

import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from loyalty import config
from loyalty.models import Event, Purchase, Scope, Transfer
from members.models import Member, MemberStatus
from tests.api.conftest import api_for, purchase_body
from tests.api.test_foundation import assert_error
from tests.api.test_purchases import PURCHASE_KEYS
from tests.factories import MemberFactory, StoreFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]
URL = "/api/v1/purchases/batch"
_keys = itertools.count()


def post(client, body, key=None, **headers):
    return client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=key or f"b{next(_keys)}", **headers)


def item(external_id, **overrides):
    """One batch item: ``purchase_body`` with this order number; a None override leaves the field out."""
    return {k: v for k, v in purchase_body(external_id=external_id, **overrides).items() if v is not None}


def test_batch_records_each_item(api, shop, buyer):
    response = post(api, {"purchases": [item("A"), item("B", total="50.00", lines=None)]})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["duplicates"], body["errors"]) == (2, 0, 0)
    first, second = body["results"]
    assert first["index"] == 0 and first["status"] == "created" and first["error"] is None
    assert set(first["purchase"]) == PURCHASE_KEYS
    assert first["purchase"]["points_earned"] == 100 and first["purchase"]["external_id"] == "A"
    assert first["purchase"]["breakdown_lines"]
    assert second["purchase"]["points_balance"] == 150  # the balance just after that item
    assert Purchase.objects.filter(member=buyer).count() == 2
    assert Event.objects.filter(type="points.earned", member=buyer).count() == 2


def test_the_answer_costs_no_statement_per_item(api, shop, buyer, monkeypatch):
    """With no configuration cached (as in a new process), 5 and 50 purchases cost the same statements."""
    counts = []
    for size in (5, 5, 50):  # the first warms what a process keeps (the API client)
        monkeypatch.setattr(config, "_cached", None)  # as in a new process: no configuration cached
        with CaptureQueriesContext(connection) as captured:
            response = post(api, {"purchases": [item(f"N{len(counts)}-{i}") for i in range(size)]})
        assert response.status_code == 200 and response.json()["created"] == size, response.content
        counts.append(len(captured.captured_queries))
    assert counts[2] <= counts[1] + 2, counts  # not one per purchase (SQLite splits a bulk insert by its 999 parameters)


def test_duplicates_report_the_original_and_apply_nothing_twice(api, shop, buyer):
    single = api.post("/api/v1/purchases", item("A"), format="json", HTTP_IDEMPOTENCY_KEY="single-A")
    assert single.status_code == 201
    body = post(api, {"purchases": [item("A"), item("B"), item("B")]}).json()
    assert [r["status"] for r in body["results"]] == ["duplicate", "created", "error"]
    assert body["results"][0]["purchase"]["id"] == single.json()["id"]
    assert body["results"][2]["error"]["code"] == "duplicate_in_batch"
    again = post(api, {"purchases": [item("A"), item("B")]}).json()  # a new key: still once each
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert (again["created"], again["duplicates"], again["errors"]) == (0, 2, 0)
    assert Purchase.objects.filter(member=buyer).count() == 2
    assert Transfer.objects.filter(member=buyer, code="EARN").count() == 2
    # POST /purchases after the batch: the order is known.
    late = api.post("/api/v1/purchases", item("B"), format="json", HTTP_IDEMPOTENCY_KEY="single-B")
    assert_error(late, 409, "duplicate_purchase")


def test_item_errors_use_the_single_endpoint_codes(api, shop, buyer):
    frozen = MemberFactory(phone="+8613900139000")
    Member.objects.filter(pk=frozen.pk).update(status=MemberStatus.FROZEN)
    items = [
        item("OK"),
        item("NOBODY", member={"phone": "13700137000"}),
        item("FROZEN", member={"id": frozen.pk}),
        item("ELSEWHERE", store="NOPE"),
        item("BAD", total="ten"),
        item("SUM", total="99.00"),
        item("COUPON", coupon_codes=["WELCOME"]),
        "not an object",
    ]
    response = post(api, {"purchases": items})
    assert response.status_code == 200, response.content
    body = response.json()
    codes = [r["error"]["code"] if r["error"] else None for r in body["results"]]
    assert codes == [None, "member_not_found", "member_frozen", "store_not_found", "invalid_request",
                     "invalid_input", "checkout_not_in_batch", "invalid_request"]
    bad = body["results"][4]["error"]
    assert "total" in bad["details"] and bad["message"]
    assert (body["created"], body["errors"]) == (1, 7)
    assert all(r["purchase"] is None for r in body["results"][1:])
    assert Purchase.objects.count() == 1


def test_messages_follow_accept_language(api, shop, buyer):
    body = post(api, {"purchases": [item("X", member={"phone": "13700137000"})]},
                HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    assert body["results"][0]["error"]["code"] == "member_not_found"


@pytest.mark.parametrize("body", [
    {"purchases": []},
    {"purchases": "all of them"},
    {"purchases": [{}] * 1001},
    {"orders": [{}]},
    [item("A")],
])
def test_malformed_batch_is_400_and_writes_nothing(api, shop, buyer, body):
    response = post(api, body)
    assert_error(response, 400, "invalid_request")
    assert not Purchase.objects.exists()


def test_idempotency_key_replays_the_batch(api, shop, buyer):
    body = {"purchases": [item("A"), item("B")]}
    first = post(api, body, key="eod-1")
    again = post(api, body, key="eod-1")
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert_error(post(api, {"purchases": [item("C")]}, key="eod-1"), 409, "idempotency_key_reused")
    assert_error(api.post(URL, body, format="json"), 400, "invalid_input")  # no key
    assert Purchase.objects.count() == 2


def test_scope_required(shop, buyer):
    client = api_for(scopes=[Scope.MEMBERS_READ])
    assert_error(post(client, {"purchases": [item("A")]}), 403, "insufficient_scope")
    assert not Purchase.objects.exists()


def test_store_binding_per_item(shop, buyer):
    other = StoreFactory(code="BJ002")
    client = api_for(scopes=[Scope.PURCHASES_WRITE], store=shop)
    body = post(client, {"purchases": [item("A"), item("B", store=other.code)]}).json()
    assert [r["status"] for r in body["results"]] == ["created", "error"]
    assert body["results"][1]["error"]["code"] == "store_not_allowed"
    assert not Purchase.objects.filter(store=other).exists()


def test_bound_client_sees_no_duplicate_of_another_store(shop, buyer):
    other = StoreFactory(code="BJ002")
    full = api_for()
    post(full, {"purchases": [item("A", store=other.code)]})
    bound = api_for(scopes=[Scope.PURCHASES_WRITE], store=shop)
    body = post(bound, {"purchases": [item("A", store=other.code)]}).json()
    assert body["results"][0]["error"]["code"] == "store_not_allowed" and body["results"][0]["purchase"] is None


@pytest.mark.parametrize("raw", [
    item("P1"),
    item("P2", lines=None, member={"id": 42}),
    item("P3", member={"member_number": "600000000042"}, channel="APP", promo_codes=["SPRING"]),
    item("P4", lines=[{"sku": "A", "amount": "100"}], total="100", occurred_at="2026-03-04T10:00:00Z"),
    item("P5", total="12.5", lines=[{"sku": "A", "category": "", "quantity": 3, "amount": "12.50"}]),
    item("P6", lines=[]),
])
def test_quick_item_check_gives_what_the_serializer_gives(raw):
    from loyalty.api.plain import plain_purchase
    from loyalty.api.purchases import PurchaseInputSerializer

    one = PurchaseInputSerializer(data=raw)
    assert one.is_valid(), one.errors
    expected = dict(one.validated_data)
    expected["member"] = dict(expected["member"])
    expected["lines"] = [dict(line) for line in expected.get("lines") or []] or None
    assert plain_purchase(raw) == expected


@pytest.mark.parametrize("raw", [
    item("Q1", total=12.5), item("Q2", total="1.234"), item("Q3", member={"id": True}),
    item("Q4", occurred_at="2026-03-04T10:00:00"), item("Q5", store=" SH001"), {**item("Q6"), "external_id": ""},
    item("Q7", lines=[{"sku": "A", "amount": "100.00", "extra": 1}]), item("Q8", coupon_codes=["X"]),
    item("Q9", member={"phone": "1", "id": 1}), item("Q10", channel="FAX"), item("Q11", total="-1"),
])
def test_quick_item_check_leaves_the_rest_to_the_serializer(raw):
    from loyalty.api.plain import plain_purchase

    assert plain_purchase(raw) is None
