"""API: ``POST /purchases/batch`` — up to 1,000 purchases (POS end-of-day, offline sync), each applied once.

Each item is the body of ``POST /purchases`` and gets its own result: ``created``, ``duplicate`` (its store
and external_id were recorded before: the original is returned, nothing is applied twice) or ``error`` (the
code and message the single endpoint would give; the other items go on). A malformed batch as a whole is a
400 and writes nothing. The Idempotency-Key covers the batch: a retry with the same key replays the answer.
"""


from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.errors import api_exception_handler
from loyalty.api.idempotency import idempotent
from loyalty.api.members import error_responses
from loyalty.api.plain import plain_purchase
from loyalty.api.purchases import (
    IDEMPOTENCY_HEADER,
    PURCHASE_REQUEST,
    PurchaseInputSerializer,
    PurchaseOutputSerializer,
    purchase_data,
)
from loyalty.models import Scope
from loyalty.services import program_settings_get
from loyalty.services.purchases_batch import MAX_ITEMS, BatchResult, gc_paused, purchases_record_batch

# ---- input and output ---------------------------------------------------------------------------


class PurchaseBatchInputSerializer(serializers.Serializer):
    purchases = serializers.ListField(
        child=serializers.JSONField(), min_length=1, max_length=MAX_ITEMS,
        help_text="1 to 1,000 purchases, each the body of POST /purchases (without points_payment_quote and "
                  "coupon_codes) and each with its own external_id.")

    class Meta:
        ref_name = "PurchaseBatchCreate"


class BatchErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class BatchItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the item in the request, from 0.")
    external_id = serializers.CharField()
    status = serializers.ChoiceField(choices=["created", "duplicate", "error"])
    purchase = PurchaseOutputSerializer(allow_null=True, help_text="The purchase recorded (or, for a duplicate, "
                                                                   "recorded before); null for an error.")
    error = BatchErrorSerializer(allow_null=True)


class PurchaseBatchOutputSerializer(serializers.Serializer):
    results = BatchItemResultSerializer(many=True)
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    errors = serializers.IntegerField()


BATCH_REQUEST = OpenApiExample("End of day at one till", request_only=True, value={
    "purchases": [PURCHASE_REQUEST.value, {**PURCHASE_REQUEST.value, "external_id": "POS-20260304-0002",
                                           "member": {"member_number": "NOPE"}}]})
BATCH_RESPONSE = OpenApiExample("One created, one refused", response_only=True, value={
    "results": [
        {"index": 0, "external_id": "POS-20260304-0001", "status": "created", "error": None, "purchase": {
            "id": 981, "member": 42, "store": "SH001", "external_id": "POS-20260304-0001",
            "occurred_at": "2026-03-04T02:00:00Z", "total": "68.90", "points_earned": 68,
            "breakdown": {"kind": "purchase", "eligible": "68.90", "base": 68, "lines": []},
            "breakdown_lines": ["Base: 68 points (1 point per ¥1.00 on ¥68.90)", "Total: 68 points"],
            "points_balance": 1348, "tier_change": None, "refunded_amount": "0.00", "points_reversed": 0,
            "points_returned": 0, "coupons": [], "coupon_discount": "0.00", "points_paid": 0,
            "points_paid_value": "0.00"}},
        {"index": 1, "external_id": "POS-20260304-0002", "status": "error", "purchase": None,
         "error": {"code": "member_not_found", "message": "No such member.", "details": {}}},
    ], "created": 1, "duplicates": 0, "errors": 1})


def _error(exc) -> dict:
    """The error object the single endpoint would answer with (same code, message and details)."""
    return api_exception_handler(exc, {}).data["error"]


def _purchase(result: BatchResult, *, currency: str) -> dict:
    """The purchase as the single endpoint answers it (``purchase_data``), with the batch's balance."""
    purchase = result.purchase
    purchase.points_balance = result.points_balance or 0
    return purchase_data(purchase, coupons=bool(purchase.coupon_discount), currency=currency)


def batch_answer(answer: dict) -> dict:
    """What ``PurchaseBatchOutputSerializer(answer).data`` gives (the documented schema), built directly: the
    serializer's field-by-field copies of a thousand purchases cost more than the rest of the answer
    (tests/api/test_batch_answer.py holds the two equal)."""
    return {"results": [_row_answer(row) for row in answer["results"]], "created": int(answer["created"]),
            "duplicates": int(answer["duplicates"]), "errors": int(answer["errors"])}


def _row_answer(row: dict) -> dict:
    error = row["error"]
    return {
        "index": int(row["index"]), "external_id": str(row["external_id"]), "status": str(row["status"]),
        "purchase": row["purchase"],  # purchase_data: the documented shape already
        "error": None if error is None else {
            "code": str(error["code"]), "message": str(error["message"]),
            "details": {str(key): item for key, item in error["details"].items()}},
    }


# ---- view ---------------------------------------------------------------------------------------


class PurchaseBatchApi(APIView):
    required_scope = Scope.PURCHASES_WRITE

    @extend_schema(
        operation_id="purchases_batch_create", summary="Record up to 1,000 purchases at once",
        description="Each item is applied exactly once and answered on its own: `created`, `duplicate` (its store "
                    "and external_id were already recorded; the original purchase is returned) or `error` (the "
                    "code the single POST /purchases would give; the other items go on). The same external_id "
                    "twice in one batch: the second is `duplicate_in_batch`. Items with points_payment_quote or "
                    "coupon_codes are refused (`checkout_not_in_batch`): post those alone. A malformed batch "
                    "(not a list, empty, more than 1,000 items) is 400 and writes nothing.",
        request=PurchaseBatchInputSerializer, parameters=[IDEMPOTENCY_HEADER],
        responses={200: PurchaseBatchOutputSerializer, **error_responses(400, 401, 403, 409)},
        examples=[BATCH_REQUEST, BATCH_RESPONSE])
    @idempotent
    def post(self, request):
        with gc_paused():  # the whole answer, not only the service: as many short-lived objects again
            return self._post(request)

    def _post(self, request):
        batch = PurchaseBatchInputSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        items: list = []
        refused: dict[int, dict] = {}
        for index, raw in enumerate(batch.validated_data["purchases"]):
            quick = plain_purchase(raw)
            if quick is not None:
                items.append(quick)
                continue
            one = PurchaseInputSerializer(data=raw)
            if not isinstance(raw, dict):
                refused[index] = _error(serializers.ValidationError(
                    {"non_field_errors": [_("Each purchase is an object.")]}))
                items.append({})
            elif not one.is_valid():
                refused[index] = _error(serializers.ValidationError(one.errors))
                items.append({"store": raw.get("store"), "external_id": raw.get("external_id")})
            else:
                item = dict(one.validated_data)
                item["member"] = dict(item["member"])
                item["lines"] = [dict(line) for line in item.get("lines") or []] or None
                items.append(item)
        results = purchases_record_batch(
            items=items, now=timezone.now(), bound_store_id=request.auth.store_id,
            partner_account=request.auth.partner_account, refused=refused)
        currency, rows = program_settings_get().currency, []
        for result in results:
            raw = batch.validated_data["purchases"][result.index]
            row = {"index": result.index, "status": result.status, "purchase": None, "error": None,
                   "external_id": result.external_id or (str(raw.get("external_id", "")) if isinstance(raw, dict) else "")}
            if result.index in refused:
                row["error"] = refused[result.index]
            elif result.status == "error":
                row["error"] = _error(result.error)
            else:
                row["purchase"] = _purchase(result, currency=currency)
            rows.append(row)
        counts = {"created": 0, "duplicate": 0, "error": 0}
        for row in rows:
            counts[row["status"]] += 1
        return Response(batch_answer({
            "results": rows, "created": counts["created"], "duplicates": counts["duplicate"], "errors": counts["error"],
        }))
