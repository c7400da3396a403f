"""API: check a coupon against an order, and redeem (核销) it exactly once."""

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.idempotency import api_idempotency_key, idempotent
from loyalty.api.lookups import member_by_id, store_for
from loyalty.models import Scope
from rewards.api.common import errors, id_field, money_field, money_out
from rewards.api.payments import IDEMPOTENCY_HEADER
from rewards.services.coupons import coupon_redeem, coupon_validate


class CouponOutputSerializer(serializers.Serializer):
    code = serializers.CharField()
    member = serializers.IntegerField(source="member_id")
    name = serializers.CharField(source="template.name")
    kind = serializers.CharField(source="template.kind")
    status = serializers.CharField()
    valid_from = serializers.DateTimeField()
    valid_until = serializers.DateTimeField(allow_null=True)
    discount = money_out(allow_null=True, help_text="Money taken off when it was redeemed.")
    redeemed_at = serializers.DateTimeField(allow_null=True)
    redeemed_store = serializers.SerializerMethodField()
    reference = serializers.CharField(source="redeemed_reference")

    def get_redeemed_store(self, coupon) -> str | None:
        return coupon.redeemed_store.code if coupon.redeemed_store_id else None


class CouponCheckOutputSerializer(serializers.Serializer):
    valid = serializers.BooleanField(help_text="Always true here: a coupon that cannot be used is a 4xx error.")
    discount = money_out()
    payable = money_out()
    free_item = serializers.CharField()
    message = serializers.CharField()
    coupon = CouponOutputSerializer()


@extend_schema_serializer(component_name="CouponCheckInput")
class CouponInputSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=40)
    member = id_field(required=False, help_text="Absent: presented without a member card (the code is the proof).")
    store = serializers.CharField(max_length=20, required=False,
                                  help_text="Store code; a store-bound key may name only its own store.")
    order_amount = money_field(min_value=0)
    with_points = serializers.BooleanField(required=False, default=False)
    other_coupons = serializers.IntegerField(required=False, default=0, min_value=0, max_value=100)


def _coupon_args(request, values: dict) -> dict:
    return {"code": values["code"], "member": member_by_id(values["member"]) if "member" in values else None,
            "store": store_for(request, values.get("store")), "order_amount": values["order_amount"],
            "now": timezone.now(), "with_points": values["with_points"], "other_coupons": values["other_coupons"]}


COUPON_ERRORS = {"e403": "insufficient_scope, store_not_allowed, coupon_not_yours",
                 "e404": "member_not_found, store_not_found", "e409": "coupon_already_used",
                 "e422": "coupon_invalid, coupon_expired, coupon_not_yet_valid, coupon_not_applicable, coupon_void"}


class CouponValidateApi(APIView):
    """Can this code be used for this order, and what would it take off? Writes nothing (no Idempotency-Key)."""

    required_scope = Scope.COUPONS_WRITE

    InputSerializer = CouponInputSerializer

    @extend_schema(
        operation_id="coupon_validate", request=CouponInputSerializer,
        responses={200: CouponCheckOutputSerializer, **errors(**COUPON_ERRORS)},
        examples=[OpenApiExample("Check", request_only=True,
                                 value={"code": "ACDE-FGHJ-KMNP", "member": 42, "store": "SH001",
                                        "order_amount": "120.00"})],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        check = coupon_validate(**_coupon_args(request, data.validated_data))
        return Response(CouponCheckOutputSerializer({
            "valid": True, "discount": check.discount, "payable": check.payable, "free_item": check.free_item,
            "message": str(check.message), "coupon": check.coupon}).data)


class CouponRedeemApi(APIView):
    """Redeem the coupon for this order, once. The same order reference at the same store replays."""

    required_scope = Scope.COUPONS_WRITE

    @extend_schema_serializer(component_name="CouponRedeemInput")
    class InputSerializer(CouponInputSerializer):
        reference = serializers.CharField(max_length=64, required=False, default="", allow_blank=True)

    @extend_schema(
        operation_id="coupon_redeem", request=InputSerializer, parameters=[IDEMPOTENCY_HEADER],
        responses={200: CouponOutputSerializer,
                   **errors(**{**COUPON_ERRORS, "e409": "coupon_already_used, idempotency_key_reused"})},
        examples=[OpenApiExample("Redeem", request_only=True,
                                 value={"code": "ACDEFGHJKMNP", "member": 42, "store": "SH001",
                                        "order_amount": "120.00", "reference": "POS-1-000123"})],
    )
    @idempotent
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        coupon = coupon_redeem(**_coupon_args(request, data.validated_data),
                               reference=data.validated_data["reference"],
                               idempotency_key=api_idempotency_key(request))
        return Response(CouponOutputSerializer(coupon).data)
