import itertools

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from loyalty.models import Scope
from loyalty.services.api_clients import api_client_create
from tests.factories import MemberFactory, StoreFactory

_external_ids = itertools.count()


@pytest.fixture
def api_key(db):
    """A client with every scope; returns (client, key)."""
    return api_client_create(name="POS", scopes=list(Scope.values))


@pytest.fixture
def api(api_key):
    """A DRF test client authenticated with a full-scope key."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key[1]}")
    return client


def api_for(*, scopes=None, store=None) -> APIClient:
    _client, key = api_client_create(name="limited", scopes=scopes, store=store)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def purchase_body(**overrides) -> dict:
    """A till purchase as POST /purchases takes it: the member 13800138000 at store SH001, two lines for 100.00
    bought just now, a new order number each time; ``overrides`` replace fields (a None value is sent as null)."""
    body = {"member": {"phone": "13800138000"}, "store": "SH001", "external_id": f"POS-{next(_external_ids)}",
            "occurred_at": timezone.now().replace(microsecond=0).isoformat(), "total": "100.00",
            "lines": [{"sku": "LATTE", "category": "drinks", "quantity": 2, "amount": "60.00"},
                      {"sku": "MUFFIN", "category": "bakery", "quantity": 1, "amount": "40.00"}]}
    body.update(overrides)
    return body


@pytest.fixture
def shop(db):
    """The store SH001 that ``purchase_body`` buys at."""
    return StoreFactory(code="SH001")


@pytest.fixture
def buyer(db):
    """The member 13800138000 that ``purchase_body`` buys for."""
    return MemberFactory(phone="+8613800138000")
