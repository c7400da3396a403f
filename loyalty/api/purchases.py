"""API: purchases — record (idempotent), preview (no write), read, refund.

Store binding: a client bound to a store records purchases only at that store (403 ``store_not_allowed``)
and reads or refunds only purchases made there (others are 404, as if they did not exist).
"""

import uuid
from decimal import Decimal

from django.db import transaction
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.idempotency import api_idempotency_key, idempotent
from loyalty.api.lookups import member_by_ref, store_for
from loyalty.api.members import TierRefSerializer, error_responses
from loyalty.config import config_snapshot_last
from loyalty.explain import breakdown_lines
from loyalty.models import Purchase, Scope
from loyalty.models.purchases import Channel
from loyalty.selectors import member_points_summary
from loyalty.services import program_settings_get, purchase_record, refund_record
from loyalty.services.ledger import MemberRef
from rewards.models import Coupon
from rewards.services.payments import checkout

MONEY = {"max_digits": 12, "decimal_places": 2}
CENT = Decimal("0.01")


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with an offset; a time without one is refused rather than guessed."""

    default_error_messages = {"naive": _("Give the time with its offset, e.g. 2026-03-04T10:00:00+08:00.")}

    def to_internal_value(self, value):
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip()) if len(value) < 64 else None
            except ValueError:  # well-formed but no such date (February 30th): the parent says "invalid"
                parsed = None
            if parsed is not None and parsed.tzinfo is None:
                self.fail("naive")
        return super().to_internal_value(value)


# ---- input --------------------------------------------------------------------------------------

class MemberRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    phone = serializers.CharField(required=False, max_length=32)
    member_number = serializers.CharField(required=False, max_length=20)

    def validate(self, attrs):
        if len(attrs) != 1:
            raise serializers.ValidationError(_("Give exactly one of id, phone or member_number."))
        return attrs


class LineSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    category = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000, default=1)
    amount = serializers.DecimalField(min_value=0, **MONEY)


class PurchaseInputSerializer(serializers.Serializer):
    member = MemberRefSerializer()
    store = serializers.CharField(max_length=32, help_text="Store code.")
    external_id = serializers.CharField(max_length=64, help_text="The order number in your system; unique per store.")
    occurred_at = AwareDateTimeField(help_text="When the purchase happened, with offset.")
    total = serializers.DecimalField(min_value=0, **MONEY)
    lines = LineSerializer(many=True, required=False, max_length=500)
    channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.STORE)
    promo_codes = serializers.ListField(child=serializers.CharField(max_length=32), required=False, max_length=20)
    points_payment_quote = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1,
        help_text="A points payment quote (POST /points-payments/quotes) for what is left after the coupons; "
                  "it is committed with the purchase (or, if committed already, used once).")
    coupon_codes = serializers.ListField(
        child=serializers.CharField(max_length=32), required=False, max_length=20,
        help_text="The member's coupons to redeem on this order, applied in this order. Coupons' discount earns no "
                  "points.")

    class Meta:
        ref_name = "PurchaseCreate"


class RefundLineSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000, default=1)


class RefundInputSerializer(serializers.Serializer):
    amount = serializers.DecimalField(min_value=0, required=False, **MONEY)
    lines = RefundLineSerializer(many=True, required=False, max_length=500)
    occurred_at = AwareDateTimeField(required=False, help_text="Defaults to now.")

    class Meta:
        ref_name = "RefundCreate"

    def validate(self, attrs):
        if ("amount" in attrs) == ("lines" in attrs):
            raise serializers.ValidationError(_("Give either an amount or lines to refund, not both."))
        return attrs


# ---- output -------------------------------------------------------------------------------------

class TierChangeSerializer(serializers.Serializer):
    from_tier = TierRefSerializer(allow_null=True)
    to_tier = TierRefSerializer()


class AppliedCouponSerializer(serializers.Serializer):
    code = serializers.CharField()
    discount = serializers.DecimalField(**MONEY)


class PurchaseOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="null in a preview.")
    member = serializers.IntegerField()
    store = serializers.CharField()
    external_id = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    total = serializers.DecimalField(**MONEY)
    points_earned = serializers.IntegerField()
    breakdown = serializers.DictField(help_text="How the points were worked out.")
    breakdown_lines = serializers.ListField(child=serializers.CharField(), help_text="The breakdown in words.")
    points_balance = serializers.IntegerField(help_text="The member's balance after this purchase.")
    tier_change = TierChangeSerializer(allow_null=True)
    refunded_amount = serializers.DecimalField(**MONEY)
    points_reversed = serializers.IntegerField()
    points_returned = serializers.IntegerField()
    coupons = AppliedCouponSerializer(many=True, help_text="The coupons redeemed on this purchase.")
    coupon_discount = serializers.DecimalField(help_text="What the coupons took off.", **MONEY)
    points_paid = serializers.IntegerField(help_text="Points the member paid with (a points payment quote).")
    points_paid_value = serializers.DecimalField(help_text="What those points were worth.", **MONEY)


class RefundOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    amount = serializers.DecimalField(**MONEY)
    points_reversed = serializers.IntegerField()
    points_returned = serializers.IntegerField()
    points_balance = serializers.IntegerField()


def tier_ref(tier) -> dict | None:
    return {"code": tier.code, "name": tier.name} if tier is not None else None


def purchase_coupons(purchase: Purchase) -> list[dict]:
    """The coupons a checkout redeemed on this purchase (their redemption keys derive from its key)."""
    coupons = Coupon.objects.filter(redeem_idempotency_key__startswith=f"{purchase.idempotency_key}:coupon:")
    return [{"code": c.code, "discount": c.discount or Decimal("0.00")} for c in coupons.order_by("redeemed_at", "pk")]


def purchase_data(purchase: Purchase, *, preview: bool = False, coupons: bool = True, currency: str | None = None
                  ) -> dict:
    """The API's purchase: what ``PurchaseOutputSerializer`` (the documented schema) gives, built directly — the
    serializer's field copies cost more than the rest of an earn's Python (a test keeps the two identical).

    ``coupons=False`` when no coupon was given (a plain earn): saves the look-up. ``currency``: the program's,
    when the caller has it (a batch answers a thousand purchases)."""
    change = getattr(purchase, "tier_change", None)
    balance = getattr(purchase, "points_balance", None)  # known to a write; looked up for a read or a replay
    if balance is None:
        balance = member_points_summary(member=purchase.member, now=timezone.now()).balance
    if currency is None:
        config = config_snapshot_last()
        currency = config.program.currency if config is not None else program_settings_get().currency
    breakdown = purchase.earn_breakdown or {}
    return {
        "id": None if preview else purchase.pk, "member": purchase.member_id, "store": purchase.store.code,
        "external_id": purchase.external_id, "occurred_at": time_text(purchase.occurred_at),
        "total": money_text(purchase.total), "points_earned": purchase.points_earned,
        "breakdown": {str(k): v for k, v in breakdown.items()},
        "breakdown_lines": [str(line) for line in breakdown_lines(breakdown, currency=currency)],
        "points_balance": balance,
        "tier_change": {"from_tier": tier_ref(change.from_tier), "to_tier": tier_ref(change.to_tier)} if change else None,
        "refunded_amount": money_text(purchase.refunded_amount), "points_reversed": purchase.points_reversed,
        "points_returned": purchase.points_returned,
        "coupons": [{"code": c["code"], "discount": money_text(c["discount"])} for c in purchase_coupons(purchase)]
        if coupons else [],
        "coupon_discount": money_text(purchase.coupon_discount), "points_paid": purchase.points_paid,
        "points_paid_value": money_text(purchase.points_paid_value),
    }


def money_text(value) -> str:
    """A money amount as the API writes it (DRF's DecimalField with 2 places, as a string): "68.90"."""
    return f"{Decimal(value).quantize(CENT):f}"


def time_text(value) -> str:
    """A time as the API writes it (DRF's DateTimeField): ISO 8601 in the site's time zone, "Z" for UTC."""
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


PURCHASE_REQUEST = OpenApiExample("A till purchase", request_only=True, value={
    "member": {"phone": "13800138000"}, "store": "SH001", "external_id": "POS-20260304-0001",
    "occurred_at": "2026-03-04T10:00:00+08:00", "total": "68.90",
    "lines": [{"sku": "LATTE", "category": "drinks", "quantity": 2, "amount": "56.00"},
              {"sku": "MUFFIN", "category": "bakery", "quantity": 1, "amount": "12.90"}]})
PURCHASE_RESPONSE = OpenApiExample("Points earned", response_only=True, value={
    "id": 981, "member": 42, "store": "SH001", "external_id": "POS-20260304-0001",
    "occurred_at": "2026-03-04T02:00:00Z", "total": "68.90", "points_earned": 68,
    "breakdown": {"kind": "earn", "eligible": "68.90", "base": 68, "lines": []},
    "breakdown_lines": ["Base: 68 points (1 point per ¥1.00 on ¥68.90)", "Total: 68 points"],
    "points_balance": 1348, "tier_change": None, "refunded_amount": "0.00", "points_reversed": 0, "points_returned": 0,
    "coupons": [], "coupon_discount": "0.00", "points_paid": 0, "points_paid_value": "0.00"})
IDEMPOTENCY_HEADER = OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True,
                                      description="Unique per write; a retry with the same key and body replays.")


def purchase_get(request, pk) -> Purchase:
    purchases = Purchase.objects.select_related("member", "store")
    if request.auth.store_id:
        purchases = purchases.filter(store_id=request.auth.store_id)
    return get_object_or_404(purchases, pk=pk)


class _Rollback(Exception):
    pass


def _record(request, *, idempotency_key: str) -> tuple[Purchase, bool]:
    """The purchase, and whether it was a checkout (coupons and/or a points payment quote)."""
    data = PurchaseInputSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    v = data.validated_data
    if "points_payment_quote" in v or "coupon_codes" in v:
        return checkout(
            member=member_by_ref(v["member"]), store=store_for(request, v["store"]), external_id=v["external_id"],
            occurred_at=v["occurred_at"], total=v["total"], lines=[dict(line) for line in v.get("lines") or []] or None,
            channel=v["channel"], promo_codes=v.get("promo_codes"), idempotency_key=idempotency_key,
            now=timezone.now(), quote_id=v.get("points_payment_quote"), coupon_codes=v.get("coupon_codes") or (),
            partner_account=request.auth.partner_account,
        ), True
    return purchase_record(
        member=MemberRef(**v["member"]), store=store_for(request, v["store"], cached=True), external_id=v["external_id"],
        occurred_at=v["occurred_at"], total=v["total"], lines=[dict(line) for line in v.get("lines") or []] or None,
        channel=v["channel"], promo_codes=v.get("promo_codes"), idempotency_key=idempotency_key, now=timezone.now(),
        partner_account=request.auth.partner_account,  # an alliance partner issues the points it gives
    ), False


class PurchaseCreateApi(APIView):
    required_scope = Scope.PURCHASES_WRITE

    @extend_schema(operation_id="purchases_create", summary="Record a purchase and earn points",
                   request=PurchaseInputSerializer, parameters=[IDEMPOTENCY_HEADER],
                   responses={201: PurchaseOutputSerializer, **error_responses(400, 401, 403, 404, 409, 422)},
                   examples=[PURCHASE_REQUEST, PURCHASE_RESPONSE])
    @idempotent
    def post(self, request):
        purchase, with_coupons = _record(request, idempotency_key=api_idempotency_key(request))
        return Response(purchase_data(purchase, coupons=with_coupons), status=status.HTTP_201_CREATED)


class PurchasePreviewApi(APIView):
    """The answer ``POST /purchases`` would give, worked out and rolled back: nothing is written."""

    required_scope = Scope.PURCHASES_WRITE

    @extend_schema(operation_id="purchases_preview", summary="Preview the points of a purchase without recording it",
                   request=PurchaseInputSerializer,
                   responses={200: PurchaseOutputSerializer, **error_responses(400, 401, 403, 404, 409, 422)},
                   examples=[PURCHASE_REQUEST, PURCHASE_RESPONSE])
    def post(self, request):
        answer = None
        try:
            with transaction.atomic():
                purchase, with_coupons = _record(request, idempotency_key=f"preview:{uuid.uuid4().hex}")
                answer = purchase_data(purchase, preview=True, coupons=with_coupons)
                raise _Rollback
        except _Rollback:
            pass
        return Response(answer)


class PurchaseDetailApi(APIView):
    required_scope = Scope.PURCHASES_WRITE

    @extend_schema(operation_id="purchases_retrieve", summary="A purchase with its points and refunds so far",
                   responses={200: PurchaseOutputSerializer, **error_responses(401, 403, 404)},
                   examples=[PURCHASE_RESPONSE])
    def get(self, request, purchase_id: int):
        return Response(purchase_data(purchase_get(request, purchase_id)))


class RefundCreateApi(APIView):
    required_scope = Scope.PURCHASES_WRITE

    @extend_schema(operation_id="purchases_refunds_create", summary="Refund part or all of a purchase",
                   request=RefundInputSerializer, parameters=[IDEMPOTENCY_HEADER],
                   responses={201: RefundOutputSerializer, **error_responses(400, 401, 403, 404, 409, 422)},
                   examples=[OpenApiExample("By amount", request_only=True, value={"amount": "20.00"}),
                             OpenApiExample("By lines", request_only=True,
                                            value={"lines": [{"sku": "LATTE", "quantity": 1}]}),
                             OpenApiExample("Refunded", response_only=True, value={
                                 "id": 77, "amount": "20.00", "points_reversed": 19, "points_returned": 0,
                                 "points_balance": 1329})])
    @idempotent
    def post(self, request, purchase_id: int):
        purchase = purchase_get(request, purchase_id)
        data = RefundInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        now = timezone.now()
        refund = refund_record(
            purchase=purchase, occurred_at=v.get("occurred_at") or now, now=now,
            idempotency_key=api_idempotency_key(request), amount=v.get("amount"),
            lines=[dict(line) for line in v["lines"]] if "lines" in v else None,
        )
        return Response(RefundOutputSerializer({
            "id": refund.pk, "amount": refund.amount, "points_reversed": refund.points_reversed,
            "points_returned": refund.points_returned,
            "points_balance": member_points_summary(member=purchase.member, now=now).balance,
        }).data, status=status.HTTP_201_CREATED)
