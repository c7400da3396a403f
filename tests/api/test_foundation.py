"""API foundation: keys, the error shape, schema and docs."""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from loyalty.exceptions import InvalidInput
from loyalty.models import ApiClient
from loyalty.services.api_clients import api_client_create, api_client_revoke, api_key_hash
from tests.factories import StoreFactory

pytestmark = pytest.mark.django_db


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def test_a_key_is_shown_once_and_stored_hashed():
    client, key = api_client_create(name="POS")
    assert key.startswith(client.key_prefix + "_")
    assert client.key_hash == api_key_hash(key) and key not in (client.key_hash, client.key_prefix)
    assert set(client.scopes) >= {"members:read", "purchases:write"}  # all scopes when none are named


def test_unknown_scope_is_refused():
    with pytest.raises(InvalidInput):
        api_client_create(name="x", scopes=["members:read", "root"])
    assert not ApiClient.objects.exists()


def test_stores_with_a_key(api):
    StoreFactory(code="SH001", name="静安店")
    response = api.get("/api/v1/stores")
    assert response.status_code == 200
    assert response.json() == [{"code": "SH001", "name": "静安店"}]


@pytest.mark.parametrize("header", [None, "Bearer nope", "Token abc", "Bearer lk_000000000000_forged"])
def test_missing_or_bad_key_is_401_with_the_error_shape(header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    assert_error(client.get("/api/v1/stores"), 401, "unauthenticated")


def test_revoked_key_is_refused(api, api_key):
    api_client_revoke(client=api_key[0], now=timezone.now())
    assert_error(api.get("/api/v1/stores"), 401, "unauthenticated")


def test_error_message_follows_accept_language():
    client = APIClient()
    en = assert_error(client.get("/api/v1/stores", HTTP_ACCEPT_LANGUAGE="en"), 401, "unauthenticated")
    zh = assert_error(client.get("/api/v1/stores", HTTP_ACCEPT_LANGUAGE="zh-hans"), 401, "unauthenticated")
    assert en["message"] != zh["message"]


def test_a_store_bound_client_sees_only_its_store():
    from tests.api.conftest import api_for

    mine, _other = StoreFactory(code="A1"), StoreFactory(code="B1")
    assert [s["code"] for s in api_for(store=mine).get("/api/v1/stores").json()] == ["A1"]


def test_unknown_route_is_json_404(api):
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404


def test_schema_and_docs_are_served_without_a_key_from_our_own_static_files():
    client = APIClient()
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"openapi" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower() and b"/static/drf_spectacular_sidecar/" in docs.content
