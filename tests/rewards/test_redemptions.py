"""Redemptions: S3–S7 from shared/acceptance/spending.md, every reward kind, refusals that write nothing,
fulfilment at the counter, cancellation, and the fulfilment queue in the admin."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from loyalty.exceptions import IdempotencyKeyReused, InsufficientPoints, InvalidInput, MemberFrozen
from loyalty.models import (
    Account,
    AccountKind,
    Lot,
    MemberTier,
    SystemAccount,
    Tier,
    TierChange,
    TierChangeReason,
    Transfer,
    TransferCode,
    TransferSource,
)
from loyalty.services import points_adjust
from loyalty.services.tiers import member_tier_current
from members.models import MemberStatus
from rewards import payment_gateway
from rewards.exceptions import (
    CashPaymentFailed,
    CashRefundFailed,
    OutOfStock,
    PickupCodeInvalid,
    RedemptionLimitReached,
    RedemptionNotFound,
    RedemptionStateConflict,
    RewardNotAvailable,
    RewardNotFound,
)
from rewards.models import LimitPeriod, Redemption, RedemptionStatus, Reward, RewardKind
from rewards.services.catalogue import redemption_cancel, redemption_create, redemption_fulfil
from tests.conftest import local, requires_postgres
from tests.factories import MemberFactory
from tests.loyalty.helpers import balance, open_lots

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]


# ---- helpers (shared with test_catalogue.py) ----


def reward_make(**fields) -> Reward:
    defaults = {"name": "Glass water", "name_zh_hans": "玻璃水", "points_cost": 50, "kind": RewardKind.GOODS}
    return Reward.objects.create(**{**defaults, **fields})


def tiers_make() -> dict[str, Tier]:
    rows = [("basic", "普通", 0), ("silver", "银卡", 1), ("gold", "金卡", 2)]
    return {code: Tier.objects.create(code=code, name=name, rank=rank, spend_threshold=Decimal(rank * 1000))
            for code, name, rank in rows}


_seed = iter(range(1, 10**9))


def give(member, points: int, *, now, expires_at: dt.datetime | None = None) -> Transfer:
    """Credit points through the real service (a staff adjustment); optionally move the new lot's expiry."""
    from django.contrib.auth import get_user_model

    staff, _ = get_user_model().objects.get_or_create(username="seeder", defaults={"is_staff": True})
    transfer = points_adjust(member=member, points=points, reason="seed", staff_user=staff,
                             idempotency_key=f"seed-{next(_seed)}", now=now)
    if expires_at is not None:
        transfer.lots.update(expires_at=expires_at)
    return transfer


def rows() -> tuple:
    """Everything a redemption, fulfilment or cancellation can write."""
    from rewards.models import Coupon

    return (
        Redemption.objects.count(), Transfer.objects.count(), Lot.objects.count(), Coupon.objects.count(),
        TierChange.objects.count(), MemberTier.objects.count(),
        tuple(Lot.objects.order_by("pk").values_list("remaining", flat=True)),
        tuple(Account.objects.order_by("pk").values_list("credits_posted", "debits_posted")),
        tuple(Reward.objects.order_by("pk").values_list("stock", "donated_points")),
        tuple(Redemption.objects.order_by("pk").values_list("status", "fulfilled_at", "cancelled_at", "return_transfer")),
    )


def refused(error, fn, **kwargs):
    before = rows()
    with pytest.raises(error) as exc:
        fn(**kwargs)
    assert rows() == before, "a refused request must write nothing"
    assert str(exc.value)
    return exc.value


def redeem(member, reward, now, key="k1", **kwargs) -> Redemption:
    return redemption_create(member=member, reward_id=reward.pk, now=now, idempotency_key=key, **kwargs)


# ---- S4: small fast redemption, pickup at the counter ----


class TestS4GlassWater:
    def test_S4_fifty_points_redeemed_leaves_zero_and_the_pickup_code_is_fulfilled_once(self, member, store, staff, now):
        reward = reward_make(name="glass water", points_cost=50)
        give(member, 50, now=now)

        redemption = redeem(member, reward, now)

        assert balance(member) == 0
        assert redemption.status == RedemptionStatus.PENDING
        assert len(redemption.pickup_code) == 8 and redemption.pickup_code.isupper()
        assert redemption.points == 50 and redemption.cash == Decimal("0.00")
        debit = redemption.transfer
        assert (debit.code, debit.source, debit.amount, debit.reason) == (
            TransferCode.REDEEM, TransferSource.REDEMPTION, 50, "glass water")
        assert debit.credit_account.system_code == SystemAccount.REDEMPTION

        later = now + dt.timedelta(hours=2)
        typed = redemption.pickup_code.lower()[:4] + "-" + redemption.pickup_code.lower()[4:]
        fulfilled = redemption_fulfil(redemption_id=redemption.pk, pickup_code=typed, now=later, store=store,
                                      staff_user=staff)

        assert fulfilled.status == RedemptionStatus.FULFILLED
        assert (fulfilled.fulfilled_at, fulfilled.fulfilled_store, fulfilled.fulfilled_by) == (later, store, staff)
        exc = refused(RedemptionStateConflict, redemption_fulfil, redemption_id=redemption.pk,
                      pickup_code=redemption.pickup_code, now=later)
        assert "fulfilled" in str(exc)

    def test_S4_a_wrong_pickup_code_is_refused_and_the_redemption_stays_pending(self, member, now):
        reward = reward_make()
        give(member, 50, now=now)
        redemption = redeem(member, reward, now)

        refused(PickupCodeInvalid, redemption_fulfil, redemption_id=redemption.pk, pickup_code="AAAAAAAA", now=now)
        refused(InvalidInput, redemption_fulfil, redemption_id=redemption.pk, pickup_code="  ", now=now)

        redemption.refresh_from_db()
        assert redemption.status == RedemptionStatus.PENDING

    def test_pickup_codes_are_random_and_distinct(self, member, now):
        reward = reward_make(points_cost=1)
        give(member, 30, now=now)
        codes = {redeem(member, reward, now, key=f"k{i}").pickup_code for i in range(30)}
        assert len(codes) == 30


# ---- S3: points + cash ----


class TestS3PointsPlusCash:
    def test_S3_the_member_pays_both_points_and_cash(self, member, now):
        reward = reward_make(points_cost=2000, cash_price=Decimal("9.90"), stock=5)
        give(member, 2500, now=now)

        with payment_gateway.gateway_override(payment_gateway.RecordingGateway()) as gateway:
            redemption = redeem(member, reward, now)

        assert balance(member) == 500
        assert redemption.cash == Decimal("9.90")
        assert redemption.cash_reference.startswith("counter:")
        assert gateway.charges == [{"amount": Decimal("9.90"), "reference": "redemption:k1", "member": member.pk}]
        reward.refresh_from_db()
        assert reward.stock == 4

    def test_S3_when_the_cash_payment_fails_no_points_are_taken(self, member, now):
        reward = reward_make(points_cost=2000, cash_price=Decimal("9.90"), stock=5)
        give(member, 2500, now=now)

        with payment_gateway.gateway_override(payment_gateway.FailingGateway("card declined")) as gateway:
            exc = refused(CashPaymentFailed, redeem, member=member, reward=reward, now=now)

        assert len(gateway.charges) == 1  # it was tried, after every other check
        assert "card declined" in str(exc) and "No points were taken" in str(exc)
        assert balance(member) == 2500
        assert Reward.objects.get(pk=reward.pk).stock == 5

    def test_S3_a_gateway_that_breaks_counts_as_a_failed_payment(self, member, now, monkeypatch):
        reward = reward_make(points_cost=100, cash_price=Decimal("1.00"))
        give(member, 100, now=now)

        def broken(**kwargs):
            raise TimeoutError("provider timed out")

        monkeypatch.setattr(payment_gateway, "cash_charge", broken)
        refused(CashPaymentFailed, redeem, member=member, reward=reward, now=now)
        assert balance(member) == 100

    def test_S3_a_retry_after_a_declined_payment_can_succeed_with_the_same_key(self, member, now):
        reward = reward_make(points_cost=100, cash_price=Decimal("1.00"))
        give(member, 100, now=now)
        with payment_gateway.gateway_override(payment_gateway.FailingGateway()), pytest.raises(CashPaymentFailed):
            redeem(member, reward, now)

        redemption = redeem(member, reward, now)

        assert redemption.cash_reference and balance(member) == 0

    def test_points_only_rewards_never_call_the_gateway(self, member, now):
        reward = reward_make()
        give(member, 50, now=now)
        with payment_gateway.gateway_override(payment_gateway.FailingGateway()) as gateway:
            redeem(member, reward, now)
        assert gateway.charges == []


# ---- S5: stock under concurrency (PostgreSQL) ----


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_S5_stock_10_and_50_concurrent_redeemers_exactly_10_succeed():
    from loyalty.audit import ledger_audit_run
    from tests.loyalty.test_concurrency import run_concurrently

    now = timezone.now()
    reward = reward_make(name="Limited mug", points_cost=100, stock=10)
    members = [MemberFactory() for _ in range(50)]
    for m in members:
        give(m, 150, now=now)

    results = run_concurrently(50, lambda i: redemption_create(
        member=members[i], reward_id=reward.pk, now=timezone.now(), idempotency_key=f"s5-{i}"))

    succeeded = [r for r in results if isinstance(r, Redemption)]
    refused_ = [r for r in results if isinstance(r, OutOfStock)]
    assert len(succeeded) == 10, results
    assert len(refused_) == 40, [r for r in results if not isinstance(r, Redemption | OutOfStock)]
    winners = {r.member_id for r in succeeded}
    assert sorted(balance(m) for m in members) == [50] * 10 + [150] * 40
    assert {m.pk for m in members if balance(m) == 50} == winners
    assert Transfer.objects.filter(code=TransferCode.REDEEM).count() == 10
    assert Reward.objects.get(pk=reward.pk).stock == 0
    assert ledger_audit_run() == []


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_S5_one_member_racing_themselves_never_overspends_or_passes_the_limit():
    from loyalty.audit import ledger_audit_run
    from tests.loyalty.test_concurrency import run_concurrently

    now = timezone.now()
    reward = reward_make(points_cost=100, limit_per_member=3, limit_period=LimitPeriod.EVER)
    member = MemberFactory()
    give(member, 1000, now=now)

    results = run_concurrently(20, lambda i: redemption_create(
        member=member, reward_id=reward.pk, now=timezone.now(), idempotency_key=f"self-{i}"))

    assert len([r for r in results if isinstance(r, Redemption)]) == 3
    assert len([r for r in results if isinstance(r, RedemptionLimitReached)]) == 17
    assert balance(member) == 700
    assert ledger_audit_run() == []


# ---- S6: per-member limits by the program's calendar ----


class TestS6Limits:
    def test_S6_one_per_month_second_in_the_same_month_says_when_it_is_possible_again(self, member, now):
        reward = reward_make(points_cost=10, limit_per_member=1, limit_period=LimitPeriod.MONTH)
        give(member, 100, now=now)
        redeem(member, reward, now, key="march-1")

        exc = refused(RedemptionLimitReached, redeem, member=member, reward=reward, now=local(2026, 3, 31, 23, 59),
                      key="march-2")

        assert "April 1, 2026" in str(exc)
        with translation.override("zh-hans"):
            assert "2026年4月1日" in str(exc)  # the same error, read in Chinese, dates the Chinese way
        assert exc.extra["available_again"] == local(2026, 4, 1).isoformat()
        assert redeem(member, reward, local(2026, 4, 1, 0, 0), key="april-1").status == RedemptionStatus.PENDING

    @pytest.mark.parametrize(("period", "second", "again"), [
        (LimitPeriod.DAY, local(2026, 3, 4, 23, 59), "March 5, 2026"),
        (LimitPeriod.WEEK, local(2026, 3, 8, 20, 0), "March 9, 2026"),  # 4 March 2026 is a Wednesday
        (LimitPeriod.YEAR, local(2026, 12, 31, 23, 0), "Jan. 1, 2027"),
    ])
    def test_S6_each_period_resets_at_local_midnight(self, member, now, period, second, again):
        reward = reward_make(points_cost=10, limit_per_member=1, limit_period=period)
        give(member, 100, now=now)
        redeem(member, reward, now, key="first")

        exc = refused(RedemptionLimitReached, redeem, member=member, reward=reward, now=second, key="second")

        assert again in str(exc)

    def test_S6_limit_ever_says_there_is_no_next_time(self, member, now):
        reward = reward_make(points_cost=10, limit_per_member=2, limit_period=LimitPeriod.EVER)
        give(member, 100, now=now)
        redeem(member, reward, now, key="a")
        redeem(member, reward, now, key="b")

        exc = refused(RedemptionLimitReached, redeem, member=member, reward=reward, now=now, key="c")

        assert "2 per member" in str(exc) and exc.extra["available_again"] is None

    def test_S6_the_period_follows_the_program_time_zone_not_utc(self, member, now):
        reward = reward_make(points_cost=10, limit_per_member=1, limit_period=LimitPeriod.MONTH)
        give(member, 100, now=now)
        # 31 March 23:30 UTC is 1 April 07:30 in Shanghai: a new month there.
        redeem(member, reward, dt.datetime(2026, 3, 31, 15, 0, tzinfo=dt.UTC), key="march")
        assert redeem(member, reward, dt.datetime(2026, 3, 31, 23, 30, tzinfo=dt.UTC), key="april")

    def test_S6_cancelled_redemptions_do_not_count(self, member, now):
        reward = reward_make(points_cost=10, limit_per_member=1, limit_period=LimitPeriod.MONTH)
        give(member, 100, now=now)
        first = redeem(member, reward, now, key="a")
        redemption_cancel(redemption_id=first.pk, now=now, reason="changed mind")

        assert redeem(member, reward, now, key="b").status == RedemptionStatus.PENDING

    def test_S6_other_members_have_their_own_limit(self, member, now):
        other = MemberFactory()
        reward = reward_make(points_cost=10, limit_per_member=1, limit_period=LimitPeriod.MONTH)
        give(member, 10, now=now)
        give(other, 10, now=now)
        redeem(member, reward, now, key="a")
        assert redeem(other, reward, now, key="b")

    def test_S6_when_the_offer_ends_before_the_next_period_the_message_says_so(self, member, now):
        reward = reward_make(points_cost=10, limit_per_member=1, limit_period=LimitPeriod.MONTH,
                             available_until=local(2026, 3, 20))
        give(member, 100, now=now)
        redeem(member, reward, now, key="a")

        exc = refused(RedemptionLimitReached, redeem, member=member, reward=reward, now=now, key="b")

        assert "ends before" in str(exc)


# ---- S7: cancellation ----


class TestS7Cancel:
    def test_S7_cancelling_a_pending_redemption_returns_the_points_as_a_new_transfer_and_the_stock(
            self, member, staff, now):
        reward = reward_make(points_cost=300, stock=2)
        give(member, 500, now=now)
        redemption = redeem(member, reward, now)
        original = Transfer.objects.get(pk=redemption.transfer_id)

        later = now + dt.timedelta(days=1)
        cancelled = redemption_cancel(redemption_id=redemption.pk, now=later, reason="out of colour", staff_user=staff)

        assert cancelled.status == RedemptionStatus.CANCELLED
        assert (cancelled.cancelled_at, cancelled.cancel_reason) == (later, "out of colour")
        assert balance(member) == 500
        assert Reward.objects.get(pk=reward.pk).stock == 2
        back = cancelled.return_transfer
        assert (back.code, back.amount, back.reverses_id, back.staff_user, back.occurred_at) == (
            TransferCode.CANCEL, 300, original.pk, staff, later)
        assert back.debit_account.system_code == SystemAccount.REDEMPTION
        assert Transfer.objects.get(pk=original.pk).amount == 300  # the original entry is untouched

    def test_S7_returned_points_keep_the_expiry_of_the_lots_they_came_from(self, member, now):
        soon, later = local(2026, 6, 30, 23, 59, 59), local(2027, 3, 31, 23, 59, 59)
        give(member, 100, now=now, expires_at=soon)
        give(member, 100, now=now, expires_at=later)
        reward = reward_make(points_cost=150)
        redemption = redeem(member, reward, now)

        redemption_cancel(redemption_id=redemption.pk, now=now + dt.timedelta(hours=1), reason="x")

        returns = Transfer.objects.filter(code=TransferCode.CANCEL).order_by("pk")
        assert [(t.amount, t.lots.get().expires_at) for t in returns] == [(50, later), (100, soon)]
        assert sorted(lot.remaining for lot in open_lots(member) if lot.remaining) == [50, 50, 100]

    def test_S7_points_whose_expiry_passed_come_back_already_due(self, member, now):
        give(member, 100, now=now, expires_at=local(2026, 3, 10))
        redemption = redeem(member, reward_make(points_cost=100), now)
        cancel_at = local(2026, 3, 15)

        redemption_cancel(redemption_id=redemption.pk, now=cancel_at, reason="late")

        assert Transfer.objects.get(code=TransferCode.CANCEL).lots.get().expires_at == cancel_at

    def test_S7_the_cash_part_is_refunded_through_the_gateway(self, member, now):
        reward = reward_make(points_cost=100, cash_price=Decimal("9.90"))
        give(member, 100, now=now)
        with payment_gateway.gateway_override(payment_gateway.RecordingGateway()) as gateway:
            redemption = redeem(member, reward, now)
            redemption_cancel(redemption_id=redemption.pk, now=now, reason="x")

        assert gateway.refunds == [{"amount": Decimal("9.90"), "reference": f"redemption-cancel:{redemption.pk}",
                                    "charge_reference": redemption.cash_reference}]

    def test_S7_a_failed_cash_refund_cancels_nothing(self, member, now):
        reward = reward_make(points_cost=100, cash_price=Decimal("9.90"), stock=3)
        give(member, 100, now=now)
        redemption = redeem(member, reward, now)

        with payment_gateway.gateway_override(payment_gateway.FailingGateway("bank offline", refunds_fail=True)):
            exc = refused(CashRefundFailed, redemption_cancel, redemption_id=redemption.pk, now=now, reason="x")

        assert "bank offline" in str(exc)
        assert Redemption.objects.get(pk=redemption.pk).status == RedemptionStatus.PENDING

    def test_S7_a_fulfilled_redemption_cannot_be_cancelled(self, member, now):
        give(member, 10, now=now)
        redemption = redeem(member, reward_make(points_cost=10), now)
        redemption_fulfil(redemption_id=redemption.pk, pickup_code=redemption.pickup_code, now=now)

        exc = refused(RedemptionStateConflict, redemption_cancel, redemption_id=redemption.pk, now=now, reason="x")

        assert "fulfilled" in str(exc)

    def test_S7_cancelling_twice_is_refused_and_a_retry_with_the_same_key_replays(self, member, now):
        give(member, 10, now=now)
        redemption = redeem(member, reward_make(points_cost=10), now)
        first = redemption_cancel(redemption_id=redemption.pk, now=now, reason="x", idempotency_key="c1")

        again = redemption_cancel(redemption_id=redemption.pk, now=now, reason="x", idempotency_key="c1")

        assert again.pk == first.pk and again.return_transfer_id == first.return_transfer_id
        assert Transfer.objects.filter(code=TransferCode.CANCEL).count() == 1
        refused(IdempotencyKeyReused, redemption_cancel, redemption_id=redemption.pk, now=now, reason="other",
                idempotency_key="c1")
        refused(RedemptionStateConflict, redemption_cancel, redemption_id=redemption.pk, now=now, reason="x")
        refused(RedemptionStateConflict, redemption_cancel, redemption_id=redemption.pk, now=now, reason="x",
                idempotency_key="c2")
        assert balance(member) == 10

    def test_S7_a_cancelled_redemption_cannot_be_fulfilled(self, member, now):
        give(member, 10, now=now)
        redemption = redeem(member, reward_make(points_cost=10), now)
        redemption_cancel(redemption_id=redemption.pk, now=now, reason="x")

        exc = refused(RedemptionStateConflict, redemption_fulfil, redemption_id=redemption.pk,
                      pickup_code=redemption.pickup_code, now=now)
        assert "cancelled" in str(exc)

    def test_S7_a_frozen_member_still_gets_the_points_back(self, member, now):
        give(member, 10, now=now)
        redemption = redeem(member, reward_make(points_cost=10), now)
        type(member).objects.filter(pk=member.pk).update(status=MemberStatus.FROZEN)

        redemption_cancel(redemption_id=redemption.pk, now=now, reason="account frozen")

        assert balance(member) == 10

    def test_S7_a_reason_is_required(self, member, now):
        give(member, 10, now=now)
        redemption = redeem(member, reward_make(points_cost=10), now)
        exc = refused(InvalidInput, redemption_cancel, redemption_id=redemption.pk, now=now, reason="  ")
        assert exc.field == "reason"


# ---- reward kinds ----


class TestKinds:
    def test_goods_without_counter_fulfilment_are_fulfilled_at_once_without_a_code(self, member, now):
        give(member, 10, now=now)
        redemption = redeem(member, reward_make(points_cost=10, needs_fulfilment=False), now)
        assert (redemption.status, redemption.pickup_code, redemption.fulfilled_at) == (
            RedemptionStatus.FULFILLED, None, now)
        refused(RedemptionStateConflict, redemption_cancel, redemption_id=redemption.pk, now=now, reason="x")

    def test_service_is_pending_with_a_pickup_code(self, member, now):
        give(member, 10, now=now)
        redemption = redeem(member, reward_make(points_cost=10, kind=RewardKind.SERVICE, name="Car wash"), now)
        assert redemption.status == RedemptionStatus.PENDING and redemption.pickup_code

    def test_donation_adds_to_the_goal_and_stops_when_it_is_reached(self, member, now):
        reward = reward_make(kind=RewardKind.DONATION, name="Plant a tree", points_cost=400, donation_goal=1000)
        give(member, 2000, now=now)
        for i in range(3):
            assert redeem(member, reward, now, key=f"d{i}").status == RedemptionStatus.FULFILLED
        reward.refresh_from_db()
        assert reward.donated_points == 1200

        exc = refused(RewardNotAvailable, redeem, member=member, reward=reward, now=now, key="d4")

        assert "goal" in str(exc)
        refused(RedemptionStateConflict, redemption_cancel, redemption_id=Redemption.objects.first().pk, now=now,
                reason="x")

    def test_tier_upgrade_moves_the_member_and_records_why(self, member, now):
        tiers = tiers_make()
        reward = reward_make(kind=RewardKind.TIER_UPGRADE, name="Gold for a year", points_cost=5000,
                             upgrade_tier=tiers["gold"])
        give(member, 5000, now=now)

        redemption = redeem(member, reward, now)

        assert redemption.status == RedemptionStatus.FULFILLED
        assert member_tier_current(member=member) == tiers["gold"]
        change = TierChange.objects.get(member=member)
        assert change.reason == TierChangeReason.REDEMPTION
        assert change.details["redemption"] == redemption.pk and change.details["via"] == "redemption"
        give(member, 5000, now=now)
        exc = refused(RewardNotAvailable, redeem, member=member, reward=reward, now=now, key="again")
        assert "金卡" in str(exc)

    def test_coupon_reward_issues_a_coupon_to_the_member(self, member, now):
        from rewards.models import CouponKind, CouponSource, CouponTemplate

        template = CouponTemplate.objects.create(name="¥10 off", kind=CouponKind.FIXED, amount=Decimal("10.00"))
        reward = reward_make(kind=RewardKind.COUPON, name="¥10 coupon", points_cost=1000, coupon_template=template)
        give(member, 1000, now=now)

        redemption = redeem(member, reward, now)

        assert redemption.status == RedemptionStatus.FULFILLED
        coupon = redemption.coupon
        assert (coupon.member_id, coupon.template_id, coupon.source) == (member.pk, template.pk, CouponSource.REDEMPTION)
        assert coupon.idempotency_key == "redemption:k1:coupon"
        assert redeem(member, reward, now).coupon_id == coupon.pk  # replay: no second coupon

    def test_coupon_reward_whose_template_was_switched_off_is_refused(self, member, now):
        from rewards.models import CouponKind, CouponTemplate

        template = CouponTemplate.objects.create(name="¥10 off", kind=CouponKind.FIXED, amount=Decimal("10.00"),
                                                 is_active=False)
        reward = reward_make(kind=RewardKind.COUPON, points_cost=10, coupon_template=template)
        give(member, 10, now=now)

        exc = refused(RewardNotAvailable, redeem, member=member, reward=reward, now=now)

        assert "coupon" in str(exc)

    def test_stored_value_reward_credits_the_wallet(self, member, now):
        reward = reward_make(kind=RewardKind.STORED_VALUE, name="¥20 credit", points_cost=2000,
                             stored_value=Decimal("20.00"))
        give(member, 2000, now=now)

        redemption = redeem(member, reward, now)

        assert redemption.status == RedemptionStatus.FULFILLED
        wallet = Account.objects.filter(member=member, kind__in=[AccountKind.MEMBER_WALLET,
                                                                 AccountKind.MEMBER_WALLET_BONUS])
        assert sum(a.balance for a in wallet) == 2000  # minor units (fen)
        credit = Transfer.objects.get(breakdown__kind="wallet_credit")
        assert (credit.breakdown["idempotency_key"], credit.source, credit.reason) == (
            "redemption:k1:wallet", TransferSource.REDEMPTION, "¥20 credit")
        assert redeem(member, reward, now).pk == redemption.pk  # replay: credited once
        assert Transfer.objects.filter(breakdown__kind="wallet_credit").count() == 1


# ---- idempotency ----


class TestIdempotency:
    def test_the_same_key_replays_the_first_redemption(self, member, now):
        reward = reward_make(points_cost=10, stock=5)
        give(member, 100, now=now)
        first = redeem(member, reward, now)

        before = rows()
        again = redeem(member, reward, now + dt.timedelta(minutes=1))

        assert again.pk == first.pk and rows() == before

    def test_a_replay_works_even_after_the_reward_sold_out(self, member, now):
        reward = reward_make(points_cost=10, stock=1)
        give(member, 100, now=now)
        first = redeem(member, reward, now)
        assert redeem(member, reward, now).pk == first.pk

    def test_the_same_key_for_another_reward_is_refused(self, member, now):
        give(member, 100, now=now)
        redeem(member, reward_make(points_cost=10), now)
        refused(IdempotencyKeyReused, redeem, member=member, reward=reward_make(name="Other", points_cost=10), now=now)

    def test_the_same_key_by_another_member_is_refused(self, member, now):
        other = MemberFactory()
        reward = reward_make(points_cost=10)
        give(member, 10, now=now)
        give(other, 10, now=now)
        redeem(member, reward, now)
        refused(IdempotencyKeyReused, redeem, member=other, reward=reward, now=now)


# ---- refusals write nothing ----


class TestRefusals:
    def test_out_of_stock(self, member, now):
        reward = reward_make(points_cost=10, stock=0)
        give(member, 10, now=now)
        exc = refused(OutOfStock, redeem, member=member, reward=reward, now=now)
        assert "out of stock" in str(exc)

    def test_not_enough_points(self, member, now):
        give(member, 49, now=now)
        exc = refused(InsufficientPoints, redeem, member=member, reward=reward_make(stock=3), now=now)
        assert "49 available, 50 requested" in str(exc)

    def test_inactive_reward(self, member, now):
        give(member, 100, now=now)
        exc = refused(RewardNotAvailable, redeem, member=member, reward=reward_make(is_active=False), now=now)
        assert "no longer offered" in str(exc)

    def test_before_the_window(self, member, now):
        give(member, 100, now=now)
        reward = reward_make(available_from=local(2026, 3, 8, 9, 0))
        exc = refused(RewardNotAvailable, redeem, member=member, reward=reward, now=now)
        assert "from March 8, 2026" in str(exc)
        with translation.override("zh-hans"):
            assert "2026年3月8日" in str(exc)

    def test_after_the_window(self, member, now):
        give(member, 100, now=now)
        reward = reward_make(available_until=now)
        exc = refused(RewardNotAvailable, redeem, member=member, reward=reward, now=now)
        assert "until March 4, 2026" in str(exc)

    def test_tier_only_reward_refuses_other_tiers(self, member, now):
        tiers = tiers_make()
        reward = reward_make()
        reward.tiers.set([tiers["silver"], tiers["gold"]])
        give(member, 100, now=now)

        exc = refused(RewardNotAvailable, redeem, member=member, reward=reward, now=now)

        assert "银卡, 金卡" in str(exc) and exc.extra["tiers"] == ["silver", "gold"]
        from loyalty.services.tiers import tier_set_manual

        tier_set_manual(member=member, tier=tiers["gold"], note="vip", now=now)
        assert redeem(member, reward, now).status == RedemptionStatus.PENDING

    def test_unknown_reward(self, member, now):
        refused(RewardNotFound, redemption_create, member=member, reward_id=999999, now=now, idempotency_key="k")

    def test_frozen_member(self, member, now):
        give(member, 100, now=now)
        type(member).objects.filter(pk=member.pk).update(status=MemberStatus.FROZEN)
        refused(MemberFrozen, redeem, member=member, reward=reward_make(), now=now)

    @pytest.mark.parametrize(("kwargs", "field"), [
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "x" * 181}, "idempotency_key"),
        ({"reward_id": "1"}, "reward_id"),
        ({"reward_id": None}, "reward_id"),
        ({"source": "NOPE"}, "source"),
        ({"now": dt.datetime(2026, 3, 4, 10, 0)}, "now"),  # noqa: DTZ001 - a naive time is the bad input
    ])
    def test_bad_arguments(self, member, now, kwargs, field):
        reward = reward_make()
        give(member, 100, now=now)
        call = {"member": member, "reward_id": reward.pk, "now": now, "idempotency_key": "k", **kwargs}
        exc = refused(InvalidInput, redemption_create, **call)
        assert exc.field == field

    def test_unknown_redemption(self, now):
        refused(RedemptionNotFound, redemption_fulfil, redemption_id=999999, pickup_code="ABC", now=now)
        refused(RedemptionNotFound, redemption_cancel, redemption_id=999999, now=now, reason="x")


# ---- the fulfilment queue in the admin ----


class TestFulfilmentQueueAdmin:
    @pytest.fixture
    def pending(self, member, now):
        give(member, 1000, now=now)
        reward = reward_make(points_cost=10, stock=10)
        return [redeem(member, reward, now + dt.timedelta(minutes=i), key=f"q{i}") for i in range(3)]

    def queue_url(self, **params) -> str:
        url = reverse("admin:rewards_redemption_changelist")
        return url + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")

    def test_queue_lists_pending_oldest_first_by_default(self, admin_client, pending, now):
        redemption_fulfil(redemption_id=pending[1].pk, pickup_code=pending[1].pickup_code, now=now)

        response = admin_client.get(self.queue_url())

        assert response.status_code == 200
        assert [r.pk for r in response.context["cl"].result_list] == [pending[0].pk, pending[2].pk]
        assert pending[0].pickup_code not in response.content.decode()  # the member shows it; staff type it
        everything = admin_client.get(self.queue_url(queue="all")).context["cl"].result_list
        assert len(everything) == 3
        done = admin_client.get(self.queue_url(queue="FULFILLED")).context["cl"].result_list
        assert [r.pk for r in done] == [pending[1].pk]

    def test_queue_search_by_member_phone(self, admin_client, pending, member):
        other = MemberFactory()
        give(other, 10, now=timezone.now())
        redeem(other, Reward.objects.get(), timezone.now(), key="other")

        listed = admin_client.get(self.queue_url(q=member.member_number)).context["cl"].result_list

        assert {r.member_id for r in listed} == {member.pk}

    def test_detail_page_is_read_only_and_offers_fulfil_and_cancel(self, admin_client, pending):
        url = reverse("admin:rewards_redemption_change", args=[pending[0].pk])
        response = admin_client.get(url)
        content = response.content.decode()

        assert response.status_code == 200
        assert reverse("admin:rewards_redemption_fulfil", args=[pending[0].pk]) in content
        assert reverse("admin:rewards_redemption_cancel", args=[pending[0].pk]) in content
        assert admin_client.post(url, {"status": "FULFILLED"}).status_code == 403
        assert admin_client.get(reverse("admin:rewards_redemption_add")).status_code == 403
        assert Redemption.objects.get(pk=pending[0].pk).status == RedemptionStatus.PENDING

    def test_fulfil_page_takes_the_pickup_code(self, admin_client, pending, store):
        target = pending[0]
        url = reverse("admin:rewards_redemption_fulfil", args=[target.pk])
        assert admin_client.get(url).status_code == 200

        wrong = admin_client.post(url, {"pickup_code": "WRONGCODE", "store": store.pk})
        assert wrong.status_code == 200
        assert "does not match" in wrong.content.decode()
        assert Redemption.objects.get(pk=target.pk).status == RedemptionStatus.PENDING

        response = admin_client.post(url, {"pickup_code": target.pickup_code.lower(), "store": store.pk})

        assert response.status_code == 302
        target.refresh_from_db()
        assert target.status == RedemptionStatus.FULFILLED and target.fulfilled_store == store
        assert target.fulfilled_by.username == "admin"
        again = admin_client.post(url, {"pickup_code": target.pickup_code})
        assert again.status_code == 302  # back to the queue with an error message: already fulfilled
        messages = [str(m) for m in again.wsgi_request._messages]
        assert any("fulfilled" in m for m in messages)

    def test_cancel_page_needs_a_reason_and_returns_the_points(self, admin_client, pending, member):
        target = pending[0]
        url = reverse("admin:rewards_redemption_cancel", args=[target.pk])
        page = admin_client.get(url)
        assert page.status_code == 200
        token = page.context["form"].initial["token"]

        empty = admin_client.post(url, {"reason": "", "token": token})
        assert empty.status_code == 200 and Redemption.objects.get(pk=target.pk).status == RedemptionStatus.PENDING

        before = balance(member)
        response = admin_client.post(url, {"reason": "member asked", "token": token})
        resent = admin_client.post(url, {"reason": "member asked", "token": token})  # double submit: a replay

        assert response.status_code == 302 and resent.status_code == 302
        target.refresh_from_db()
        assert target.status == RedemptionStatus.CANCELLED and target.cancel_reason == "member asked"
        assert balance(member) == before + 10
        assert target.return_transfer.staff_user.username == "admin"

    def test_staff_without_the_change_permission_cannot_fulfil(self, client, pending, django_user_model):
        from django.contrib.auth.models import Permission

        viewer = django_user_model.objects.create_user(username="viewer", password="pw", is_staff=True)
        viewer.user_permissions.add(Permission.objects.get(codename="view_redemption"))
        client.force_login(viewer)

        assert client.get(reverse("admin:rewards_redemption_changelist")).status_code == 200
        url = reverse("admin:rewards_redemption_fulfil", args=[pending[0].pk])
        assert client.post(url, {"pickup_code": pending[0].pickup_code}).status_code == 403
        assert Redemption.objects.get(pk=pending[0].pk).status == RedemptionStatus.PENDING

    def test_queue_in_chinese(self, admin_client, pending):
        response = admin_client.get(self.queue_url(), HTTP_ACCEPT_LANGUAGE="zh-hans")
        assert response.status_code == 200

    def test_hand_over_by_the_pickup_code_alone(self, admin_client, pending, store):
        target = pending[1]
        url = reverse("admin:rewards_redemption_fulfil_by_code")
        assert url in admin_client.get(self.queue_url()).content.decode()
        assert admin_client.get(url).status_code == 200

        unknown = admin_client.post(url, {"pickup_code": "QQQQQQQQ"})
        assert unknown.status_code == 200 and "No reward waiting" in unknown.content.decode()

        code = target.pickup_code.lower()
        response = admin_client.post(url, {"pickup_code": f"{code[:4]} {code[4:]}", "store": store.pk})

        assert response.status_code == 302
        assert Redemption.objects.get(pk=target.pk).status == RedemptionStatus.FULFILLED
        assert Redemption.objects.get(pk=pending[0].pk).status == RedemptionStatus.PENDING
        again = admin_client.post(url, {"pickup_code": target.pickup_code})
        assert again.status_code == 200 and "No reward waiting" in again.content.decode()
