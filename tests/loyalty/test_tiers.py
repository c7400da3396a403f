"""Tier cases T1–T7 from shared/acceptance/earning-and-tiers.md (the admin side of T5 is in test_tiers_admin.py)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import translation

from loyalty.models import (
    DowngradeMode,
    MemberTier,
    Tier,
    TierChange,
    TierChangeReason,
    TierPolicy,
    TierWindow,
)
from loyalty.selectors_tiers import member_tier_benefits, tier_progress
from loyalty.services import points_redeem, refund_record
from loyalty.services.tiers import (
    member_tier_current,
    qualifying_figures,
    review_at_for,
    tier_set_manual,
    tiers_evaluate,
    tiers_problems,
    window_start,
)
from tests.conftest import SHANGHAI, local
from tests.factories import MemberFactory
from tests.loyalty.helpers import buy, rules_publish, summary

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]


def ladder(rows, **policy) -> dict[str, Tier]:
    """Tiers from (code, name, spend threshold, points threshold[, other fields]) rows, rank by position,
    and the tier policy's fields."""
    tiers = {}
    for rank, (code, name, spend, points, *extra) in enumerate(rows):
        tiers[code] = Tier.objects.create(
            code=code, name=name, rank=rank, spend_threshold=None if spend is None else Decimal(spend),
            points_threshold=points, **(extra[0] if extra else {}),
        )
    TierPolicy.objects.update_or_create(pk=1, defaults=policy)
    return tiers


def tier_of(member) -> str:
    return member_tier_current(member=member).code


def state_of(member) -> MemberTier:
    return MemberTier.objects.get(member=member)


def tier_rows() -> tuple:
    return (
        tuple(TierChange.objects.order_by("pk").values_list("pk", "reason", "from_tier", "to_tier")),
        tuple(MemberTier.objects.order_by("pk").values_list("member", "tier", "since", "review_at", "grace_until")),
    )


T1_TIERS = [("normal", "普通", "0", 0), ("silver", "银卡", "300", 1000), ("gold", "金卡", "1000", 5000)]


# ---- T1 QUALIFICATION IN A ROLLING 12-MONTH WINDOW ----


class TestT1RollingWindow:
    def test_T1_member_at_250_spending_60_is_upgraded_at_once_with_its_reason(self, member, store, now):
        tiers = ladder(T1_TIERS, window=TierWindow.ROLLING_MONTHS, window_months=12)
        buy(member, store, "250.00", at=now - dt.timedelta(days=40))
        assert tier_of(member) == "normal"

        purchase = buy(member, store, "60.00", at=now)

        change = purchase.tier_change
        assert (change.from_tier, change.to_tier, change.reason) == (None, tiers["silver"], TierChangeReason.UPGRADE)
        assert change.details["spend"] == "310.00" and change.details["purchase"] == purchase.pk
        assert change.occurred_at == now
        state = state_of(member)
        assert (state.tier, state.since, state.grace_until) == (tiers["silver"], now, None)
        assert TierChange.objects.filter(member=member).count() == 1

    def test_T1_spend_older_than_the_window_does_not_count(self, member, store, now):
        ladder(T1_TIERS, window=TierWindow.ROLLING_MONTHS, window_months=12)
        buy(member, store, "250.00", at=now - dt.timedelta(days=370))

        assert buy(member, store, "60.00", at=now).tier_change is None
        assert tier_of(member) == "normal"

    def test_T1_qualifying_points_alone_reach_the_tier(self, member, store, now):
        """10 points per ¥1: ¥100 earns 1,000 points, which reaches 银卡 though the spend is below ¥300."""
        tiers = ladder(T1_TIERS, window=TierWindow.ROLLING_MONTHS, window_months=12)
        rules_publish(earn_points=10)

        purchase = buy(member, store, "100.00", at=now)

        assert purchase.points_earned == 1000
        assert purchase.tier_change.to_tier == tiers["silver"]
        assert purchase.tier_change.details["points"] == 1000

    def test_T1_review_is_the_day_after_the_anniversary(self, now):
        """The window counts whole local days: the day the tier was reached leaves it a day after the anniversary."""
        policy = TierPolicy(window=TierWindow.ROLLING_MONTHS, window_months=12)
        review = review_at_for(policy=policy, since=local(2025, 3, 4, 10, 0), tz=SHANGHAI)
        assert review == local(2026, 3, 5)
        assert window_start(policy=policy, at=review, tz=SHANGHAI) == local(2025, 3, 5)


# ---- T2 THE CURRENT PURCHASE COUNTS ----

T2_TIERS = [("normal", "普通", "0", None, {"earn_multiplier": Decimal("1.0")}),
            ("silver", "银卡", "10000", None, {"earn_multiplier": Decimal("1.1")}),
            ("gold", "金卡", "20000", None, {"earn_multiplier": Decimal("1.2")})]


class TestT2CurrentPurchaseCounts:
    @pytest.mark.parametrize(("prior", "purchase", "expected"), [
        (0, 6_000, "normal"),
        (0, 15_000, "silver"),
        (0, 25_000, "gold"),
        (4_000, 500, "normal"),
        (8_000, 3_000, "silver"),
        (18_000, 3_000, "gold"),
        (22_000, 5_000, "gold"),
    ])
    def test_T2_prior_spend_and_purchase_give_the_tier(self, member, store, now, prior, purchase, expected):
        ladder(T2_TIERS)
        if prior:
            buy(member, store, prior, at=now - dt.timedelta(days=10))

        buy(member, store, purchase, at=now)

        assert tier_of(member) == expected

    def test_T2_the_crossing_purchase_earns_at_the_tier_at_its_start_by_default(self, member, store, now):
        ladder(T2_TIERS)
        buy(member, store, 8_000, at=now - dt.timedelta(days=10))

        crossing = buy(member, store, 3_000, at=now)

        assert crossing.tier_change.to_tier.code == "silver"
        assert crossing.points_earned == 3_000  # 普通 ×1.0
        assert buy(member, store, 1_000, at=now).points_earned == 1_100  # the next one earns at 银卡 ×1.1

    def test_T2_with_earn_at_new_tier_the_crossing_purchase_earns_at_the_new_rate(self, member, store, now):
        ladder(T2_TIERS, earn_at_new_tier=True)
        buy(member, store, 8_000, at=now - dt.timedelta(days=10))

        crossing = buy(member, store, 3_000, at=now)

        assert crossing.points_earned == 3_300  # 银卡 ×1.1
        assert summary(member).balance == 8_000 + 3_300


# ---- T3 CONSECUTIVE MONTHS ----


class TestT3ConsecutiveMonths:
    @pytest.mark.parametrize(("months", "expected"), [
        (("600.00", "520.00", "510.00"), "gold"),
        (("600.00", "480.00", "700.00"), "normal"),
    ])
    def test_T3_three_months_each_over_500_reach_gold_at_the_evaluation_starting_april(self, member, store, months,
                                                                                        expected):
        tiers = ladder([("normal", "普通", "0", None), ("gold", "金卡", "500", None)],
                       window=TierWindow.CONSECUTIVE_MONTHS, window_months=3)
        for month, amount in zip((1, 2, 3), months, strict=True):
            assert buy(member, store, amount, at=local(2026, month, 15, 12, 0)).tier_change is None  # never at once

        tiers_evaluate(now=local(2026, 3, 31, 2, 30))  # March is not over: Dec–Feb count, Dec is empty
        assert tier_of(member) == "normal"

        counts = tiers_evaluate(now=local(2026, 4, 1, 2, 30))

        assert tier_of(member) == expected
        assert counts["upgraded"] == (expected == "gold")
        if expected == "gold":
            change = TierChange.objects.get(member=member)
            assert (change.reason, change.to_tier) == (TierChangeReason.UPGRADE, tiers["gold"])
            assert [p["period"] for p in change.details["figures"][0]] == ["2026-01", "2026-02", "2026-03"]
            assert state_of(member).review_at == local(2026, 5, 1)

    def test_T3_months_follow_the_program_time_zone(self, member, store):
        """23:30 on 31 January in Shanghai is 15:30 UTC: it counts for January, not February."""
        ladder([("normal", "普通", "0", None), ("gold", "金卡", "500", None)],
               window=TierWindow.CONSECUTIVE_MONTHS, window_months=2)
        buy(member, store, "500.00", at=local(2026, 1, 31, 23, 30))
        buy(member, store, "500.00", at=local(2026, 2, 1, 0, 30))  # 16:30 UTC on 31 January

        tiers_evaluate(now=local(2026, 3, 1, 2, 30))

        assert tier_of(member) == "gold"

    def test_T3_a_short_month_later_starts_grace_at_the_monthly_review(self, member, store):
        ladder([("normal", "普通", "0", None), ("gold", "金卡", "500", None)],
               window=TierWindow.CONSECUTIVE_MONTHS, window_months=3, grace_days=10)
        for month in (1, 2, 3):
            buy(member, store, "600.00", at=local(2026, month, 15, 12, 0))
        tiers_evaluate(now=local(2026, 4, 1, 2, 30))
        buy(member, store, "100.00", at=local(2026, 4, 15, 12, 0))  # April is short

        counts = tiers_evaluate(now=local(2026, 5, 1, 2, 30))

        assert counts["grace"] == 1
        assert state_of(member).grace_until == local(2026, 5, 11, 2, 30)


# ---- T4 RETENTION AND DOWNGRADE ----

T4_TIERS = [("normal", "普通", "0", None), ("silver", "银卡", "300", None), ("gold", "金卡", "1000", None)]
REVIEW = local(2026, 3, 5, 2, 30)  # the evaluation on the morning the gold tier reached on 2025-03-04 is due


def gold_member(store):
    """金卡 since 2025-03-04 on one ¥1,000 purchase, plus ¥100 in September: ¥100 in the window at review."""
    member = MemberFactory(joined_at=local(2025, 1, 1))
    buy(member, store, "1000.00", at=local(2025, 3, 4, 10, 0))
    buy(member, store, "100.00", at=local(2025, 9, 1, 10, 0))
    assert state_of(member).review_at == local(2026, 3, 5)
    return member


class TestT4RetentionAndDowngrade:
    def test_T4_below_retention_at_review_starts_grace_then_drops_one_tier_and_keeps_points(self, store):
        tiers = ladder(T4_TIERS, grace_days=30, downgrade_mode=DowngradeMode.ONE_STEP)
        member = gold_member(store)
        balance = summary(member).balance

        counts = tiers_evaluate(now=REVIEW)

        assert counts["grace"] == 1
        grace = TierChange.objects.get(member=member, reason=TierChangeReason.GRACE)
        assert (grace.from_tier, grace.to_tier) == (tiers["gold"], tiers["gold"])
        assert grace.details["grace_until"] == (REVIEW + dt.timedelta(days=30)).isoformat()
        state = state_of(member)
        assert (state.tier, state.grace_until, state.review_at) == (
            tiers["gold"], REVIEW + dt.timedelta(days=30), REVIEW + dt.timedelta(days=30))

        before = tier_rows()
        assert tiers_evaluate(now=REVIEW)["grace"] == 0  # run twice: nothing changes
        assert tiers_evaluate(now=REVIEW + dt.timedelta(days=10)) == {
            "members": 1, "upgraded": 0, "kept": 0, "grace": 0, "recovered": 0, "downgraded": 0}
        assert tier_rows() == before

        end = REVIEW + dt.timedelta(days=30)
        counts = tiers_evaluate(now=end)

        assert counts["downgraded"] == 1
        drop = TierChange.objects.get(member=member, reason=TierChangeReason.DOWNGRADE)
        assert (drop.from_tier, drop.to_tier, drop.occurred_at) == (tiers["gold"], tiers["silver"], end)
        state = state_of(member)
        assert (state.tier, state.since, state.grace_until) == (tiers["silver"], end, None)
        assert state.review_at == review_at_for(policy=TierPolicy.objects.get(), since=end, tz=SHANGHAI)
        assert summary(member).balance == balance  # points are kept

        before = tier_rows()
        assert tiers_evaluate(now=end)["downgraded"] == 0
        assert tier_rows() == before

    def test_T4_to_supported_drops_to_the_tier_the_figures_support(self, store):
        tiers = ladder(T4_TIERS, grace_days=30, downgrade_mode=DowngradeMode.TO_SUPPORTED)
        member = gold_member(store)
        tiers_evaluate(now=REVIEW)

        tiers_evaluate(now=REVIEW + dt.timedelta(days=30))

        state = state_of(member)
        assert (state.tier, state.review_at) == (tiers["normal"], None)  # the entry tier is never reviewed
        assert TierChange.objects.get(reason=TierChangeReason.DOWNGRADE).to_tier == tiers["normal"]

    def test_T4_to_supported_uses_the_keep_thresholds(self, store):
        tiers = ladder([("normal", "普通", "0", None), ("silver", "银卡", "300", None, {"retain_spend": Decimal(100)}),
                        ("gold", "金卡", "1000", None)], grace_days=0, downgrade_mode=DowngradeMode.TO_SUPPORTED)
        member = gold_member(store)

        tiers_evaluate(now=REVIEW)

        assert state_of(member).tier == tiers["silver"]  # ¥100 keeps 银卡 though it would not reach it

    def test_T4_without_grace_days_the_member_drops_at_the_review(self, store):
        tiers = ladder(T4_TIERS, grace_days=0)
        member = gold_member(store)

        assert tiers_evaluate(now=REVIEW)["downgraded"] == 1

        assert state_of(member).tier == tiers["silver"]
        assert not TierChange.objects.filter(reason=TierChangeReason.GRACE).exists()

    def test_T4_recovering_during_grace_keeps_the_tier_and_says_so(self, store):
        tiers = ladder(T4_TIERS, grace_days=30)
        member = gold_member(store)
        tiers_evaluate(now=REVIEW)
        buy(member, store, "950.00", at=REVIEW + dt.timedelta(days=5))  # ¥1,050 in the window

        counts = tiers_evaluate(now=REVIEW + dt.timedelta(days=6))

        assert counts["recovered"] == 1
        kept = TierChange.objects.get(reason=TierChangeReason.RETAINED)
        assert (kept.from_tier, kept.to_tier) == (tiers["gold"], tiers["gold"])
        state = state_of(member)
        assert (state.tier, state.grace_until) == (tiers["gold"], None)
        assert state.review_at > REVIEW + dt.timedelta(days=300)

    def test_T4_meeting_the_keep_threshold_keeps_the_tier_without_a_record(self, store):
        tiers = ladder([("normal", "普通", "0", None), ("silver", "银卡", "300", None),
                        ("gold", "金卡", "1000", None, {"retain_spend": Decimal(80)})])
        member = gold_member(store)

        counts = tiers_evaluate(now=REVIEW)

        assert counts["kept"] == 1
        state = state_of(member)
        assert (state.tier, state.grace_until) == (tiers["gold"], None)
        assert state.review_at == local(2027, 3, 6)
        assert TierChange.objects.filter(member=member).count() == 1  # only the original upgrade

    def test_T4_calendar_year_is_kept_on_the_year_it_was_reached_then_reviewed_on_the_next(self, store):
        tiers = ladder(T4_TIERS, window=TierWindow.CALENDAR_YEAR, grace_days=30)
        member = MemberFactory(joined_at=local(2025, 1, 1))
        buy(member, store, "1000.00", at=local(2025, 6, 1, 10, 0))
        assert state_of(member).review_at == local(2026, 1, 1)

        assert tiers_evaluate(now=local(2026, 1, 1, 2, 30))["kept"] == 1  # judged on 2025
        assert state_of(member).review_at == local(2027, 1, 1)

        assert tiers_evaluate(now=local(2027, 1, 1, 2, 30))["grace"] == 1  # nothing in 2026
        assert state_of(member).tier == tiers["gold"]

    def test_T4_the_evaluation_upgrades_what_purchases_did_not(self, member, store, now):
        """Tiers introduced after the purchases: the evaluation puts members where their figures are."""
        buy(member, store, "1200.00", at=now - dt.timedelta(days=20))
        tiers = ladder(T4_TIERS)

        assert tiers_evaluate(now=now)["upgraded"] == 1

        assert state_of(member).tier == tiers["gold"]
        assert TierChange.objects.get().reason == TierChangeReason.UPGRADE


# ---- T5 LOWEST TIER ----


def test_T5_a_set_whose_lowest_tier_is_not_0_is_rejected():
    problems = tiers_problems([
        {"code": "silver", "rank": 1, "spend_threshold": "300"},
        {"code": "normal", "rank": 0, "spend_threshold": "100", "points_threshold": None},
    ])
    assert problems == [("tiers[1].spend_threshold", "The lowest tier must start at 0, so that every member has a tier.")]
    assert tiers_problems([{"code": "normal", "rank": 0, "spend_threshold": None, "points_threshold": 0}]) == []


# ---- T6 PROGRESS ----


class TestT6Progress:
    def test_T6_silver_member_with_880_sees_120_more_to_gold(self, member, store, now):
        tiers = ladder([("normal", "普通", "0", None), ("silver", "银卡", "300", None), ("gold", "金卡", "1000", None)])
        buy(member, store, "880.00", at=now - dt.timedelta(days=3))

        progress = tier_progress(member=member, now=now)

        assert (progress.tier, progress.next_tier) == (tiers["silver"], tiers["gold"])
        assert (progress.spend, progress.spend_gap, progress.points_gap) == (Decimal("880.00"), Decimal("120.00"), None)
        assert progress.percent == 88
        assert progress.text == "¥120.00 more to 金卡"

    def test_T6_with_both_thresholds_the_text_offers_either(self, member, store, now):
        ladder(T1_TIERS)
        buy(member, store, "880.00", at=now - dt.timedelta(days=3))

        progress = tier_progress(member=member, now=now)

        assert progress.points_gap == 5000 - 880
        assert progress.text == "Spend ¥120.00 more or earn 4,120 points more to reach 金卡"

    def test_T6_in_chinese_the_numbers_are_the_same(self, member, store, now):
        ladder(T1_TIERS)
        buy(member, store, "880.00", at=now - dt.timedelta(days=3))

        with translation.override("zh-hans"):
            text = tier_progress(member=member, now=now).text

        assert "120.00" in text and "4120" in text.replace(",", "") and "金卡" in text

    def test_T6_at_the_top_tier_the_text_says_so(self, member, store, now):
        ladder(T1_TIERS)
        buy(member, store, "1500.00", at=now)

        progress = tier_progress(member=member, now=now)

        assert (progress.next_tier, progress.percent) == (None, 100)
        assert progress.text == "You are at the top tier, 金卡."

    def test_T6_with_consecutive_months_it_says_what_this_month_needs(self, member, store):
        ladder([("normal", "普通", "0", None), ("gold", "金卡", "500", None)],
               window=TierWindow.CONSECUTIVE_MONTHS, window_months=3)
        buy(member, store, "600.00", at=local(2026, 2, 10, 12, 0))
        buy(member, store, "120.00", at=local(2026, 3, 2, 12, 0))

        progress = tier_progress(member=member, now=local(2026, 3, 4, 10, 0))

        assert (progress.monthly, progress.spend, progress.spend_gap, progress.months_done) == (
            True, Decimal("120.00"), Decimal("380.00"), 1)
        assert progress.text == "¥380.00 more this month toward 金卡 (¥500.00 a month, 3 months in a row)"

    def test_T6_benefits_of_the_current_tier(self, member, store, now):
        ladder([("normal", "普通", "0", None),
                ("silver", "银卡", "300", None, {"earn_multiplier": Decimal("1.1"), "discount_percent": Decimal(5),
                                                 "perks": "Free parking"})])
        assert member_tier_benefits(member=member).tier_code == "normal"
        buy(member, store, "300.00", at=now)

        benefits = member_tier_benefits(member=member)

        assert (benefits.tier_name, benefits.earn_multiplier, benefits.discount_percent, benefits.perks) == (
            "银卡", Decimal("1.100"), Decimal("5.00"), "Free parking")


# ---- T7 QUALIFYING VS SPENDABLE ----


def test_T7_redeeming_never_lowers_qualifying_figures_and_a_refund_does(member, store, now):
    ladder(T1_TIERS)
    purchase = buy(member, store, "500.00", at=now - dt.timedelta(days=2))
    window = {"member_ids": [member.pk], "start": now - dt.timedelta(days=30), "end": now}
    assert qualifying_figures(**window)[member.pk] == (Decimal("500.00"), 500)

    points_redeem(member=member, points=300, reason="gift", idempotency_key="t7-redeem", now=now)
    buy(member, store, "100.00", at=now - dt.timedelta(days=1), points_to_pay=100)  # paying with points too

    assert summary(member, now).balance == 500 - 300 - 100 + 99
    assert qualifying_figures(**window)[member.pk] == (Decimal("600.00"), 599)

    refund_record(purchase=purchase, amount="200.00", occurred_at=now, idempotency_key="t7-refund", now=now)

    assert qualifying_figures(**window)[member.pk] == (Decimal("400.00"), 399)
    assert tier_of(member) == "silver"  # refunds lower the figures; the tier moves only at a review


# ---- MANUAL ----


def test_staff_can_set_a_tier_with_a_reason(member, now, staff):
    tiers = ladder(T1_TIERS)

    change = tier_set_manual(member=member, tier=tiers["gold"], note="VIP guest", staff_user=staff, now=now)

    assert (change.reason, change.from_tier, change.to_tier) == (TierChangeReason.MANUAL, None, tiers["gold"])
    assert change.details == {"note": "VIP guest", "staff_user": staff.pk, "staff": "cashier"}
    assert tier_set_manual(member=member, tier=tiers["gold"], note="again", staff_user=staff, now=now) is None
