"""API: members — enrol, look up, read, history (transfers), open lots, point adjustments.

Members belong to the whole program, not to a store: any client with the scope may enrol, look up and
read any member (a member shops at every store). A store binding limits where a client records
purchases and refunds (see ``loyalty.api.purchases``), not which members it sees.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.idempotency import api_idempotency_key, idempotent
from loyalty.api.pagination import NewestFirstCursor
from loyalty.exceptions import InvalidInput
from loyalty.models import Scope, TransferSource
from loyalty.selectors import (
    member_lots_open,
    member_points_summary,
    member_transfers,
    transfer_describe,
    transfer_signed_amount,
)
from loyalty.selectors_tiers import tier_progress
from loyalty.services import member_enrol, points_adjust
from loyalty.services.member_profile import member_profile_update
from members.models import Member, Store
from members.services import phone_normalise
from rewards.services.wallet import wallet_balance

ERROR = inline_serializer("Error", {"error": inline_serializer("ErrorBody", {
    "code": serializers.CharField(), "message": serializers.CharField(), "details": serializers.DictField()})})


def error_responses(*codes: int) -> dict:
    return {code: ERROR for code in codes}


# ---- output -------------------------------------------------------------------------------------

class TierRefSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()


class PointsSerializer(serializers.Serializer):
    balance = serializers.IntegerField()
    pending = serializers.IntegerField()
    debt = serializers.IntegerField()
    expiring_30d = serializers.IntegerField()


class QualifyingSerializer(serializers.Serializer):
    spend = serializers.DecimalField(max_digits=14, decimal_places=2)
    points = serializers.IntegerField()


class NextTierSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    spend_gap = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    points_gap = serializers.IntegerField(allow_null=True)
    text = serializers.CharField()


class StoredValueSerializer(serializers.Serializer):
    balance = serializers.DecimalField(max_digits=14, decimal_places=2)


class MemberOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    member_number = serializers.CharField()
    phone = serializers.CharField()
    name = serializers.CharField()
    birthday = serializers.DateField(allow_null=True)
    home_store = serializers.CharField(allow_null=True, help_text="Store code.")
    status = serializers.CharField()
    tier = TierRefSerializer(allow_null=True)
    points = PointsSerializer()
    qualifying = QualifyingSerializer()
    next_tier = NextTierSerializer(allow_null=True)
    stored_value = StoredValueSerializer()


def member_data(member: Member) -> dict:
    """The member as the API shows it (balances now)."""
    now = timezone.now()
    summary = member_points_summary(member=member, now=now)
    progress = tier_progress(member=member, now=now)
    nxt = progress.next_tier if progress else None
    return MemberOutputSerializer({
        "id": member.pk, "member_number": member.member_number, "phone": member.phone, "name": member.name,
        "birthday": member.birthday, "home_store": member.home_store.code if member.home_store_id else None,
        "status": member.status,
        "tier": {"code": progress.tier.code, "name": progress.tier.name} if progress else None,
        "points": {"balance": summary.balance, "pending": summary.pending, "debt": summary.debt,
                   "expiring_30d": summary.expiring_30d},
        "qualifying": {"spend": progress.spend if progress else 0, "points": progress.points if progress else 0},
        "next_tier": {"code": nxt.code, "name": nxt.name, "spend_gap": progress.spend_gap,
                      "points_gap": progress.points_gap, "text": progress.text} if nxt else None,
        "stored_value": {"balance": wallet_balance(member=member, now=now).total},
    }).data


MEMBER_EXAMPLE = OpenApiExample("A member", response_only=True, value={
    "id": 42, "member_number": "80000012345", "phone": "+8613800138000", "name": "王小明", "birthday": "1990-05-01",
    "home_store": "SH001", "status": "ACTIVE", "tier": {"code": "SILVER", "name": "银卡"},
    "points": {"balance": 1280, "pending": 60, "debt": 0, "expiring_30d": 200},
    "qualifying": {"spend": "3200.00", "points": 3200},
    "next_tier": {"code": "GOLD", "name": "金卡", "spend_gap": "1800.00", "points_gap": None,
                  "text": "¥1,800.00 more to 金卡"},
    "stored_value": {"balance": "150.00"}})


def member_get(pk) -> Member:
    return get_object_or_404(Member.objects.select_related("home_store"), pk=pk)


def store_by_code(code: str | None, *, field: str) -> Store | None:
    if not code:
        return None
    store = Store.objects.filter(code=code, is_active=True).first()
    if store is None:
        raise serializers.ValidationError({field: [_("No active store with this code.")]})
    return store


# ---- views --------------------------------------------------------------------------------------

class MemberListCreateApi(APIView):
    """``POST`` enrols a member; ``GET ?phone=…`` or ``?member_number=…`` looks one up (a list of 0 or 1)."""

    required_scope = Scope.MEMBERS_READ

    def get_permissions(self):
        self.required_scope = Scope.MEMBERS_WRITE if self.request.method == "POST" else Scope.MEMBERS_READ
        return super().get_permissions()

    class InputSerializer(serializers.Serializer):
        phone = serializers.CharField(max_length=32)
        name = serializers.CharField(max_length=100)
        birthday = serializers.DateField(required=False, allow_null=True)
        home_store = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=32,
                                           help_text="Store code.")
        member_number = serializers.CharField(required=False, allow_null=True, max_length=20,
                                              help_text="Generated when absent.")

        class Meta:
            ref_name = "MemberCreate"

    class LookupSerializer(serializers.Serializer):
        phone = serializers.CharField(required=False, max_length=32)
        member_number = serializers.CharField(required=False, max_length=20)

        def validate(self, attrs):
            if ("phone" in attrs) == ("member_number" in attrs):
                raise serializers.ValidationError(_("Give exactly one of phone or member_number."))
            return attrs

    @extend_schema(
        operation_id="members_lookup", summary="Look up a member by phone or member number",
        parameters=[OpenApiParameter("phone", str, description="Any usual form; normalised (E.164)."),
                    OpenApiParameter("member_number", str)],
        responses={200: MemberOutputSerializer(many=True), **error_responses(400, 401, 403)},
        examples=[MEMBER_EXAMPLE],
    )
    def get(self, request):
        query = self.LookupSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        members = Member.objects.select_related("home_store")
        if "phone" in query.validated_data:
            try:
                phone = phone_normalise(phone=query.validated_data["phone"])
            except DjangoValidationError as exc:
                raise InvalidInput(exc.messages[0], field="phone") from None
            found = members.filter(phone=phone).first()
        else:
            found = members.filter(member_number=query.validated_data["member_number"]).first()
        return Response([member_data(found)] if found else [])

    @extend_schema(
        operation_id="members_create", summary="Enrol a member",
        request=InputSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True)],
        responses={201: MemberOutputSerializer, **error_responses(400, 401, 403, 409)},
        examples=[OpenApiExample("Enrol", request_only=True, value={
            "phone": "13800138000", "name": "王小明", "birthday": "1990-05-01", "home_store": "SH001"}), MEMBER_EXAMPLE],
    )
    @idempotent
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        member = member_enrol(
            phone=values["phone"], name=values["name"], birthday=values.get("birthday"),
            home_store=store_by_code(values.get("home_store"), field="home_store"),
            member_number=values.get("member_number") or None, now=timezone.now(),
        )
        return Response(member_data(member), status=status.HTTP_201_CREATED)


class MemberDetailApi(APIView):
    """``GET`` a member; ``PATCH`` corrects name, birthday or home store (phone and status are not
    changed through the API)."""

    required_scope = Scope.MEMBERS_READ

    def get_permissions(self):
        self.required_scope = Scope.MEMBERS_WRITE if self.request.method == "PATCH" else Scope.MEMBERS_READ
        return super().get_permissions()

    class UpdateSerializer(serializers.Serializer):
        name = serializers.CharField(required=False, max_length=100)
        birthday = serializers.DateField(required=False, allow_null=True)
        home_store = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=32,
                                           help_text="Store code; null clears it.")

        class Meta:
            ref_name = "MemberUpdate"

        def validate(self, attrs):
            unknown = sorted(set(self.initial_data) - set(self.fields)) if isinstance(self.initial_data, dict) else []
            if unknown:
                raise serializers.ValidationError(
                    {field: [_("This field cannot be changed here.")] for field in unknown})
            return attrs

    @extend_schema(operation_id="members_retrieve", summary="A member with balances and tier progress",
                   responses={200: MemberOutputSerializer, **error_responses(401, 403, 404)}, examples=[MEMBER_EXAMPLE])
    def get(self, request, member_id: int):
        return Response(member_data(member_get(member_id)))

    @extend_schema(operation_id="members_partial_update", summary="Correct a member's name, birthday or home store",
                   request=UpdateSerializer, responses={200: MemberOutputSerializer, **error_responses(400, 401, 403, 404)},
                   examples=[OpenApiExample("New name", request_only=True, value={"name": "王晓明"}), MEMBER_EXAMPLE])
    def patch(self, request, member_id: int):
        member = member_get(member_id)
        data = self.UpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        if "home_store" in changes:
            changes["home_store"] = store_by_code(changes["home_store"], field="home_store")
        member = member_profile_update(member=member, now=timezone.now(), **changes)
        return Response(member_data(member_get(member.pk)))


class TransferOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    code = serializers.CharField()
    points = serializers.IntegerField(help_text="Signed: + credited to the member, − taken from them.")
    reason = serializers.CharField(help_text="In words, in the request's language.")
    breakdown = serializers.DictField()


class MemberTransferListApi(APIView):
    required_scope = Scope.MEMBERS_READ

    @extend_schema(operation_id="members_transfers_list", summary="The member's points history, newest first",
                   parameters=[OpenApiParameter("cursor", str), OpenApiParameter("page_size", int)],
                   responses={200: inline_serializer("PaginatedTransferList", fields={
                       "next": serializers.URLField(allow_null=True), "previous": serializers.URLField(allow_null=True),
                       "results": TransferOutputSerializer(many=True)}), **error_responses(401, 403, 404)})
    def get(self, request, member_id: int):
        member = member_get(member_id)
        paginator = NewestFirstCursor()
        page = paginator.paginate_queryset(member_transfers(member=member), request, view=self)
        rows = [{"id": t.pk, "occurred_at": t.occurred_at, "code": t.code, "points": transfer_signed_amount(transfer=t),
                 "reason": transfer_describe(transfer=t), "breakdown": t.breakdown or {}} for t in page]
        return paginator.get_paginated_response(TransferOutputSerializer(rows, many=True).data)


class LotOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    amount = serializers.IntegerField()
    remaining = serializers.IntegerField()
    earned_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True, help_text="null: never expires.")
    pending = serializers.BooleanField()
    available_at = serializers.DateTimeField()


class MemberLotListApi(APIView):
    required_scope = Scope.MEMBERS_READ

    @extend_schema(operation_id="members_lots_list", summary="Open lots, in the order they will be spent",
                   responses={200: LotOutputSerializer(many=True), **error_responses(401, 403, 404)})
    def get(self, request, member_id: int):
        lots = member_lots_open(member=member_get(member_id))
        return Response(LotOutputSerializer(lots, many=True).data)


class AdjustmentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    points = serializers.IntegerField()
    reason = serializers.CharField()
    points_balance = serializers.IntegerField()


class MemberAdjustmentApi(APIView):
    """Add (positive) or take (negative) points, recorded with source API."""

    required_scope = Scope.POINTS_ADJUST

    class InputSerializer(serializers.Serializer):
        points = serializers.IntegerField(min_value=-10_000_000, max_value=10_000_000)
        reason = serializers.CharField(max_length=255)

        class Meta:
            ref_name = "AdjustmentCreate"

    @extend_schema(
        operation_id="members_adjustments_create", summary="Adjust a member's points", request=InputSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True)],
        responses={201: AdjustmentOutputSerializer, **error_responses(400, 401, 403, 404, 409, 422)},
        examples=[OpenApiExample("Goodwill", request_only=True, value={"points": 200, "reason": "Late delivery"})],
    )
    @idempotent
    def post(self, request, member_id: int):
        member = member_get(member_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        now = timezone.now()
        transfer = points_adjust(member=member, points=data.validated_data["points"], reason=data.validated_data["reason"],
                                 staff_user=None, source=TransferSource.API, idempotency_key=api_idempotency_key(request),
                                 now=now)
        return Response(AdjustmentOutputSerializer({
            "id": transfer.pk, "points": data.validated_data["points"], "reason": transfer.reason,
            "points_balance": member_points_summary(member=member, now=now).balance}).data, status=status.HTTP_201_CREATED)
