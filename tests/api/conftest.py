import pytest
from rest_framework.test import APIClient

from loyalty.models import Scope
from loyalty.services.api_clients import api_client_create


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
