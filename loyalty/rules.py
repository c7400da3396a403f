"""Reading rule sets from the database into the pure engine, and validating them.

``rule_set_problems`` is the one validator: the admin, ``program_import`` and the services all call it,
so a rule set that one of them refuses is refused by all, with the same words.
"""

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Q, Sum
from django.utils.translation import gettext as _

from loyalty.earning import CapUsage, CompiledModifier, CompiledRuleSet, MemberFacts
from loyalty.models import Channel, Modifier, Purchase, RuleSet, RuleSetStatus, Tier
from members.models import Member

COMMUTING = {"MULTIPLY", "ADD", "BEST"}  # modes that commute with themselves; mixing them at one priority does not


def rule_set_in_force(*, at: dt.datetime) -> RuleSet | None:
    return (
        RuleSet.objects.filter(status=RuleSetStatus.PUBLISHED, effective_from__lte=at)
        .order_by("-effective_from", "-id").first()
    )


def modifier_compile(m: Modifier) -> CompiledModifier:
    return CompiledModifier(
        id=m.pk, name=m.name, kind=m.kind, value=Decimal(m.value), stacking=m.stacking, priority=m.priority,
        cap_per_order=m.cap_per_order, skus=frozenset(m.skus or ()), categories=frozenset(m.categories or ()),
        stores=frozenset(m.stores or ()), channels=frozenset(m.channels or ()),
        weekdays=frozenset(int(d) for d in (m.weekdays or ())), time_from=m.time_from, time_to=m.time_to,
        date_from=m.date_from, date_to=m.date_to, tiers=frozenset(m.tiers or ()), birthday_month=m.birthday_month,
        first_purchase=m.first_purchase, anniversary_month=m.anniversary_month,
        minimum_spend=Decimal(m.minimum_spend) if m.minimum_spend is not None else None, promo_code=m.promo_code,
    )


def rule_set_compile(rule_set: RuleSet | None, *, time_zone: str, modifiers: list[Modifier] | None = None) -> CompiledRuleSet:
    """Compile a rule set (None: the standard rate of 1 point per 1.00 with no modifiers)."""
    if rule_set is None:
        return CompiledRuleSet(id=None, name=_("Standard rate"), effective_from=None, time_zone=time_zone)
    if modifiers is None:
        modifiers = list(rule_set.modifiers.filter(is_active=True))
    compiled = sorted((modifier_compile(m) for m in modifiers if m.is_active), key=lambda m: (m.priority, m.id or 0))
    return CompiledRuleSet(
        id=rule_set.pk, name=rule_set.name, effective_from=rule_set.effective_from,
        earn_points=rule_set.earn_points, earn_spend=Decimal(rule_set.earn_spend), rounding=rule_set.rounding,
        minimum_spend=Decimal(rule_set.minimum_spend), topup_points=rule_set.topup_points,
        topup_spend=Decimal(rule_set.topup_spend), exclude_coupons=rule_set.exclude_coupons,
        exclude_stored_value=rule_set.exclude_stored_value, cap_day=rule_set.cap_day, cap_week=rule_set.cap_week,
        cap_month=rule_set.cap_month, tier_multipliers=rule_set.tier_multipliers, modifiers=tuple(compiled),
        time_zone=time_zone,
    )


def member_facts(*, member: Member, tier: Tier | None, at: dt.datetime, tz, rules: CompiledRuleSet,
                 is_first_purchase: bool | None = None) -> MemberFacts:
    """What the conditions need to know about the member. First purchase costs a query, only when a rule asks
    and the caller did not already know it (``is_first_purchase``)."""
    first = bool(is_first_purchase)
    if rules.needs_first_purchase and is_first_purchase is None:
        # A refunded first purchase still counts as the first: any purchase row at all.
        first = not Purchase.objects.filter(member=member).exists()
    return MemberFacts(
        tier_code=tier.code if tier else "", tier_name=tier.name if tier else "",
        tier_multiplier=Decimal(tier.earn_multiplier) if tier else Decimal(1),
        birthday=member.birthday, joined_on=member.joined_at.astimezone(tz).date() if member.joined_at else None,
        is_first_purchase=first,
    )


def cap_windows(*, at: dt.datetime, tz) -> tuple[dt.datetime, dt.datetime, dt.datetime, dt.datetime]:
    """Starts of the member's local day, ISO week and month of ``at``, and the end of that day."""
    local = at.astimezone(tz)
    day_start = dt.datetime.combine(local.date(), dt.time.min, tzinfo=tz)
    return day_start, day_start - dt.timedelta(days=local.weekday()), day_start.replace(day=1), \
        day_start + dt.timedelta(days=1)


def cap_usage(*, member: Member, at: dt.datetime, tz, rules: CompiledRuleSet) -> CapUsage | None:
    """Purchase points earned so far in the member's local day, ISO week and month (None: no caps)."""
    if not rules.has_member_caps:
        return None
    day_start, week_start, month_start, day_end = cap_windows(at=at, tz=tz)
    totals = Purchase.objects.filter(
        member=member, occurred_at__gte=min(week_start, month_start), occurred_at__lt=day_end
    ).aggregate(  # one query: FILTER clauses on PostgreSQL, CASE on SQLite
        day=Sum("points_earned", filter=Q(occurred_at__gte=day_start)),
        week=Sum("points_earned", filter=Q(occurred_at__gte=week_start)),
        month=Sum("points_earned", filter=Q(occurred_at__gte=month_start)),
    )
    return CapUsage(day=totals["day"] or 0, week=totals["week"] or 0, month=totals["month"] or 0)


# ---- VALIDATION ----


def _int_or_none(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def rule_set_problems(*, rule_set: dict[str, Any], modifiers: list[dict[str, Any]], tier_codes: set[str] | None = None,
                      store_codes: set[str] | None = None) -> list[tuple[str, str]]:
    """Every problem with a rule set and its modifiers as (path, message); empty when it is sound.

    ``rule_set`` and each modifier are plain dicts of model field values (as forms and the program file
    give them). ``tier_codes``/``store_codes``, when given, must contain every code a modifier names.
    """
    problems: list[tuple[str, str]] = []

    def bad(path: str, message: str) -> None:
        problems.append((path, message))

    spend = rule_set.get("earn_spend")
    if spend is None or Decimal(str(spend)) <= 0:
        bad("earn_spend", _("The amount per point must be greater than 0."))
    if rule_set.get("earn_points") is not None and int(rule_set["earn_points"]) < 0:
        bad("earn_points", _("Points per amount cannot be negative."))
    if rule_set.get("topup_spend") is not None and Decimal(str(rule_set["topup_spend"])) <= 0:
        bad("topup_spend", _("The amount per top-up point must be greater than 0."))
    for cap in ("cap_day", "cap_week", "cap_month"):
        value = _int_or_none(rule_set.get(cap))
        if value is not None and value < 0:
            bad(cap, _("A cap cannot be below 0."))
    if rule_set.get("minimum_spend") is not None and Decimal(str(rule_set["minimum_spend"])) < 0:
        bad("minimum_spend", _("The minimum spend cannot be below 0."))

    modes_by_priority: dict[int, dict[str, int]] = {}
    for i, m in enumerate(modifiers):
        path = f"modifiers[{i}]"
        kind, stacking = m.get("kind", "MULTIPLIER"), m.get("stacking", "MULTIPLY")
        value = m.get("value")
        if value is None or Decimal(str(value)) <= 0:  # checked for inactive modifiers too: the database refuses it
            bad(f"{path}.value", _("A multiplier or bonus must be greater than 0."))
        if not m.get("is_active", True):
            continue
        if kind == "BONUS" and stacking == "MULTIPLY":
            bad(f"{path}.stacking", _("A fixed bonus can be added or taken as the best, not multiplied."))
        cap = _int_or_none(m.get("cap_per_order"))
        if cap is not None and cap < 0:
            bad(f"{path}.cap_per_order", _("A cap cannot be below 0."))
        if m.get("minimum_spend") not in (None, "") and Decimal(str(m["minimum_spend"])) < 0:
            bad(f"{path}.minimum_spend", _("The minimum spend cannot be below 0."))
        t_from, t_to = m.get("time_from"), m.get("time_to")
        if t_from is not None and t_to is not None and t_to <= t_from:
            bad(f"{path}.time_to", _("The time window ends before it starts."))
        d_from, d_to = m.get("date_from"), m.get("date_to")
        if d_from is not None and d_to is not None and d_to < d_from:
            bad(f"{path}.date_to", _("The date range ends before it starts."))
        for day in m.get("weekdays") or ():
            if not isinstance(day, int) or isinstance(day, bool) or not 1 <= day <= 7:
                bad(f"{path}.weekdays", _("Weekdays are numbers from 1 (Monday) to 7 (Sunday)."))
                break
        for channel in m.get("channels") or ():
            if channel not in Channel.values:
                bad(f"{path}.channels", _("“%(value)s” is not a channel.") % {"value": channel})
        if tier_codes is not None:
            for code in m.get("tiers") or ():
                if code not in tier_codes:
                    bad(f"{path}.tiers", _("There is no tier “%(value)s”.") % {"value": code})
        if store_codes is not None:
            for code in m.get("stores") or ():
                if code not in store_codes:
                    bad(f"{path}.stores", _("There is no store “%(value)s”.") % {"value": code})
        if kind == "MULTIPLIER" and stacking in COMMUTING:
            modes_by_priority.setdefault(int(m.get("priority", 100)), {}).setdefault(stacking, i)
        elif kind == "BONUS":
            modes_by_priority.setdefault(int(m.get("priority", 100)), {}).setdefault(f"BONUS_{stacking}", i)
    for priority, modes in modes_by_priority.items():
        multiplier_modes = [mode for mode in modes if not mode.startswith("BONUS_")]
        if len(multiplier_modes) > 1:
            first = min(modes[mode] for mode in multiplier_modes)
            bad(f"modifiers[{first}].priority", _(
                "Modifiers with priority %(priority)s stack in different ways (%(modes)s), so their order "
                "would change the result: give them different priorities."
            ) % {"priority": priority, "modes": ", ".join(sorted(multiplier_modes)).lower()})
    return problems
