"""purchases_record_batch's quick paths give exactly what the general code gives: the input check
(``_clean_quick`` against ``_clean``) and the request fingerprint (``_fingerprint`` against
``loyalty.idempotency.fingerprint``, which ``purchase_record`` stores)."""

import datetime as dt
import zoneinfo
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty.exceptions import LoyaltyError
from loyalty.idempotency import fingerprint
from loyalty.models import Channel
from loyalty.services.purchases_batch import (
    BatchResult,
    _array_literal,
    _clean,
    _clean_quick,
    _fingerprint,
    _Item,
)
from tests.conftest import requires_postgres

NOW = dt.datetime(2026, 3, 4, 2, 0, tzinfo=dt.UTC)
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def _item(raw) -> _Item:
    return _Item(index=0, raw=raw, result=BatchResult(index=0, external_id=""))


def _fields(item: _Item) -> tuple:
    return (item.total, item.occurred_at, item.lines, item.promo_codes, item.external_id, item.channel)


def assert_quick_matches(raw: dict) -> None:
    """Either the quick check takes the item with the same results as ``_clean``, or it leaves it to
    ``_clean``; it never takes an item ``_clean`` refuses."""
    slow = _item(raw)
    try:
        _clean(slow, now=NOW)
    except LoyaltyError:
        refused = True
    else:
        refused = False
    quick = _item(raw)
    taken = _clean_quick(quick, now=NOW)
    if refused:
        assert not taken, raw
    elif taken:
        assert _fields(quick) == _fields(slow), raw
        assert [type(x) for x in _fields(quick)] == [type(x) for x in _fields(slow)]


def base(**overrides) -> dict:
    raw = {"member": {"id": 7}, "store": "SH001", "external_id": "A-1", "occurred_at": NOW - dt.timedelta(hours=1),
           "total": "100.00", "lines": [{"sku": "LATTE", "category": "drinks", "quantity": 2, "amount": "60.00"},
                                        {"sku": "BAGEL", "category": "bakery", "quantity": 1, "amount": "40.00"}]}
    raw.update(overrides)
    return {k: v for k, v in raw.items() if v is not None}


@pytest.mark.parametrize("raw", [
    base(),
    base(lines=None),
    base(lines=[]),
    base(total="12.5", lines=[{"sku": " A ", "amount": "12.5"}]),
    base(total=Decimal("12.50"), lines=[{"sku": "A", "category": None, "amount": Decimal("12.5")}]),
    base(total="0.01", lines=[{"sku": "A", "amount": "0.01"}, {"sku": "B", "amount": "0"}]),
    base(promo_codes=["SPRING", " SPRING", "X"], channel="APP"),
    base(promo_codes=("B", "A")),
    base(member={"phone": "13800138000"}, external_id=" E-9 "),
    base(member={"member_number": "600000000042"}),
    base(occurred_at=(NOW + dt.timedelta(minutes=4)).astimezone(SHANGHAI)),
    base(channel=Channel.APP),
    base(external_id="引号\"\\\t"),
])
def test_quick_check_takes_plain_items_with_the_same_result(raw):
    quick = _item(raw)
    assert _clean_quick(quick, now=NOW)
    assert_quick_matches(raw)


@pytest.mark.parametrize("raw", [
    base(total=12.5), base(total=True), base(total="1.234"), base(total="-1"), base(total="0"), base(total=" 1"),
    base(total="NaN"), base(total=Decimal("NaN")), base(total=Decimal("-1")), base(total="12345678901"),
    base(total=Decimal("99999999999")), base(total=Decimal("1E+1"), lines=None),  # valid, for the full check
    base(occurred_at="2026-03-04T10:00:00Z"), base(occurred_at=NOW.replace(tzinfo=None)),
    base(occurred_at=NOW + dt.timedelta(minutes=6)),
    base(lines=[{"sku": "A", "amount": "60.00"}]), base(lines="x"), base(lines=[{"sku": "A", "amount": "100.00"}] * 501),
    base(lines=[{"sku": "", "amount": "100.00"}]), base(lines=[{"amount": "100.00"}]),
    base(lines=[{"sku": 5, "amount": "100.00"}]), base(lines=[{"sku": "A", "quantity": True, "amount": "100.00"}]),
    base(lines=[{"sku": "A", "quantity": 0, "amount": "100.00"}]), base(lines=[{"sku": "A" * 65, "amount": "100.00"}]),
    base(lines=["x"]), base(lines=[{"sku": "A", "category": 3, "amount": "100.00"}]),
    base(promo_codes="SPRING"), base(promo_codes=[""]), base(promo_codes=[3]), base(promo_codes=["X" * 33]),
    base(external_id=""), base(external_id=5), base(external_id="E" * 65), base(channel="FAX"), base(channel=["STORE"]),
    base(member={"id": 1, "phone": "1"}), base(member=None), base(member={"email": "x"}),
    base(store=None), base(store=""), base(store="S" * 33), base(store=7),
    base(coupon_codes=["WELCOME"]), base(points_payment_quote="q"),
])
def test_quick_check_leaves_everything_else_to_the_full_check(raw):
    assert not _clean_quick(_item(raw), now=NOW)
    assert_quick_matches(raw)


money = st.one_of(
    st.decimals(min_value=-5, max_value=10**11, allow_nan=False, allow_infinity=False, places=None),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=0, max_value=10**4, places=2).map(str),
    st.text(alphabet="0123456789.-+ eE", max_size=14),
    st.integers(min_value=-5, max_value=10**4), st.floats(allow_nan=False, max_value=1e4), st.none(),
)
text = st.one_of(st.text(max_size=70), st.none(), st.integers(0, 9))


@settings(max_examples=300, deadline=None)
@given(total=money, amounts=st.lists(money, max_size=3), sku=text, category=text, quantity=st.one_of(
    st.integers(-1, 3), st.booleans(), st.none()), promo=st.one_of(st.lists(text, max_size=3), text),
    external_id=text, channel=st.one_of(st.sampled_from([*Channel.values, "FAX", ""]), st.none()),
    minutes=st.integers(-600, 10))
def test_quick_check_never_disagrees(total, amounts, sku, category, quantity, promo, external_id, channel, minutes):
    lines = [{"sku": sku, "category": category, "amount": a, **({"quantity": quantity} if quantity is not None else {})}
             for a in amounts]
    raw = {"member": {"id": 1}, "store": "SH001", "external_id": external_id, "total": total, "lines": lines,
           "occurred_at": NOW + dt.timedelta(minutes=minutes), "promo_codes": promo, "channel": channel}
    assert_quick_matches(raw)


# ---- the fingerprint -------------------------------------------------------------------------------------------

def reference_fingerprint(item: _Item) -> str:
    """What the batch stored before it wrote the canonical JSON itself: ``fingerprint`` of this payload."""
    return fingerprint({
        "member": item.member.pk, "store": item.store.pk, "external_id": item.external_id,
        "occurred_at": item.occurred_at.astimezone(dt.UTC).isoformat(), "total": item.total,
        "lines": [line.__dict__ for line in item.lines], "channel": item.channel, "points_to_pay": 0,
        "coupon_discount": Decimal("0.00"), "stored_value_paid": Decimal("0.00"), "promo_codes": item.promo_codes,
    })


@pytest.mark.parametrize("raw", [
    base(), base(lines=None), base(promo_codes=["SPRING", "A\"B"], channel=Channel.APP),
    base(external_id="订单-1 \\ \"x\"\n", lines=[{"sku": "拿铁\t", "category": "饮品\u2028", "amount": "100"}]),
    base(occurred_at=dt.datetime(2026, 3, 4, 9, 30, 15, 123456, tzinfo=SHANGHAI), total=Decimal("100.0")),
    base(lines=[{"sku": "A", "quantity": 1000000, "amount": "99.99"}, {"sku": "B", "amount": "0.01"}]),
])
def test_fingerprint_is_the_one_purchase_record_stores(raw):
    item = _item(raw)
    _clean(item, now=NOW)
    item.member, item.store = SimpleNamespace(pk=42), SimpleNamespace(pk=3)
    assert _fingerprint(item) == reference_fingerprint(item)


@settings(max_examples=200, deadline=None)
@given(external_id=st.text(min_size=1, max_size=64).filter(lambda s: s.strip()),
       sku=st.text(min_size=1, max_size=64).filter(lambda s: s.strip()), category=st.text(max_size=64),
       promo=st.lists(st.text(min_size=1, max_size=32).filter(lambda s: s.strip()), max_size=3),
       cents=st.integers(1, 10**9), quantity=st.integers(1, 10**6), member=st.integers(1, 2**62))
def test_fingerprint_matches_for_any_text(external_id, sku, category, promo, cents, quantity, member):
    amount = str(Decimal(cents) / 100)
    raw = base(external_id=external_id, total=amount, promo_codes=promo,
               lines=[{"sku": sku, "category": category, "quantity": quantity, "amount": amount}])
    item = _item(raw)
    _clean(item, now=NOW)
    item.member, item.store = SimpleNamespace(pk=member), SimpleNamespace(pk=1)
    assert _fingerprint(item) == reference_fingerprint(item)


# ---- array parameters ------------------------------------------------------------------------------------------

@requires_postgres
@pytest.mark.django_db
def test_array_literals_read_back_as_the_values():
    texts = ["plain", "a,b", "{x}", 'quote"d', "back\\slash", "NULL", "", " spaced ", "引号", "tab\tnew\nline"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::text[], %s::bigint[]", [_array_literal(texts, "text"),
                                                           _array_literal([1, -2, 2**63 - 1], "bigint")])
        assert cursor.fetchone() == (texts, [1, -2, 2**63 - 1])
