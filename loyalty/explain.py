"""Rules and earn breakdowns in plain words, in the active language. Admin, portal and API all use these."""

from decimal import Decimal
from functools import lru_cache

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.formats import number_format
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _

from loyalty.earning import CompiledModifier, CompiledRuleSet

CURRENCY_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "HKD": "HK$", "JPY": "¥", "GBP": "£"}


def money(amount, currency: str = "CNY") -> str:
    value = Decimal(str(amount)).quantize(Decimal("0.01"))
    return f"{CURRENCY_SYMBOLS.get(currency, currency + ' ')}{number_format(value, 2, force_grouping=True)}"


def number(value) -> str:
    """A multiplier or rate without trailing zeros: 2, 1.2, 0.5."""
    text = format(Decimal(str(value)).normalize(), "f")
    return text


def points(n: int) -> str:
    return ngettext("%(n)s point", "%(n)s points", abs(n)) % {"n": number_format(n, force_grouping=True)}


def signed(n: int) -> str:
    return f"+{number_format(n, force_grouping=True)}" if n >= 0 else f"−{number_format(-n, force_grouping=True)}"


def _weekday_names() -> dict[int, str]:
    return {1: _("Monday"), 2: _("Tuesday"), 3: _("Wednesday"), 4: _("Thursday"), 5: _("Friday"),
            6: _("Saturday"), 7: _("Sunday")}


def _line_names(breakdown: dict, indexes: list[int]) -> str:
    lines = breakdown.get("lines", [])
    if len(indexes) == len(lines):
        return ""
    names = [lines[i]["sku"] or str(i + 1) for i in indexes if i < len(lines)]
    return ", ".join(names)


@lru_cache(maxsize=64)
def _breakdown_words(language: str | None) -> dict[str, str]:
    """The sentences of ``breakdown_lines`` in one language, translated once per language and process (a
    batch of 1,000 purchases spent most of its answer in gettext and number formatting)."""
    return {
        "topup": _("Top-up of %(amount)s at %(rate)s: %(points)s"),
        "per": _("%(points)s per %(spend)s"),
        "base": _("Base: %(points)s (%(rate)s on %(eligible)s)"),
        "excluded": _("%(amount)s %(what)s earns nothing"),
        "points": _("paid with points"), "coupons": _("coupon discounts"), "stored_value": _("paid with stored value"),
        "below": _("Below the minimum spend of %(amount)s: no points"),
        "tier": _("%(tier)s ×%(value)s"),
        "bonus": _("%(name)s (bonus)"),
        "multiplier": _("%(name)s ×%(value)s"),
        "on_items": _("%(rule)s on %(items)s: %(points)s"),
        "rule": _("%(rule)s: %(points)s"),
        "capped": _("(capped at %(points)s per order)"),
        "rounding": _("Rounding: %(points)s"),
        "day": _("daily"), "week": _("weekly"), "month": _("monthly"),
        "cap": _("The %(period)s cap of %(limit)s was reached (%(used)s already earned): %(cut)s"),
        "total": _("Total: %(points)s"),
    }


# Formatted figures by language: the same text ``points``, ``signed`` and ``money`` give in that language.
@lru_cache(maxsize=8192)
def _points_in(language: str | None, n: int) -> str:
    return points(n)


@lru_cache(maxsize=8192)
def _signed_in(language: str | None, n: int) -> str:
    return signed(n)


@lru_cache(maxsize=8192)
def _money_in(language: str | None, currency: str, amount: str) -> str:
    return money(amount, currency)


@receiver(setting_changed)
def _formats_forget(**kwargs) -> None:
    """Languages, formats and translations come from settings: a changed setting (tests) starts afresh."""
    for cached in (_breakdown_words, _points_in, _signed_in, _money_in):
        cached.cache_clear()


def breakdown_lines(breakdown: dict, *, currency: str = "CNY") -> list[str]:
    """An earn breakdown as sentences, e.g. ["Base: 100 points (1 point per ¥1.00 on ¥100.00)",
    "New product ×2 on item A: +60", "Total: 160 points"]."""
    language = get_language()
    words = _breakdown_words(language)

    def points_(n) -> str:
        return _points_in(language, n) if type(n) is int else points(n)

    def signed_(n) -> str:
        return _signed_in(language, n) if type(n) is int else signed(n)

    def money_(amount) -> str:
        return _money_in(language, currency, str(amount))

    kind = breakdown.get("kind")
    out: list[str] = []
    if kind == "topup":
        rate = breakdown.get("rate", {})
        out.append(words["topup"] % {
            "amount": money_(breakdown.get("amount", "0")),
            "rate": words["per"] % {"points": points_(rate.get("points", 0)), "spend": money_(rate.get("spend", "1"))},
            "points": points_(breakdown.get("points", 0))})
        return out
    if kind != "purchase":
        return out
    rate = breakdown.get("rate", {})
    excluded = breakdown.get("excluded", {})
    out.append(words["base"] % {
        "points": points_(breakdown.get("base", 0)),
        "rate": words["per"] % {"points": points_(rate.get("points", 0)), "spend": money_(rate.get("spend", "1"))},
        "eligible": money_(breakdown.get("eligible", "0"))})
    for key in ("points", "coupons", "stored_value"):
        amount = Decimal(str(excluded.get(key, "0")))
        if amount:
            out.append(words["excluded"] % {"amount": money_(amount), "what": words[key]})
    if breakdown.get("below_minimum"):
        out.append(words["below"] % {"amount": money_(breakdown.get("minimum_spend", "0"))})
    for step in breakdown.get("steps", []):
        if step.get("type") == "tier":
            label = words["tier"] % {"tier": step["name"], "value": number(step["value"])}
        elif step.get("kind") == "BONUS":
            label = words["bonus"] % {"name": step["name"]}
        else:
            label = words["multiplier"] % {"name": step["name"], "value": number(step["value"])}
        where = _line_names(breakdown, step.get("lines", []))
        text = words["on_items"] % {"rule": label, "items": where, "points": signed_(step.get("points", 0))} \
            if where else words["rule"] % {"rule": label, "points": signed_(step.get("points", 0))}
        if step.get("capped") is not None:
            text += " " + words["capped"] % {"points": points_(step["capped"])}
        out.append(text)
    # An int: the rounding figure. Purchases that earned nothing before 2026-11 stored the policy's name here.
    if isinstance(breakdown.get("rounding"), int) and breakdown["rounding"]:
        out.append(words["rounding"] % {"points": signed_(breakdown["rounding"])})
    for cap in breakdown.get("caps", []):
        period = cap["cap"]
        out.append(words["cap"] % {
            "period": words[period] if period in ("day", "week", "month") else period,
            "limit": points_(cap["limit"]), "used": points_(cap["used"]), "cut": signed_(-cap["cut"])})
    out.append(words["total"] % {"points": points_(breakdown.get("points", 0))})
    return out


def miss_reason(reason: str) -> str:
    texts = {
        "store": _("not at one of its stores"), "channel": _("not through one of its channels"),
        "weekday": _("not on one of its days"), "time": _("outside its hours"), "date": _("outside its dates"),
        "tier": _("not for this tier"), "birthday_month": _("not the member's birthday month"),
        "first_purchase": _("not the member's first purchase"),
        "anniversary_month": _("not the member's anniversary month"),
        "minimum_spend": _("below its minimum spend"), "promo_code": _("without its promotion code"),
        "lines": _("no matching items"),
    }
    return texts.get(reason, reason)


def modifier_describe(m: CompiledModifier, *, currency: str = "CNY", tier_names: dict[str, str] | None = None) -> str:
    """A modifier in words: what it gives and when, e.g. "Double points: ×2 on Wednesday 14:00–17:00"."""
    if m.kind == "BONUS":
        gives = _("+%(points)s bonus") % {"points": points(int(m.value))}
    else:
        gives = f"×{number(m.value)}"
    parts: list[str] = []
    if m.skus or m.categories:
        parts.append(_("on %(items)s") % {"items": ", ".join(sorted(m.skus | m.categories))})
    if m.weekdays:
        names = _weekday_names()
        parts.append(_("on %(days)s") % {"days": ", ".join(names[d] for d in sorted(m.weekdays))})
    if m.time_from or m.time_to:
        parts.append(_("from %(start)s to %(end)s") % {
            "start": m.time_from.strftime("%H:%M") if m.time_from else "00:00",
            "end": m.time_to.strftime("%H:%M") if m.time_to else "24:00"})
    if m.date_from or m.date_to:
        parts.append(_("from %(start)s to %(end)s") % {"start": m.date_from or "…", "end": m.date_to or "…"})
    if m.stores:
        parts.append(_("at stores %(stores)s") % {"stores": ", ".join(sorted(m.stores))})
    if m.channels:
        parts.append(_("through %(channels)s") % {"channels": ", ".join(sorted(m.channels))})
    if m.tiers:
        names = tier_names or {}
        parts.append(_("for %(tiers)s") % {"tiers": ", ".join(names.get(t, t) for t in sorted(m.tiers))})
    if m.birthday_month:
        parts.append(_("in the member's birthday month"))
    if m.anniversary_month:
        parts.append(_("in the member's membership anniversary month"))
    if m.first_purchase:
        parts.append(_("on the member's first purchase"))
    if m.minimum_spend is not None:
        parts.append(_("when spending at least %(amount)s") % {"amount": money(m.minimum_spend, currency)})
    if m.promo_code:
        parts.append(_("with code %(code)s") % {"code": m.promo_code})
    if m.cap_per_order is not None:
        parts.append(_("at most %(points)s extra per order") % {"points": points(m.cap_per_order)})
    stacking = {"MULTIPLY": _("multiplies with other rules"), "ADD": _("adds to other rules"),
                "BEST": _("applies only if better than other rules")}[m.stacking]
    return _("%(name)s: %(gives)s %(conditions)s (%(stacking)s)") % {
        "name": m.name, "gives": gives, "conditions": " ".join(parts), "stacking": stacking}


def rule_set_describe(rules: CompiledRuleSet, *, currency: str = "CNY", tier_names: dict[str, str] | None = None) -> list[str]:
    """The whole rule set in words, base rate first."""
    out = [_("Earn %(points)s for every %(spend)s spent") % {"points": points(rules.earn_points),
                                                             "spend": money(rules.earn_spend, currency)}]
    if rules.minimum_spend:
        out.append(_("No points below a spend of %(amount)s") % {"amount": money(rules.minimum_spend, currency)})
    if rules.topup_points:
        out.append(_("Earn %(points)s for every %(spend)s topped up") % {"points": points(rules.topup_points),
                                                                        "spend": money(rules.topup_spend, currency)})
    out.append(_("The part paid with points earns nothing"))
    if rules.exclude_coupons:
        out.append(_("Coupon discounts earn nothing"))
    if rules.exclude_stored_value:
        out.append(_("Payments from stored value earn nothing"))
    if rules.tier_multipliers:
        out.append(_("Tier multipliers apply first"))
    for period, cap in ((_("per day"), rules.cap_day), (_("per week"), rules.cap_week), (_("per month"), rules.cap_month)):
        if cap is not None:
            out.append(_("At most %(points)s %(period)s") % {"points": points(cap), "period": period})
    out.extend(modifier_describe(m, currency=currency, tier_names=tier_names) for m in rules.modifiers)
    return out
