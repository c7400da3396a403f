"""API: members — enrol, look up, read, transfers, lots, adjustments."""

import itertools

import pytest
from django.utils import timezone

from loyalty.models import Transfer, TransferSource
from loyalty.services import points_adjust
from tests.api.conftest import api_for
from tests.api.test_foundation import assert_error
from tests.factories import MemberFactory, StoreFactory

pytestmark = pytest.mark.django_db

MEMBER_KEYS = {"id", "member_number", "phone", "name", "birthday", "home_store", "status", "tier", "points", "qualifying",
               "next_tier", "stored_value"}
_keys = itertools.count()


def post(client, path, body, key=None, **extra):
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key or f"k{next(_keys)}", **extra)


def give(member, points):
    return points_adjust(member=member, points=points, reason="test", staff_user=None, source=TransferSource.API,
                         idempotency_key=f"give:{next(_keys)}", now=timezone.now())


def test_enrol_returns_201_with_the_member_shape(api):
    StoreFactory(code="SH001")
    response = post(api, "/api/v1/members", {"phone": "138 0013 8000", "name": "王小明", "birthday": "1990-05-01",
                                              "home_store": "SH001"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == MEMBER_KEYS
    assert body["phone"] == "+8613800138000" and body["home_store"] == "SH001" and body["status"] == "ACTIVE"
    assert body["points"] == {"balance": 0, "pending": 0, "debt": 0, "expiring_30d": 0}
    assert body["stored_value"] == {"balance": "0.00"} and isinstance(body["qualifying"]["spend"], str)
    assert body["member_number"]


def test_enrol_with_a_member_number(api):
    body = post(api, "/api/v1/members", {"phone": "13800138001", "name": "A", "member_number": "M-1"}).json()
    assert body["member_number"] == "M-1"


def test_enrol_twice_is_409_member_exists(api):
    post(api, "/api/v1/members", {"phone": "13800138000", "name": "A"})
    assert_error(post(api, "/api/v1/members", {"phone": "+86 138 0013 8000", "name": "B"}), 409, "member_exists")


@pytest.mark.parametrize("body, field", [
    ({}, "phone"),
    ({"phone": "13800138000"}, "name"),
    ({"phone": 13800138000, "name": ["x"]}, "name"),
    ({"phone": "13800138000", "name": "A", "birthday": "1990-13-45"}, "birthday"),
    ({"phone": "13800138000", "name": "A", "home_store": "NOPE"}, "home_store"),
    ({"phone": "x" * 500, "name": "A"}, "phone"),
])
def test_enrol_validation_is_400_with_details_per_field(api, body, field):
    error = assert_error(post(api, "/api/v1/members", body), 400, "invalid_request")
    assert field in error["details"]


@pytest.mark.parametrize("body", [{"phone": "not a phone", "name": "A"}, {"phone": "13800138000", "name": "A",
                                                                          "birthday": "2999-01-01"}])
def test_enrol_domain_validation_is_400(api, body):
    response = post(api, "/api/v1/members", body)
    assert response.status_code == 400 and response.json()["error"]["code"] in {"invalid_input", "invalid_request"}


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b'"string"', b"null"])
def test_garbage_bodies_are_400_never_500(api, raw):
    response = api.post("/api/v1/members", raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY=f"g{next(_keys)}")
    assert response.status_code == 400, response.content


def test_enrol_needs_members_write(db):
    client = api_for(scopes=["members:read"])
    assert_error(post(client, "/api/v1/members", {"phone": "13800138000", "name": "A"}), 403, "insufficient_scope")


def test_without_a_key_is_401():
    from rest_framework.test import APIClient

    assert_error(APIClient().get("/api/v1/members/1"), 401, "unauthenticated")


def test_lookup_by_phone_any_form_and_by_member_number(api):
    member = MemberFactory(phone="+8613800138000")
    assert [m["id"] for m in api.get("/api/v1/members", {"phone": "138-0013-8000"}).json()] == [member.pk]
    assert [m["id"] for m in api.get("/api/v1/members", {"member_number": member.member_number}).json()] == [member.pk]
    assert api.get("/api/v1/members", {"phone": "13900000000"}).json() == []


@pytest.mark.parametrize("query", [{}, {"phone": "1", "member_number": "2"}, {"phone": "garbage"}])
def test_lookup_needs_exactly_one_valid_key(api, query):
    assert api.get("/api/v1/members", query).status_code == 400


def test_lookup_needs_members_read(db):
    client = api_for(scopes=["members:write"])
    assert_error(client.get("/api/v1/members", {"phone": "13800138000"}), 403, "insufficient_scope")


def test_get_member_with_balances(api):
    member = MemberFactory()
    give(member, 300)
    body = api.get(f"/api/v1/members/{member.pk}").json()
    assert set(body) == MEMBER_KEYS and body["points"]["balance"] == 300


def test_unknown_member_is_404(api):
    assert_error(api.get("/api/v1/members/999999"), 404, "not_found")
    assert_error(api.get("/api/v1/members/999999/transfers"), 404, "not_found")
    assert_error(api.get("/api/v1/members/999999/lots"), 404, "not_found")


def test_store_bound_client_reads_members_program_wide(db):
    member = MemberFactory(home_store=StoreFactory(code="A1"))
    client = api_for(scopes=["members:read"], store=StoreFactory(code="B1"))
    assert client.get(f"/api/v1/members/{member.pk}").status_code == 200


def test_transfers_are_cursor_paginated_with_reason_and_breakdown(api):
    member = MemberFactory()
    for n in (10, 20, 30):
        give(member, n)
    first = api.get(f"/api/v1/members/{member.pk}/transfers", {"page_size": 2}).json()
    assert set(first) >= {"next", "previous", "results"}
    assert [t["points"] for t in first["results"]] == [30, 20]
    assert set(first["results"][0]) == {"id", "occurred_at", "code", "points", "reason", "breakdown"}
    assert first["results"][0]["reason"]
    second = api.get(first["next"]).json()
    assert [t["points"] for t in second["results"]] == [10] and second["next"] is None


def test_lots(api):
    member = MemberFactory()
    give(member, 50)
    lots = api.get(f"/api/v1/members/{member.pk}/lots").json()
    assert len(lots) == 1 and lots[0]["remaining"] == 50 and "expires_at" in lots[0]


def test_adjustment_adds_and_takes_points(api):
    member = MemberFactory()
    response = post(api, f"/api/v1/members/{member.pk}/adjustments", {"points": 200, "reason": "Late delivery"})
    assert response.status_code == 201, response.content
    assert response.json()["points_balance"] == 200
    assert Transfer.objects.get(pk=response.json()["id"]).source == TransferSource.API
    taken = post(api, f"/api/v1/members/{member.pk}/adjustments", {"points": -50, "reason": "Correction"})
    assert taken.json()["points_balance"] == 150


def test_adjustment_refusals(api):
    member = MemberFactory()
    assert_error(post(api, f"/api/v1/members/{member.pk}/adjustments", {"points": "lots", "reason": "x"}), 400,
                 "invalid_request")
    assert_error(post(api, f"/api/v1/members/{member.pk}/adjustments", {"points": 10**30, "reason": "x"}), 400,
                 "invalid_request")
    assert_error(post(api, "/api/v1/members/999999/adjustments", {"points": 1, "reason": "x"}), 404, "not_found")
    assert_error(post(api_for(scopes=["members:write"]), f"/api/v1/members/{member.pk}/adjustments",
                      {"points": 1, "reason": "x"}), 403, "insufficient_scope")


def test_patch_corrects_name_birthday_and_home_store(api):
    member = MemberFactory(birthday=None)
    StoreFactory(code="SH009")
    response = api.patch(f"/api/v1/members/{member.pk}", {"name": "王晓明", "birthday": "1991-02-03",
                                                          "home_store": "SH009"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name"], body["birthday"], body["home_store"]) == ("王晓明", "1991-02-03", "SH009")
    cleared = api.patch(f"/api/v1/members/{member.pk}", {"home_store": None, "birthday": None}, format="json").json()
    assert cleared["home_store"] is None and cleared["birthday"] is None and cleared["name"] == "王晓明"


@pytest.mark.parametrize("body, field", [
    ({"phone": "13900000000"}, "phone"), ({"status": "CLOSED"}, "status"), ({"name": ""}, "name"),
    ({"birthday": "someday"}, "birthday"), ({"home_store": "NOPE"}, "home_store"), ({"name": ["x"]}, "name"),
])
def test_patch_refusals_are_400_per_field(api, body, field):
    member = MemberFactory()
    error = assert_error(api.patch(f"/api/v1/members/{member.pk}", body, format="json"), 400, "invalid_request")
    assert field in error["details"]


def test_patch_future_birthday_and_garbage(api):
    member = MemberFactory()
    assert api.patch(f"/api/v1/members/{member.pk}", {"birthday": "2999-01-01"}, format="json").status_code == 400
    assert api.patch(f"/api/v1/members/{member.pk}", b"[1]", content_type="application/json").status_code == 400
    assert api.patch(f"/api/v1/members/{member.pk}", b"{", content_type="application/json").status_code == 400


def test_patch_needs_members_write_and_a_member(api):
    member = MemberFactory()
    assert_error(api_for(scopes=["members:read"]).patch(f"/api/v1/members/{member.pk}", {"name": "x"}, format="json"),
                 403, "insufficient_scope")
    assert_error(api.patch("/api/v1/members/999999", {"name": "x"}, format="json"), 404, "not_found")


def test_transfers_page_costs_the_same_queries_whatever_its_length(api, django_assert_max_num_queries):
    member = MemberFactory()
    for n in range(12):
        give(member, n + 1)
    with django_assert_max_num_queries(5):
        assert len(api.get(f"/api/v1/members/{member.pk}/transfers").json()["results"]) == 12
    with django_assert_max_num_queries(12):
        api.get(f"/api/v1/members/{member.pk}")
