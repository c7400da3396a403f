"""Properties of the rule engine (pure: no database), over random rule sets, baskets and members."""

import datetime as dt
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty.earning import (
    Basket,
    CapUsage,
    CompiledModifier,
    CompiledRuleSet,
    Line,
    MemberFacts,
    earn_evaluate,
)

amounts = st.decimals(min_value=Decimal("0.00"), max_value=Decimal("5000.00"), places=2)
categories = st.sampled_from(["new", "coffee", "tea", "bakery"])
lines = st.lists(st.builds(Line, sku=st.sampled_from(["A", "B", "C", "D"]), category=categories,
                           quantity=st.integers(1, 5), amount=amounts), min_size=1, max_size=5)
# hypothesis takes naive bounds and attaches the zone itself
moments = st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2027, 12, 31),  # noqa: DTZ001
                       timezones=st.just(dt.UTC))
multipliers = st.decimals(min_value=Decimal("0.1"), max_value=Decimal("5"), places=1)


@st.composite
def modifiers(draw, *, value=multipliers):
    kind = draw(st.sampled_from(["MULTIPLIER", "MULTIPLIER", "BONUS"]))
    stacking = draw(st.sampled_from(["MULTIPLY", "ADD", "BEST"] if kind == "MULTIPLIER" else ["ADD", "BEST"]))
    hour = draw(st.integers(0, 22))
    return CompiledModifier(
        id=draw(st.integers(1, 10**6)), name="m", kind=kind,
        value=draw(value) if kind == "MULTIPLIER" else Decimal(draw(st.integers(1, 500))),
        stacking=stacking, priority=draw(st.integers(0, 5)),
        cap_per_order=draw(st.none() | st.integers(0, 300)),
        categories=frozenset(draw(st.lists(categories, max_size=2))),
        weekdays=frozenset(draw(st.lists(st.integers(1, 7), max_size=3))),
        time_from=draw(st.none() | st.just(dt.time(hour))),
        time_to=draw(st.none() | st.just(dt.time(hour + 1))),
        birthday_month=draw(st.booleans()), first_purchase=draw(st.booleans()),
        minimum_spend=draw(st.none() | amounts),
    )


@st.composite
def rule_sets(draw, mods=None):
    return CompiledRuleSet(
        id=1, name="r", effective_from=None, earn_points=draw(st.integers(0, 10)),
        earn_spend=draw(st.sampled_from([Decimal("1.00"), Decimal("10.00"), Decimal("0.50")])),
        rounding=draw(st.sampled_from(["FLOOR_ORDER", "FLOOR_LINE"])),
        cap_day=draw(st.none() | st.integers(0, 3000)), cap_week=draw(st.none() | st.integers(0, 9000)),
        cap_month=draw(st.none() | st.integers(0, 20000)),
        modifiers=tuple(sorted(draw(st.lists(modifiers(), max_size=6)) if mods is None else mods,
                               key=lambda m: (m.priority, m.id))),
    )


@st.composite
def baskets(draw):
    rows = draw(lines)
    total = sum((line.amount for line in rows), Decimal(0))
    paid = draw(st.decimals(min_value=Decimal(0), max_value=max(total, Decimal(0)), places=2))
    return Basket(total=total, lines=tuple(rows), occurred_at=draw(moments), paid_with_points=paid)


members = st.builds(MemberFacts, tier_multiplier=st.sampled_from([Decimal(1), Decimal("1.1"), Decimal("1.5")]),
                    birthday=st.none() | st.dates(), is_first_purchase=st.booleans())
usages = st.none() | st.builds(CapUsage, day=st.integers(0, 4000), week=st.integers(0, 10000), month=st.integers(0, 30000))


@settings(max_examples=300, deadline=None)
@given(rules=rule_sets(), basket=baskets(), member=members, usage=usages)
def test_points_from_earning_are_never_negative_and_the_explanation_adds_up(rules, basket, member, usage):
    result = earn_evaluate(rules=rules, basket=basket, member=member, usage=usage)
    b = result.breakdown
    assert result.points >= 0
    if b.get("steps") is not None and b.get("lines"):
        shown = b["base"] + sum(step["points"] for step in b["steps"]) + b["rounding"] - sum(c["cut"] for c in b["caps"])
        assert shown == result.points


@settings(max_examples=300, deadline=None)
@given(rules=rule_sets(), basket=baskets(), member=members, usage=usages,
       extra=modifiers(value=st.decimals(min_value=Decimal(1), max_value=Decimal(5), places=1)))
def test_adding_a_times_k_modifier_with_k_at_least_1_never_lowers_points(rules, basket, member, usage, extra):
    before = earn_evaluate(rules=rules, basket=basket, member=member, usage=usage).points
    more = CompiledRuleSet(**{**rules.__dict__, "modifiers": tuple(sorted(
        (*rules.modifiers, extra), key=lambda m: (m.priority, m.id)))})
    assert earn_evaluate(rules=more, basket=basket, member=member, usage=usage).points >= before


@settings(max_examples=300, deadline=None)
@given(rules=rule_sets(), basket=baskets(), member=members, usage=usages)
def test_caps_are_never_exceeded(rules, basket, member, usage):
    result = earn_evaluate(rules=rules, basket=basket, member=member, usage=usage)
    for step in result.breakdown.get("steps", []):
        if step.get("capped") is not None:
            assert Decimal(step["exact"]) <= step["capped"]
    if usage is not None:
        for limit, used in ((rules.cap_day, usage.day), (rules.cap_week, usage.week), (rules.cap_month, usage.month)):
            if limit is not None:
                assert result.points <= max(0, limit - used)


@settings(max_examples=200, deadline=None)
@given(rules=rule_sets(), basket=baskets(), member=members, usage=usages)
def test_the_same_basket_and_time_always_give_the_same_result(rules, basket, member, usage):
    first = earn_evaluate(rules=rules, basket=basket, member=member, usage=usage)
    second = earn_evaluate(rules=rules, basket=basket, member=member, usage=usage)
    assert (first.points, first.breakdown) == (second.points, second.breakdown)


def test_reducing_multipliers_added_after_multiplied_ones_cut_a_line_to_zero_never_below():
    """Found by the property above: ×0.1 three times, then ×0.1 "added" took a ¥0.01 line to −1 point."""
    def cut(stacking):
        return CompiledModifier(id=1, name="m", kind="MULTIPLIER", value=Decimal("0.1"), stacking=stacking, priority=0)

    rules = CompiledRuleSet(id=1, name="r", effective_from=None, modifiers=(cut("MULTIPLY"),) * 3 + (cut("ADD"),))
    basket = Basket(total=Decimal("0.01"), lines=(Line(sku="A", category="new", quantity=1, amount=Decimal("0.01")),),
                    occurred_at=dt.datetime(2026, 3, 4, tzinfo=dt.UTC))
    result = earn_evaluate(rules=rules, basket=basket, member=MemberFacts(), usage=None)
    b = result.breakdown
    assert result.points == 0 and result.exact == 0
    assert b["base"] + sum(step["points"] for step in b["steps"]) + b["rounding"] == result.points
