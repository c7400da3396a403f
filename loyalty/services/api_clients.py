"""API clients: keys are shown once and stored as a SHA-256 hash."""

import hashlib
import secrets

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from loyalty.exceptions import InvalidInput
from loyalty.models import ApiClient, Scope
from members.models import Store

KEY_PREFIX = "lk_"


def api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def api_client_create(*, name: str, scopes: list[str] | None = None, store: Store | None = None) -> tuple[ApiClient, str]:
    """Create a client and return it with its key (``lk_<public id>_<secret>``); the key is not kept."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput(_("name: this field is required."), field="name")
    scopes = list(Scope.values) if not scopes else list(dict.fromkeys(scopes))
    unknown = [s for s in scopes if s not in Scope.values]
    if unknown:
        raise InvalidInput(_("scopes: unknown scope {scope}."), field="scopes", scope=", ".join(unknown))
    public = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{public}_{secrets.token_urlsafe(32)}"
    client = ApiClient.objects.create(
        name=name, key_prefix=f"{KEY_PREFIX}{public}", key_hash=api_key_hash(key), scopes=scopes, store=store,
    )
    return client, key


def api_client_revoke(*, client: ApiClient, now) -> ApiClient:
    client.is_active, client.revoked_at = False, now
    client.save(update_fields=["is_active", "revoked_at", "updated_at"])
    return client
