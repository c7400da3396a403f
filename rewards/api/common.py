"""What the spending endpoints share: input fields, member and store look-ups with store binding, error docs."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from loyalty.api.auth import StoreNotAllowed
from loyalty.exceptions import LoyaltyError, MemberNotFound
from members.models import Member, Store

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


def member_get(member_id: int) -> Member:
    member = Member.objects.filter(pk=member_id).first()
    if member is None:
        raise MemberNotFound()
    return member


def store_for(request, code: str | None) -> Store | None:
    """The store a request acts at. A store-bound client acts only at its store (``code`` absent: its store);
    an unbound client names one or none. An unknown code is a field error."""
    bound = request.auth.store if request.auth.store_id else None
    if code in (None, ""):
        return bound
    if bound is not None:
        if code != bound.code:
            raise StoreNotAllowed()
        return bound
    store = Store.objects.filter(code=code, is_active=True).first()
    if store is None:
        raise serializers.ValidationError({"store": [_("No active store has this code.")]})
    return store


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
