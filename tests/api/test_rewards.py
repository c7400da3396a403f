"""GET /rewards?member=…, POST /redemptions, /redemptions/{id}/cancel, /redemptions/{id}/fulfil."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from loyalty.models import Scope
from rewards.models import Redemption, RedemptionStatus, RewardKind
from tests.api.conftest import api_for
from tests.api.test_points_payments import assert_error, post
from tests.factories import MemberFactory, StoreFactory
from tests.loyalty.helpers import balance
from tests.rewards.factories import CouponTemplateFactory
from tests.rewards.test_redemptions import give, reward_make

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]


@pytest.fixture
def member(db):
    member = MemberFactory()
    give(member, 100, now=timezone.now() - dt.timedelta(days=1))
    return member


@pytest.fixture
def water(db):
    return reward_make(name="Glass water", points_cost=50, stock=3)


def redeem(client, member, reward, **kwargs):
    return post(client, "/api/v1/redemptions", {"member": member.pk, "reward": reward.pk}, **kwargs)


# ---- the catalogue ----

def test_the_catalogue_says_what_the_member_can_redeem_and_why_not(api, member, water):
    dear = reward_make(name="Kettle", points_cost=5000)
    response = api.get(f"/api/v1/rewards?member={member.pk}")
    assert response.status_code == 200, response.content
    offers = {o["name"]: o for o in response.json()}
    assert offers["Glass water"]["can_redeem"] and offers["Glass water"]["affordable"]
    assert offers["Glass water"]["id"] == water.pk and offers["Glass water"]["reason"] == ""
    assert offers["Glass water"]["stock"] == 3 and offers["Glass water"]["cash_price"] == "0.00"
    kettle = offers["Kettle"]
    assert kettle["id"] == dear.pk and not kettle["can_redeem"] and not kettle["affordable"] and kettle["reason"]


def test_reasons_follow_accept_language(api, member):
    reward_make(name="Kettle", points_cost=5000)
    en = api.get(f"/api/v1/rewards?member={member.pk}", HTTP_ACCEPT_LANGUAGE="en").json()[0]["reason"]
    zh = api.get(f"/api/v1/rewards?member={member.pk}", HTTP_ACCEPT_LANGUAGE="zh-hans").json()[0]["reason"]
    assert en and zh and en != zh


@pytest.mark.parametrize("query", ["", "?member=abc", "?member=-1", "?member=" + "9" * 40])
def test_catalogue_without_a_valid_member_is_400(api, query):
    error = assert_error(api.get(f"/api/v1/rewards{query}"), 400, "invalid_request")
    assert "member" in error["details"]


def test_catalogue_errors(api):
    assert_error(api.get("/api/v1/rewards?member=999999"), 404, "member_not_found")
    assert_error(APIClient().get("/api/v1/rewards?member=1"), 401, "unauthenticated")
    assert_error(api_for(scopes=[Scope.REWARDS_WRITE]).get("/api/v1/rewards?member=1"), 403, "insufficient_scope")


# ---- redeem ----

def test_redeem_goods_waits_for_pickup_with_a_code(api, member, water):
    response = redeem(api, member, water)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "PENDING" and body["points"] == 50 and body["cash"] == "0.00"
    assert body["pickup_code"] and body["coupon"] is None
    assert balance(member) == 50


def test_a_coupon_reward_is_fulfilled_at_once_with_the_coupon_and_no_pickup_code(api, member):
    reward = reward_make(name="¥10 coupon", points_cost=30, kind=RewardKind.COUPON,
                         coupon_template=CouponTemplateFactory())
    body = redeem(api, member, reward).json()
    assert body["status"] == "FULFILLED" and body["pickup_code"] is None and body["coupon"]


def test_a_replayed_redemption_is_identical_and_redeems_once(api, member, water):
    first = redeem(api, member, water, idempotency_key="r1")
    again = redeem(api, member, water, idempotency_key="r1")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert Redemption.objects.count() == 1 and balance(member) == 50
    other = reward_make(name="Other", points_cost=10)
    assert_error(redeem(api, member, other, idempotency_key="r1"), 409, "idempotency_key_reused")


def test_business_refusals_are_422(api, member, water):
    kettle = reward_make(name="Kettle", points_cost=5000)
    assert_error(redeem(api, member, kettle), 422, "insufficient_points")
    gone = reward_make(name="Gone", points_cost=10, stock=0)
    assert_error(redeem(api, member, gone), 422, "out_of_stock")
    assert Redemption.objects.count() == 0 and balance(member) == 100


def test_unknown_member_or_reward_is_404(api, member):
    assert_error(post(api, "/api/v1/redemptions", {"member": 999999, "reward": 1}), 404, "member_not_found")
    assert_error(post(api, "/api/v1/redemptions", {"member": member.pk, "reward": 999999}), 404, "reward_not_found")


@pytest.mark.parametrize("body, fields", [
    ({}, {"member", "reward"}),
    ({"member": "x", "reward": None}, {"member", "reward"}),
    ({"member": 0, "reward": 1.5}, {"member", "reward"}),
])
def test_redeem_garbage_is_400(api, body, fields):
    error = assert_error(post(api, "/api/v1/redemptions", body), 400, "invalid_request")
    assert fields <= set(error["details"])


def test_redeem_needs_rewards_write(member, water):
    assert_error(redeem(api_for(scopes=[Scope.REWARDS_READ]), member, water), 403, "insufficient_scope")
    assert_error(redeem(APIClient(), member, water), 401, "unauthenticated")


# ---- fulfil ----

def test_fulfil_with_the_pickup_code_once(api, member, water):
    created = redeem(api, member, water).json()
    url = f"/api/v1/redemptions/{created['id']}/fulfil"
    assert_error(post(api, url, {"pickup_code": "WRONG1"}), 422, "pickup_code_invalid")
    done = post(api, url, {"pickup_code": created["pickup_code"].lower()})
    assert done.status_code == 200, done.content
    assert done.json()["status"] == "FULFILLED" and done.json()["pickup_code"] is None
    assert_error(post(api, url, {"pickup_code": created["pickup_code"]}), 409, "redemption_state_conflict")


def test_fulfil_errors(api, member, water):
    assert_error(post(api, "/api/v1/redemptions/999999/fulfil", {"pickup_code": "ABC"}), 404, "redemption_not_found")
    created = redeem(api, member, water).json()
    error = assert_error(post(api, f"/api/v1/redemptions/{created['id']}/fulfil", {}), 400, "invalid_request")
    assert "pickup_code" in error["details"]
    limited = api_for(scopes=[Scope.REWARDS_READ])
    assert_error(post(limited, f"/api/v1/redemptions/{created['id']}/fulfil", {"pickup_code": "x"}),
                 403, "insufficient_scope")


def test_a_store_bound_client_fulfils_only_at_its_store(api, member, water):
    mine, _other = StoreFactory(code="A1"), StoreFactory(code="B1")
    bound = api_for(scopes=[Scope.REWARDS_WRITE], store=mine)
    created = redeem(api, member, water).json()
    url = f"/api/v1/redemptions/{created['id']}/fulfil"
    assert_error(post(bound, url, {"pickup_code": created["pickup_code"], "store": "B1"}), 403, "store_not_allowed")
    assert post(bound, url, {"pickup_code": created["pickup_code"]}).status_code == 200
    assert Redemption.objects.get().fulfilled_store == mine


# ---- cancel ----

def test_cancel_returns_the_points_and_a_replay_is_identical(api, member, water):
    created = redeem(api, member, water).json()
    url = f"/api/v1/redemptions/{created['id']}/cancel"
    first = post(api, url, {"reason": "changed mind"}, idempotency_key="c1")
    assert first.status_code == 200, first.content
    assert first.json()["status"] == "CANCELLED" and first.json()["pickup_code"] is None
    assert balance(member) == 100
    again = post(api, url, {"reason": "changed mind"}, idempotency_key="c1")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert_error(post(api, url, {"reason": "again"}), 409, "redemption_state_conflict")
    assert Redemption.objects.get().status == RedemptionStatus.CANCELLED


def test_cancel_errors(api, member, water):
    assert_error(post(api, "/api/v1/redemptions/999999/cancel", {"reason": "x"}), 404, "redemption_not_found")
    created = redeem(api, member, water).json()
    url = f"/api/v1/redemptions/{created['id']}/cancel"
    assert "reason" in assert_error(post(api, url, {"reason": ""}), 400, "invalid_request")["details"]
    assert "reason" in assert_error(post(api, url, {"reason": "x" * 300}), 400, "invalid_request")["details"]
    assert_error(post(api_for(scopes=[Scope.REWARDS_READ]), url, {"reason": "x"}), 403, "insufficient_scope")


@pytest.mark.parametrize("url, code", [
    ("/api/v1/points-payments/quotes/{}/commit", "quote_not_found"),
    ("/api/v1/redemptions/{}/cancel", "redemption_not_found"),
    ("/api/v1/redemptions/{}/fulfil", "redemption_not_found"),
    ("/api/v1/wallet/top-ups/{}/refunds", "topup_not_found"),
])
@pytest.mark.parametrize("object_id", ["0", "9" * 30])
def test_ids_out_of_range_in_the_path_are_404_not_500(api, url, code, object_id):
    assert_error(post(api, url.format(object_id), {"reason": "x", "pickup_code": "ABC"}), 404, code)
