import hashlib
import json
from typing import Any

from django.utils.translation import gettext_lazy as _

from loyalty.exceptions import IdempotencyKeyReused, InvalidInput

MAX_KEY_LENGTH = 200


def fingerprint(payload: dict[str, Any]) -> str:
    """Stable hash of a request: same request → same fingerprint, whatever the key order."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_key_check(key: str | None) -> str:
    key = (key or "").strip()
    if not key:
        raise InvalidInput(_("An idempotency key is required."), field="idempotency_key")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(
            _("The idempotency key is longer than {limit} characters."), field="idempotency_key", limit=MAX_KEY_LENGTH
        )
    return key


def replay_or_refuse(*, stored_fingerprint: str, request_fingerprint: str) -> None:
    """Same key: the same request replays the first result; a different request is refused."""
    if stored_fingerprint != request_fingerprint:
        raise IdempotencyKeyReused()
