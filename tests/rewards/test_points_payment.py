"""Paying with points (积分抵现): S1 (minimum order, maximum share, step, quote then commit once), S2 (上不封顶),
checkout with coupons and points (mixed payment, stacking rules), and refunds that return the points."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone, translation

from loyalty.exceptions import (
    IdempotencyKeyReused,
    InsufficientPoints,
    InvalidInput,
    LoyaltyError,
    MemberFrozen,
)
from loyalty.models import (
    Account,
    Lot,
    Purchase,
    Refund,
    SystemAccount,
    Transfer,
    TransferCode,
    TransferSource,
)
from loyalty.services import points_adjust, refund_record, system_account
from members.models import Member, MemberStatus
from rewards.exceptions import (
    CouponInvalid,
    CouponNotApplicable,
    CouponNotYours,
    PointsPaymentNotAllowed,
    QuoteAlreadyCommitted,
    QuoteExpired,
    QuoteMismatch,
    QuoteNotFound,
)
from rewards.models import Coupon, CouponStatus, PointsQuote, QuoteStatus
from rewards.services.payments import (
    checkout,
    points_quote_commit,
    points_quote_create,
    spending_settings_get,
)
from tests.conftest import requires_postgres
from tests.factories import MemberFactory, StoreFactory
from tests.loyalty.helpers import balance
from tests.rewards.factories import code_typo, coupon_make, spending_set

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

_keys = iter(range(1, 10**9))


def rows() -> tuple:
    return (
        tuple(PointsQuote.objects.order_by("pk").values_list("pk", "status", "transfer_id", "purchase_id")),
        tuple(Coupon.objects.order_by("pk").values_list("pk", "status", "discount")),
        Transfer.objects.count(), Lot.objects.count(), Purchase.objects.count(), Refund.objects.count(),
        tuple(Account.objects.order_by("pk").values_list("credits_posted", "debits_posted")),
        tuple(Lot.objects.order_by("pk").values_list("remaining", flat=True)),
    )


def refused(error, fn, **kwargs) -> LoyaltyError:
    """The call raises ``error`` with a readable message (in both languages) and writes nothing."""
    before = rows()
    with pytest.raises(error) as exc:
        fn(**kwargs)
    assert rows() == before, "a refused request must write nothing"
    for language in ("en", "zh-hans"):
        with translation.override(language):
            assert str(exc.value).strip()
    return exc.value


def give(member, points, now, staff):
    points_adjust(member=member, points=points, reason="setup", staff_user=staff, idempotency_key=f"seed-{next(_keys)}",
                  now=now - dt.timedelta(days=1))


def quote(member, amount, now, **extra) -> PointsQuote:
    return points_quote_create(member=member, order_amount=Decimal(amount), now=now, **extra)


def commit(q, now, key=None, member=None) -> PointsQuote:
    return points_quote_commit(quote_id=q.pk, member=member or q.member, now=now, idempotency_key=key or f"c-{next(_keys)}")


def pay(member, store, now, total, *, external_id=None, **extra):
    return checkout(member=member, store=store, external_id=external_id or f"POS-{next(_keys)}", occurred_at=now,
                    total=Decimal(total), lines=None, now=now, **extra)


@pytest.fixture
def s1(db):
    """S1 settings: minimum order ¥50, at most 50% of an order, steps of 100 points (100 points = ¥1)."""
    return spending_set(points_minimum_order=Decimal("50.00"), points_maximum_share=Decimal("50.00"), points_step=100)


# ---- S1 and S2 ----


class TestQuote:
    def test_S1_an_80_order_may_use_up_to_half_4000_points_and_a_quote_commits_once(self, member, now, staff, s1):
        give(member, 5000, now, staff)

        q = quote(member, "80.00", now)
        assert (q.points, q.value, q.status, q.expires_at) == (4000, Decimal("40.00"), QuoteStatus.OPEN,
                                                                now + dt.timedelta(seconds=300))
        assert balance(member) == 5000  # a quote takes nothing

        committed = commit(q, now + dt.timedelta(seconds=30), key="till-7:order-1")
        assert committed.status == QuoteStatus.COMMITTED and balance(member) == 1000
        payment = committed.transfer
        assert (payment.code, payment.amount, payment.source, payment.credit_account) == (
            TransferCode.PAYMENT, 4000, TransferSource.REDEMPTION, system_account(SystemAccount.REDEMPTION))

        assert commit(q, now + dt.timedelta(seconds=31), key="till-7:order-1") == committed  # replay
        refused(QuoteAlreadyCommitted, commit, q=q, now=now + dt.timedelta(seconds=32), key="till-8")
        assert balance(member) == 1000 and Transfer.objects.filter(code=TransferCode.PAYMENT).count() == 1

    def test_S1_a_49_order_cannot_use_points(self, member, now, staff, s1):
        give(member, 5000, now, staff)
        exc = refused(PointsPaymentNotAllowed, quote, member=member, amount="49.00", now=now)
        assert "¥50.00" in str(exc) and "¥49.00" in str(exc)
        assert quote(member, "50.00", now).points == 2500

    @pytest.mark.parametrize("available,asked,expected", [
        (4050, None, 4000), (3950, None, 3900), (5000, 1250, 1200), (5000, 100, 100),
    ])
    def test_S1_points_are_used_in_steps_rounded_down(self, member, now, staff, s1, available, asked, expected):
        give(member, available, now, staff)
        q = quote(member, "80.00", now, points=asked)
        assert (q.points, q.value) == (expected, Decimal(expected) / 100)

    def test_S1_a_quote_expires(self, member, now, staff, s1):
        give(member, 5000, now, staff)
        q = quote(member, "80.00", now)

        refused(QuoteExpired, commit, q=q, now=now + dt.timedelta(seconds=300))
        late = quote(member, "80.00", now)
        assert commit(late, now + dt.timedelta(seconds=299)).status == QuoteStatus.COMMITTED

    def test_S2_without_a_maximum_share_a_30_order_can_be_paid_entirely_with_points(self, member, now, staff, store):
        spending_set(points_maximum_share=None)
        give(member, 3000, now, staff)

        q = quote(member, "30.00", now)
        assert (q.points, q.value) == (3000, Decimal("30.00"))
        purchase = pay(member, store, now, "30.00", quote_id=q.pk)
        assert (purchase.points_paid, purchase.points_paid_value) == (3000, Decimal("30.00"))
        assert balance(member) == purchase.points_earned

    def test_the_value_of_a_point_comes_from_the_program(self, member, now, staff, program):
        program.points_value_points, program.points_value_amount = 3, Decimal("0.10")  # 3 points = ¥0.10
        program.save()
        spending_set(points_maximum_share=Decimal("10.00"))
        give(member, 10_000, now, staff)

        q = quote(member, "100.00", now)  # at most ¥10.00 → 300 points
        assert (q.points, q.value) == (300, Decimal("10.00"))
        q = quote(member, "99.99", now)  # at most ¥9.99 (rounded down) → 299 points = ¥9.97
        assert q.points == 299 and q.value <= Decimal("9.99")

    def test_asking_more_than_the_share_or_the_balance_is_refused(self, member, now, staff, s1):
        give(member, 5000, now, staff)
        exc = refused(PointsPaymentNotAllowed, quote, member=member, amount="80.00", now=now, points=4100)
        assert "4000" in str(exc) and "¥40.00" in str(exc)
        exc = refused(InsufficientPoints, quote, member=member, amount="200.00", now=now, points=6000)
        assert "5000" in str(exc)

    def test_too_few_points_for_one_step_and_switched_off(self, member, now, staff, s1):
        give(member, 99, now, staff)
        exc = refused(PointsPaymentNotAllowed, quote, member=member, amount="80.00", now=now)
        assert "99" in str(exc) and "100" in str(exc)
        spending_set(points_payment_enabled=False)
        refused(PointsPaymentNotAllowed, quote, member=member, amount="80.00", now=now)

    @pytest.mark.parametrize("bad", [{"amount": "0"}, {"amount": "-3"}, {"amount": 80.0}, {"points": 0},
                                     {"points": "100"}, {"now": dt.datetime(2026, 3, 4)}])  # noqa: DTZ001
    def test_bad_input_is_refused(self, member, now, staff, bad):
        give(member, 5000, now, staff)
        kwargs = {"member": member, "order_amount": "80.00", "now": now, **bad}
        if "amount" in kwargs:
            kwargs["order_amount"] = kwargs.pop("amount")
        refused(InvalidInput, points_quote_create, **kwargs)

    def test_a_frozen_member_cannot_quote_or_commit(self, member, now, staff):
        give(member, 5000, now, staff)
        q = quote(member, "80.00", now)
        Member.objects.filter(pk=member.pk).update(status=MemberStatus.FROZEN)
        refused(MemberFrozen, quote, member=member, amount="80.00", now=now)
        refused(MemberFrozen, commit, q=q, now=now)

    def test_another_members_quote_or_an_unknown_one_is_not_found(self, member, now, staff):
        give(member, 5000, now, staff)
        q = quote(member, "80.00", now)
        refused(QuoteNotFound, commit, q=q, now=now, member=MemberFactory())
        refused(QuoteNotFound, points_quote_commit, quote_id=q.pk + 1000, member=member, now=now, idempotency_key="k")
        refused(InvalidInput, points_quote_commit, quote_id="1", member=member, now=now, idempotency_key="k")

    def test_a_key_used_for_another_quote_is_refused(self, member, now, staff):
        give(member, 5000, now, staff)
        commit(quote(member, "10.00", now), now, key="same")
        refused(IdempotencyKeyReused, commit, q=quote(member, "10.00", now), now=now, key="same")

    def test_points_spent_meanwhile_make_the_commit_fail(self, member, now, staff):
        give(member, 1000, now, staff)
        first, second = quote(member, "10.00", now), quote(member, "10.00", now)
        commit(first, now)
        refused(InsufficientPoints, commit, q=second, now=now)

    def test_settings_are_a_single_record(self):
        assert spending_settings_get() == spending_settings_get()
        assert spending_settings_get().pk == 1


# ---- checkout: coupons + points + the rest ----


class TestCheckout:
    def test_mixed_payment_coupon_then_points_then_cash(self, member, now, staff, store):
        spending_set(points_maximum_share=Decimal("50.00"))
        give(member, 8000, now, staff)
        coupon = coupon_make(member=member, now=now, spend_save=True)  # 满100减20
        q = quote(member, "100.00", now, store=store)  # ¥120 − ¥20 left after the coupon: at most ¥50

        purchase = pay(member, store, now, "120.00", external_id="POS-1", quote_id=q.pk,
                       coupon_codes=[coupon.code.lower()])

        q.refresh_from_db()
        coupon.refresh_from_db()
        assert (purchase.total, purchase.coupon_discount, purchase.points_paid, purchase.points_paid_value) == (
            Decimal("120.00"), Decimal("20.00"), 5000, Decimal("50.00"))  # ¥50 rest in cash
        assert purchase.payment_transfer == q.transfer and q.purchase == purchase
        assert (q.status, q.transfer.source) == (QuoteStatus.COMMITTED, TransferSource.PURCHASE)
        assert (coupon.status, coupon.redeemed_reference, coupon.redeemed_store) == (CouponStatus.REDEEMED, "POS-1", store)
        assert balance(member) == 3000 + purchase.points_earned

        before = rows()
        again = pay(member, store, now, "120.00", external_id="POS-1", quote_id=q.pk, coupon_codes=[coupon.code])
        assert again == purchase and rows() == before  # the POS retried: nothing twice

    def test_refunds_return_the_points_that_paid(self, member, now, staff, store):
        spending_set(points_maximum_share=None)
        give(member, 6000, now, staff)
        q = quote(member, "120.00", now, points=4000)
        purchase = pay(member, store, now, "120.00", quote_id=q.pk)
        earned = purchase.points_earned
        assert balance(member) == 2000 + earned

        half = refund_record(purchase=purchase, amount=Decimal("60.00"), occurred_at=now, now=now, idempotency_key="r1")
        assert half.points_returned == 2000
        rest = refund_record(purchase=purchase, amount=Decimal("60.00"), occurred_at=now, now=now, idempotency_key="r2")
        assert half.points_returned + rest.points_returned == 4000
        assert balance(member) == 6000
        q.refresh_from_db()
        returns = Transfer.objects.filter(code=TransferCode.RETURN)
        assert {t.reverses_id for t in returns} == {q.transfer_id} == {purchase.payment_transfer_id}

    def test_a_quote_committed_before_checkout_is_used_once(self, member, now, staff, store):
        give(member, 5000, now, staff)
        q = commit(quote(member, "20.00", now), now)
        purchase = pay(member, store, now, "20.00", quote_id=q.pk)

        assert purchase.payment_transfer_id == q.transfer_id and purchase.points_paid == 2000
        refused(QuoteAlreadyCommitted, pay, member=member, store=store, now=now, total="20.00", quote_id=q.pk)

    def test_stacking_coupons_apply_one_after_the_other(self, member, now, store):
        ten = coupon_make(member=member, now=now, stacks_with_coupons=True)
        pct = coupon_make(member=member, now=now, percent_off=True, stacks_with_coupons=True)  # 15%, cap ¥30

        purchase = pay(member, store, now, "100.00", coupon_codes=[ten.code, pct.code])

        assert purchase.coupon_discount == Decimal("23.50")  # ¥10, then 15% of the ¥90 left
        assert list(Coupon.objects.order_by("pk").values_list("discount", flat=True)) == [Decimal("10.00"), Decimal("13.50")]

    def test_refusals_roll_everything_back(self, member, now, staff, store):
        give(member, 5000, now, staff)
        lone = coupon_make(member=member, now=now, stacks_with_points=False)
        single = coupon_make(member=member, now=now, stacks_with_coupons=False)
        social = coupon_make(member=member, now=now, stacks_with_coupons=True)
        theirs = coupon_make(now=now)
        q = quote(member, "90.00", now)
        args = {"member": member, "store": store, "now": now, "total": "100.00"}

        exc = refused(CouponNotApplicable, pay, **args, quote_id=q.pk, coupon_codes=[lone.code])
        assert "points" in str(exc)
        refused(CouponNotApplicable, pay, **args, coupon_codes=[social.code, single.code])
        refused(CouponNotYours, pay, **args, coupon_codes=[social.code, theirs.code])
        refused(CouponInvalid, pay, **args, coupon_codes=[code_typo(social.code)])
        refused(InvalidInput, pay, **args, coupon_codes=[social.code, social.code.lower()])
        refused(InvalidInput, pay, **args, coupon_codes=social.code)
        exc = refused(QuoteMismatch, pay, **args, quote_id=q.pk)  # ¥90 quoted, ¥100 due
        assert "¥90.00" in str(exc) and "¥100.00" in str(exc)
        refused(QuoteExpired, pay, **{**args, "now": now + dt.timedelta(minutes=10)}, quote_id=q.pk,
                coupon_codes=[social.code])
        refused(QuoteNotFound, pay, **{**args, "member": MemberFactory()}, quote_id=q.pk)
        other_store_quote = quote(member, "100.00", now, store=StoreFactory())
        refused(QuoteMismatch, pay, **args, quote_id=other_store_quote.pk)
        # the quote and the coupons are still usable
        purchase = pay(member, store, now, "100.00", quote_id=q.pk, coupon_codes=[social.code])
        assert purchase.points_paid == 5000 and purchase.coupon_discount == Decimal("10.00")

    def test_points_coupons_and_stored_value_cannot_exceed_the_total(self, member, now, staff, store):
        spending_set(points_maximum_share=None)
        give(member, 5000, now, staff)
        q = quote(member, "40.00", now)
        refused(InvalidInput, pay, member=member, store=store, now=now, total="40.00", quote_id=q.pk,
                stored_value_paid="1.00")


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_commits_of_one_quote_take_the_points_once():
    from tests.loyalty.test_concurrency import run_concurrently

    now = timezone.now()
    member = MemberFactory()
    points_adjust(member=member, points=5000, reason="setup", staff_user=None, idempotency_key="seed", now=now,
                  source=TransferSource.API)
    q = points_quote_create(member=member, order_amount=Decimal("30.00"), now=now)

    results = run_concurrently(20, lambda i: points_quote_commit(
        quote_id=q.pk, member=member, now=timezone.now(), idempotency_key=f"till-{i}"))

    assert sum(isinstance(r, PointsQuote) for r in results) == 1, results
    assert sum(isinstance(r, QuoteAlreadyCommitted) for r in results) == 19
    assert balance(member) == 2000
