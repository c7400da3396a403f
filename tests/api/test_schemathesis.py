"""schemathesis against the live OpenAPI schema, in process (WSGI): no 5xx for anything generated from the
schema, and every response conforms to the schema (status, body)."""

import uuid

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from config.wsgi import application
from loyalty.models import ApiClient, Scope
from loyalty.services.api_clients import api_client_create

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
