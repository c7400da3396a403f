"""breakdown_lines with its words and figures cached per language says exactly what it said before, in every
language, for every kind of step (the earlier implementation is kept here as the reference)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import translation
from django.utils.translation import gettext as _

from loyalty.earning import (
    Basket,
    CapUsage,
    CompiledModifier,
    CompiledRuleSet,
    Line,
    MemberFacts,
    earn_evaluate,
)
from loyalty.explain import _line_names, breakdown_lines, money, number, points, signed


def reference_breakdown_lines(breakdown: dict, *, currency: str = "CNY") -> list[str]:
    """An earn breakdown as sentences, e.g. ["Base: 100 points (1 point per ¥1.00 on ¥100.00)",
    "New product ×2 on item A: +60", "Total: 160 points"]."""
    kind = breakdown.get("kind")
    out: list[str] = []
    if kind == "topup":
        rate = breakdown.get("rate", {})
        out.append(_("Top-up of %(amount)s at %(rate)s: %(points)s") % {
            "amount": money(breakdown.get("amount", "0"), currency),
            "rate": _("%(points)s per %(spend)s") % {"points": points(rate.get("points", 0)),
                                                     "spend": money(rate.get("spend", "1"), currency)},
            "points": points(breakdown.get("points", 0))})
        return out
    if kind != "purchase":
        return out
    rate = breakdown.get("rate", {})
    excluded = breakdown.get("excluded", {})
    out.append(_("Base: %(points)s (%(rate)s on %(eligible)s)") % {
        "points": points(breakdown.get("base", 0)),
        "rate": _("%(points)s per %(spend)s") % {"points": points(rate.get("points", 0)),
                                                 "spend": money(rate.get("spend", "1"), currency)},
        "eligible": money(breakdown.get("eligible", "0"), currency)})
    for key, label in (("points", _("paid with points")), ("coupons", _("coupon discounts")),
                       ("stored_value", _("paid with stored value"))):
        amount = Decimal(str(excluded.get(key, "0")))
        if amount:
            out.append(_("%(amount)s %(what)s earns nothing") % {"amount": money(amount, currency), "what": label})
    if breakdown.get("below_minimum"):
        out.append(_("Below the minimum spend of %(amount)s: no points") % {
            "amount": money(breakdown.get("minimum_spend", "0"), currency)})
    for step in breakdown.get("steps", []):
        if step.get("type") == "tier":
            label = _("%(tier)s ×%(value)s") % {"tier": step["name"], "value": number(step["value"])}
        elif step.get("kind") == "BONUS":
            label = _("%(name)s (bonus)") % {"name": step["name"]}
        else:
            label = _("%(name)s ×%(value)s") % {"name": step["name"], "value": number(step["value"])}
        where = _line_names(breakdown, step.get("lines", []))
        text = _("%(rule)s on %(items)s: %(points)s") % {"rule": label, "items": where, "points": signed(step.get("points", 0))} \
            if where else _("%(rule)s: %(points)s") % {"rule": label, "points": signed(step.get("points", 0))}
        if step.get("capped") is not None:
            text += " " + _("(capped at %(points)s per order)") % {"points": points(step["capped"])}
        out.append(text)
    if breakdown.get("rounding"):
        out.append(_("Rounding: %(points)s") % {"points": signed(breakdown["rounding"])})
    names = {"day": _("daily"), "week": _("weekly"), "month": _("monthly")}
    for cap in breakdown.get("caps", []):
        out.append(_("The %(period)s cap of %(limit)s was reached (%(used)s already earned): %(cut)s") % {
            "period": names.get(cap["cap"], cap["cap"]), "limit": points(cap["limit"]),
            "used": points(cap["used"]), "cut": signed(-cap["cut"])})
    out.append(_("Total: %(points)s") % {"points": points(breakdown.get("points", 0))})
    return out


MODIFIERS = (
    CompiledModifier(id=1, name="Drinks", kind="MULTIPLIER", value=Decimal("2"), stacking="MULTIPLY", priority=1,
                     categories=frozenset({"drinks"}), cap_per_order=30),
    CompiledModifier(id=2, name="Weekend", kind="BONUS", value=Decimal("20"), stacking="ADD", priority=2),
    CompiledModifier(id=3, name="Best", kind="BONUS", value=Decimal("1234.5"), stacking="BEST", priority=3,
                     cap_per_order=1000),
    CompiledModifier(id=4, name="Half", kind="MULTIPLIER", value=Decimal("0.5"), stacking="ADD", priority=4),
)
RULES = CompiledRuleSet(id=1, name="R", effective_from=None, earn_points=3, earn_spend=Decimal("2"), cap_day=900,
                        cap_week=2500, cap_month=6000, modifiers=MODIFIERS, rounding="FLOOR_LINE")
AT = dt.datetime(2026, 3, 7, 4, 0, tzinfo=dt.UTC)


def breakdowns() -> list[dict]:
    out = []
    for total, first, paid, coupon, stored, used, tier in [
        ("123.40", "23.40", "0", "0", "0", 0, "1"), ("100000.00", "99000.00", "10.00", "5.55", "0", 899, "1.5"),
        ("9.99", "0", "0", "0", "2.00", 2400, "1.25"), ("1.00", "1.00", "1.00", "0", "0", 0, "1"),
        ("5000.00", "2500.00", "0", "0", "0", 5990, "2"),
    ]:
        total, first = Decimal(total), Decimal(first)
        basket = Basket(total=total, lines=(Line("LATTE", "drinks", 1, first), Line("", "bakery", 2, total - first)),
                        occurred_at=AT, paid_with_points=Decimal(paid), coupon_discount=Decimal(coupon),
                        stored_value_paid=Decimal(stored))
        member = MemberFacts(tier_code="GOLD", tier_name="金卡", tier_multiplier=Decimal(tier))
        out.append(earn_evaluate(rules=RULES, basket=basket, member=member, usage=CapUsage(day=used, week=used,
                                                                                               month=used)).breakdown)
    minimum = CompiledRuleSet(id=2, name="Min", effective_from=None, minimum_spend=Decimal("50"))
    out.append(earn_evaluate(rules=minimum, basket=Basket(total=Decimal("10.00"), lines=(
        Line("", "", 1, Decimal("10.00")),), occurred_at=AT), member=MemberFacts()).breakdown)
    out.append({"kind": "topup", "rate": {"points": 1, "spend": "10"}, "amount": "1234567.5", "points": 123456})
    out.append({"kind": "purchase", "base": 1, "points": 1, "rounding": -1, "caps": [{"cap": "year", "limit": 1,
                "used": 2, "cut": 3}], "steps": [{"type": "modifier", "kind": "BONUS", "name": "X", "value": "1",
                                                   "points": Decimal("2"), "lines": [5]}]})
    out.append({"kind": "other"})
    out.append({})
    return out


def outcome(function, breakdown: dict, currency: str):
    """The sentences, or the kind of error (a breakdown that stopped before rounding still carries the rounding
    policy's name under "rounding", which neither version can write as a signed figure)."""
    try:
        return function(breakdown, currency=currency)
    except TypeError as exc:
        return type(exc)


@pytest.mark.parametrize("language", ["en", "zh-hans", None])
@pytest.mark.parametrize("currency", ["CNY", "USD", "XYZ"])
def test_breakdown_lines_say_what_they_said(language, currency):
    with translation.override(language):
        for _round in range(2):  # the second time from the caches
            for breakdown in breakdowns():
                assert outcome(breakdown_lines, breakdown, currency) == outcome(
                    reference_breakdown_lines, breakdown, currency)


def test_languages_do_not_share_cached_words():
    breakdown = breakdowns()[0]
    with translation.override("zh-hans"):
        chinese = breakdown_lines(breakdown)
    with translation.override("en"):
        english = breakdown_lines(breakdown)
    assert chinese != english
    assert english == ["Base: 185 points (3 points per ¥2.00 on ¥123.40)", *english[1:]]
    with translation.override("zh-hans"):
        assert breakdown_lines(breakdown) == chinese


def test_a_changed_format_setting_is_followed():
    breakdown = breakdowns()[1]
    with translation.override("en"):
        before = breakdown_lines(breakdown)
        with override_settings(NUMBER_GROUPING=2, THOUSAND_SEPARATOR="'", USE_THOUSAND_SEPARATOR=True,
                               FORMAT_MODULE_PATH=None, LANGUAGE_CODE="en"):
            assert breakdown_lines(breakdown) == reference_breakdown_lines(breakdown)
        assert breakdown_lines(breakdown) == before


def test_a_stored_breakdown_with_the_rounding_policy_name_still_reads():
    """Purchases that earned nothing used to keep the rounding policy's name under "rounding" (stored so)."""
    legacy = {"kind": "purchase", "rule_set": {"id": 1, "name": "R"}, "rate": {"points": 1, "spend": "1.00"},
              "total": "10.00", "eligible": "10.00", "rounding": "FLOOR_ORDER", "steps": [], "caps": [], "lines": [],
              "base": 0, "points": 0, "exact": "0", "below_minimum": True, "minimum_spend": "50.00"}
    with translation.override("en"):
        lines = breakdown_lines(legacy, currency="CNY")
    assert lines and not any("Rounding" in line for line in lines)
