"""POST /wallet/top-ups, /wallet/spends and /wallet/top-ups/{id}/refunds."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from loyalty.models import Scope
from rewards.models import TopUp, TopUpBonusRule, WalletSpend
from tests.api.conftest import api_for
from tests.api.test_coupons import concurrently
from tests.api.test_points_payments import assert_error, post
from tests.conftest import requires_postgres
from tests.factories import MemberFactory, StoreFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

TOPUPS, SPENDS = "/api/v1/wallet/top-ups", "/api/v1/wallet/spends"


@pytest.fixture
def member(db):
    return MemberFactory()


@pytest.fixture
def bonus_rule(db):
    return TopUpBonusRule.objects.create(name="充100送20", minimum=Decimal("100.00"), bonus=Decimal("20.00"))


def topup(client, member, amount="100.00", **extra):
    response = post(client, TOPUPS, {"member": member.pk, "amount": amount, **extra})
    assert response.status_code == 201, response.content
    return response.json()


def test_top_up_with_bonus_shows_the_new_balance(api, member, bonus_rule):
    body = topup(api, member, reference="PAY-1")
    assert body["amount"] == "100.00" and body["bonus"] == "20.00" and body["reference"] == "PAY-1"
    assert body["balance"] == {"principal": "100.00", "bonus": "20.00", "total": "120.00"}
    assert isinstance(body["points_earned"], int)


def test_a_replayed_top_up_is_identical_and_tops_up_once(api, member):
    first = post(api, TOPUPS, {"member": member.pk, "amount": "50.00"}, idempotency_key="t1")
    again = post(api, TOPUPS, {"member": member.pk, "amount": "50.00"}, idempotency_key="t1")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert TopUp.objects.count() == 1
    assert_error(post(api, TOPUPS, {"member": member.pk, "amount": "60.00"}, idempotency_key="t1"),
                 409, "idempotency_key_reused")


def test_spend_and_overdraw(api, member, bonus_rule):
    topup(api, member)
    response = post(api, SPENDS, {"member": member.pk, "amount": "30.00", "reference": "POS-9"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["amount"] == "30.00" and body["from_bonus"] == "20.00" and body["from_principal"] == "10.00"
    assert body["balance"]["total"] == "90.00"
    error = assert_error(post(api, SPENDS, {"member": member.pk, "amount": "90.01"}), 422, "insufficient_stored_value")
    assert error["message"]
    assert WalletSpend.objects.count() == 1


def test_a_replayed_spend_is_identical(api, member):
    topup(api, member)
    first = post(api, SPENDS, {"member": member.pk, "amount": "10.00"}, idempotency_key="s1")
    again = post(api, SPENDS, {"member": member.pk, "amount": "10.00"}, idempotency_key="s1")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert WalletSpend.objects.count() == 1


def test_refund_part_then_too_much(api, member, bonus_rule):
    created = topup(api, member)
    url = f"{TOPUPS}/{created['id']}/refunds"
    first = post(api, url, {"amount": "40.00"}, idempotency_key="r1")
    assert first.status_code == 200, first.content
    assert first.json()["refunded_amount"] == "40.00" and first.json()["balance"]["principal"] == "60.00"
    again = post(api, url, {"amount": "40.00"}, idempotency_key="r1")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert_error(post(api, url, {"amount": "60.01"}), 422, "topup_refund_too_large")
    rest = post(api, url, {})
    assert rest.status_code == 200 and rest.json()["refunded_amount"] == "100.00"


def test_not_found(api, member):
    assert_error(post(api, TOPUPS, {"member": 999999, "amount": "10.00"}), 404, "member_not_found")
    assert_error(post(api, SPENDS, {"member": 999999, "amount": "10.00"}), 404, "member_not_found")
    assert_error(post(api, f"{TOPUPS}/999999/refunds", {}), 404, "topup_not_found")


@pytest.mark.parametrize("url", [TOPUPS, SPENDS])
@pytest.mark.parametrize("data, fields", [
    ({}, {"member", "amount"}),
    ({"member": 1, "amount": "-10.00"}, {"amount"}),
    ({"member": 1, "amount": "10.005"}, {"amount"}),
    ({"member": 1, "amount": "abc"}, {"amount"}),
    ({"member": 1, "amount": "Infinity"}, {"amount"}),
    ({"member": 1, "amount": "12345678901234567890"}, {"amount"}),
    ({"member": [1], "amount": "10", "reference": "x" * 65}, {"member", "reference"}),
])
def test_garbage_is_400(api, url, data, fields):
    error = assert_error(post(api, url, data), 400, "invalid_request")
    assert fields <= set(error["details"])


def test_zero_amount_is_refused_without_a_500(api, member):
    for url in (TOPUPS, SPENDS):
        response = post(api, url, {"member": member.pk, "amount": "0.00"})
        assert response.status_code == 400, response.content


def test_refund_garbage_is_400(api, member):
    created = topup(api, member)
    error = assert_error(post(api, f"{TOPUPS}/{created['id']}/refunds", {"amount": "-1"}), 400, "invalid_request")
    assert "amount" in error["details"]


def test_scope_and_authentication(member):
    limited = api_for(scopes=[Scope.COUPONS_WRITE])
    for url in (TOPUPS, SPENDS, f"{TOPUPS}/1/refunds"):
        assert_error(post(limited, url, {"member": member.pk, "amount": "10.00"}), 403, "insufficient_scope")
        assert_error(post(APIClient(), url, {"member": member.pk, "amount": "10.00"}), 401, "unauthenticated")


def test_a_store_bound_client_tops_up_at_its_store_and_refunds_only_its_top_ups(api, member):
    mine, _other = StoreFactory(code="A1"), StoreFactory(code="B1")
    bound = api_for(scopes=[Scope.WALLET_WRITE], store=mine)
    assert_error(post(bound, TOPUPS, {"member": member.pk, "amount": "10.00", "store": "B1"}), 403, "store_not_allowed")
    own = topup(bound, member)
    assert TopUp.objects.get(pk=own["id"]).store == mine
    elsewhere = topup(api, member, store="B1")
    assert_error(post(bound, f"{TOPUPS}/{elsewhere['id']}/refunds", {}), 404, "topup_not_found")
    assert post(bound, f"{TOPUPS}/{own['id']}/refunds", {}).status_code == 200


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_spends_never_overdraw_and_identical_top_ups_write_once():
    from loyalty.services.api_clients import api_client_create

    member = MemberFactory()
    _client, key = api_client_create(name="POS", scopes=[Scope.WALLET_WRITE])

    def client():
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return c

    def top_up(_i):
        response = post(client(), TOPUPS, {"member": member.pk, "amount": "100.00"}, idempotency_key="same-topup")
        return response.status_code, response.json()

    results = concurrently(20, top_up)
    assert TopUp.objects.count() == 1
    assert {s for s, _ in results} == {201} and all(b == results[0][1] for _, b in results)

    def spend(i):
        return post(client(), SPENDS, {"member": member.pk, "amount": "30.00"}, idempotency_key=f"spend-{i}").status_code

    statuses = concurrently(20, spend)
    assert sorted(statuses) == [201] * 3 + [422] * 17
    assert WalletSpend.objects.count() == 3
