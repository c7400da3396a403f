"""Reads about a member's tier: progress to the next tier (with a sentence in the active language) and
the benefits of the current one. For the member portal, the admin and the API."""

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from loyalty.explain import money, points
from loyalty.models import MemberTier, Tier, TierChange, TierWindow, add_months
from loyalty.services.program import program_settings_get
from loyalty.services.tiers import (
    member_tier_current,
    qualifying_figures,
    qualifying_figures_by_month,
    tier_policy_get,
    tier_qualifies,
    tiers_ordered,
    window_start,
)
from members.models import Member


@dataclass(frozen=True)
class TierProgress:
    """Where the member stands. With consecutive months (``monthly``), figures and gaps are this month's
    so far, against the next tier's monthly threshold; ``months_done`` counts the complete months just
    before this one that already reach it."""

    tier: Tier
    next_tier: Tier | None  # None at the top
    spend: Decimal  # qualifying spend in the window (this month with consecutive months)
    points: int  # qualifying points, likewise
    spend_gap: Decimal | None  # None when the next tier has no spend threshold (or at the top)
    points_gap: int | None  # None when the next tier has no points threshold (or at the top)
    percent: int  # 0–100, for a progress bar: the nearer of the two thresholds
    text: str
    window_start: dt.datetime
    monthly: bool = False
    months_needed: int = 0
    months_done: int = 0
    grace_until: dt.datetime | None = None  # below the keep threshold: the tier is kept until then


@dataclass(frozen=True)
class TierBenefits:
    tier_code: str
    tier_name: str
    earn_multiplier: Decimal
    discount_percent: Decimal
    perks: str


def _gap(needed, have):
    return None if needed is None else max(needed - have, type(needed)(0))


def _percent(pairs) -> int:
    """The best of have/needed over the thresholds that exist, floored, 0–100."""
    best = Decimal(0)
    for needed, have in pairs:
        if needed is None:
            continue
        ratio = Decimal(1) if needed <= 0 else Decimal(have) / Decimal(needed)
        best = max(best, ratio)
    return int((min(best, Decimal(1)) * 100).to_integral_value(ROUND_FLOOR))


def _gap_text(*, spend_gap, points_gap, tier: Tier, currency: str, monthly: bool) -> str:
    names = {"tier": tier.name}
    if spend_gap is not None and points_gap is not None:
        template = (_("Spend %(spend)s more or earn %(points)s more this month toward %(tier)s") if monthly
                    else _("Spend %(spend)s more or earn %(points)s more to reach %(tier)s"))
        return template % {**names, "spend": money(spend_gap, currency), "points": points(points_gap)}
    if spend_gap is not None:
        template = _("%(spend)s more this month toward %(tier)s") if monthly else _("%(spend)s more to %(tier)s")
        return template % {**names, "spend": money(spend_gap, currency)}
    template = _("%(points)s more this month toward %(tier)s") if monthly else _("%(points)s more to %(tier)s")
    return template % {**names, "points": points(points_gap)}


def _monthly_rule_text(tier: Tier, months: int, currency: str) -> str:
    if tier.spend_threshold is not None and tier.points_threshold is not None:
        each = _("%(spend)s or %(points)s") % {"spend": money(tier.spend_threshold, currency),
                                              "points": points(tier.points_threshold)}
    elif tier.spend_threshold is not None:
        each = money(tier.spend_threshold, currency)
    else:
        each = points(tier.points_threshold or 0)
    return ngettext("%(each)s a month, %(n)s month in a row", "%(each)s a month, %(n)s months in a row", months) % {
        "each": each, "n": months}


def tier_progress(*, member: Member, now: dt.datetime) -> TierProgress | None:
    """Progress to the next tier, e.g. "¥120.00 more to 金卡". None when the program has no tiers.

    Five queries: tiers, tier policy, program settings, the member's tier row, one grouped figures query.
    """
    tiers = tiers_ordered()
    if not tiers:
        return None
    policy, program = tier_policy_get(), program_settings_get()
    tz, currency = program.tz, program.currency
    state = MemberTier.objects.filter(member=member).select_related("tier").first()
    current = state.tier if state else tiers[0]
    grace_until = state.grace_until if state and state.grace_until and state.grace_until > now else None
    higher = [t for t in tiers if t.rank > current.rank]
    next_tier = higher[0] if higher else None
    monthly = policy.window == TierWindow.CONSECUTIVE_MONTHS
    months_done = 0
    if monthly:
        local = now.astimezone(tz).date()
        this_month = local.replace(day=1)
        start = dt.datetime.combine(add_months(this_month, -(policy.window_months - 1)), dt.time.min, tzinfo=tz)
        by_month = qualifying_figures_by_month(member_ids=[member.pk], start=start, end=now, tz=tz).get(member.pk, {})
        spend, pts = by_month.get(this_month.strftime("%Y-%m"), (Decimal(0), 0))
        if next_tier is not None:
            for back in range(1, policy.window_months):
                label = add_months(this_month, -back).strftime("%Y-%m")
                m_spend, m_points = by_month.get(label, (Decimal(0), 0))
                if not tier_qualifies(next_tier, spend=m_spend, points=m_points):
                    break
                months_done += 1
    else:
        start = window_start(policy=policy, at=now, tz=tz)
        spend, pts = qualifying_figures(member_ids=[member.pk], start=start, end=now).get(member.pk, (Decimal(0), 0))

    if next_tier is None:
        text = _("You are at the top tier, %(tier)s.") % {"tier": current.name}
        return TierProgress(tier=current, next_tier=None, spend=spend, points=pts, spend_gap=None, points_gap=None,
                            percent=100, text=text, window_start=start, monthly=monthly,
                            months_needed=policy.window_months if monthly else 0, grace_until=grace_until)

    spend_gap = _gap(next_tier.spend_threshold, spend)
    points_gap = _gap(next_tier.points_threshold, pts)
    percent = _percent([(next_tier.spend_threshold, spend), (next_tier.points_threshold, pts)])
    reached = (spend_gap is not None and spend_gap == 0) or (points_gap is not None and points_gap == 0)
    if monthly:
        rule = _monthly_rule_text(next_tier, policy.window_months, currency)
        if reached:
            text = _("This month counts toward %(tier)s (%(rule)s)") % {"tier": next_tier.name, "rule": rule}
        else:
            text = _("%(gap)s (%(rule)s)") % {
                "gap": _gap_text(spend_gap=spend_gap, points_gap=points_gap, tier=next_tier, currency=currency,
                                 monthly=True),
                "rule": rule}
    elif reached:
        text = _("You qualify for %(tier)s; it applies at the next evaluation.") % {"tier": next_tier.name}
    else:
        text = _gap_text(spend_gap=spend_gap, points_gap=points_gap, tier=next_tier, currency=currency, monthly=False)
    return TierProgress(
        tier=current, next_tier=next_tier, spend=spend, points=pts, spend_gap=spend_gap, points_gap=points_gap,
        percent=percent, text=text, window_start=start, monthly=monthly,
        months_needed=policy.window_months if monthly else 0, months_done=months_done, grace_until=grace_until,
    )


def member_tier_benefits(*, member: Member) -> TierBenefits | None:
    """The benefits of the member's tier (entry tier without a tier record). None when there are no tiers."""
    tier = member_tier_current(member=member)
    if tier is None:
        return None
    return TierBenefits(tier_code=tier.code, tier_name=tier.name, earn_multiplier=tier.earn_multiplier,
                        discount_percent=tier.discount_percent, perks=tier.perks)


def member_tier_changes(*, member: Member):
    """The member's tier history, newest first."""
    return (TierChange.objects.filter(member=member).select_related("from_tier", "to_tier")
            .order_by("-occurred_at", "-id"))


@dataclass(frozen=True)
class TierLine:
    """A tier as the "how to earn" page shows it: what it takes and what it gives, in words."""

    code: str
    name: str
    rank: int
    needs: str
    benefits: list[str]


def _tier_needs(tier: Tier, currency: str, *, monthly: bool) -> str:
    spend = money(tier.spend_threshold, currency) if tier.spend_threshold is not None else None
    pts = points(tier.points_threshold) if tier.points_threshold is not None else None
    if tier.rank == 0 or (not tier.spend_threshold and not tier.points_threshold):
        return _("Every member starts here")
    if spend and pts:
        text = _("Spend %(spend)s or earn %(points)s") % {"spend": spend, "points": pts}
    elif spend:
        text = _("Spend %(spend)s") % {"spend": spend}
    else:
        text = _("Earn %(points)s") % {"points": pts}
    return _("%(needs)s a month") % {"needs": text} if monthly else text


def tiers_describe(*, currency: str) -> list[TierLine]:
    """Every tier, lowest first, with its threshold and benefits in words. Two queries (tiers, policy)."""
    tiers = tiers_ordered()
    if not tiers:
        return []
    monthly = tier_policy_get().window == TierWindow.CONSECUTIVE_MONTHS
    return [TierLine(code=tier.code, name=tier.name, rank=tier.rank, needs=_tier_needs(tier, currency, monthly=monthly),
                     benefits=tier_benefit_lines(tier)) for tier in tiers]


def tier_benefit_lines(tier: Tier) -> list[str]:
    """A tier's benefits in words: earn multiplier, member discount, perks (empty: none beyond the basics)."""
    out = []
    if tier.earn_multiplier != 1:
        out.append(_("Earn ×%(value)s points on purchases") % {"value": format(tier.earn_multiplier.normalize(), "f")})
    if tier.discount_percent:
        out.append(_("%(value)s%% member discount") % {"value": format(tier.discount_percent.normalize(), "f")})
    if tier.perks:
        out.append(tier.perks)
    return out


def tier_policy_describe() -> str:
    """How the qualifying window works, in words. One query (the policy)."""
    policy = tier_policy_get()
    n = policy.window_months
    if policy.window == TierWindow.CALENDAR_YEAR:
        return _("Your tier follows what you spend or earn in the calendar year.")
    if policy.window == TierWindow.CONSECUTIVE_MONTHS:
        return ngettext("Reach a tier's monthly figure %(n)s month in a row to move up.",
                        "Reach a tier's monthly figure %(n)s months in a row to move up.", n) % {"n": n}
    return ngettext("Your tier follows what you spend or earn over the last %(n)s month.",
                    "Your tier follows what you spend or earn over the last %(n)s months.", n) % {"n": n}
