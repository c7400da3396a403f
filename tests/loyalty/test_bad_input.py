"""Bad input raises a clear domain error and writes nothing (rows counted before and after)."""

import datetime as dt
from decimal import Decimal

import pytest

from loyalty.exceptions import (
    DuplicatePurchase,
    IdempotencyKeyReused,
    InsufficientPoints,
    InvalidInput,
    LoyaltyError,
    MemberClosed,
    MemberFrozen,
    MemberNotFound,
    RefundExceedsPurchase,
)
from loyalty.services import (
    MemberAlreadyExists,
    member_enrol,
    points_adjust,
    points_redeem,
    purchase_record,
    refund_record,
)
from members.models import Member, MemberStatus
from tests.loyalty.helpers import buy, row_counts

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]


def refused(error, fn, **kwargs):
    before = row_counts()
    with pytest.raises(error) as exc:
        fn(**kwargs)
    assert row_counts() == before, "a refused request must write nothing"
    assert str(exc.value)  # a readable message
    return exc.value


@pytest.fixture
def purchase_kwargs(member, store, now):
    return {"member": member, "store": store, "external_id": "R-1", "occurred_at": now, "total": Decimal("10.00"), "now": now}


class TestPurchaseInput:
    @pytest.mark.parametrize("total", [Decimal("0"), Decimal("-5.00"), "abc", Decimal("1.001"), 10.5, None, Decimal("NaN")])
    def test_bad_totals_are_refused(self, purchase_kwargs, total):
        exc = refused(InvalidInput, purchase_record, **{**purchase_kwargs, "total": total})
        assert exc.field == "total"

    def test_naive_datetime_is_refused(self, purchase_kwargs, now):
        exc = refused(InvalidInput, purchase_record, **{**purchase_kwargs, "occurred_at": now.replace(tzinfo=None)})
        assert exc.field == "occurred_at"

    def test_future_business_time_is_refused(self, purchase_kwargs, now):
        refused(InvalidInput, purchase_record, **{**purchase_kwargs, "occurred_at": now + dt.timedelta(hours=1)})

    @pytest.mark.parametrize("lines,field", [
        ([{"sku": "A", "quantity": 1, "amount": "9.00"}], "lines"),  # does not add up to the total
        ([{"sku": "", "quantity": 1, "amount": "10.00"}], "lines[0].sku"),
        ([{"sku": "A", "quantity": 0, "amount": "10.00"}], "lines[0].quantity"),
        ([{"sku": "A", "quantity": 1, "amount": "-10.00"}], "lines[0].amount"),
        (["oops"], "lines[0]"),
    ])
    def test_bad_lines_are_refused(self, purchase_kwargs, lines, field):
        assert refused(InvalidInput, purchase_record, **{**purchase_kwargs, "lines": lines}).field == field

    @pytest.mark.parametrize("points", [-1, 1.5, "10", True])
    def test_bad_points_to_pay_is_refused(self, purchase_kwargs, points):
        refused(InvalidInput, purchase_record, **{**purchase_kwargs, "points_to_pay": points})

    def test_paying_with_more_points_than_the_member_has_is_refused(self, purchase_kwargs):
        refused(InsufficientPoints, purchase_record, **{**purchase_kwargs, "points_to_pay": 100})

    def test_points_worth_more_than_the_purchase_are_refused(self, purchase_kwargs):
        refused(InvalidInput, purchase_record, **{**purchase_kwargs, "points_to_pay": 5000})

    def test_unknown_member_is_refused(self, purchase_kwargs):
        ghost = Member(pk=987654, phone="+8613800000000", name="ghost")
        refused(MemberNotFound, purchase_record, **{**purchase_kwargs, "member": ghost})

    @pytest.mark.parametrize("status,error", [(MemberStatus.FROZEN, MemberFrozen), (MemberStatus.CLOSED, MemberClosed)])
    def test_frozen_or_closed_member_cannot_earn_or_redeem(self, purchase_kwargs, member, now, status, error):
        Member.objects.filter(pk=member.pk).update(status=status)
        refused(error, purchase_record, **purchase_kwargs)
        refused(error, points_redeem, member=member, points=1, reason="x", idempotency_key="k", now=now)

    def test_same_reference_with_another_key_is_a_duplicate(self, purchase_kwargs):
        purchase_record(**purchase_kwargs)
        refused(DuplicatePurchase, purchase_record, **{**purchase_kwargs, "idempotency_key": "other"})

    def test_reused_key_with_a_different_body_is_refused(self, purchase_kwargs):
        purchase_record(**purchase_kwargs, idempotency_key="k")
        refused(IdempotencyKeyReused, purchase_record, **{**purchase_kwargs, "total": Decimal("11.00"), "idempotency_key": "k"})

    def test_errors_have_stable_codes(self):
        assert InsufficientPoints(available=1, requested=2).code == "insufficient_points"
        assert IdempotencyKeyReused().code == "idempotency_key_reused"
        assert issubclass(MemberFrozen, LoyaltyError)


class TestRefundInput:
    @pytest.fixture
    def purchase(self, member, store, now):
        return buy(member, store, "100.00", at=now, lines=[{"sku": "A", "category": "c", "quantity": 2, "amount": "100.00"}])

    def test_refund_beyond_the_purchase_is_refused(self, purchase, now):
        refused(RefundExceedsPurchase, refund_record, purchase=purchase, amount=Decimal("100.01"), occurred_at=now,
                idempotency_key="r", now=now)

    def test_refund_beyond_what_is_left_is_refused(self, purchase, now):
        refund_record(purchase=purchase, amount=Decimal("60.00"), occurred_at=now, idempotency_key="r1", now=now)
        refused(RefundExceedsPurchase, refund_record, purchase=purchase, amount=Decimal("40.01"), occurred_at=now,
                idempotency_key="r2", now=now)

    def test_refunding_more_units_than_bought_is_refused(self, purchase, now):
        refused(RefundExceedsPurchase, refund_record, purchase=purchase, lines=[{"sku": "A", "quantity": 3}],
                occurred_at=now, idempotency_key="r", now=now)

    def test_unknown_sku_is_refused(self, purchase, now):
        refused(RefundExceedsPurchase, refund_record, purchase=purchase, lines=[{"sku": "Z", "quantity": 1}],
                occurred_at=now, idempotency_key="r", now=now)

    @pytest.mark.parametrize("kwargs", [{}, {"amount": Decimal("1.00"), "lines": [{"sku": "A", "quantity": 1}]},
                                        {"amount": Decimal("0")}, {"amount": Decimal("-1")}])
    def test_amount_xor_lines(self, purchase, now, kwargs):
        refused(InvalidInput, refund_record, purchase=purchase, occurred_at=now, idempotency_key="r", now=now, **kwargs)

    def test_refund_before_the_purchase_is_refused(self, purchase, now):
        refused(InvalidInput, refund_record, purchase=purchase, amount=Decimal("1.00"),
                occurred_at=now - dt.timedelta(days=1), idempotency_key="r", now=now)

    def test_refund_key_reused_with_other_amount_is_refused(self, purchase, now):
        refund_record(purchase=purchase, amount=Decimal("10.00"), occurred_at=now, idempotency_key="r", now=now)
        refused(IdempotencyKeyReused, refund_record, purchase=purchase, amount=Decimal("20.00"), occurred_at=now,
                idempotency_key="r", now=now)

    def test_refund_replay_returns_the_first_refund(self, purchase, now):
        first = refund_record(purchase=purchase, amount=Decimal("10.00"), occurred_at=now, idempotency_key="r", now=now)
        before = row_counts()
        again = refund_record(purchase=purchase, amount=Decimal("10.00"), occurred_at=now, idempotency_key="r", now=now)
        assert again.pk == first.pk
        assert row_counts() == before


class TestPointsInput:
    @pytest.mark.parametrize("points", [0, -5, 2.5, "7", None])
    def test_bad_redeem_amounts_are_refused(self, member, now, points):
        refused(InvalidInput, points_redeem, member=member, points=points, reason="x", idempotency_key="k", now=now)

    def test_redeem_needs_an_idempotency_key(self, member, now):
        refused(InvalidInput, points_redeem, member=member, points=1, reason="x", idempotency_key="  ", now=now)

    def test_adjust_zero_is_refused(self, member, now, staff):
        refused(InvalidInput, points_adjust, member=member, points=0, reason="x", staff_user=staff, idempotency_key="k", now=now)

    def test_removing_more_than_available_is_refused(self, member, now, staff):
        points_adjust(member=member, points=10, reason="x", staff_user=staff, idempotency_key="k1", now=now)
        refused(InsufficientPoints, points_adjust, member=member, points=-11, reason="x", staff_user=staff,
                idempotency_key="k2", now=now)

    def test_adjust_without_staff_user_is_refused(self, member, now):
        refused(InvalidInput, points_adjust, member=member, points=5, reason="x", staff_user=None, idempotency_key="k", now=now)

    def test_redeem_key_reused_with_other_points_is_refused(self, member, now, staff):
        points_adjust(member=member, points=10, reason="x", staff_user=staff, idempotency_key="k1", now=now)
        points_redeem(member=member, points=3, reason="x", idempotency_key="r", now=now)
        refused(IdempotencyKeyReused, points_redeem, member=member, points=4, reason="x", idempotency_key="r", now=now)


class TestEnrolmentInput:
    @pytest.mark.parametrize("phone", ["", "12345", "not a phone", "+86 100 0000 0000"])
    def test_bad_phone_is_refused(self, now, phone):
        before = Member.objects.count()
        with pytest.raises(InvalidInput) as exc:
            member_enrol(phone=phone, name="A", now=now)
        assert exc.value.field == "phone"
        assert Member.objects.count() == before

    def test_phone_is_normalised_and_unique(self, now):
        member = member_enrol(phone="138 0013 8000", name="A", now=now)
        assert member.phone == "+8613800138000"
        with pytest.raises(MemberAlreadyExists):
            member_enrol(phone="+86 13800138000", name="B", now=now)
        assert Member.objects.count() == 1

    def test_birthday_today_in_the_program_zone_is_accepted_while_utc_is_still_yesterday(self):
        import zoneinfo

        early_shanghai = dt.datetime(2026, 5, 2, 1, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))  # 1 May in UTC
        member = member_enrol(phone="13800138002", name="A", now=early_shanghai.astimezone(dt.UTC),
                              birthday=dt.date(2026, 5, 2))
        assert member.birthday == dt.date(2026, 5, 2)

    def test_birthday_in_the_future_is_refused(self, now):
        with pytest.raises(InvalidInput):
            member_enrol(phone="13800138001", name="A", now=now, birthday=now.date() + dt.timedelta(days=1))
