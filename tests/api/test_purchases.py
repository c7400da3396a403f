"""API: purchases — record, preview, read, refund; store binding."""

import copy
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty.models import Purchase, Refund, Transfer
from members.models import MemberStatus
from tests.api.conftest import api_for, purchase_body
from tests.api.test_foundation import assert_error
from tests.factories import StoreFactory

pytestmark = pytest.mark.django_db

PURCHASE_KEYS = {"id", "member", "store", "external_id", "occurred_at", "total", "points_earned", "breakdown",
                 "breakdown_lines", "points_balance", "tier_change", "refunded_amount", "points_reversed",
                 "points_returned", "coupons", "coupon_discount", "points_paid", "points_paid_value"}
_keys = itertools.count()


def post(client, path, body, key=None):
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key or f"p{next(_keys)}")


def test_purchase_earns_points(api, shop, buyer):
    response = post(api, "/api/v1/purchases", purchase_body())
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == PURCHASE_KEYS
    assert body["points_earned"] > 0 and body["points_balance"] + 0 >= 0 and body["total"] == "100.00"
    assert body["breakdown_lines"] and isinstance(body["breakdown"], dict)
    assert Purchase.objects.get(pk=body["id"]).member == buyer


@pytest.mark.parametrize("ref", ["id", "member_number"])
def test_member_by_id_or_number(api, shop, buyer, ref):
    value = buyer.pk if ref == "id" else buyer.member_number
    assert post(api, "/api/v1/purchases", purchase_body(member={ref: value})).status_code == 201


def test_get_purchase(api, shop, buyer):
    created = post(api, "/api/v1/purchases", purchase_body()).json()
    got = api.get(f"/api/v1/purchases/{created['id']}").json()
    assert got["id"] == created["id"] and got["points_earned"] == created["points_earned"]
    assert_error(api.get("/api/v1/purchases/999999"), 404, "not_found")


def test_preview_writes_nothing_and_matches_the_real_answer(api, shop, buyer):
    body = purchase_body()
    preview = api.post("/api/v1/purchases/preview", body, format="json")
    assert preview.status_code == 200, preview.content
    assert preview.json()["id"] is None
    assert not Purchase.objects.exists() and not Transfer.objects.exists()
    real = post(api, "/api/v1/purchases", body).json()
    assert preview.json()["points_earned"] == real["points_earned"]
    assert preview.json()["breakdown"] == real["breakdown"]


def test_preview_refuses_bad_input_too(api, shop, buyer):
    assert_error(api.post("/api/v1/purchases/preview", {"total": "x"}, format="json"), 400, "invalid_request")


def test_unknown_member_and_store(api, shop, buyer):
    assert_error(post(api, "/api/v1/purchases", purchase_body(member={"phone": "13900000000"})), 404, "member_not_found")
    assert_error(post(api, "/api/v1/purchases", purchase_body(member={"phone": "garbage"})), 404, "member_not_found")
    assert_error(post(api, "/api/v1/purchases", purchase_body(store="NOPE")), 404, "store_not_found")


@pytest.mark.parametrize("change, field", [
    ({"member": {}}, "member"),
    ({"member": {"id": 1, "phone": "138"}}, "member"),
    ({"member": "13800138000"}, "member"),
    ({"total": "abc"}, "total"),
    ({"total": "1e30"}, "total"),
    ({"total": 10**40}, "total"),
    ({"total": "-5.00"}, "total"),
    ({"occurred_at": "yesterday"}, "occurred_at"),
    ({"occurred_at": "2026-03-04T10:00:00"}, "occurred_at"),
    ({"occurred_at": 12345}, "occurred_at"),
    ({"lines": "all of them"}, "lines"),
    ({"lines": [{"sku": "A", "quantity": 0, "amount": "100.00"}]}, "lines"),
    ({"lines": [{"sku": "A", "quantity": "two", "amount": "100.00"}]}, "lines"),
    ({"channel": "TELEPATHY"}, "channel"),
    ({"external_id": "x" * 65}, "external_id"),
    ({"promo_codes": "SPRING"}, "promo_codes"),
])
def test_validation_is_400_with_details_per_field(api, shop, buyer, change, field):
    error = assert_error(post(api, "/api/v1/purchases", purchase_body(**change)), 400, "invalid_request")
    assert field in error["details"], error


def test_missing_fields(api, shop, buyer):
    error = assert_error(post(api, "/api/v1/purchases", {}), 400, "invalid_request")
    assert {"member", "store", "external_id", "occurred_at", "total"} <= set(error["details"])


def test_lines_that_do_not_add_up_are_400(api, shop, buyer):
    response = post(api, "/api/v1/purchases", purchase_body(total="99.00"))
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_input"


@pytest.mark.parametrize("raw", [b"{", b"[]", b"42", b"null", b'{"member": null}'])
def test_garbage_bodies_never_500(api, shop, buyer, raw):
    response = api.post("/api/v1/purchases", raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY=f"g{next(_keys)}")
    assert response.status_code == 400, response.content
    preview = api.post("/api/v1/purchases/preview", raw, content_type="application/json")
    assert preview.status_code == 400, preview.content


def test_same_order_number_with_a_new_key_is_409_duplicate(api, shop, buyer):
    body = purchase_body()
    post(api, "/api/v1/purchases", body)
    changed = {**body, "total": "40.00", "lines": body["lines"][1:]}
    assert_error(post(api, "/api/v1/purchases", changed), 409, "duplicate_purchase")


def test_frozen_member_is_422(api, shop, buyer):
    buyer.status = MemberStatus.FROZEN
    buyer.save(update_fields=["status"])
    response = post(api, "/api/v1/purchases", purchase_body())
    assert response.status_code == 422 and response.json()["error"]["code"] == "member_frozen", response.content


def test_scope_and_auth(db, shop, buyer):
    assert_error(post(api_for(scopes=["members:read"]), "/api/v1/purchases", purchase_body()), 403, "insufficient_scope")
    assert_error(api_for(scopes=["members:read"]).post("/api/v1/purchases/preview", purchase_body(), format="json"), 403,
                 "insufficient_scope")
    from rest_framework.test import APIClient

    assert_error(post(APIClient(), "/api/v1/purchases", purchase_body()), 401, "unauthenticated")


def test_store_bound_client_posts_reads_and_refunds_only_at_its_store(api, shop, buyer):
    other = StoreFactory(code="BJ001")
    bound = api_for(scopes=["purchases:write"], store=shop)
    assert post(bound, "/api/v1/purchases", purchase_body()).status_code == 201
    assert_error(post(bound, "/api/v1/purchases", purchase_body(store="BJ001")), 403, "store_not_allowed")
    assert_error(bound.post("/api/v1/purchases/preview", purchase_body(store="BJ001"), format="json"), 403, "store_not_allowed")
    elsewhere = post(api, "/api/v1/purchases", purchase_body(store=other.code)).json()
    assert_error(bound.get(f"/api/v1/purchases/{elsewhere['id']}"), 404, "not_found")
    assert_error(post(bound, f"/api/v1/purchases/{elsewhere['id']}/refunds", {"amount": "10.00"}), 404, "not_found")
    assert not Refund.objects.exists()


def test_refund_by_amount_and_by_lines(api, shop, buyer):
    created = post(api, "/api/v1/purchases", purchase_body()).json()
    partial = post(api, f"/api/v1/purchases/{created['id']}/refunds", {"amount": "40.00"})
    assert partial.status_code == 201, partial.content
    assert set(partial.json()) == {"id", "amount", "points_reversed", "points_returned", "points_balance"}
    rest = post(api, f"/api/v1/purchases/{created['id']}/refunds", {"lines": [{"sku": "LATTE", "quantity": 2}]})
    assert rest.status_code == 201, rest.content
    assert partial.json()["points_reversed"] + rest.json()["points_reversed"] == created["points_earned"]
    assert rest.json()["points_balance"] == 0


def test_refund_refusals(api, shop, buyer):
    created = post(api, "/api/v1/purchases", purchase_body()).json()
    url = f"/api/v1/purchases/{created['id']}/refunds"
    assert_error(post(api, url, {}), 400, "invalid_request")
    assert_error(post(api, url, {"amount": "1.00", "lines": [{"sku": "LATTE"}]}), 400, "invalid_request")
    assert_error(post(api, url, {"amount": "lots"}), 400, "invalid_request")
    assert_error(post(api, url, {"amount": "1.00", "occurred_at": "2026-01-01T00:00:00"}), 400, "invalid_request")
    assert_error(post(api, url, {"amount": "500.00"}), 422, "refund_exceeds_purchase")
    assert_error(post(api, "/api/v1/purchases/999999/refunds", {"amount": "1.00"}), 404, "not_found")


def test_body_is_not_mutated_by_the_request(api, shop, buyer):
    body = purchase_body()
    kept = copy.deepcopy(body)
    post(api, "/api/v1/purchases", body)
    assert body == kept


def schema_properties(component: str) -> set[str]:
    from rest_framework.test import APIClient

    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    return set(schema["components"]["schemas"][component]["properties"])


def test_responses_have_the_keys_the_schema_documents(api, shop, buyer):
    purchase = post(api, "/api/v1/purchases", purchase_body()).json()
    assert set(purchase) == schema_properties("PurchaseOutput")
    refund = post(api, f"/api/v1/purchases/{purchase['id']}/refunds", {"amount": "1.00"}).json()
    assert set(refund) == schema_properties("RefundOutput")
    assert set(api.get(f"/api/v1/members/{buyer.pk}").json()) == schema_properties("MemberOutput")
    transfer = api.get(f"/api/v1/members/{buyer.pk}/transfers").json()["results"][0]
    assert set(transfer) == schema_properties("TransferOutput")
    assert set(api.get("/api/v1/program").json()) == schema_properties("ProgramOutput")


# ---- fuzz: nothing a client sends is a 500 ----------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
    | st.sampled_from(["13800138000", "SH001", "2026-03-04T10:00:00+08:00", "2026-03-04", "100.00", "1e400", "-0"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
FIELDS = ["member", "store", "external_id", "occurred_at", "total", "lines", "channel", "promo_codes", "amount",
          "phone", "name", "birthday", "home_store", "member_number", "points", "reason"]
BODIES = st.one_of(JSON, st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=8))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES, path=st.sampled_from(["/api/v1/purchases", "/api/v1/purchases/preview", "/api/v1/members",
                                          "/api/v1/purchases/{purchase}/refunds", "/api/v1/members/{member}/adjustments",
                                          "/api/v1/members/{member}"]))
def test_fuzzed_bodies_never_500(api, shop, buyer, body, path):
    path = path.format(member=buyer.pk, purchase=1)
    if path.startswith("/api/v1/members/") and path.count("/") == 4:
        response = api.patch(path, body, format="json")
    else:
        response = post(api, path, body)
    assert response.status_code < 500, (path, body, response.content)


def test_a_purchase_that_earns_nothing_is_explained_not_a_500(api, shop, buyer, audit_clean):
    """Below the rule set's minimum spend (and with nothing eligible) the engine returns early: its breakdown
    must still read in words — in the answer, on a replay and in the member's history."""
    from tests.loyalty.helpers import rules_publish

    rules_publish(name="Minimum", minimum_spend="50.00")
    small = post(api, "/api/v1/purchases", {**{k: v for k, v in purchase_body(total="20.00").items() if k != "lines"}}, key="small")
    assert small.status_code == 201, small.content
    answer = small.json()
    assert answer["points_earned"] == 0 and answer["breakdown"]["rounding"] == 0
    assert answer["breakdown_lines"]
    again = api.get(f"/api/v1/purchases/{answer['id']}")
    assert again.status_code == 200 and again.json()["breakdown_lines"] == answer["breakdown_lines"]
