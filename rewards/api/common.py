"""What the spending endpoints share: input fields, store visibility, error docs. Member and store look-ups are
``loyalty.api.lookups`` (one contract for the whole API)."""

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from loyalty.exceptions import LoyaltyError

MAX_ID = 2**63 - 1


def id_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


def money_field(**kwargs) -> serializers.DecimalField:
    """Money in: a decimal string (``"68.90"``); a JSON number is accepted too. At most 2 decimal places."""
    return serializers.DecimalField(max_digits=12, decimal_places=2, **kwargs)


def money_out(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=True, **kwargs)


def path_id(value: int, not_found: type[LoyaltyError]) -> int:
    """An id from the URL; one that no row can have is simply not found."""
    if not 1 <= value <= MAX_ID:
        raise not_found()
    return value


def store_visible(request, store_id: int | None) -> bool:
    """A bound client sees only objects of its store (or of no store)."""
    return not request.auth.store_id or store_id in (None, request.auth.store_id)


class SpendingErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class SpendingErrorSerializer(serializers.Serializer):
    error = SpendingErrorDetailSerializer()


def errors(**by_status: str) -> dict:
    """``{status: OpenApiResponse}`` for the error responses of an operation, with their codes."""
    common = {400: "invalid_request, invalid_input", 401: "unauthenticated", 403: "insufficient_scope"}
    merged = {**common, **{int(k[1:]): v for k, v in by_status.items()}}
    return {status: OpenApiResponse(SpendingErrorSerializer, description=f"Error codes: {codes}")
            for status, codes in sorted(merged.items())}
