"""A purchase body in its plain, canonical shape, checked without DRF: the batch checks each of its 1,000 items
this way, and the earn fast lane (loyalty/api/fastlane.py) its one body. Anything else goes through the serializer.
"""

import re
from decimal import Decimal

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from loyalty.models.purchases import Channel

_MONEY = re.compile(r"\d{1,10}(\.\d{1,2})?")
_FIELDS = {"member", "store", "external_id", "occurred_at", "total", "lines", "channel", "promo_codes"}
_LINE_FIELDS = {"sku", "category", "quantity", "amount"}
_CENT = Decimal("0.01")


def _text(value, limit: int, *, blank: bool = False) -> bool:
    return isinstance(value, str) and (blank or value) and len(value) <= limit and value.strip() == value


def _money(value) -> Decimal | None:
    return Decimal(value).quantize(_CENT) if isinstance(value, str) and _MONEY.fullmatch(value) else None


def plain_purchase(raw) -> dict | None:
    """The validated purchase for a plainly well-formed body (what ``PurchaseInputSerializer`` would give),
    checked in a few microseconds; None for anything else — anything the serializer would refuse, change (trim,
    round) or not know, and checkouts (coupons, points payment) — which then goes through the serializer for its
    exact field errors. Stricter than the serializer, never looser (tests/api/test_fastlane.py checks that
    differentially, tests/loyalty/test_batch_quick_paths.py against the serializer's output)."""
    if not isinstance(raw, dict) or not raw.keys() <= _FIELDS:
        return None
    member = raw.get("member")
    if not isinstance(member, dict) or len(member) != 1:
        return None
    (kind, ref), = member.items()
    if kind == "id":
        if not (type(ref) is int and 1 <= ref < 2**63):
            return None
    elif kind not in ("phone", "member_number") or not _text(ref, 32 if kind == "phone" else 20):
        return None
    store, external_id, at = raw.get("store"), raw.get("external_id"), raw.get("occurred_at")
    if not _text(store, 32) or not _text(external_id, 64) or not isinstance(at, str) or len(at) >= 64:
        return None
    try:
        occurred_at = parse_datetime(at)
    except ValueError:
        return None
    total = _money(raw.get("total"))
    if occurred_at is None or occurred_at.tzinfo is None or total is None:
        return None
    channel = raw.get("channel", Channel.STORE)
    if channel not in Channel.values:
        return None
    item = {"member": {kind: ref}, "store": store, "external_id": external_id,
            "occurred_at": occurred_at.astimezone(timezone.get_current_timezone()), "total": total,
            "channel": channel, "lines": None}
    if "promo_codes" in raw:
        codes = raw["promo_codes"]
        if not isinstance(codes, list) or len(codes) > 20 or not all(_text(c, 32) for c in codes):
            return None
        item["promo_codes"] = codes
    lines = raw.get("lines", [])
    if not isinstance(lines, list) or len(lines) > 500:
        return None
    clean = []
    for line in lines:
        if not isinstance(line, dict) or not line.keys() <= _LINE_FIELDS:
            return None
        sku, category, quantity = line.get("sku"), line.get("category", ""), line.get("quantity", 1)
        amount = _money(line.get("amount"))
        if not _text(sku, 64) or not _text(category, 64, blank=True) or amount is None or not (
                type(quantity) is int and 1 <= quantity <= 1_000_000):
            return None
        clean.append({"sku": sku, "category": category, "quantity": quantity, "amount": amount})
    item["lines"] = clean or None
    return item
