"""Tiers: the member's current tier, qualifying figures, and the immediate upgrade after a purchase.

Qualifying spend is what the member paid (total − refunded) and qualifying points are the points
purchases earned (earned − reversed), both within the window. Redeeming never lowers them; refunds do.
"""

import datetime as dt
from decimal import Decimal

from django.db import transaction
from django.db.models import DecimalField, F, Sum, Value
from django.db.models.functions import Coalesce

from loyalty.models import (
    MemberTier,
    Purchase,
    Tier,
    TierChange,
    TierChangeReason,
    TierPolicy,
    TierWindow,
    add_months,
)
from members.models import Member


def tier_policy_get() -> TierPolicy:
    policy, _ = TierPolicy.objects.get_or_create(pk=1)
    return policy


def tiers_ordered() -> list[Tier]:
    return list(Tier.objects.order_by("rank"))


def member_tier_current(*, member: Member, tiers: list[Tier] | None = None) -> Tier | None:
    """The member's tier; a member with no tier record is at the entry tier (None when no tiers exist)."""
    state = MemberTier.objects.filter(member=member).select_related("tier").first()
    if state is not None:
        return state.tier
    tiers = tiers if tiers is not None else tiers_ordered()
    return tiers[0] if tiers else None


def window_start(*, policy: TierPolicy, at: dt.datetime, tz) -> dt.datetime:
    """Start of the qualification window that ends at ``at`` (local midnight)."""
    local = at.astimezone(tz).date()
    if policy.window == TierWindow.CALENDAR_YEAR:
        start = dt.date(local.year, 1, 1)
    elif policy.window == TierWindow.CONSECUTIVE_MONTHS:
        start = add_months(local.replace(day=1), -policy.window_months)
    else:
        start = add_months(local, -policy.window_months)
    return dt.datetime.combine(start, dt.time.min, tzinfo=tz)


def qualifying_figures(*, member_ids: list[int], start: dt.datetime, end: dt.datetime) -> dict[int, tuple[Decimal, int]]:
    """{member_id: (qualifying spend, qualifying points)} for purchases in [start, end]; one grouped query."""
    rows = (
        Purchase.objects.filter(member_id__in=member_ids, occurred_at__gte=start, occurred_at__lte=end)
        .values("member_id")
        .annotate(
            spend=Coalesce(Sum(F("total") - F("refunded_amount")), Value(Decimal(0)),
                           output_field=DecimalField(max_digits=14, decimal_places=2)),
            points=Coalesce(Sum(F("points_earned") - F("points_reversed")), Value(0)),
        )
        .values_list("member_id", "spend", "points")
    )
    return {member_id: (Decimal(spend), int(points)) for member_id, spend, points in rows}


def tier_qualifies(tier: Tier, *, spend: Decimal, points: int, retain: bool = False) -> bool:
    spend_needed = tier.retain_spend if retain and tier.retain_spend is not None else tier.spend_threshold
    points_needed = tier.retain_points if retain and tier.retain_points is not None else tier.points_threshold
    if spend_needed is None and points_needed is None:
        return False
    return (spend_needed is not None and spend >= spend_needed) or (points_needed is not None and points >= points_needed)


def tier_for_figures(tiers: list[Tier], *, spend: Decimal, points: int) -> Tier | None:
    """The highest tier the figures qualify for (the entry tier when none)."""
    best = tiers[0] if tiers else None
    for tier in tiers:
        if tier_qualifies(tier, spend=spend, points=points):
            best = tier
    return best


def review_at_for(*, policy: TierPolicy, since: dt.datetime, tz) -> dt.datetime:
    """When a tier reached at ``since`` is next reviewed for retention."""
    local = since.astimezone(tz).date()
    if policy.window == TierWindow.CALENDAR_YEAR:
        day = dt.date(local.year + 1, 1, 1)
    elif policy.window == TierWindow.CONSECUTIVE_MONTHS:
        day = add_months(local.replace(day=1), 1)
    else:
        day = add_months(local, policy.window_months)
    return dt.datetime.combine(day, dt.time.min, tzinfo=tz)


@transaction.atomic
def tier_set(*, member: Member, tier: Tier, reason: str, at: dt.datetime, tz, policy: TierPolicy,
             details: dict | None = None, key: str | None = None) -> TierChange:
    """Move the member to ``tier`` and record why. Caller holds the member's account lock."""
    state = MemberTier.objects.select_for_update().filter(member=member).select_related("tier").first()
    previous = state.tier if state else None
    review = review_at_for(policy=policy, since=at, tz=tz)
    if state is None:
        MemberTier.objects.create(member=member, tier=tier, since=at, review_at=review)
    else:
        state.tier, state.since, state.review_at, state.grace_until = tier, at, review, None
        state.save(update_fields=["tier", "since", "review_at", "grace_until", "updated_at"])
    return TierChange.objects.create(
        member=member, from_tier=previous, to_tier=tier, reason=reason, details=details or {}, occurred_at=at,
        idempotency_key=key or f"tier:{member.pk}:{reason}:{tier.code}:{at.isoformat()}",
    )


def tier_upgrade_after_purchase(*, member: Member, purchase: Purchase, current: Tier | None, tiers: list[Tier],
                                policy: TierPolicy, tz) -> TierChange | None:
    """Upgrade at once when this purchase takes the member over a higher tier's threshold.

    Consecutive-month windows upgrade only at the monthly evaluation (the months must be complete).
    """
    if not tiers or policy.window == TierWindow.CONSECUTIVE_MONTHS:
        return None
    if current is not None and current.rank == tiers[-1].rank:
        return None  # already at the top: no figures needed
    start = window_start(policy=policy, at=purchase.occurred_at, tz=tz)
    spend, points = qualifying_figures(member_ids=[member.pk], start=start, end=purchase.occurred_at).get(
        member.pk, (Decimal(0), 0))
    target = tier_for_figures(tiers, spend=spend, points=points)
    if target is None or (current is not None and target.rank <= current.rank):
        return None
    return tier_set(
        member=member, tier=target, reason=TierChangeReason.UPGRADE, at=purchase.occurred_at, tz=tz, policy=policy,
        details={"spend": str(spend), "points": points, "purchase": purchase.pk, "window_start": start.isoformat()},
        key=f"tier:{member.pk}:upgrade:purchase:{purchase.pk}",
    )


def tiers_problems(tiers: list[dict]) -> list[tuple[str, str]]:
    """Every problem with a tier set as (path, message). ``tiers``: dicts of Tier field values.

    The entry (lowest-ranked) tier must start at 0; thresholds may not fall as rank rises; codes and ranks
    are unique; multipliers are positive.
    """
    from django.utils.translation import gettext as _

    problems: list[tuple[str, str]] = []
    if not tiers:
        return problems
    seen_codes, seen_ranks = set(), set()
    for i, t in enumerate(tiers):
        if t.get("code") in seen_codes:
            problems.append((f"tiers[{i}].code", _("Tier codes must be unique.")))
        if t.get("rank") in seen_ranks:
            problems.append((f"tiers[{i}].rank", _("Tier ranks must be unique.")))
        seen_codes.add(t.get("code"))
        seen_ranks.add(t.get("rank"))
        multiplier = t.get("earn_multiplier")
        if multiplier is not None and Decimal(str(multiplier)) <= 0:
            problems.append((f"tiers[{i}].earn_multiplier", _("The earn multiplier must be greater than 0.")))
        for field in ("spend_threshold", "retain_spend"):
            if t.get(field) not in (None, "") and Decimal(str(t[field])) < 0:
                problems.append((f"tiers[{i}].{field}", _("A threshold cannot be below 0.")))
        for field in ("points_threshold", "retain_points"):
            if t.get(field) not in (None, "") and int(t[field]) < 0:
                problems.append((f"tiers[{i}].{field}", _("A threshold cannot be below 0.")))
    order = sorted(range(len(tiers)), key=lambda i: tiers[i].get("rank") or 0)
    lowest = tiers[order[0]]
    spend, points = lowest.get("spend_threshold"), lowest.get("points_threshold")
    starts_at_zero = (spend not in (None, "") and Decimal(str(spend)) == 0) or (points not in (None, "") and int(points) == 0)
    if not starts_at_zero:
        problems.append((f"tiers[{order[0]}].spend_threshold",
                         _("The lowest tier must start at 0, so that every member has a tier.")))
    for previous, current in zip(order, order[1:], strict=False):
        for field in ("spend_threshold", "points_threshold"):
            a, b = tiers[previous].get(field), tiers[current].get(field)
            if a not in (None, "") and b not in (None, "") and Decimal(str(b)) < Decimal(str(a)):
                problems.append((f"tiers[{current}].{field}",
                                 _("A higher tier cannot need less than the tier below it.")))
    return problems
