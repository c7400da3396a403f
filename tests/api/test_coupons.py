"""POST /coupons/validate and /coupons/redeem."""

import pytest
from rest_framework.test import APIClient

from loyalty.models import Scope
from rewards.models import Coupon, CouponStatus
from rewards.services.coupons import coupon_code_format
from tests.api.conftest import api_for
from tests.api.test_points_payments import assert_error, post
from tests.conftest import requires_postgres
from tests.factories import MemberFactory, StoreFactory
from tests.rewards.factories import code_typo, coupon_make

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

VALIDATE, REDEEM = "/api/v1/coupons/validate", "/api/v1/coupons/redeem"


@pytest.fixture
def coupon(db):
    return coupon_make(member=MemberFactory())


def body(coupon, **extra):
    return {"code": coupon.code, "member": coupon.member_id, "order_amount": "68.90", **extra}


def test_validate_says_what_it_takes_off_and_writes_nothing(api, coupon):
    response = api.post(VALIDATE, body(coupon, code=coupon_code_format(coupon.code).lower()), format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["valid"] is True and data["discount"] == "10.00" and data["payable"] == "58.90" and data["message"]
    assert data["coupon"]["code"] == coupon.code and data["coupon"]["status"] == "ISSUED"
    assert Coupon.objects.get().status == CouponStatus.ISSUED


def test_validate_refusals(api, coupon):
    assert_error(api.post(VALIDATE, body(coupon, code=code_typo(coupon.code)), format="json"), 422, "coupon_invalid")
    other = MemberFactory()
    assert_error(api.post(VALIDATE, body(coupon, member=other.pk), format="json"), 403, "coupon_not_yours")
    assert_error(api.post(VALIDATE, body(coupon, member=999999), format="json"), 404, "member_not_found")
    minimum = coupon_make(spend_save=True)
    assert_error(api.post(VALIDATE, body(minimum, order_amount="50.00"), format="json"), 422, "coupon_not_applicable")


@pytest.mark.parametrize("data, fields", [
    ({}, {"code", "order_amount"}),
    ({"code": 123456789012345678901234567890123456789012, "order_amount": "-1"}, {"code", "order_amount"}),
    ({"code": "X", "order_amount": "1e400"}, {"order_amount"}),
    ({"code": "X", "order_amount": "10", "member": "me", "other_coupons": -1}, {"member", "other_coupons"}),
    ({"code": ["X"], "order_amount": {"a": 1}}, {"code", "order_amount"}),
])
def test_garbage_is_400(api, data, fields):
    for url in (VALIDATE, REDEEM):
        error = assert_error(post(api, url, data), 400, "invalid_request")
        assert fields <= set(error["details"])


def test_redeem_once_and_a_replay_is_identical(api, coupon):
    first = post(api, REDEEM, body(coupon, reference="POS-1"), idempotency_key="k1")
    assert first.status_code == 200, first.content
    assert first.json()["status"] == "REDEEMED" and first.json()["discount"] == "10.00"
    assert first.json()["reference"] == "POS-1"
    again = post(api, REDEEM, body(coupon, reference="POS-1"), idempotency_key="k1")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert_error(post(api, REDEEM, body(coupon, reference="POS-2")), 409, "coupon_already_used")
    assert_error(post(api, REDEEM, body(coupon, order_amount="1.00"), idempotency_key="k1"),
                 409, "idempotency_key_reused")
    assert_error(api.post(VALIDATE, body(coupon), format="json"), 409, "coupon_already_used")


def test_redeem_needs_an_idempotency_key_and_validate_does_not(api, coupon):
    assert_error(api.post(REDEEM, body(coupon), format="json"), 400, "invalid_input")
    assert api.post(VALIDATE, body(coupon), format="json").status_code == 200


def test_scope_and_authentication(coupon):
    limited = api_for(scopes=[Scope.REWARDS_READ])
    assert_error(post(limited, VALIDATE, body(coupon)), 403, "insufficient_scope")
    assert_error(post(limited, REDEEM, body(coupon)), 403, "insufficient_scope")
    assert_error(post(APIClient(), REDEEM, body(coupon)), 401, "unauthenticated")


def test_a_store_bound_client_validates_and_redeems_only_at_its_store(coupon):
    mine, _other = StoreFactory(code="A1"), StoreFactory(code="B1")
    bound = api_for(scopes=[Scope.COUPONS_WRITE], store=mine)
    assert_error(post(bound, VALIDATE, body(coupon, store="B1")), 403, "store_not_allowed")
    assert_error(post(bound, REDEEM, body(coupon, store="B1")), 403, "store_not_allowed")
    assert Coupon.objects.get().status == CouponStatus.ISSUED
    response = post(bound, REDEEM, body(coupon))
    assert response.status_code == 200 and response.json()["redeemed_store"] == "A1"


def test_a_coupon_valid_only_at_some_stores(api):
    StoreFactory(code="A1"), StoreFactory(code="B1")
    coupon = coupon_make(stores=["A1"])
    assert_error(post(api, VALIDATE, body(coupon, store="B1")), 422, "coupon_not_applicable")
    assert post(api, VALIDATE, body(coupon, store="A1")).status_code == 200
    assert_error(post(api, VALIDATE, body(coupon, store="ZZ9")), 404, "store_not_found")  # as on every endpoint


def concurrently(n: int, call) -> list:
    """Run ``call(i)`` in ``n`` threads released at once; each thread closes its own connection."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from django.db import close_old_connections, connections

    barrier = threading.Barrier(n)

    def run(i):
        try:
            barrier.wait(timeout=30)
            return call(i)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(run, range(n)))
    close_old_connections()
    return results


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_tills_redeeming_one_coupon_at_once_redeem_it_once():
    from loyalty.services.api_clients import api_client_create

    coupon = coupon_make(member=MemberFactory())
    _client, key = api_client_create(name="POS", scopes=[Scope.COUPONS_WRITE])

    def call(i):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        response = post(client, REDEEM, body(coupon, reference=f"till-{i}"), idempotency_key=f"till-{i}")
        return response.status_code, response.json()

    results = concurrently(20, call)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [409] * 19, results
    assert {b["error"]["code"] for s, b in results if s == 409} == {"coupon_already_used"}
    assert Coupon.objects.get().status == CouponStatus.REDEEMED
