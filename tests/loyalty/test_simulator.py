"""Simulator: what a purchase would earn, rule by rule, for a real or a described member; writes nothing."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from loyalty.backtest import simulate
from loyalty.earning import Line
from loyalty.models import (
    Account,
    BacktestRun,
    Lot,
    MemberTier,
    Modifier,
    ProgramSettings,
    Purchase,
    Refund,
    RuleSet,
    RuleSetStatus,
    Tier,
    TierChange,
    TierPolicy,
    Transfer,
)
from tests.conftest import local
from tests.loyalty.helpers import buy, rules_publish

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

URL = "admin:loyalty_ruleset_simulate"
TABLES = [Transfer, Lot, Account, Purchase, Refund, MemberTier, TierChange, ProgramSettings, TierPolicy, BacktestRun,
          RuleSet, Modifier, Tier]


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in TABLES} | {
        "balances": tuple(Account.objects.order_by("pk").values_list("credits_posted", "debits_posted"))}


def form(**overrides) -> dict:
    data = {"member": "", "tier": "", "birthday": "", "joined_on": "", "store": "", "occurred_at": "2026-03-04 10:00",
            "channel": "STORE", "promo_codes": "", "points_paid": "0", "coupon_discount": "0.00",
            "stored_value_paid": "0.00", "basket": "A, new, 1, 60\nB, , 1, 40", "rule_set": ""}
    data.update(overrides)
    return data


@pytest.fixture
def r2_rules(db):
    return rules_publish(name="Spring", modifiers=[
        {"name": "New product", "value": Decimal(2), "categories": ["new"], "priority": 10},
        {"name": "Weekday afternoons", "value": Decimal(3), "weekdays": [1, 2, 3, 4, 5],
         "time_from": dt.time(14), "time_to": dt.time(17), "priority": 20},
    ])


class TestSimulatorPage:
    def test_R2_basket_shows_160_and_plus_60_for_the_rule_on_item_A(self, admin_client, r2_rules):
        before = counts()
        response = admin_client.post(reverse(URL), form())
        assert response.status_code == 200
        result = response.context["result"]
        assert result.result.points == 160
        html = response.content.decode()
        assert "New product ×2 on A: +60" in html  # R10: base 100, the rule +60 on item A
        assert "Base: 100 points" in html and "Total: 160 points" in html
        assert counts() == before, "the simulator writes nothing"

    def test_a_rule_that_did_not_fire_says_why(self, admin_client, r2_rules):
        response = admin_client.post(reverse(URL), form(occurred_at="2026-03-07 15:30"))  # a Saturday (R3)
        outcome = {o.name: o for o in response.context["result"].outcomes}
        assert outcome["Weekday afternoons"].fired is False
        assert outcome["Weekday afternoons"].reason == "not on one of its days"
        assert "did not apply: not on one of its days" in response.content.decode()
        wednesday = admin_client.post(reverse(URL), form(occurred_at="2026-03-04 17:00"))  # 17:00 is excluded
        assert {o.name: o.reason for o in wednesday.context["result"].outcomes}["Weekday afternoons"] == \
            "outside its hours"

    def test_time_is_read_in_the_program_time_zone(self, admin_client, r2_rules, settings):
        settings.TIME_ZONE = "UTC"
        response = admin_client.post(reverse(URL), form(occurred_at="2026-03-04 15:30", basket="X, , 1, 50"))
        result = response.context["result"]
        assert result.basket.occurred_at == local(2026, 3, 4, 15, 30)
        assert result.result.points == 150  # R3: Wednesday 15:30 local

    def test_a_real_member_uses_their_tier_and_todays_cap_usage(self, admin_client, member, store):
        gold = Tier.objects.create(code="gold", name="金卡", rank=1, spend_threshold=Decimal(99999),
                                   earn_multiplier=Decimal("1.2"))
        Tier.objects.create(code="basic", name="普通", rank=0, spend_threshold=Decimal(0))
        MemberTier.objects.create(member=member, tier=gold, since=local(2025, 1, 1))
        rules_publish(name="Capped", cap_day=150)
        buy(member, store, "100.00", at=local(2026, 3, 4, 9))  # 120 points already today
        before = counts()
        response = admin_client.post(reverse(URL), form(member=member.phone, basket="X, , 1, 100",
                                                        occurred_at="2026-03-04 12:00"))
        result = response.context["result"]
        assert result.member == member and result.facts.tier_code == "gold"
        assert (result.usage.day, result.result.points) == (120, 30)
        html = response.content.decode()
        assert "The daily cap of 150 points was reached (120 points already earned)" in html
        assert "金卡 ×1.2: +20" in html
        assert counts() == before

    def test_member_number_finds_the_member(self, admin_client, member, r2_rules):
        response = admin_client.post(reverse(URL), form(member=member.member_number))
        assert response.context["result"].member == member

    def test_a_described_member(self, admin_client, db):
        Tier.objects.create(code="basic", name="普通", rank=0, spend_threshold=Decimal(0))
        Tier.objects.create(code="silver", name="银卡", rank=1, spend_threshold=Decimal(300),
                            earn_multiplier=Decimal("1.1"))
        rules_publish(name="Member facts", modifiers=[
            {"name": "Birthday ×2", "value": Decimal(2), "birthday_month": True, "priority": 10},
            {"name": "First purchase +50", "kind": "BONUS", "stacking": "ADD", "value": Decimal(50),
             "first_purchase": True, "priority": 20},
        ])
        response = admin_client.post(reverse(URL), form(tier="silver", birthday="1990-03-09", first_purchase="on",
                                                        basket="X, , 1, 99.99"))
        result = response.context["result"]
        assert result.member is None and result.facts.tier_code == "silver"
        assert result.result.points == 269  # floor(99.99 × 1.1 × 2) + 50
        none = admin_client.post(reverse(URL), form(basket="X, , 1, 80"))
        misses = {o.name: o.reason for o in none.context["result"].outcomes}
        assert misses == {"Birthday ×2": "not the member's birthday month",
                          "First purchase +50": "not the member's first purchase"}

    def test_a_draft_can_be_simulated(self, admin_client, r2_rules):
        draft = RuleSet.objects.create(name="Next", status=RuleSetStatus.DRAFT, effective_from=local(2030, 1, 1),
                                       earn_points=2)
        response = admin_client.post(reverse(URL), form(rule_set=draft.pk))
        result = response.context["result"]
        assert result.rule_set == draft and result.chosen and result.result.points == 200
        assert "Rule set: Next (Draft)" in response.content.decode()

    def test_defaults_to_the_rule_set_in_force_at_that_time(self, admin_client, r2_rules):
        later = rules_publish(name="April", effective_from=local(2026, 4, 1), earn_points=3)
        march = admin_client.post(reverse(URL), form(basket="X, , 1, 10"))
        april = admin_client.post(reverse(URL), form(basket="X, , 1, 10", occurred_at="2026-04-01 00:00"))
        assert march.context["result"].rule_set == r2_rules and march.context["result"].result.points == 10
        assert april.context["result"].rule_set == later and april.context["result"].result.points == 30  # R11

    @pytest.mark.parametrize(("basket", "message"), [
        ("A, new, x, 60", "Line 1: the quantity “x” is not a whole number of at least 1."),
        ("A, 60", "Line 1: give four values separated by commas: SKU, category, quantity, amount (“A, 60” has 2)."),
        ("A, new, 1, 60\nB, , 1, sixty", "Line 2: the amount “sixty” is not an amount of money"),
        (", new, 1, 60", "Line 1: the SKU is missing."),
        ("A, new, 1, 0", "The basket&#x27;s total must be greater than 0."),
        ("", "Give at least one line."),
    ])
    def test_basket_errors_name_the_line(self, admin_client, r2_rules, basket, message):
        before = counts()
        response = admin_client.post(reverse(URL), form(basket=basket))
        assert response.status_code == 200 and response.context["result"] is None
        assert message in response.content.decode()
        assert counts() == before

    def test_unknown_member_and_member_plus_description_are_refused(self, admin_client, member, r2_rules):
        unknown = admin_client.post(reverse(URL), form(member="13999999999"))
        assert "No member has the phone or member number “13999999999”." in unknown.content.decode()
        both = admin_client.post(reverse(URL), form(member=member.phone, birthday="1990-01-01"))
        assert "Choose a member or describe one, not both" in both.content.decode()

    def test_payments_worth_more_than_the_basket_are_refused(self, admin_client, r2_rules):
        response = admin_client.post(reverse(URL), form(coupon_discount="80.00", stored_value_paid="30.00"))
        assert "are worth more than the basket" in response.content.decode()

    def test_the_get_page_prefills_the_rule_set_and_needs_view_permission(self, client, admin_client, r2_rules,
                                                                          django_user_model):
        page = admin_client.get(reverse(URL) + f"?rule_set={r2_rules.pk}")
        assert page.status_code == 200 and page.context["form"].initial["rule_set"] == str(r2_rules.pk)
        staff = django_user_model.objects.create_user(username="clerk", password="pw", is_staff=True)
        client.force_login(staff)
        assert client.get(reverse(URL)).status_code == 403
        staff.user_permissions.add(Permission.objects.get(codename="view_ruleset"))
        assert client.get(reverse(URL)).status_code == 200


class TestSimulateFunction:
    def test_exclusions_and_promo_codes(self, db):
        rules_publish(name="Promo", modifiers=[
            {"name": "Code DOUBLE ×2", "value": Decimal(2), "promo_code": "DOUBLE", "cap_per_order": 30}])
        sim = simulate(occurred_at=local(2026, 3, 4, 10), lines=[Line(sku="X", category="", quantity=1,
                                                                      amount=Decimal("100.00"))],
                       points_paid=2000, coupon_discount=Decimal("10.00"), promo_codes=frozenset({"DOUBLE"}))
        # ¥20 paid with points (100 points = ¥1) and the ¥10 coupon earn nothing: base 70, the code adds 30 (capped)
        assert sim.result.points == 100
        assert sim.outcomes[0].fired and sim.outcomes[0].capped == 30
        assert "¥20.00 paid with points earns nothing" in sim.lines

    def test_without_any_rule_set_the_standard_rate_applies(self, db):
        sim = simulate(occurred_at=local(2026, 3, 4, 10), lines=[Line(sku="X", category="", quantity=1,
                                                                      amount=Decimal("12.50"))])
        assert sim.rule_set is None and sim.result.points == 12 and sim.outcomes == []

    @pytest.mark.parametrize(("stacking", "points"), [("MULTIPLY", 240), ("BEST", 200)])
    def test_R6_stacking_with_the_tier_multiplier(self, db, stacking, points):
        gold = Tier.objects.create(code="gold", name="金卡", rank=0, spend_threshold=Decimal(0),
                                   earn_multiplier=Decimal("1.2"))
        rules_publish(name="Double day", modifiers=[{"name": "Double day", "value": Decimal(2), "stacking": stacking}])
        sim = simulate(occurred_at=local(2026, 3, 4, 10), tier=gold,
                       lines=[Line(sku="X", category="", quantity=1, amount=Decimal("100.00"))])
        assert sim.result.points == points

    def test_R8_minimum_spend_says_why(self, db):
        rules_publish(name="Min", modifiers=[{"name": "Big basket", "kind": "BONUS", "stacking": "ADD",
                                              "value": Decimal(20), "minimum_spend": Decimal(50)}])
        sim = simulate(occurred_at=local(2026, 3, 4, 10),
                       lines=[Line(sku="X", category="", quantity=1, amount=Decimal("49.99"))])
        assert sim.result.points == 49
        assert (sim.outcomes[0].fired, sim.outcomes[0].reason) == (False, "below its minimum spend")
