"""API: paying part of an order with points (quote, then commit once)."""

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.idempotency import api_idempotency_key, idempotent
from loyalty.api.lookups import member_by_id, store_for
from loyalty.models import Scope
from rewards.api.common import (
    errors,
    id_field,
    money_field,
    money_out,
    path_id,
    store_visible,
)
from rewards.exceptions import QuoteNotFound
from rewards.models import PointsQuote
from rewards.services.payments import points_quote_commit, points_quote_create

IDEMPOTENCY_HEADER = OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True,
                                      description="Unique per write; a retry with the same key and body replays.")


class PointsQuoteOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    member = serializers.IntegerField(source="member_id")
    store = serializers.SerializerMethodField()
    order_amount = money_out()
    points = serializers.IntegerField()
    value = money_out()
    expires_at = serializers.DateTimeField()
    status = serializers.CharField()
    committed_at = serializers.DateTimeField(allow_null=True)

    def get_store(self, quote) -> str | None:
        return quote.store.code if quote.store_id else None


class PointsQuoteCreateApi(APIView):
    """Offer to pay part of an order with points. Nothing is taken until the quote is committed."""

    required_scope = Scope.POINTS_PAY

    @extend_schema_serializer(component_name="PointsQuoteCreateInput")
    class InputSerializer(serializers.Serializer):
        member = id_field()
        order_amount = money_field(min_value=0)
        store = serializers.CharField(max_length=20, required=False)
        points = serializers.IntegerField(min_value=1, max_value=10**12, required=False,
                                          help_text="Points to use; absent: the most the order allows.")

    @extend_schema(
        operation_id="points_quote_create", request=InputSerializer, parameters=[IDEMPOTENCY_HEADER],
        responses={201: PointsQuoteOutputSerializer,
                   **errors(e403="insufficient_scope, store_not_allowed", e404="member_not_found, store_not_found",
                            e409="idempotency_key_reused, idempotency_key_in_use",
                            e422="insufficient_points, points_payment_not_allowed, member_frozen")},
        examples=[OpenApiExample("Use 500 points", request_only=True,
                                 value={"member": 42, "order_amount": "68.90", "store": "SH001", "points": 500}),
                  OpenApiExample("Quote", response_only=True, status_codes=["201"],
                                 value={"id": 7, "member": 42, "store": "SH001", "order_amount": "68.90", "points": 500,
                                        "value": "5.00", "expires_at": "2026-03-04T10:05:00+08:00", "status": "OPEN",
                                        "committed_at": None})],
    )
    @idempotent
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        quote = points_quote_create(member=member_by_id(values["member"]), order_amount=values["order_amount"],
                                    now=timezone.now(), store=store_for(request, values.get("store")),
                                    points=values.get("points"))
        return Response(PointsQuoteOutputSerializer(quote).data, status=status.HTTP_201_CREATED)


class PointsQuoteCommitApi(APIView):
    """Take the quoted points, once. A retry with the same Idempotency-Key replays the committed quote."""

    required_scope = Scope.POINTS_PAY

    @extend_schema_serializer(component_name="PointsQuoteCommitInput")
    class InputSerializer(serializers.Serializer):
        member = id_field(required=False, help_text="When given, the quote must be this member's.")

    @extend_schema(
        operation_id="points_quote_commit", request=InputSerializer, parameters=[IDEMPOTENCY_HEADER],
        responses={200: PointsQuoteOutputSerializer,
                   **errors(e404="quote_not_found",
                            e409="quote_expired, quote_already_committed, idempotency_key_reused",
                            e422="insufficient_points, member_frozen")},
    )
    @idempotent
    def post(self, request, quote_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        quote_id = path_id(quote_id, QuoteNotFound)
        row = PointsQuote.objects.filter(pk=quote_id).values("store_id").first()
        if row is None or not store_visible(request, row["store_id"]):
            raise QuoteNotFound()
        member = member_by_id(data.validated_data["member"]) if "member" in data.validated_data else None
        quote = points_quote_commit(quote_id=quote_id, member=member, now=timezone.now(),
                                    idempotency_key=api_idempotency_key(request),
                                    partner_account=request.auth.partner_account)  # a partner accepts the points
        return Response(PointsQuoteOutputSerializer(quote).data)
