"""schemathesis against the live OpenAPI schema, in process (WSGI): no 5xx for anything generated from the
schema, and every response conforms to the schema (status, body)."""

import datetime as dt
import uuid

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from werkzeug.test import Client

from config.wsgi import application
from loyalty.models import ApiClient, Scope
from loyalty.services.api_clients import api_client_create
from tests.factories import MemberFactory, StoreFactory
from tests.rewards.factories import coupon_make
from tests.rewards.test_redemptions import give

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)

CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.response_schema_conformance]


@pytest.fixture
def auth_headers(db):
    """A fresh full-scope key without a rate limit; Django's connection-closing handler is detached while the
    test runs, as Django's own test client does (the in-process requests share the test's connection and
    transaction; on PostgreSQL every request would otherwise find it closed)."""
    client, key = api_client_create(name="schemathesis", scopes=list(Scope.values))
    ApiClient.objects.filter(pk=client.pk).update(rate_limit_per_minute=0)
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    try:
        yield {"Authorization": f"Bearer {key}"}
    finally:
        for signal in (request_started, request_finished):
            signal.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_api_conforms_and_never_fails(case, auth_headers):
    case.call_and_validate(headers={**auth_headers, "Idempotency-Key": uuid.uuid4().hex}, checks=CHECKS)


def test_lists_with_rows_conform_too(auth_headers):
    """Generated ids rarely exist, so the lists and a purchase with coupons are checked here with real rows."""
    StoreFactory(code="SH001")
    member = MemberFactory()
    give(member, 500, now=timezone.now() - dt.timedelta(days=1))
    coupon = coupon_make(member=member)
    http = Client(application)
    headers = {**auth_headers, "Idempotency-Key": uuid.uuid4().hex}
    created = http.post("/api/v1/purchases", headers=headers, json={
        "member": {"id": member.pk}, "store": "SH001", "external_id": "POS-1", "total": "50.00",
        "occurred_at": timezone.now().replace(microsecond=0).isoformat(), "coupon_codes": [coupon.code]})
    assert created.status_code == 201, created.text
    schema["/api/v1/purchases"]["POST"].validate_response(created)
    for path, template in [(f"/api/v1/members/{member.pk}/transfers", "/api/v1/members/{member_id}/transfers"),
                           (f"/api/v1/members/{member.pk}/lots", "/api/v1/members/{member_id}/lots"),
                           ("/api/v1/events", "/api/v1/events"),
                           (f"/api/v1/purchases/{created.json['id']}", "/api/v1/purchases/{purchase_id}")]:
        response = http.get(path, headers=auth_headers)
        assert response.status_code == 200, (path, response.text)
        assert response.json["results"] if path.endswith(("transfers", "events")) else True
        schema[template]["GET"].validate_response(response)
