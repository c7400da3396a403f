"""API: the rewards catalogue as a member sees it, redemptions, their fulfilment and cancellation."""

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.idempotency import api_idempotency_key, idempotent
from loyalty.api.lookups import member_by_id, store_for
from loyalty.models import Scope
from rewards.api.common import errors, id_field, money_out, path_id
from rewards.api.payments import IDEMPOTENCY_HEADER
from rewards.exceptions import RedemptionNotFound
from rewards.models import RedemptionStatus
from rewards.selectors_catalogue import reward_list_available
from rewards.services.catalogue import redemption_cancel, redemption_create, redemption_fulfil


class RewardOfferOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="reward.pk")
    name = serializers.CharField()
    description = serializers.CharField()
    image_url = serializers.CharField()
    kind = serializers.CharField()
    points_cost = serializers.IntegerField()
    cash_price = money_out()
    stock = serializers.IntegerField(allow_null=True, help_text="null: unlimited.")
    can_redeem = serializers.BooleanField()
    affordable = serializers.BooleanField(help_text="The member has enough available points.")
    reason = serializers.CharField(help_text="Why not, in the request's language; empty when they can.")
    available_again = serializers.DateTimeField(allow_null=True)
    limit_used = serializers.IntegerField(allow_null=True)
    donation_percent = serializers.IntegerField(allow_null=True)


class RedemptionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    member = serializers.IntegerField(source="member_id")
    reward = serializers.IntegerField(source="reward_id")
    status = serializers.CharField()
    points = serializers.IntegerField()
    cash = money_out()
    pickup_code = serializers.SerializerMethodField()
    coupon = serializers.SerializerMethodField()
    redeemed_at = serializers.DateTimeField()
    fulfilled_at = serializers.DateTimeField(allow_null=True)
    cancelled_at = serializers.DateTimeField(allow_null=True)

    def get_pickup_code(self, redemption) -> str | None:
        """Shown only while the redemption waits for pickup."""
        return redemption.pickup_code if redemption.status == RedemptionStatus.PENDING else None

    def get_coupon(self, redemption) -> str | None:
        """The code of the coupon this redemption issued, if any."""
        return redemption.coupon.code if redemption.coupon_id else None


class RewardListApi(APIView):
    """The catalogue for one member: every reward in its window with whether they can redeem it and why not."""

    required_scope = Scope.REWARDS_READ

    @extend_schema_serializer(component_name="RewardListFilter")
    class FilterSerializer(serializers.Serializer):
        member = id_field()

    @extend_schema(
        operation_id="rewards_list",
        parameters=[OpenApiParameter("member", int, OpenApiParameter.QUERY, required=True)],
        responses={200: RewardOfferOutputSerializer(many=True), **errors(e404="member_not_found")},
        examples=[OpenApiExample("Catalogue", response_only=True, value=[{
            "id": 3, "name": "Glass water", "description": "", "image_url": "", "kind": "GOODS", "points_cost": 50,
            "cash_price": "0.00", "stock": 12, "can_redeem": False, "affordable": False,
            "reason": "Not enough points: 20 available, 50 needed.", "available_again": None, "limit_used": None,
            "donation_percent": None}])],
    )
    def get(self, request):
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        offers = reward_list_available(member=member_by_id(query.validated_data["member"]), now=timezone.now())
        return Response(RewardOfferOutputSerializer(offers, many=True).data)


class RedemptionCreateApi(APIView):
    """Redeem one reward for a member. Goods handed over at the counter stay PENDING with a pickup code."""

    required_scope = Scope.REWARDS_WRITE

    @extend_schema_serializer(component_name="RedemptionCreateInput")
    class InputSerializer(serializers.Serializer):
        member = id_field()
        reward = id_field()

    @extend_schema(
        operation_id="redemption_create", request=InputSerializer, parameters=[IDEMPOTENCY_HEADER],
        responses={201: RedemptionOutputSerializer,
                   **errors(e402="cash_payment_failed", e404="member_not_found, reward_not_found",
                            e409="idempotency_key_reused, idempotency_key_in_use",
                            e422="insufficient_points, out_of_stock, redemption_limit_reached, reward_not_available, "
                                 "member_frozen")},
        examples=[OpenApiExample("Redeem", request_only=True, value={"member": 42, "reward": 3}),
                  OpenApiExample("Pending pickup", response_only=True, status_codes=["201"], value={
                      "id": 9, "member": 42, "reward": 3, "status": "PENDING", "points": 50, "cash": "0.00",
                      "pickup_code": "K7M2Q9", "coupon": None, "redeemed_at": "2026-03-04T10:00:00+08:00",
                      "fulfilled_at": None, "cancelled_at": None})],
    )
    @idempotent
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        redemption = redemption_create(member=member_by_id(data.validated_data["member"]),
                                       reward_id=data.validated_data["reward"], now=timezone.now(),
                                       idempotency_key=api_idempotency_key(request))
        return Response(RedemptionOutputSerializer(redemption).data, status=status.HTTP_201_CREATED)


class RedemptionCancelApi(APIView):
    """Cancel a pending redemption: the points come back, the item goes back to stock."""

    required_scope = Scope.REWARDS_WRITE

    @extend_schema_serializer(component_name="RedemptionCancelInput")
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=255)

    @extend_schema(
        operation_id="redemption_cancel", request=InputSerializer, parameters=[IDEMPOTENCY_HEADER],
        responses={200: RedemptionOutputSerializer,
                   **errors(e404="redemption_not_found", e409="redemption_state_conflict, idempotency_key_reused")},
    )
    @idempotent
    def post(self, request, redemption_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        redemption = redemption_cancel(redemption_id=path_id(redemption_id, RedemptionNotFound), now=timezone.now(),
                                       reason=data.validated_data["reason"],
                                       idempotency_key=api_idempotency_key(request))
        return Response(RedemptionOutputSerializer(redemption).data)


class RedemptionFulfilApi(APIView):
    """Hand a pending redemption over against the pickup code the member shows. A store-bound key fulfils at
    its store."""

    required_scope = Scope.REWARDS_WRITE

    @extend_schema_serializer(component_name="RedemptionFulfilInput")
    class InputSerializer(serializers.Serializer):
        pickup_code = serializers.CharField(max_length=32)
        store = serializers.CharField(max_length=20, required=False)

    @extend_schema(
        operation_id="redemption_fulfil", request=InputSerializer, parameters=[IDEMPOTENCY_HEADER],
        responses={200: RedemptionOutputSerializer,
                   **errors(e403="insufficient_scope, store_not_allowed", e404="redemption_not_found, store_not_found",
                            e409="redemption_state_conflict, idempotency_key_reused", e422="pickup_code_invalid")},
    )
    @idempotent
    def post(self, request, redemption_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        redemption = redemption_fulfil(redemption_id=path_id(redemption_id, RedemptionNotFound), pickup_code=data.validated_data["pickup_code"],
                                       now=timezone.now(), store=store_for(request, data.validated_data.get("store")))
        return Response(RedemptionOutputSerializer(redemption).data)
