import datetime as dt
import hmac
import time

from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from loyalty.api.throttling import auth_failure_record, auth_failures_check
from loyalty.models import ApiClient
from loyalty.services.api_clients import api_key_hash

LAST_USED_RESOLUTION = dt.timedelta(minutes=1)  # at most one write per client per minute for "last used"


CLIENT_CACHE_SECONDS = 5.0
_clients: dict[str, tuple[float, ApiClient]] = {}


def api_client_by_prefix(prefix: str) -> ApiClient | None:
    """The client with this key prefix, kept in this process for ``CLIENT_CACHE_SECONDS``: a key's lookup
    is then no query at all on most requests. A change to a client (revocation, scopes, store, rate limit)
    reaches this process at once (signal below) and every other process within that time (docs/api.md)."""
    now = time.monotonic()
    hit = _clients.get(prefix)
    if hit is not None and now - hit[0] < CLIENT_CACHE_SECONDS:
        return hit[1]
    client = ApiClient.objects.select_related("store", "partner_account").filter(key_prefix=prefix).first()
    if client is not None:
        if len(_clients) > 10_000:  # bounded: stale entries of many clients are simply dropped
            _clients.clear()
        _clients[prefix] = (now, client)
    return client


def api_client_cache_clear(**_kwargs) -> None:
    _clients.clear()


post_save.connect(api_client_cache_clear, sender=ApiClient, dispatch_uid="api_client_cache_clear_save")
post_delete.connect(api_client_cache_clear, sender=ApiClient, dispatch_uid="api_client_cache_clear_delete")


def api_client_verify(header: str):
    """The active client of an ``Authorization`` header value: ``(client, None)``, or ``(None, why)`` with the
    refusal's message. Shared by the DRF authentication below and the earn fast lane (loyalty/api/fastlane.py)."""
    parts = header.split()
    if len(parts) != 2 or parts[0] != ApiKeyAuthentication.keyword:
        return None, _("Use the header “Authorization: Bearer <API key>”.")
    key = parts[1]
    client = api_client_by_prefix("_".join(key.split("_")[:2]))
    if client is None or not hmac.compare_digest(client.key_hash, api_key_hash(key)):
        return None, _("The API key is not valid.")
    if not client.is_active:
        return None, _("The API key was revoked.")
    return client, None


def api_client_touch(client: ApiClient) -> None:
    """Record "last used": at most one UPDATE per client per minute."""
    now = timezone.now()
    if client.last_used_at is None or now - client.last_used_at > LAST_USED_RESOLUTION:
        ApiClient.objects.filter(pk=client.pk).update(last_used_at=now)
        client.last_used_at = now


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer lk_<public>_<secret>``. ``request.auth`` is the ApiClient."""

    keyword = "Bearer"

    def authenticate(self, request):
        auth_failures_check(request)
        header = authentication.get_authorization_header(request).decode("latin-1").strip()
        if not header:
            return None  # HasScope refuses it (and counts it as a failure)
        client, refusal = api_client_verify(header)
        if client is None:
            auth_failure_record(request)
            raise exceptions.AuthenticationFailed(refusal)
        api_client_touch(client)
        return (None, client)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "loyalty.api.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "API key created with `manage.py create_api_key`."}


class HasScope(permissions.BasePermission):
    """The view names ``required_scope``; the client must hold it."""

    message = _("This API key does not have the scope this request needs.")

    def has_permission(self, request, view) -> bool:
        client = request.auth
        if not isinstance(client, ApiClient):
            auth_failure_record(request)
            raise exceptions.NotAuthenticated()
        scope = getattr(view, "required_scope", None)
        if scope is None:
            return True
        if not client.has_scope(scope):
            self.message = _("This API key lacks the scope “%(scope)s”.") % {"scope": scope}
            return False
        return True
