"""Domain errors. Each has a stable ``code`` (API error code) and a message translated on display."""

from typing import Any

from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _


class LoyaltyError(Exception):
    """Base of every refusal the domain makes. Nothing is written when one is raised."""

    code = "loyalty_error"
    default_message = _("The request was refused.")
    http_status = 422

    def __init__(self, message: Any = None, *, extra: dict | None = None, **params: Any) -> None:
        template = message if message is not None else self.default_message
        self.message = format_lazy(template, **params) if params else template
        self.params = params
        self.extra = extra or {}
        super().__init__(str(self.message))

    def __str__(self) -> str:  # rendered in the active language
        return str(self.message)


class InvalidInput(LoyaltyError):
    code = "invalid_input"
    default_message = _("The request is not valid.")
    http_status = 400

    def __init__(self, message: Any = None, *, field: str | None = None, **kwargs: Any) -> None:
        if field is not None:
            kwargs["field"] = field
        super().__init__(message, **kwargs)
        self.field = field
        if field:
            self.extra.setdefault("field", field)


class NotFound(LoyaltyError):
    code = "not_found"
    default_message = _("Not found.")
    http_status = 404


class MemberNotFound(NotFound):
    code = "member_not_found"
    default_message = _("No such member.")


class StoreNotFound(NotFound):
    code = "store_not_found"
    default_message = _("No such store.")


class MemberNotActive(LoyaltyError):
    code = "member_not_active"
    default_message = _("This member account is not active.")


class MemberFrozen(MemberNotActive):
    code = "member_frozen"
    default_message = _("This member account is frozen.")


class MemberClosed(MemberNotActive):
    code = "member_closed"
    default_message = _("This member account is closed.")


class InsufficientPoints(LoyaltyError):
    code = "insufficient_points"
    default_message = _("Insufficient points: {available} available, {requested} requested.")


class IdempotencyKeyReused(LoyaltyError):
    code = "idempotency_key_reused"
    default_message = _("This idempotency key was already used for a different request.")
    http_status = 409


class DuplicatePurchase(LoyaltyError):
    code = "duplicate_purchase"
    default_message = _("Store {store} already has a purchase with reference “{external_id}”.")
    http_status = 409


class RefundExceedsPurchase(LoyaltyError):
    code = "refund_exceeds_purchase"
    default_message = _("The refund is larger than what is left to refund on this purchase ({refundable}).")


class IdempotencyKeyInUse(LoyaltyError):
    code = "idempotency_key_in_use"
    default_message = _("A request with this idempotency key is still being processed; retry shortly.")
    http_status = 409


class StoreNotAllowed(LoyaltyError):
    """A store-bound API client acting at another store."""

    code = "store_not_allowed"
    default_message = _("This API key is bound to another store.")
    http_status = 403
