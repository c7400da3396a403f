"""API: stored value (储值) — top up, spend, refund a top-up."""

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.idempotency import api_idempotency_key, idempotent
from loyalty.api.lookups import member_by_id, store_for
from loyalty.exceptions import NotFound
from loyalty.models import Scope
from rewards.api.common import (
    errors,
    id_field,
    money_field,
    money_out,
    path_id,
    store_visible,
)
from rewards.api.payments import IDEMPOTENCY_HEADER
from rewards.models import TopUp
from rewards.services.wallet import wallet_balance, wallet_spend, wallet_topup, wallet_topup_refund


class TopUpNotFound(NotFound):
    code = "topup_not_found"
    default_message = _("No such top-up.")


class WalletBalanceOutputSerializer(serializers.Serializer):
    principal = money_out()
    bonus = money_out()
    total = money_out()


class TopUpOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    member = serializers.IntegerField(source="member_id")
    amount = money_out()
    bonus = money_out()
    refunded_amount = money_out()
    reference = serializers.CharField()
    points_earned = serializers.SerializerMethodField()
    balance = serializers.SerializerMethodField()

    def get_points_earned(self, topup) -> int:
        return topup.points_transfer.amount if topup.points_transfer_id else 0

    @extend_schema_field(WalletBalanceOutputSerializer)
    def get_balance(self, topup) -> dict:
        return WalletBalanceOutputSerializer(wallet_balance(member=topup.member)).data


class WalletSpendOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    member = serializers.IntegerField(source="member_id")
    amount = money_out()
    from_bonus = money_out()
    from_principal = money_out()
    reference = serializers.CharField()
    balance = serializers.SerializerMethodField()

    @extend_schema_field(WalletBalanceOutputSerializer)
    def get_balance(self, spend) -> dict:
        return WalletBalanceOutputSerializer(wallet_balance(member=spend.member)).data


class WalletTopUpCreateApi(APIView):
    """Top up stored value: principal, the best bonus rule's bonus, and points at the top-up rate."""

    required_scope = Scope.WALLET_WRITE

    @extend_schema_serializer(component_name="WalletTopUpCreateInput")
    class InputSerializer(serializers.Serializer):
        member = id_field()
        amount = money_field(min_value=0)
        reference = serializers.CharField(max_length=64, required=False, default="", allow_blank=True)
        store = serializers.CharField(max_length=20, required=False)

    @extend_schema(
        operation_id="wallet_topup_create", request=InputSerializer, parameters=[IDEMPOTENCY_HEADER],
        responses={201: TopUpOutputSerializer,
                   **errors(e403="insufficient_scope, store_not_allowed", e404="member_not_found, store_not_found",
                            e409="idempotency_key_reused, idempotency_key_in_use", e422="member_frozen")},
        examples=[OpenApiExample("Top up 100", request_only=True,
                                 value={"member": 42, "amount": "100.00", "reference": "PAY-8812", "store": "SH001"}),
                  OpenApiExample("Topped up", response_only=True, status_codes=["201"], value={
                      "id": 5, "member": 42, "amount": "100.00", "bonus": "20.00", "refunded_amount": "0.00",
                      "reference": "PAY-8812", "points_earned": 100,
                      "balance": {"principal": "100.00", "bonus": "20.00", "total": "120.00"}})],
    )
    @idempotent
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        topup = wallet_topup(member=member_by_id(values["member"]), amount=values["amount"], now=timezone.now(),
                             store=store_for(request, values.get("store")), reference=values["reference"],
                             idempotency_key=api_idempotency_key(request))
        return Response(TopUpOutputSerializer(topup).data, status=status.HTTP_201_CREATED)


class WalletSpendCreateApi(APIView):
    """Pay from stored value (bonus first by default). Never overdraws."""

    required_scope = Scope.WALLET_WRITE

    @extend_schema_serializer(component_name="WalletSpendCreateInput")
    class InputSerializer(serializers.Serializer):
        member = id_field()
        amount = money_field(min_value=0)
        reference = serializers.CharField(max_length=64, required=False, default="", allow_blank=True)
        store = serializers.CharField(max_length=20, required=False)

    @extend_schema(
        operation_id="wallet_spend_create", request=InputSerializer, parameters=[IDEMPOTENCY_HEADER],
        responses={201: WalletSpendOutputSerializer,
                   **errors(e403="insufficient_scope, store_not_allowed", e404="member_not_found, store_not_found",
                            e409="idempotency_key_reused, idempotency_key_in_use",
                            e422="insufficient_stored_value, member_frozen")},
        examples=[OpenApiExample("Spend", request_only=True, value={"member": 42, "amount": "35.50",
                                                                     "reference": "POS-1-000124"})],
    )
    @idempotent
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        spend = wallet_spend(member=member_by_id(values["member"]), amount=values["amount"], now=timezone.now(),
                             store=store_for(request, values.get("store")), reference=values["reference"],
                             idempotency_key=api_idempotency_key(request))
        return Response(WalletSpendOutputSerializer(spend).data, status=status.HTTP_201_CREATED)


class WalletTopUpRefundApi(APIView):
    """Pay back unspent principal of one top-up (all of it when no amount is given); its unspent bonus goes."""

    required_scope = Scope.WALLET_WRITE

    @extend_schema_serializer(component_name="WalletTopUpRefundInput")
    class InputSerializer(serializers.Serializer):
        amount = money_field(min_value=0, required=False)

    @extend_schema(
        operation_id="wallet_topup_refund", request=InputSerializer, parameters=[IDEMPOTENCY_HEADER],
        responses={200: TopUpOutputSerializer,
                   **errors(e404="topup_not_found", e409="idempotency_key_reused, idempotency_key_in_use",
                            e422="topup_refund_too_large")},
    )
    @idempotent
    def post(self, request, topup_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        topup = TopUp.objects.select_related("member").filter(pk=path_id(topup_id, TopUpNotFound)).first()
        if topup is None or not store_visible(request, topup.store_id):
            raise TopUpNotFound()
        topup = wallet_topup_refund(topup=topup, amount=data.validated_data.get("amount"), now=timezone.now(),
                                    idempotency_key=api_idempotency_key(request))
        return Response(TopUpOutputSerializer(topup).data)
