"""Acceptance cases R1–R11 from shared/acceptance/earning-and-tiers.md (tiers T1–T7 live in test_tiers*.py)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone, translation

from loyalty.explain import breakdown_lines
from loyalty.models import MemberTier, Tier, Transfer, TransferCode
from loyalty.selectors import transfer_describe
from loyalty.services import points_earn_topup, refund_record
from members.models import Member
from tests.conftest import local
from tests.factories import MemberFactory
from tests.loyalty.helpers import balance, buy, rules_publish

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

WEDNESDAY = local(2026, 3, 4, 15, 30)
SATURDAY = local(2026, 3, 7, 15, 30)


@pytest.fixture
def tiers(db):
    """The seed program's tiers with thresholds out of reach, so purchases here never move a member."""
    rows = [("standard", "普通", 0, "1.0"), ("silver", "银卡", 1, "1.1"), ("gold", "金卡", 2, "1.2"), ("diamond", "钻石", 3, "1.5")]
    return {code: Tier.objects.create(code=code, name=name, rank=rank, earn_multiplier=Decimal(mult),
                                      spend_threshold=Decimal(0) if rank == 0 else Decimal(10**9))
            for code, name, rank, mult in rows}


def at_tier(member: Member, tier: Tier) -> Member:
    MemberTier.objects.create(member=member, tier=tier, since=timezone.now())
    return member


class TestR1TierMultipliers:
    @pytest.mark.parametrize("code,points", [("standard", 100), ("silver", 110), ("gold", 120), ("diamond", 150)])
    def test_R1_hundred_yuan_earns_by_tier(self, tiers, store, now, code, points):
        member = at_tier(MemberFactory(), tiers[code])
        assert buy(member, store, "100.00", at=now).points_earned == points

    def test_R1_multiplier_applies_to_the_exact_amount_then_floors_once(self, tiers, store, now):
        member = at_tier(MemberFactory(), tiers["silver"])
        assert buy(member, store, "99.99", at=now).points_earned == 109  # floor(99.99 × 1.1 = 109.989)


R2_LINES = [{"sku": "A", "category": "new", "quantity": 1, "amount": "60.00"},
            {"sku": "B", "category": "regular", "quantity": 1, "amount": "40.00"}]


class TestR2NewProductDouble:
    def test_R2_category_modifier_doubles_only_that_item(self, member, store, now):
        rules_publish(modifiers=[{"name": "New product ×2", "value": Decimal(2), "categories": ["new"]}])
        assert buy(member, store, "100.00", at=now, lines=R2_LINES).points_earned == 160


class TestR3TimeWindow:
    @pytest.fixture(autouse=True)
    def window(self, db):
        rules_publish(modifiers=[{"name": "Weekday afternoons ×3", "value": Decimal(3), "weekdays": [1, 2, 3, 4, 5],
                                  "time_from": dt.time(14), "time_to": dt.time(17)}])

    @pytest.mark.parametrize("at,points", [(WEDNESDAY, 150), (WEDNESDAY.replace(hour=17, minute=0), 50), (SATURDAY, 50)],
                             ids=["wed-15:30", "wed-17:00", "sat-15:30"])
    def test_R3_weekday_afternoon_triples(self, member, store, at, points):
        assert buy(member, store, "50.00", at=at).points_earned == points


class TestR4BirthdayMonth:
    @pytest.fixture(autouse=True)
    def birthday_rule(self, db):
        rules_publish(modifiers=[{"name": "Birthday month ×2", "value": Decimal(2), "birthday_month": True}])

    @pytest.mark.parametrize("birthday,points", [(dt.date(1990, 3, 20), 160), (dt.date(1990, 7, 1), 80), (None, 80)],
                             ids=["in-month", "other-month", "no-birthday"])
    def test_R4_birthday_month_doubles(self, store, now, birthday, points):
        member = MemberFactory(birthday=birthday)
        assert buy(member, store, "80.00", at=now).points_earned == points


class TestR5FirstPurchase:
    def test_R5_first_purchase_times_five_and_a_refund_does_not_reset_it(self, member, store, now):
        rules_publish(modifiers=[{"name": "First purchase ×5", "value": Decimal(5), "first_purchase": True}])

        first = buy(member, store, "30.00", at=now)
        assert first.points_earned == 150
        refund_record(purchase=first, amount=Decimal("30.00"), occurred_at=now, idempotency_key="r", now=now)

        assert buy(member, store, "30.00", at=now).points_earned == 30


class TestR6Stacking:
    @pytest.mark.parametrize("stacking,points", [("MULTIPLY", 240), ("BEST", 200)])
    def test_R6_gold_and_double_day_stack_by_the_rule(self, tiers, store, now, stacking, points):
        rules_publish(modifiers=[{"name": "Double points day", "value": Decimal(2), "stacking": stacking,
                                  "date_from": now.date(), "date_to": now.date()}])
        member = at_tier(MemberFactory(), tiers["gold"])
        assert buy(member, store, "100.00", at=now).points_earned == points


class TestR7Caps:
    def test_R7_bonus_cap_per_order(self, member, store, now):
        rules_publish(modifiers=[{"name": "Double day", "value": Decimal(2), "cap_per_order": 500}])
        assert buy(member, store, "1000.00", at=now).points_earned == 1500

    def test_R7_daily_member_cap_and_the_third_purchase_says_why(self, member, store, now):
        rules_publish(cap_day=2000)
        earned = [buy(member, store, "1000.00", at=now + dt.timedelta(minutes=i)).points_earned for i in range(3)]
        assert earned == [1000, 1000, 0]

        third = member.purchases.order_by("-id").first()
        assert third.earn_breakdown["caps"] == [{"cap": "day", "limit": 2000, "used": 2000, "cut": 1000}]
        with translation.override("en"):
            assert any("daily cap" in line for line in breakdown_lines(third.earn_breakdown))
        # the next local day starts afresh
        assert buy(member, store, "1000.00", at=now + dt.timedelta(days=1)).points_earned == 1000


class TestR8MinimumSpend:
    def test_R8_rule_with_minimum_spend(self, member, store, now):
        rules_publish(modifiers=[{"name": "Big basket +100", "kind": "BONUS", "stacking": "ADD", "value": Decimal(100),
                                  "minimum_spend": Decimal("50.00")}])
        assert buy(member, store, "49.99", at=now).points_earned == 49  # the rule gives 0
        assert buy(member, store, "50.00", at=now).points_earned == 150


class TestR9TopUp:
    def test_R9_top_up_earns_at_its_own_rate(self, member, now):
        rules_publish(topup_points=1, topup_spend=Decimal("1.00"))
        transfer = points_earn_topup(member=member, amount=Decimal("500.00"), reference="TOPUP-1", occurred_at=now, now=now)
        assert transfer.amount == 500
        assert balance(member) == 500

    def test_R9_no_top_up_points_when_the_rate_is_zero(self, member, now):
        assert points_earn_topup(member=member, amount=Decimal("500.00"), reference="T", occurred_at=now, now=now) is None

    def test_R9_stored_value_spending_earns_only_if_the_program_says_so(self, member, store, now):
        rules_publish(name="default")
        assert buy(member, store, "100.00", at=now, stored_value_paid=Decimal("100.00")).points_earned == 0
        rules_publish(name="earn on stored value", exclude_stored_value=False, effective_from=now - dt.timedelta(days=1))
        assert buy(member, store, "100.00", at=now, stored_value_paid=Decimal("100.00")).points_earned == 100


class TestR10Explanation:
    def test_R10_earn_transfer_carries_base_and_modifier_on_item_a(self, member, store, now):
        rules_publish(modifiers=[{"name": "new product", "value": Decimal(2), "categories": ["new"]}])
        purchase = buy(member, store, "100.00", at=now, lines=R2_LINES)

        earn = Transfer.objects.get(purchase=purchase, code=TransferCode.EARN)
        assert earn.breakdown["base"] == 100
        (step,) = earn.breakdown["steps"]
        assert (step["name"], step["points"], step["lines"]) == ("new product", 60, [0])
        with translation.override("en"):
            words = breakdown_lines(earn.breakdown)
            assert "new product ×2 on A: +60" in words
            assert words[-1] == "Total: 160 points"
            assert "160" in transfer_describe(transfer=earn)


class TestR11ScheduledRuleChange:
    def test_R11_new_base_rate_from_next_monday(self, member, store):
        rules_publish(name="old", earn_points=1)
        monday = local(2026, 3, 9, 0, 0)
        rules_publish(name="new", earn_points=2, effective_from=monday)

        before = buy(member, store, "100.00", at=monday - dt.timedelta(seconds=1))
        at_start = buy(member, store, "100.00", at=monday)

        assert (before.points_earned, at_start.points_earned) == (100, 200)
        assert before.earn_breakdown["rule_set"]["name"] == "old"
        assert Transfer.objects.get(purchase=before, code=TransferCode.EARN).breakdown["rate"]["points"] == 1
