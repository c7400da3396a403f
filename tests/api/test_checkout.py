"""POST /purchases with "points_payment_quote" and/or "coupon_codes": the purchase goes through checkout
(coupons, then points, then the rest), under the same Idempotency-Key; refusals write nothing."""

import datetime as dt
import itertools

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from loyalty.models import Purchase, Transfer
from loyalty.services.alliance import alliance_partner_enable
from loyalty.services.api_clients import api_client_create
from rewards.models import Coupon, CouponStatus, PointsQuote, QuoteStatus
from tests.api.test_points_payments import QUOTES, assert_error, post
from tests.factories import MemberFactory, StoreFactory
from tests.rewards.factories import coupon_make
from tests.rewards.test_redemptions import give

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

PURCHASES = "/api/v1/purchases"
_orders = itertools.count(1)


@pytest.fixture
def member(db):
    StoreFactory(code="SH001")
    member = MemberFactory()
    give(member, 10_000, now=timezone.now() - dt.timedelta(days=1))
    return member


def order(member, total, **extra):
    return {"member": {"id": member.pk}, "store": "SH001", "external_id": f"POS-{next(_orders)}",
            "occurred_at": timezone.now().replace(microsecond=0).isoformat(), "total": total, **extra}


def quote_id(api, member, order_amount, points) -> int:
    response = post(api, QUOTES, {"member": member.pk, "order_amount": order_amount, "points": points})
    assert response.status_code == 201, response.content
    return response.json()["id"]


def balance(api, member) -> int:
    return api.get(f"/api/v1/members/{member.pk}").json()["points"]["balance"]


def snapshot():
    return (Purchase.objects.count(), Transfer.objects.count(),
            sorted(Coupon.objects.values_list("pk", "status")), sorted(PointsQuote.objects.values_list("pk", "status")))


def test_a_quote_pays_its_points_once_and_a_replay_answers_the_same(api, member):
    quote = quote_id(api, member, "100.00", 1000)
    body = order(member, "100.00", points_payment_quote=quote)
    first = post(api, PURCHASES, body, idempotency_key="till-1")
    assert first.status_code == 201, first.content
    data = first.json()
    assert (data["points_paid"], data["points_paid_value"], data["coupons"], data["coupon_discount"]) == (
        1000, "10.00", [], "0.00")
    assert data["points_balance"] == 10_000 - 1000 + data["points_earned"] == balance(api, member)
    assert PointsQuote.objects.get(pk=quote).status == QuoteStatus.COMMITTED
    assert PointsQuote.objects.get(pk=quote).purchase_id == data["id"]

    before = snapshot()
    again = post(api, PURCHASES, body, idempotency_key="till-1")
    assert (again.status_code, again.json()) == (201, data) and again["Idempotent-Replayed"] == "true"
    assert snapshot() == before and balance(api, member) == data["points_balance"]
    # The same quote on another order is refused: its points were paid once.
    assert_error(post(api, PURCHASES, order(member, "100.00", points_payment_quote=quote)), 409,
                 "quote_already_committed")
    got = api.get(f"{PURCHASES}/{data['id']}").json()
    assert (got["points_paid"], got["coupons"]) == (1000, [])


def test_a_spend_save_coupons_discount_earns_nothing(api, member):
    coupon = coupon_make(member=member, spend_save=True)  # 满100减20
    plain = api.post(f"{PURCHASES}/preview", order(member, "100.00"), format="json").json()["points_earned"]
    full = api.post(f"{PURCHASES}/preview", order(member, "120.00"), format="json").json()["points_earned"]
    assert full > plain

    response = post(api, PURCHASES, order(member, "120.00", coupon_codes=[coupon.code.lower()]))
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["coupons"] == [{"code": coupon.code, "discount": "20.00"}] and data["coupon_discount"] == "20.00"
    assert data["points_earned"] == plain and data["points_paid"] == 0  # earned on ¥100, not ¥120
    coupon.refresh_from_db()
    assert coupon.status == CouponStatus.REDEEMED
    got = api.get(f"{PURCHASES}/{data['id']}").json()
    assert got["coupons"] == data["coupons"]


def test_coupon_and_quote_together(api, member):
    coupon = coupon_make(member=member, spend_save=True)
    quote = quote_id(api, member, "100.00", 2000)  # for what is left after the coupon
    response = post(api, PURCHASES, order(member, "120.00", coupon_codes=[coupon.code], points_payment_quote=quote))
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["coupon_discount"], data["points_paid"], data["points_paid_value"]) == ("20.00", 2000, "20.00")


def test_an_expired_quote_is_409_and_nothing_is_written(api, member):
    coupon = coupon_make(member=member, spend_save=True)
    quote = quote_id(api, member, "100.00", 1000)
    PointsQuote.objects.filter(pk=quote).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    before = snapshot()
    assert_error(post(api, PURCHASES, order(member, "120.00", coupon_codes=[coupon.code], points_payment_quote=quote)),
                 409, "quote_expired")
    assert snapshot() == before and balance(api, member) == 10_000


def test_a_used_coupon_is_409_and_nothing_is_written(api, member):
    coupon = coupon_make(member=member)
    assert post(api, PURCHASES, order(member, "50.00", coupon_codes=[coupon.code])).status_code == 201
    quote = quote_id(api, member, "40.00", 1000)
    before = snapshot()
    points = balance(api, member)
    assert_error(post(api, PURCHASES, order(member, "50.00", coupon_codes=[coupon.code], points_payment_quote=quote)),
                 409, "coupon_already_used")
    assert snapshot() == before and balance(api, member) == points
    assert PointsQuote.objects.get(pk=quote).status == QuoteStatus.OPEN


@pytest.mark.parametrize("extra, field", [
    ({"coupon_codes": "ABC"}, "coupon_codes"),
    ({"coupon_codes": [["A"]]}, "coupon_codes"),
    ({"points_payment_quote": "seven"}, "points_payment_quote"),
    ({"points_payment_quote": 0}, "points_payment_quote"),
])
def test_garbage_is_400(api, member, extra, field):
    error = assert_error(post(api, PURCHASES, order(member, "10.00", **extra)), 400, "invalid_request")
    assert field in error["details"]


def test_an_unknown_quote_or_coupon_is_refused_without_writing(api, member):
    before = snapshot()
    assert_error(post(api, PURCHASES, order(member, "10.00", points_payment_quote=999_999)), 404, "quote_not_found")
    assert_error(post(api, PURCHASES, order(member, "10.00", coupon_codes=["NOPE"])), 422, "coupon_invalid")
    assert snapshot() == before


def test_preview_takes_the_same_fields_and_writes_nothing(api, member):
    coupon = coupon_make(member=member, spend_save=True)
    quote = quote_id(api, member, "100.00", 1000)
    before = snapshot()
    response = api.post(f"{PURCHASES}/preview", order(member, "120.00", coupon_codes=[coupon.code],
                                                      points_payment_quote=quote), format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["id"], data["coupon_discount"], data["points_paid"]) == (None, "20.00", 1000)
    assert data["coupons"] == [{"code": coupon.code, "discount": "20.00"}]
    assert snapshot() == before


def test_an_alliance_partner_checks_out_through_its_own_account(member):
    from loyalty.models import Transfer, TransferCode

    client, key = api_client_create(name="Car wash partner")
    client = alliance_partner_enable(client=client)
    partner = APIClient()
    partner.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    coupon = coupon_make(member=member)
    response = post(partner, PURCHASES, order(member, "150.00", coupon_codes=[coupon.code]))
    assert response.status_code == 201, response.content
    earn = Transfer.objects.get(code=TransferCode.EARN, purchase_id=response.json()["id"])
    assert earn.debit_account_id == client.partner_account_id
