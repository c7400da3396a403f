"""Acceptance cases L1–L17 from shared/acceptance/ledger.md (L13/L14 live in test_concurrency.py)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from loyalty.exceptions import IdempotencyKeyReused, InsufficientPoints, InvalidInput
from loyalty.models import ExpiryPolicy, Lot, NegativeBalancePolicy, Transfer, TransferCode
from loyalty.selectors import transfer_describe
from loyalty.services import (
    points_adjust,
    points_clearance_run,
    points_expire_due,
    points_redeem,
    points_release_pending,
    refund_record,
)
from tests.conftest import local
from tests.loyalty.helpers import balance, buy, open_lots, program_set, row_counts, rules_publish, summary

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]


def grant(member, points, *, at, staff, expires_in_days=None):
    """Give a member a lot expiring in ``expires_in_days`` days (or per policy) through the adjust service."""
    transfer = points_adjust(member=member, points=points, reason="setup", staff_user=staff,
                             idempotency_key=f"grant:{member.pk}:{at.isoformat()}:{points}", now=at)
    if expires_in_days is not None:  # shape the lot as the case needs (test setup only)
        Lot.objects.filter(transfer=transfer).update(expires_at=at + dt.timedelta(days=expires_in_days))
    return transfer


class TestL1BaseEarn:
    def test_L1_purchase_earns_floor_of_spend_in_one_lot_expiring_12_months_later(self, member, store, now):
        purchase = buy(member, store, "68.90", at=now)

        assert purchase.points_earned == 68
        assert balance(member) == 68
        (lot,) = open_lots(member)
        assert lot.remaining == 68
        assert lot.expires_at.astimezone(now.tzinfo).date() == dt.date(2027, 3, 4)
        (transfer,) = Transfer.objects.filter(member=member)
        assert transfer.code == TransferCode.EARN
        assert purchase.external_id in transfer_describe(transfer=transfer)
        assert "68" in transfer_describe(transfer=transfer)


class TestL2CoarseRate:
    def test_L2_one_point_per_thousand_truncates_and_writes_no_zero_transfer(self, member, store, now):
        rules_publish(earn_points=1, earn_spend=Decimal("1000.00"))

        assert buy(member, store, "10000.00", at=now).points_earned == 10
        small = buy(member, store, "100.00", at=now)

        assert small.points_earned == 0
        assert not Transfer.objects.filter(purchase=small).exists()
        assert balance(member) == 10


class TestL3SoonestExpiringFirst:
    def test_L3_redeem_takes_soonest_expiring_lot_then_expiry_closes_both(self, member, now, staff):
        a = grant(member, 575, at=now, staff=staff, expires_in_days=90)
        b = grant(member, 805, at=now, staff=staff, expires_in_days=120)
        lot_a, lot_b = Lot.objects.get(transfer=a), Lot.objects.get(transfer=b)

        points_redeem(member=member, points=500, reason="gift", idempotency_key="r1", now=now)
        lot_a.refresh_from_db()
        assert lot_a.remaining == 75

        points_redeem(member=member, points=500, reason="gift", idempotency_key="r2", now=now)
        lot_a.refresh_from_db(), lot_b.refresh_from_db()
        assert (lot_a.remaining, lot_b.remaining) == (0, 380)

        day_121 = now + dt.timedelta(days=121)
        assert points_expire_due(now=day_121) == 1
        assert balance(member) == 0
        assert Lot.objects.filter(account__member=member, remaining__gt=0).count() == 0
        assert Transfer.objects.get(code=TransferCode.EXPIRE).amount == 380

        before = row_counts()
        assert points_expire_due(now=day_121) == 0
        assert row_counts() == before


class TestL4SameDayLots:
    def test_L4_same_expiry_oldest_first_and_never_expiring_last(self, member, now, staff):
        program_set(expiry_policy=ExpiryPolicy.NEVER)
        never = grant(member, 100, at=now - dt.timedelta(days=10), staff=staff)
        program_set(expiry_policy=ExpiryPolicy.MONTHS)
        older = grant(member, 100, at=now - dt.timedelta(days=5), staff=staff, expires_in_days=60)
        newer = grant(member, 100, at=now - dt.timedelta(days=1), staff=staff, expires_in_days=60)
        Lot.objects.filter(transfer__in=[older, newer]).update(expires_at=now + dt.timedelta(days=60))
        Lot.objects.filter(transfer=older).update(earned_at=now - dt.timedelta(days=5))
        Lot.objects.filter(transfer=newer).update(earned_at=now - dt.timedelta(days=1))

        points_redeem(member=member, points=150, reason="gift", idempotency_key="r", now=now)

        remaining = {t: Lot.objects.get(transfer=t).remaining for t in (never, older, newer)}
        assert remaining == {older: 0, newer: 50, never: 100}
        assert Lot.objects.get(transfer=never).expires_at is None


class TestL5EarnAndRedeemOnOnePurchase:
    def test_L5_part_paid_with_points_earns_nothing(self, member, store, now, staff):
        rules_publish(earn_points=1, earn_spend=Decimal("1000.00"))
        program_set(points_value_points=1, points_value_amount=Decimal("1.00"))
        grant(member, 10, at=now - dt.timedelta(days=1), staff=staff)

        purchase = buy(member, store, "10000.00", at=now, points_to_pay=10)

        assert purchase.points_paid_value == Decimal("10.00")
        assert purchase.points_earned == 9
        assert balance(member) == 9
        payment = Transfer.objects.get(purchase=purchase, code=TransferCode.PAYMENT)
        assert payment.amount == 10


class TestL6RefundProrates:
    def test_L6_refunding_one_of_two_items_reverses_half(self, member, store, now):
        lines = [{"sku": "A", "category": "c", "quantity": 2, "amount": "100.00"}]
        purchase = buy(member, store, "100.00", at=now, lines=lines)
        assert purchase.points_earned == 100

        refund = refund_record(purchase=purchase, lines=[{"sku": "A", "quantity": 1}], occurred_at=now,
                               idempotency_key="rf1", now=now)

        assert refund.amount == Decimal("50.00")
        assert refund.points_reversed == 50
        assert balance(member) == 50


class TestL7L8RefundReturnsSpentPoints:
    def _setup(self, member, store, now, staff):
        grant(member, 200, at=now - dt.timedelta(days=1), staff=staff)
        lines = [{"sku": "X", "category": "c", "quantity": 2, "amount": "71.50"}]
        purchase = buy(member, store, "71.50", at=now, lines=lines, points_to_pay=150)
        assert (purchase.points_earned, balance(member)) == (70, 120)
        return purchase

    def test_L7_full_refund_reverses_earn_and_returns_spent_points(self, member, store, now, staff):
        purchase = self._setup(member, store, now, staff)

        refund = refund_record(purchase=purchase, amount=Decimal("71.50"), occurred_at=now, idempotency_key="f", now=now)

        assert (refund.points_reversed, refund.points_returned) == (70, 150)
        assert balance(member) == 200

    def test_L8_half_refund_reverses_half_and_returns_half(self, member, store, now, staff):
        purchase = self._setup(member, store, now, staff)

        refund = refund_record(purchase=purchase, lines=[{"sku": "X", "quantity": 1}], occurred_at=now,
                               idempotency_key="h", now=now)

        assert (refund.points_reversed, refund.points_returned) == (35, 75)
        assert balance(member) == 160

    def test_L8_second_half_completes_exactly(self, member, store, now, staff):
        purchase = self._setup(member, store, now, staff)
        refund_record(purchase=purchase, lines=[{"sku": "X", "quantity": 1}], occurred_at=now, idempotency_key="h1", now=now)

        refund_record(purchase=purchase, lines=[{"sku": "X", "quantity": 1}], occurred_at=now, idempotency_key="h2", now=now)

        purchase.refresh_from_db()
        assert (purchase.points_reversed, purchase.points_returned, purchase.refunded_amount) == (70, 150, Decimal("71.50"))
        assert balance(member) == 200


class TestL9RefundAfterSpending:
    def _spent(self, member, store, now):
        purchase = buy(member, store, "100.00", at=now)
        points_redeem(member=member, points=80, reason="gift", idempotency_key="spend", now=now)
        assert balance(member) == 20
        return purchase

    def test_L9_no_negative_policy_takes_available_and_records_debt(self, member, store, now):
        purchase = self._spent(member, store, now)

        refund = refund_record(purchase=purchase, amount=Decimal("100.00"), occurred_at=now, idempotency_key="f", now=now)

        assert refund.points_reversed == 100
        assert refund.debt_created == 80
        s = summary(member)
        assert (s.balance, s.debt, s.available) == (0, 80, 0)

        later = now + dt.timedelta(days=1)
        buy(member, store, "50.00", at=later)  # settles 50 of the debt first
        s = summary(member)
        assert (s.balance, s.debt) == (0, 30)
        buy(member, store, "40.00", at=later)
        s = summary(member)
        assert (s.balance, s.debt) == (10, 0)
        assert sum(lot.remaining for lot in open_lots(member)) == 10

    def test_L9_allow_negative_policy_shows_negative_balance(self, member, store, now):
        program_set(negative_balance_policy=NegativeBalancePolicy.ALLOW_NEGATIVE)
        purchase = self._spent(member, store, now)

        refund_record(purchase=purchase, amount=Decimal("100.00"), occurred_at=now, idempotency_key="f", now=now)

        s = summary(member)
        assert (s.balance, s.debt, s.available) == (-80, 0, 0)
        with pytest.raises(InsufficientPoints):
            points_redeem(member=member, points=1, reason="x", idempotency_key="x", now=now)


class TestL10IdempotentPurchase:
    def test_L10_same_key_replays_and_different_body_is_refused(self, member, store, now):
        first = buy(member, store, "68.90", at=now, key="pos-1", external_id="R1")
        before = row_counts()

        again = buy(member, store, "68.90", at=now, key="pos-1", external_id="R1")
        assert again.pk == first.pk
        assert row_counts() == before

        with pytest.raises(IdempotencyKeyReused):
            buy(member, store, "70.00", at=now, key="pos-1", external_id="R1")
        assert row_counts() == before


class TestL11ManualAdjustment:
    def test_L11_staff_adds_points_with_a_reason(self, member, now, staff):
        grant(member, 10, at=now, staff=staff)

        transfer = points_adjust(member=member, points=75, reason="Customer appreciation", staff_user=staff,
                                 idempotency_key="adj", now=now)

        assert balance(member) == 85
        assert transfer.staff_user == staff
        assert transfer.reason == "Customer appreciation"
        assert "cashier" in transfer_describe(transfer=transfer)

    @pytest.mark.parametrize("reason", ["", "   ", None])
    def test_L11_adjustment_without_reason_is_refused(self, member, now, staff, reason):
        before = row_counts()
        with pytest.raises(InvalidInput) as exc:
            points_adjust(member=member, points=75, reason=reason, staff_user=staff, idempotency_key="adj", now=now)
        assert exc.value.field == "reason"
        assert row_counts() == before


class TestL12OverRedemption:
    def test_L12_redeeming_more_than_balance_is_refused_in_the_users_language(self, member, now, staff):
        from django.utils import translation

        grant(member, 100, at=now, staff=staff)
        before = row_counts()

        with pytest.raises(InsufficientPoints) as exc:
            points_redeem(member=member, points=101, reason="gift", idempotency_key="r", now=now)

        assert row_counts() == before
        assert exc.value.code == "insufficient_points"
        with translation.override("en"):
            assert "Insufficient points" in str(exc.value)
        with translation.override("zh-hans"):
            assert "积分不足" in str(exc.value)


class TestL15YearlyClearance:
    def test_L15_clearance_on_31_december_clears_last_years_points_only(self, member, store):
        program_set(expiry_policy=ExpiryPolicy.YEARLY, clearance_month=12, clearance_day=31)
        buy(member, store, "100.00", at=local(2026, 6, 1, 12, 0))
        buy(member, store, "30.00", at=local(2027, 2, 1, 12, 0))

        assert points_clearance_run(now=local(2027, 12, 30, 23, 59)) == 0  # not the clearance date
        cleared = points_clearance_run(now=local(2027, 12, 31, 23, 59))

        assert cleared == 1
        assert balance(member) == 30
        assert points_clearance_run(now=local(2027, 12, 31, 23, 59)) == 0


class TestL16PendingPeriod:
    def test_L16_pending_points_become_spendable_after_the_period(self, member, store, now):
        program_set(pending_days=7)
        buy(member, store, "100.00", at=now)

        s = summary(member)
        assert (s.pending, s.available) == (100, 0)
        assert points_release_pending(now=now + dt.timedelta(days=6, hours=23)) == 0
        assert points_release_pending(now=now + dt.timedelta(days=7)) == 1
        s = summary(member)
        assert (s.pending, s.available) == (0, 100)
        assert points_release_pending(now=now + dt.timedelta(days=8)) == 0

    def test_L16_refund_while_pending_removes_only_those_points(self, member, store, now, staff):
        grant(member, 40, at=now, staff=staff)
        program_set(pending_days=7)
        purchase = buy(member, store, "100.00", at=now)

        day_3 = now + dt.timedelta(days=3)
        refund_record(purchase=purchase, amount=Decimal("100.00"), occurred_at=day_3, idempotency_key="f", now=day_3)

        s = summary(member)
        assert (s.pending, s.available, s.debt) == (0, 40, 0)
        assert points_release_pending(now=now + dt.timedelta(days=7)) == 1  # the emptied lot is closed, nothing moves
        assert summary(member).available == 40


class TestL17AuditCatchesDrift:
    def test_L17_altered_transfer_makes_ledger_audit_fail_naming_the_account(self, member, store, now, capsys):
        purchase = buy(member, store, "68.90", at=now)
        call_command("ledger_audit")
        transfer = Transfer.objects.get(purchase=purchase)
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {Transfer._meta.db_table} SET amount = 99 WHERE id = %s", [transfer.pk])

        with pytest.raises(CommandError):  # manage.py turns CommandError into exit status 1
            call_command("ledger_audit")
        err = capsys.readouterr().err
        assert f"account {transfer.credit_account_id} " in err
        # put it back so the fixture's final audit is clean
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {Transfer._meta.db_table} SET amount = 68 WHERE id = %s", [transfer.pk])


class TestRefundReturnsAfterExpiry:
    def test_points_returned_after_their_expiry_expire_dated_no_earlier_than_the_return(self, member, store, staff):
        program_set(expiry_months=1)
        points_adjust(member=member, points=500, reason="setup", staff_user=staff, idempotency_key="g",
                      now=local(2026, 1, 1, 10, 0))
        purchase = buy(member, store, "10.00", at=local(2026, 1, 20, 10, 0), points_to_pay=500)
        refund_at = local(2026, 2, 10, 10, 0)

        refund_record(purchase=purchase, amount=Decimal("10.00"), occurred_at=refund_at, idempotency_key="r", now=refund_at)
        assert points_expire_due(now=local(2026, 2, 11, 0, 0)) >= 1

        returned = Transfer.objects.get(code=TransferCode.RETURN)
        expired = Transfer.objects.get(code=TransferCode.EXPIRE, breakdown__lot=Lot.objects.get(transfer=returned).pk)
        assert expired.occurred_at >= returned.occurred_at
