"""POST /points-payments/quotes and /points-payments/quotes/{id}/commit."""

import datetime as dt

import pytest
from django.utils import timezone

from loyalty.models import Scope
from rewards.models import PointsQuote, QuoteStatus
from tests.api.conftest import api_for
from tests.factories import MemberFactory, StoreFactory
from tests.rewards.test_redemptions import give

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

QUOTES = "/api/v1/points-payments/quotes"
_keys = iter(range(1, 10**9))


def key() -> str:
    return f"k-{next(_keys)}"


def post(client, url, body, idempotency_key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": idempotency_key or key()}
    return client.post(url, body, format="json", **headers)


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]


@pytest.fixture
def member(db):
    member = MemberFactory()
    give(member, 10_000, now=timezone.now() - dt.timedelta(days=1))
    return member


def quote(api, member, **extra):
    response = post(api, QUOTES, {"member": member.pk, "order_amount": "100.00", **extra})
    assert response.status_code == 201, response.content
    return response.json()


def test_quote_then_commit(api, member):
    body = quote(api, member, points=500)
    assert set(body) >= {"id", "member", "order_amount", "points", "value", "expires_at", "status"}
    assert body["member"] == member.pk and body["order_amount"] == "100.00" and body["status"] == "OPEN"
    assert body["points"] == 500 and isinstance(body["value"], str)
    committed = post(api, f"{QUOTES}/{body['id']}/commit", {})
    assert committed.status_code == 200, committed.content
    assert committed.json()["status"] == "COMMITTED" and committed.json()["points"] == 500


def test_quote_without_points_asks_for_the_most_allowed(api, member):
    body = quote(api, member)
    assert body["points"] > 0


def test_a_replayed_quote_is_the_same_answer_and_one_quote(api, member):
    first = post(api, QUOTES, {"member": member.pk, "order_amount": "100.00"}, idempotency_key="same")
    again = post(api, QUOTES, {"member": member.pk, "order_amount": "100.00"}, idempotency_key="same")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert PointsQuote.objects.count() == 1
    assert_error(post(api, QUOTES, {"member": member.pk, "order_amount": "99.00"}, idempotency_key="same"),
                 409, "idempotency_key_reused")


def test_commit_twice_with_another_key_is_a_conflict_and_with_the_same_key_replays(api, member):
    quote_id = quote(api, member, points=100)["id"]
    first = post(api, f"{QUOTES}/{quote_id}/commit", {}, idempotency_key="c1")
    again = post(api, f"{QUOTES}/{quote_id}/commit", {}, idempotency_key="c1")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert_error(post(api, f"{QUOTES}/{quote_id}/commit", {}), 409, "quote_already_committed")


def test_an_expired_quote_cannot_be_committed(api, member):
    quote_id = quote(api, member, points=100)["id"]
    PointsQuote.objects.filter(pk=quote_id).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert_error(post(api, f"{QUOTES}/{quote_id}/commit", {}), 409, "quote_expired")
    assert PointsQuote.objects.get(pk=quote_id).status != QuoteStatus.COMMITTED


def test_more_points_than_the_member_has_is_422(api):
    poor = MemberFactory()
    give(poor, 10, now=timezone.now() - dt.timedelta(days=1))
    assert_error(post(api, QUOTES, {"member": poor.pk, "order_amount": "100.00", "points": 5000}),
                 422, "insufficient_points")


def test_points_spent_meanwhile_make_the_commit_422(api, member):
    quote_id = quote(api, member, points=500)["id"]
    from django.contrib.auth import get_user_model

    from loyalty.services import points_adjust

    staff = get_user_model().objects.create_user(username="s", is_staff=True)
    points_adjust(member=member, points=-9_800, reason="spent", staff_user=staff, idempotency_key="drain",
                  now=timezone.now())
    assert_error(post(api, f"{QUOTES}/{quote_id}/commit", {}), 422, "insufficient_points")


@pytest.mark.parametrize("body, fields", [
    ({}, {"member", "order_amount"}),
    ({"member": "abc", "order_amount": "x"}, {"member", "order_amount"}),
    ({"member": 1, "order_amount": "-5.00"}, {"order_amount"}),
    ({"member": 1, "order_amount": "1.001"}, {"order_amount"}),
    ({"member": 1, "order_amount": "NaN"}, {"order_amount"}),
    ({"member": 1, "order_amount": "10", "points": -3}, {"points"}),
    ({"member": 1, "order_amount": "10", "points": 1.5}, {"points"}),
    ({"member": 10**30, "order_amount": "10"}, {"member"}),
    ({"member": True, "order_amount": []}, {"order_amount"}),
])
def test_garbage_is_400_with_per_field_details(api, body, fields):
    error = assert_error(post(api, QUOTES, body), 400, "invalid_request")
    assert fields <= set(error["details"])


def test_a_json_list_or_broken_json_is_400(api):
    assert post(api, QUOTES, [1, 2]).status_code == 400
    response = api.post(QUOTES, "{not json", content_type="application/json", HTTP_IDEMPOTENCY_KEY="x")
    assert_error(response, 400, "malformed_request")


def test_money_as_a_json_number_is_accepted(api, member):
    response = post(api, QUOTES, {"member": member.pk, "order_amount": 100, "points": 100})
    assert response.status_code == 201 and response.json()["order_amount"] == "100.00"


def test_idempotency_key_is_required(api, member):
    response = api.post(QUOTES, {"member": member.pk, "order_amount": "100.00"}, format="json")
    assert_error(response, 400, "invalid_input")


def test_unknown_member_and_quote_are_404(api, member):
    assert_error(post(api, QUOTES, {"member": 999_999, "order_amount": "10.00"}), 404, "member_not_found")
    assert_error(post(api, f"{QUOTES}/999999/commit", {}), 404, "quote_not_found")
    quote_id = quote(api, member, points=100)["id"]
    other = MemberFactory()
    assert_error(post(api, f"{QUOTES}/{quote_id}/commit", {"member": other.pk}), 404, "quote_not_found")


def test_without_a_key_401_and_without_the_scope_403(member):
    from rest_framework.test import APIClient

    assert_error(post(APIClient(), QUOTES, {"member": member.pk, "order_amount": "10.00"}), 401, "unauthenticated")
    client = api_for(scopes=[Scope.REWARDS_READ])
    assert_error(post(client, QUOTES, {"member": member.pk, "order_amount": "10.00"}), 403, "insufficient_scope")
    assert_error(post(client, f"{QUOTES}/1/commit", {}), 403, "insufficient_scope")


def test_a_store_bound_client_quotes_at_its_store_and_commits_only_its_quotes(api, member):
    mine, other = StoreFactory(code="A1"), StoreFactory(code="B1")
    bound = api_for(scopes=[Scope.POINTS_PAY], store=mine)
    body = post(bound, QUOTES, {"member": member.pk, "order_amount": "100.00", "points": 100}).json()
    assert body["store"] == "A1"
    assert_error(post(bound, QUOTES, {"member": member.pk, "order_amount": "100.00", "store": "B1"}),
                 403, "store_not_allowed")
    elsewhere = quote(api, member, points=100, store=other.code)["id"]
    assert_error(post(bound, f"{QUOTES}/{elsewhere}/commit", {}), 404, "quote_not_found")
    assert post(bound, f"{QUOTES}/{body['id']}/commit", {}).status_code == 200


def test_an_unknown_store_is_not_found_as_in_every_endpoint(api, member):
    """One contract (loyalty/api/lookups.py): the store a request acts at, unknown → 404 store_not_found."""
    assert_error(post(api, QUOTES, {"member": member.pk, "order_amount": "10.00", "store": "NOPE"}),
                 404, "store_not_found")
