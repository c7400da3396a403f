"""manage.py create_api_key and the API client admin."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from loyalty.models import ApiClient, Scope
from loyalty.services.api_clients import api_client_create, api_key_hash
from tests.factories import StoreFactory

pytestmark = pytest.mark.django_db


def run(*args) -> list[str]:
    out = io.StringIO()
    call_command("create_api_key", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_prints_the_key_once_as_the_last_line_with_every_scope_by_default():
    lines = run("--name", "POS")
    key = lines[-1]
    client = ApiClient.objects.get()
    assert key.startswith(client.key_prefix + "_") and client.key_hash == api_key_hash(key)
    assert sorted(client.scopes) == sorted(Scope.values)
    assert sum(key in line for line in lines) == 1


def test_scopes_and_store():
    StoreFactory(code="SH001")
    lines = run("--name", "Till 3", "--scopes", "members:read,purchases:write", "--store", "SH001")
    client = ApiClient.objects.get()
    assert client.scopes == ["members:read", "purchases:write"] and client.store.code == "SH001"
    assert lines[-1].startswith(client.key_prefix)


@pytest.mark.parametrize("args", [["--name", "x", "--scopes", "root"], ["--name", "x", "--store", "NOPE"],
                                  ["--name", "  "]])
def test_bad_arguments_are_refused_without_a_client(args):
    with pytest.raises(CommandError):
        run(*args)
    assert not ApiClient.objects.exists()


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser(username="boss", password="pw", email="b@example.com")
    client.force_login(user)
    return client


def test_admin_lists_clients_without_the_hash(admin_client):
    api_client, _key = api_client_create(name="POS")
    response = admin_client.get("/admin/loyalty/apiclient/")
    assert response.status_code == 200
    assert api_client.key_prefix in response.content.decode() and api_client.key_hash not in response.content.decode()
    change = admin_client.get(f"/admin/loyalty/apiclient/{api_client.pk}/change/")
    assert change.status_code == 200 and api_client.key_hash not in change.content.decode()


def test_admin_create_shows_the_key_once(admin_client):
    response = admin_client.post("/admin/loyalty/apiclient/add/", {
        "name": "Shop", "scopes": ["members:read"], "rate_limit_per_minute": 600}, follow=True)
    assert response.status_code == 200
    client = ApiClient.objects.get()
    shown = [str(m) for m in response.context["messages"]]
    keys = [word for m in shown for word in m.split() if word.startswith(client.key_prefix + "_")]
    assert len(keys) == 1 and api_key_hash(keys[0]) == client.key_hash
    assert client.scopes == ["members:read"]


def test_admin_revoke_action(admin_client):
    api_client, _key = api_client_create(name="POS")
    admin_client.post("/admin/loyalty/apiclient/", {"action": "revoke", "_selected_action": [api_client.pk]})
    api_client.refresh_from_db()
    assert not api_client.is_active and api_client.revoked_at is not None
