"""Stored value (储值): S11, S12, bonus rules and expiry, refunds, points on top-up, bad input writes nothing."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from loyalty.exceptions import IdempotencyKeyReused, InvalidInput, MemberFrozen
from loyalty.models import Account, AccountKind, Lot, SystemAccount, Transfer, TransferCode, Unit
from members.models import MemberStatus
from rewards.exceptions import InsufficientStoredValue, TopUpRefundTooLarge
from rewards.models import SpendingSettings, TopUp, TopUpBonusRule, WalletPreference, WalletSpend
from rewards.services.wallet import (
    wallet_accounts_get_or_create,
    wallet_balance,
    wallet_bonus_expire_due,
    wallet_credit,
    wallet_low_balance_set,
    wallet_spend,
    wallet_topup,
    wallet_topup_refund,
)
from tests.conftest import requires_postgres
from tests.factories import MemberFactory
from tests.loyalty.helpers import balance, rules_publish

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

D = Decimal


def rows() -> tuple:
    """Every table a wallet write touches, and every account's posted figures."""
    return (
        TopUp.objects.count(), WalletSpend.objects.count(), Transfer.objects.count(), Lot.objects.count(),
        WalletPreference.objects.count(),
        tuple(Account.objects.order_by("pk").values_list("pk", "credits_posted", "debits_posted")),
        tuple(Lot.objects.order_by("pk").values_list("remaining", flat=True)),
        tuple(TopUp.objects.order_by("pk").values_list("refunded_amount", flat=True)),
    )


def refused(error, fn, **kwargs):
    before = rows()
    with pytest.raises(error) as exc:
        fn(**kwargs)
    assert rows() == before, "a refused request must write nothing"
    assert str(exc.value)  # a readable message
    return exc.value


def settings_set(**fields) -> SpendingSettings:
    spending, _ = SpendingSettings.objects.get_or_create(pk=1)
    for name, value in fields.items():
        setattr(spending, name, value)
    spending.full_clean()
    spending.save()
    return spending


@pytest.fixture
def bonus_rule(db):
    return TopUpBonusRule.objects.create(name="充100送20", minimum=D("100.00"), bonus=D("20.00"))


_keys = iter(range(1, 10**9))


def topup(member, amount, now, **kwargs):
    kwargs.setdefault("idempotency_key", f"topup-{next(_keys)}")
    return wallet_topup(member=member, amount=D(amount), now=now, **kwargs)


def spend(member, amount, now, **kwargs):
    kwargs.setdefault("idempotency_key", f"spend-{next(_keys)}")
    return wallet_spend(member=member, amount=D(amount), now=now, **kwargs)


def wallet(member, now=None):
    b = wallet_balance(member=member, now=now)
    return b.principal, b.bonus


class TestS12TopUpBonus:
    def test_S12_a_100_topup_gives_100_principal_and_20_bonus_as_lots_in_fen(self, member, now, bonus_rule):
        t = topup(member, "100.00", now, reference="POS-88")

        assert (t.amount, t.bonus, t.bonus_rule) == (D("100.00"), D("20.00"), bonus_rule)
        assert wallet(member) == (D("100.00"), D("20.00"))
        assert wallet_balance(member=member).total == D("120.00")
        assert (t.principal_transfer.code, t.principal_transfer.amount, t.principal_transfer.unit) == (
            TransferCode.TOPUP, 10000, Unit.MONEY)
        assert t.principal_transfer.debit_account.system_code == SystemAccount.WALLET_FUNDING
        assert (t.bonus_transfer.code, t.bonus_transfer.amount) == (TransferCode.TOPUP_BONUS, 2000)
        assert t.bonus_transfer.debit_account.system_code == SystemAccount.WALLET_BONUS
        principal_lot, bonus_lot = Lot.objects.filter(account__unit=Unit.MONEY).order_by("pk")
        assert (principal_lot.remaining, principal_lot.expires_at) == (10000, None)
        assert (bonus_lot.remaining, bonus_lot.expires_at) == (2000, None)  # no bonus expiry configured

    def test_S12_spending_takes_bonus_first_by_default(self, member, now, bonus_rule):
        topup(member, "100.00", now)

        s = spend(member, "30.00", now)

        assert (s.from_bonus, s.from_principal) == (D("20.00"), D("10.00"))
        assert wallet(member) == (D("90.00"), D("0.00"))
        assert sorted(Transfer.objects.filter(code=TransferCode.SPEND).values_list("amount", flat=True)) == [1000, 2000]

    def test_S12_spending_takes_principal_first_when_the_program_says_so(self, member, now, bonus_rule):
        settings_set(wallet_spend_order="PRINCIPAL_FIRST")
        topup(member, "100.00", now)

        s = spend(member, "30.00", now)

        assert (s.from_bonus, s.from_principal) == (D("0.00"), D("30.00"))
        assert wallet(member) == (D("70.00"), D("20.00"))

    def test_S12_principal_first_spills_into_bonus_when_principal_runs_out(self, member, now, bonus_rule):
        settings_set(wallet_spend_order="PRINCIPAL_FIRST")
        topup(member, "100.00", now)

        s = spend(member, "115.00", now)

        assert (s.from_bonus, s.from_principal) == (D("15.00"), D("100.00"))
        assert wallet(member) == (D("0.00"), D("5.00"))

    def test_S12_refunding_the_topup_returns_only_unspent_principal_and_removes_unspent_bonus(
            self, member, now, bonus_rule):
        settings_set(wallet_spend_order="PRINCIPAL_FIRST")
        t = topup(member, "100.00", now)
        spend(member, "30.00", now)  # principal 70 + bonus 20 left

        refused(TopUpRefundTooLarge, wallet_topup_refund, topup=t, amount=D("70.01"), now=now, idempotency_key="r0")
        t = wallet_topup_refund(topup=t, amount=None, now=now, idempotency_key="r1")

        assert t.refunded_amount == D("70.00")
        assert wallet(member) == (D("0.00"), D("0.00"))
        refund = Transfer.objects.get(code=TransferCode.TOPUP_REFUND)
        assert (refund.amount, refund.credit_account.system_code, refund.reverses_id) == (
            7000, SystemAccount.WALLET_REFUND, t.principal_transfer_id)
        removed = Transfer.objects.get(code=TransferCode.BONUS_REMOVED)
        assert (removed.amount, removed.credit_account.system_code) == (2000, SystemAccount.WALLET_BONUS_EXPIRY)

    def test_S12_with_bonus_first_the_whole_principal_is_refundable_until_the_bonus_is_used(self, member, now, bonus_rule):
        t = topup(member, "100.00", now)
        spend(member, "12.50", now)  # all from bonus

        t = wallet_topup_refund(topup=t, amount=None, now=now, idempotency_key="r1")

        assert t.refunded_amount == D("100.00")
        assert Transfer.objects.get(code=TransferCode.BONUS_REMOVED).amount == 750
        assert wallet(member) == (D("0.00"), D("0.00"))

    def test_S12_a_refund_larger_than_the_unspent_principal_is_refused_and_writes_nothing(self, member, now, bonus_rule):
        t = topup(member, "100.00", now)
        spend(member, "50.00", now)  # 20 bonus + 30 principal: 70 principal unspent

        exc = refused(TopUpRefundTooLarge, wallet_topup_refund, topup=t, amount=D("80.00"), now=now,
                      idempotency_key="r1")

        assert "70.00" in str(exc)
        assert exc.extra == {"refundable": "70.00"}


class TestTopUp:
    def test_the_best_active_rule_applies_largest_minimum_the_amount_reaches(self, member, now):
        TopUpBonusRule.objects.create(name="100+20", minimum=D("100"), bonus=D("20"))
        best = TopUpBonusRule.objects.create(name="500+150", minimum=D("500"), bonus=D("150"))
        TopUpBonusRule.objects.create(name="1000+400", minimum=D("1000"), bonus=D("400"))
        TopUpBonusRule.objects.create(name="off", minimum=D("300"), bonus=D("999"), is_active=False)
        TopUpBonusRule.objects.create(name="over", minimum=D("400"), bonus=D("999"), valid_until=now)
        TopUpBonusRule.objects.create(name="later", minimum=D("450"), bonus=D("999"),
                                      valid_from=now + dt.timedelta(days=1))

        t = topup(member, "999.99", now)

        assert (t.bonus_rule, t.bonus) == (best, D("150.00"))

    def test_below_every_minimum_there_is_no_bonus(self, member, now, bonus_rule):
        t = topup(member, "99.99", now)

        assert (t.bonus, t.bonus_rule, t.bonus_transfer) == (D("0.00"), None, None)
        assert wallet(member) == (D("99.99"), D("0.00"))

    def test_wallet_accounts_are_created_on_first_use_once(self, member, now):
        assert not Account.objects.filter(member=member, unit=Unit.MONEY).exists()
        principal, bonus = wallet_accounts_get_or_create(member=member)

        assert (principal.kind, bonus.kind) == (AccountKind.MEMBER_WALLET, AccountKind.MEMBER_WALLET_BONUS)
        assert wallet_accounts_get_or_create(member=member) == (principal, bonus)

    def test_points_on_topup_at_the_rule_sets_topup_rate(self, member, now):
        rules_publish(topup_points=1, topup_spend=D("1.00"))

        t = topup(member, "250.00", now)

        assert t.points_transfer.amount == 250
        assert balance(member) == 250

    def test_retry_with_the_same_key_and_request_replays_and_writes_nothing(self, member, now, bonus_rule):
        rules_publish(topup_points=1, topup_spend=D("1.00"))
        first = topup(member, "100.00", now, idempotency_key="k1", reference="R")
        before = rows()

        again = topup(member, "100.00", now + dt.timedelta(minutes=1), idempotency_key="k1", reference="R")

        assert again.pk == first.pk
        assert rows() == before

    def test_same_key_with_another_amount_is_refused(self, member, now):
        topup(member, "100.00", now, idempotency_key="k1")

        refused(IdempotencyKeyReused, wallet_topup, member=member, amount=D("100.01"), now=now, idempotency_key="k1")


class TestSpend:
    def test_insufficient_stored_value_is_refused_with_the_figures_and_writes_nothing(self, member, now, bonus_rule):
        topup(member, "100.00", now)

        exc = refused(InsufficientStoredValue, wallet_spend, member=member, amount=D("120.01"), now=now,
                      idempotency_key="s1")

        assert "120.00" in str(exc) and "120.01" in str(exc)

    def test_a_member_without_a_wallet_cannot_spend_and_gets_no_accounts(self, member, now):
        refused(InsufficientStoredValue, wallet_spend, member=member, amount=D("1.00"), now=now, idempotency_key="s1")

    def test_spending_everything_leaves_zero(self, member, now, bonus_rule):
        topup(member, "100.00", now)

        spend(member, "120.00", now)

        assert wallet(member) == (D("0.00"), D("0.00"))

    def test_bonus_lots_are_spent_soonest_expiring_first(self, member, now):
        settings_set(wallet_bonus_expiry_days=30)
        wallet_credit(member=member, amount=D("5.00"), now=now - dt.timedelta(days=10), reason="early",
                      idempotency_key="c1")
        settings_set(wallet_bonus_expiry_days=None)
        wallet_credit(member=member, amount=D("5.00"), now=now - dt.timedelta(days=20), reason="never",
                      idempotency_key="c2")

        spend(member, "3.00", now)

        expiring = Lot.objects.get(account__kind=AccountKind.MEMBER_WALLET_BONUS, expires_at__isnull=False)
        never = Lot.objects.get(account__kind=AccountKind.MEMBER_WALLET_BONUS, expires_at__isnull=True)
        assert (expiring.remaining, never.remaining) == (200, 500)

    def test_retry_replays_and_another_body_is_refused(self, member, now):
        topup(member, "50.00", now)
        first = spend(member, "10.00", now, idempotency_key="s1", reference="A")
        before = rows()

        assert spend(member, "10.00", now, idempotency_key="s1", reference="A").pk == first.pk
        assert rows() == before
        refused(IdempotencyKeyReused, wallet_spend, member=member, amount=D("10.00"), now=now, idempotency_key="s1",
                reference="B")


class TestRefund:
    def test_only_that_topups_principal_is_refundable_principal_is_spent_oldest_first(self, member, now):
        settings_set(wallet_spend_order="PRINCIPAL_FIRST")
        older = topup(member, "100.00", now - dt.timedelta(days=2))
        newer = topup(member, "50.00", now - dt.timedelta(days=1))
        spend(member, "120.00", now)  # older: 100 spent; newer: 20 spent

        refused(TopUpRefundTooLarge, wallet_topup_refund, topup=older, amount=None, now=now, idempotency_key="r1")
        newer = wallet_topup_refund(topup=newer, amount=None, now=now, idempotency_key="r2")

        assert newer.refunded_amount == D("30.00")
        assert wallet(member) == (D("0.00"), D("0.00"))

    def test_partial_refunds_add_up_and_the_bonus_goes_with_the_first(self, member, now, bonus_rule):
        t = topup(member, "100.00", now)

        t = wallet_topup_refund(topup=t, amount=D("30.00"), now=now, idempotency_key="r1")
        assert wallet(member) == (D("70.00"), D("0.00"))
        t = wallet_topup_refund(topup=t, amount=D("70.00"), now=now, idempotency_key="r2")

        assert t.refunded_amount == D("100.00")
        assert Transfer.objects.filter(code=TransferCode.BONUS_REMOVED).count() == 1
        refused(TopUpRefundTooLarge, wallet_topup_refund, topup=t, amount=None, now=now, idempotency_key="r3")

    def test_topup_points_are_reversed_in_proportion_to_the_principal_refunded(self, member, now):
        rules_publish(topup_points=1, topup_spend=D("1.00"))
        t = topup(member, "100.00", now)

        wallet_topup_refund(topup=t, amount=D("33.33"), now=now, idempotency_key="r1")
        assert balance(member) == 67  # floor(100 × 33.33 / 100) = 33 reversed
        wallet_topup_refund(topup=t, amount=D("66.67"), now=now, idempotency_key="r2")

        assert balance(member) == 0  # a full refund reverses every point
        assert Transfer.objects.filter(code=TransferCode.REVERSAL, reverses=t.points_transfer).count() == 2

    def test_spent_topup_points_become_debt_on_refund(self, member, now, staff):
        from loyalty.services import points_redeem

        rules_publish(topup_points=1, topup_spend=D("1.00"))
        t = topup(member, "100.00", now)
        points_redeem(member=member, points=100, reason="gift", idempotency_key="p1", now=now)

        wallet_topup_refund(topup=t, amount=None, now=now, idempotency_key="r1")

        assert Transfer.objects.get(code=TransferCode.REVERSAL).breakdown["debt_created"] == 100

    def test_retry_replays_and_another_amount_is_refused(self, member, now):
        t = topup(member, "100.00", now)
        wallet_topup_refund(topup=t, amount=D("10.00"), now=now, idempotency_key="r1")
        before = rows()

        again = wallet_topup_refund(topup=t, amount=D("10.00"), now=now, idempotency_key="r1")

        assert again.refunded_amount == D("10.00")
        assert rows() == before
        refused(IdempotencyKeyReused, wallet_topup_refund, topup=t, amount=D("11.00"), now=now, idempotency_key="r1")

    def test_a_frozen_member_can_still_be_refunded(self, member, now):
        t = topup(member, "20.00", now)
        member.status = MemberStatus.FROZEN
        member.save(update_fields=["status"])

        assert wallet_topup_refund(topup=t, amount=None, now=now, idempotency_key="r1").refunded_amount == D("20.00")


class TestBonusExpiry:
    def test_bonus_expires_at_the_end_of_the_local_day_after_the_configured_days(self, member, now, bonus_rule):
        settings_set(wallet_bonus_expiry_days=30)
        t = topup(member, "100.00", now)

        lot = Lot.objects.get(transfer=t.bonus_transfer)
        assert lot.expires_at == dt.datetime.combine(dt.date(2026, 4, 3), dt.time.max, tzinfo=now.tzinfo)

    def test_the_job_expires_due_bonus_lots_once_and_leaves_principal(self, member, now, bonus_rule):
        settings_set(wallet_bonus_expiry_days=30)
        topup(member, "100.00", now)
        other = MemberFactory()
        topup(other, "100.00", now)
        later = now + dt.timedelta(days=31)

        assert wallet_bonus_expire_due(now=later, batch_size=1) == 2
        assert wallet_bonus_expire_due(now=later) == 0

        assert wallet(member) == (D("100.00"), D("0.00"))
        expired = Transfer.objects.filter(code=TransferCode.EXPIRE, unit=Unit.MONEY)
        assert expired.count() == 2
        assert {t.credit_account.system_code for t in expired} == {SystemAccount.WALLET_BONUS_EXPIRY}

    def test_nothing_is_due_before_the_expiry(self, member, now, bonus_rule):
        settings_set(wallet_bonus_expiry_days=30)
        topup(member, "100.00", now)

        assert wallet_bonus_expire_due(now=now + dt.timedelta(days=29)) == 0

    def test_an_expired_bonus_is_never_spent_even_before_the_job_runs(self, member, now, bonus_rule):
        settings_set(wallet_bonus_expiry_days=1)
        topup(member, "100.00", now)
        later = now + dt.timedelta(days=3)
        assert wallet(member, later) == (D("100.00"), D("0.00"))  # balance leaves it out already

        refused(InsufficientStoredValue, wallet_spend, member=member, amount=D("100.01"), now=later,
                idempotency_key="s1")
        s = spend(member, "10.00", later)

        assert (s.from_bonus, s.from_principal) == (D("0.00"), D("10.00"))
        assert Transfer.objects.filter(code=TransferCode.EXPIRE, unit=Unit.MONEY).count() == 1
        assert wallet_bonus_expire_due(now=later) == 0

    def test_the_task_runs_the_job(self, member, bonus_rule):
        from rewards.tasks import wallet_bonus_expire_due_task

        settings_set(wallet_bonus_expiry_days=1)
        topup(member, "100.00", timezone.now() - dt.timedelta(days=3))

        assert wallet_bonus_expire_due_task.apply().get() == 1


class _Rollback(Exception):
    pass


class TestPointsJobsLeaveStoredValueAlone:
    """Stored-value lots share the Lot table with points; the points jobs and figures must skip them."""

    def test_points_expiry_does_not_touch_a_due_stored_value_bonus(self, member, now, bonus_rule):
        from loyalty.audit import ledger_audit_run
        from loyalty.services import points_expire_due

        settings_set(wallet_bonus_expiry_days=1)
        topup(member, "100.00", now)
        try:
            with transaction.atomic():  # rolled back: the ledger stays clean for the audit fixture
                expired = points_expire_due(now=now + dt.timedelta(days=3))
                problems = ledger_audit_run()
                raise _Rollback
        except _Rollback:
            pass

        assert (expired, problems) == (0, [])

    def test_points_expiring_soon_leaves_out_stored_value(self, member, now, bonus_rule):
        from loyalty.selectors import member_points_summary

        settings_set(wallet_bonus_expiry_days=7)
        topup(member, "100.00", now)

        assert member_points_summary(member=member, now=now).expiring_30d == 0


class TestCreditAndBalance:
    def test_a_reward_credit_is_bonus_money_and_not_refundable(self, member, now):
        t = topup(member, "10.00", now)
        credit = wallet_credit(member=member, amount=D("5.00"), now=now, reason="Reward: ¥5 stored value",
                               idempotency_key="redemption:7")

        assert (credit.code, credit.amount, credit.credit_account.kind) == (
            TransferCode.TOPUP_BONUS, 500, AccountKind.MEMBER_WALLET_BONUS)
        assert wallet(member) == (D("10.00"), D("5.00"))
        wallet_topup_refund(topup=t, amount=None, now=now, idempotency_key="r1")
        assert wallet(member) == (D("0.00"), D("5.00"))  # another top-up's refund leaves it alone

    def test_a_credit_replays_by_key(self, member, now):
        first = wallet_credit(member=member, amount=D("5.00"), now=now, reason="x", idempotency_key="k")

        assert wallet_credit(member=member, amount=D("5.00"), now=now, reason="x", idempotency_key="k") == first
        refused(IdempotencyKeyReused, wallet_credit, member=member, amount=D("6.00"), now=now, reason="x",
                idempotency_key="k")

    def test_low_balance_flag_follows_the_members_threshold(self, member, now):
        topup(member, "30.00", now)
        assert wallet_balance(member=member).low_balance is False

        wallet_low_balance_set(member=member, threshold=D("50.00"))
        assert wallet_balance(member=member).low_balance is True
        spend(member, "0.01", now)
        wallet_low_balance_set(member=member, threshold=D("29.99"))
        assert wallet_balance(member=member).low_balance is False
        wallet_low_balance_set(member=member, threshold=None)
        assert wallet_balance(member=member) == wallet_balance(member=member, now=now)
        assert wallet_balance(member=member).threshold is None

    def test_negative_threshold_is_refused(self, member):
        refused(InvalidInput, wallet_low_balance_set, member=member, threshold=D("-1"))


class TestBadInput:
    @pytest.mark.parametrize("amount", [D("0"), D("-5.00"), D("1.001"), 10.5, "abc", None])
    def test_bad_amounts_are_refused_everywhere(self, member, now, amount):
        t = topup(member, "100.00", now)
        for fn, kwargs in [
            (wallet_topup, {"member": member}),
            (wallet_spend, {"member": member}),
            (wallet_credit, {"member": member, "reason": "x"}),
        ]:
            exc = refused(InvalidInput, fn, amount=amount, now=now, idempotency_key="bad", **kwargs)
            assert exc.field == "amount"
        if amount is not None:
            refused(InvalidInput, wallet_topup_refund, topup=t, amount=amount, now=now, idempotency_key="bad")

    def test_naive_datetimes_are_refused(self, member, now):
        naive = now.replace(tzinfo=None)
        t = topup(member, "100.00", now)

        refused(InvalidInput, wallet_topup, member=member, amount=D("1.00"), now=naive, idempotency_key="x")
        refused(InvalidInput, wallet_topup, member=member, amount=D("1.00"), now=now, occurred_at=naive,
                idempotency_key="x")
        refused(InvalidInput, wallet_spend, member=member, amount=D("1.00"), now=naive, idempotency_key="x")
        refused(InvalidInput, wallet_topup_refund, topup=t, amount=None, now=naive, idempotency_key="x")

    def test_a_future_business_time_is_refused(self, member, now):
        refused(InvalidInput, wallet_topup, member=member, amount=D("1.00"), now=now,
                occurred_at=now + dt.timedelta(hours=1), idempotency_key="x")

    def test_a_missing_idempotency_key_is_refused(self, member, now):
        exc = refused(InvalidInput, wallet_topup, member=member, amount=D("1.00"), now=now, idempotency_key=" ")
        assert exc.field == "idempotency_key"

    def test_a_frozen_member_cannot_top_up_or_spend(self, member, now):
        topup(member, "10.00", now)
        member.status = MemberStatus.FROZEN
        member.save(update_fields=["status"])
        other = MemberFactory(joined_at=now)
        other.status = MemberStatus.FROZEN
        other.save(update_fields=["status"])

        refused(MemberFrozen, wallet_topup, member=member, amount=D("1.00"), now=now, idempotency_key="x")
        refused(MemberFrozen, wallet_spend, member=member, amount=D("1.00"), now=now, idempotency_key="y")
        refused(MemberFrozen, wallet_topup, member=other, amount=D("1.00"), now=now, idempotency_key="z")

    def test_long_keys_still_derive_unique_ledger_keys(self, member, now):
        t = topup(member, "10.00", now, idempotency_key="k" * 200)
        wallet_topup_refund(topup=t, amount=D("1.00"), now=now, idempotency_key="r" * 200)
        wallet_topup_refund(topup=t, amount=D("1.00"), now=now, idempotency_key="r" * 199 + "s")

        assert TopUp.objects.get(pk=t.pk).refunded_amount == D("2.00")


# ---- PostgreSQL: real threads, real transactions ----


@pytest.mark.django_db(transaction=True)
@requires_postgres
def test_S11_fifty_concurrent_spends_of_7_30_from_100_exactly_13_succeed_5_10_left():
    from tests.loyalty.test_concurrency import run_concurrently

    member = MemberFactory()
    wallet_topup(member=member, amount=D("100.00"), now=timezone.now(), idempotency_key="seed")

    results = run_concurrently(50, lambda i: wallet_spend(
        member=member, amount=D("7.30"), now=timezone.now(), idempotency_key=f"spend-{i}"))

    succeeded = [r for r in results if isinstance(r, WalletSpend)]
    refused_ = [r for r in results if isinstance(r, InsufficientStoredValue)]
    assert len(succeeded) == 13, results
    assert len(refused_) == 37, results
    assert wallet_balance(member=member).total == D("5.10")
    assert WalletSpend.objects.count() == 13


@pytest.mark.django_db(transaction=True)
@requires_postgres
def test_S11_first_topups_racing_each_other_create_one_pair_of_accounts_and_refunds_racing_spends_never_overdraw(
        bonus_rule):
    from tests.loyalty.test_concurrency import run_concurrently

    member = MemberFactory()
    now = timezone.now()
    results = run_concurrently(10, lambda i: wallet_topup(member=member, amount=D("100.00"), now=now,
                                                          idempotency_key=f"t{i}"))
    assert all(isinstance(r, TopUp) for r in results), results
    assert Account.objects.filter(member=member, unit=Unit.MONEY).count() == 2
    topups = list(TopUp.objects.order_by("pk"))

    def work(i):
        if i % 5 == 0:
            return wallet_topup_refund(topup=topups[i // 5], amount=None, now=timezone.now(), idempotency_key=f"r{i}")
        return wallet_spend(member=member, amount=D("33.00"), now=timezone.now(), idempotency_key=f"s{i}")

    results = run_concurrently(50, work)

    unexpected = [r for r in results if isinstance(r, Exception)
                  and not isinstance(r, InsufficientStoredValue | TopUpRefundTooLarge)]
    assert not unexpected, unexpected
    b = wallet_balance(member=member)
    assert b.principal >= 0 and b.bonus >= 0
    paid_in = D("1000.00") + D("200.00")
    spent = sum((s.amount for s in WalletSpend.objects.all()), D(0))
    refunded = sum((t.refunded_amount for t in TopUp.objects.all()), D(0))
    removed = D(sum(Transfer.objects.filter(code=TransferCode.BONUS_REMOVED).values_list("amount", flat=True))) / 100
    assert paid_in - spent - refunded - removed == b.total


# ---- admin ----


class TestWalletAdmin:
    def test_counter_topup_finds_the_member_by_phone_and_tops_up_once(self, admin_client, member, bonus_rule):
        url = reverse("admin:rewards_topup_add")
        page = admin_client.get(url)
        assert page.status_code == 200
        token = page.context["form"].initial["token"]
        data = {"member": member.phone, "amount": "100.00", "reference": "CARD-1", "token": token}

        first = admin_client.post(url, data)
        again = admin_client.post(url, data)  # double click: replayed

        topup_ = TopUp.objects.get()
        assert first.status_code == again.status_code == 302
        assert first["Location"] == reverse("admin:rewards_topup_change", args=[topup_.pk])
        assert (topup_.member, topup_.amount, topup_.bonus, topup_.reference) == (member, D("100.00"), D("20.00"),
                                                                                   "CARD-1")
        assert topup_.principal_transfer.staff_user.username == "admin"

    def test_counter_topup_shows_refusals_on_the_form(self, admin_client, member):
        url = reverse("admin:rewards_topup_add")
        token = admin_client.get(url).context["form"].initial["token"]

        unknown = admin_client.post(url, {"member": "13999999999", "amount": "10.00", "token": token})
        assert unknown.status_code == 200 and unknown.context["form"].errors["member"]
        zero = admin_client.post(url, {"member": member.phone, "amount": "0", "token": token})
        assert zero.status_code == 200 and zero.context["form"].errors["amount"]
        admin_client.post(url, {"member": member.phone, "amount": "10.00", "token": token})
        reused = admin_client.post(url, {"member": member.phone, "amount": "11.00", "token": token})
        assert reused.status_code == 200 and reused.context["form"].non_field_errors()
        assert reused.context["form"]["token"].value() != token  # a fresh token for a deliberate second top-up
        assert TopUp.objects.count() == 1

    def test_refund_page_pays_back_unspent_principal_and_refuses_more(self, admin_client, member, now, bonus_rule):
        t = topup(member, "100.00", now)
        spend(member, "50.00", now)  # 20 bonus + 30 principal
        change = admin_client.get(reverse("admin:rewards_topup_change", args=[t.pk]))
        url = reverse("admin:rewards_topup_refund", args=[t.pk])
        assert url in change.content.decode()
        page = admin_client.get(url)
        assert page.status_code == 200 and page.context["principal"] == D("70.00")
        token = page.context["form"].initial["token"]

        too_much = admin_client.post(url, {"amount": "70.01", "token": token})
        assert too_much.status_code == 200 and "70.00" in str(too_much.context["form"].non_field_errors())
        done = admin_client.post(url, {"amount": "", "token": token})

        assert done.status_code == 302
        assert TopUp.objects.get(pk=t.pk).refunded_amount == D("70.00")

    def test_cashiers_need_the_permissions(self, client, staff, member, now):
        t = topup(member, "10.00", now)
        staff.user_permissions.add(Permission.objects.get(codename="view_topup"))
        client.force_login(staff)

        assert client.get(reverse("admin:rewards_topup_change", args=[t.pk])).status_code == 200
        assert client.get(reverse("admin:rewards_topup_add")).status_code == 403
        assert client.get(reverse("admin:rewards_topup_refund", args=[t.pk])).status_code == 403

    def test_lists_and_rules_render(self, admin_client, member, now, bonus_rule):
        topup(member, "100.00", now)
        spend(member, "1.00", now)
        wallet_low_balance_set(member=member, threshold=D("500"))
        for name in ["topup", "walletspend", "topupbonusrule", "walletpreference"]:
            assert admin_client.get(reverse(f"admin:rewards_{name}_changelist")).status_code == 200
        assert admin_client.get(reverse("admin:rewards_topup_changelist"), {"q": member.phone}).context[
            "cl"].result_count == 1
        pref = WalletPreference.objects.get()
        page = admin_client.get(reverse("admin:rewards_walletpreference_change", args=[pref.pk]))
        assert "119.00" in page.content.decode()

    def test_bonus_rule_validity_must_be_ordered(self, admin_client, now):
        response = admin_client.post(reverse("admin:rewards_topupbonusrule_add"), {
            "name": "bad", "minimum": "100", "bonus": "20", "is_active": "on",
            "valid_from_0": "2026-03-04", "valid_from_1": "10:00", "valid_until_0": "2026-03-01",
            "valid_until_1": "10:00",
        })
        assert response.status_code == 200 and response.context["adminform"].form.errors["valid_until"]
