"""Reads of the rewards catalogue (积分商城), and the checks a redemption must pass.

``reward_refusal`` is the one place that decides whether a member may redeem a reward: the catalogue
listing shows its message as the reason, and ``redemption_create`` raises it (under its locks), so what
the member is told before and after pressing "redeem" is the same text.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Prefetch, Q
from django.utils import formats
from django.utils.functional import lazy
from django.utils.text import format_lazy
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from loyalty.exceptions import InsufficientPoints, LoyaltyError, MemberClosed, MemberFrozen
from loyalty.models import Account, AccountKind, Tier, add_months
from loyalty.services.program import program_settings_get
from loyalty.services.tiers import member_tier_current
from members.models import Member, MemberStatus
from rewards.exceptions import OutOfStock, RedemptionLimitReached, RewardNotAvailable
from rewards.models import LimitPeriod, Redemption, RedemptionStatus, Reward, RewardKind

# ---- PERIODS (the program's local calendar) ----


def limit_period_bounds(period: str, *, now: dt.datetime, tz: dt.tzinfo) -> tuple[dt.datetime | None, dt.datetime | None]:
    """[start, end) of the limit period that contains ``now``, in local midnights. (None, None) for EVER.

    Weeks start on Monday (ISO). ``end`` is when the member may redeem again.
    """
    day = now.astimezone(tz).date()
    if period == LimitPeriod.DAY:
        start, end = day, day + dt.timedelta(days=1)
    elif period == LimitPeriod.WEEK:
        start = day - dt.timedelta(days=day.weekday())
        end = start + dt.timedelta(days=7)
    elif period == LimitPeriod.MONTH:
        start = day.replace(day=1)
        end = add_months(start, 1)
    elif period == LimitPeriod.YEAR:
        start, end = dt.date(day.year, 1, 1), dt.date(day.year + 1, 1, 1)
    else:
        return None, None
    return dt.datetime.combine(start, dt.time.min, tzinfo=tz), dt.datetime.combine(end, dt.time.min, tzinfo=tz)


def _date_text(moment: dt.datetime, tz: dt.tzinfo) -> str:
    """The local date of ``moment`` in the language active when the text is read (e.g. 2026年4月1日)."""
    return formats.date_format(moment.astimezone(tz).date(), "DATE_FORMAT")


def date_text_lazy(moment: dt.datetime, tz: dt.tzinfo):
    """``_date_text`` evaluated on display: an error raised in one language reads right in another."""
    return lazy(_date_text, str)(moment, tz)


def _tier_names(tiers: list[Tier]) -> str:
    return ", ".join(t.name for t in sorted(tiers, key=lambda t: t.rank))


# ---- THE CHECKS ----


@dataclass(frozen=True)
class LimitUsage:
    used: int  # non-cancelled redemptions by the member in the current period
    again_at: dt.datetime | None  # start of the next period (None: EVER)


def reward_refusal(*, reward: Reward, tiers: list[Tier], now: dt.datetime, tz: dt.tzinfo, member_tier: Tier | None,
                   usage: LimitUsage | None, available_points: int | None) -> LoyaltyError | None:
    """Why the member may not redeem ``reward`` now, as the error ``redemption_create`` raises; None if they may.

    ``tiers``: the reward's tier list (empty: everyone). ``usage``: the member's count in the limit period
    (None when the reward has no limit). ``available_points`` None skips the points check. Pure: no queries.
    """
    if not reward.is_active:
        return RewardNotAvailable(reason=_("it is no longer offered"))
    if reward.available_from is not None and now < reward.available_from:
        return RewardNotAvailable(
            reason=format_lazy(_("it can be redeemed from {date}"), date=date_text_lazy(reward.available_from, tz)),
            extra={"available_from": reward.available_from.isoformat()},
        )
    if reward.available_until is not None and now >= reward.available_until:
        return RewardNotAvailable(
            reason=format_lazy(_("it could be redeemed until {date}"), date=date_text_lazy(reward.available_until, tz)),
            extra={"available_until": reward.available_until.isoformat()},
        )
    if tiers and (member_tier is None or member_tier.pk not in {t.pk for t in tiers}):
        return RewardNotAvailable(reason=format_lazy(_("it is only for {tiers} members"), tiers=_tier_names(tiers)),
                                  extra={"tiers": [t.code for t in sorted(tiers, key=lambda t: t.rank)]})
    if reward.kind == RewardKind.TIER_UPGRADE and reward.upgrade_tier is not None and member_tier is not None \
            and member_tier.rank >= reward.upgrade_tier.rank:
        return RewardNotAvailable(reason=format_lazy(_("you already have the {tier} tier or a higher one"),
                                                     tier=reward.upgrade_tier.name))
    if reward.kind == RewardKind.COUPON and reward.coupon_template is not None and (
            not reward.coupon_template.is_active
            or (reward.coupon_template.valid_until is not None and reward.coupon_template.valid_until <= now)):
        return RewardNotAvailable(reason=_("its coupon is no longer issued"))
    if reward.kind == RewardKind.DONATION and reward.donation_goal and reward.donated_points >= reward.donation_goal:
        return RewardNotAvailable(reason=_("the donation goal has been reached, thank you"))
    if usage is not None and reward.limit_per_member is not None and usage.used >= reward.limit_per_member:
        return _limit_error(reward=reward, usage=usage, tz=tz)
    if reward.stock is not None and reward.stock < 1:
        return OutOfStock()
    if available_points is not None and available_points < reward.points_cost:
        return InsufficientPoints(available=available_points, requested=reward.points_cost)
    return None


def _limit_error(*, reward: Reward, usage: LimitUsage, tz: dt.tzinfo) -> RedemptionLimitReached:
    limit = reward.limit_per_member
    if usage.again_at is None:
        return RedemptionLimitReached(
            _("You have reached the limit for this reward: {limit} per member."), limit=limit,
            extra={"limit": limit, "period": reward.limit_period, "available_again": None},
        )
    extra = {"limit": limit, "period": reward.limit_period, "available_again": usage.again_at.isoformat()}
    if reward.available_until is not None and usage.again_at >= reward.available_until:
        return RedemptionLimitReached(
            _("You have reached the limit for this reward ({limit} {period}), and the offer ends before the next "
              "period starts."), limit=limit, period=LimitPeriod(reward.limit_period).label,
            extra={**extra, "available_again": None},
        )
    return RedemptionLimitReached(date=date_text_lazy(usage.again_at, tz), extra=extra)


def limit_usage(*, member: Member, reward: Reward, now: dt.datetime, tz: dt.tzinfo) -> LimitUsage | None:
    """The member's use of ``reward``'s limit in the current period (one COUNT); None when it has no limit."""
    if reward.limit_per_member is None:
        return None
    start, end = limit_period_bounds(reward.limit_period, now=now, tz=tz)
    qs = Redemption.objects.filter(member=member, reward=reward).exclude(status=RedemptionStatus.CANCELLED)
    if start is not None:
        qs = qs.filter(redeemed_at__gte=start, redeemed_at__lt=end)
    return LimitUsage(used=qs.count(), again_at=end)


# ---- THE CATALOGUE FOR A MEMBER ----


@dataclass(frozen=True)
class RewardOffer:
    """One reward as a member sees it now: names in the active language and whether they can redeem it."""

    reward: Reward
    name: str
    description: str
    image_url: str
    kind: str
    points_cost: int
    cash_price: Decimal
    stock: int | None  # None: unlimited
    can_redeem: bool
    affordable: bool  # enough available points (the only check a member can fix by earning)
    reason: str  # why not, in the active language ("" when they can)
    available_again: dt.datetime | None  # when a reached limit resets
    limit_used: int | None
    donation_percent: int | None  # progress toward a donation goal, 0–100


def reward_name(reward: Reward) -> str:
    """The reward's name in the active language (the Chinese name under zh-hans when it is filled in)."""
    return reward.name_zh_hans if _chinese() and reward.name_zh_hans else reward.name


def reward_description(reward: Reward) -> str:
    return reward.description_zh_hans if _chinese() and reward.description_zh_hans else reward.description


def _chinese() -> bool:
    return (get_language() or "").lower().startswith("zh")


def donation_percent(reward: Reward) -> int | None:
    if reward.kind != RewardKind.DONATION or not reward.donation_goal:
        return None
    return min(100, reward.donated_points * 100 // reward.donation_goal)


def rewards_in_window(*, now: dt.datetime):
    """Active rewards whose availability window contains ``now``, in catalogue order."""
    return (
        Reward.objects.filter(is_active=True)
        .filter(Q(available_from__isnull=True) | Q(available_from__lte=now))
        .filter(Q(available_until__isnull=True) | Q(available_until__gt=now))
        .order_by("sort_order", "id")
    )


def _limit_counts(*, member: Member, rewards: list[Reward], now: dt.datetime, tz: dt.tzinfo) -> dict[int, dict[str, int]]:
    """{reward_id: {period: count}} of the member's non-cancelled redemptions; one grouped query."""
    limited = [r.pk for r in rewards if r.limit_per_member is not None]
    if not limited:
        return {}
    periods = [LimitPeriod.DAY, LimitPeriod.WEEK, LimitPeriod.MONTH, LimitPeriod.YEAR]
    annotations = {}
    for period in periods:
        start, end = limit_period_bounds(period, now=now, tz=tz)
        annotations[period.value] = Count("id", filter=Q(redeemed_at__gte=start, redeemed_at__lt=end))
    annotations[LimitPeriod.EVER.value] = Count("id")
    rows = (
        Redemption.objects.filter(member=member, reward_id__in=limited)
        .exclude(status=RedemptionStatus.CANCELLED)
        .values("reward_id").annotate(**annotations).order_by("reward_id")
    )
    return {row["reward_id"]: row for row in rows}


def reward_list_available(*, member: Member, now: dt.datetime) -> list[RewardOffer]:
    """The catalogue as ``member`` sees it at ``now``: active rewards in their window, each with whether the
    member can redeem it and, if not, why (tier-only, out of stock, limit reached with the date it resets,
    not enough points).

    A fixed number of queries whatever the catalogue's size: rewards (+ tiers prefetched), the member's tier,
    their points, and one grouped count of their redemptions of limited rewards.
    """
    tz = program_settings_get().tz
    rewards = list(
        rewards_in_window(now=now).select_related("upgrade_tier", "coupon_template")
        .prefetch_related(Prefetch("tiers", queryset=Tier.objects.order_by("rank")))
    )
    if not rewards:
        return []
    member_tier = member_tier_current(member=member)
    available = points_available(member=member)
    counts = _limit_counts(member=member, rewards=rewards, now=now, tz=tz)
    blocked = member_block(member)
    offers = []
    for reward in rewards:
        usage = None
        if reward.limit_per_member is not None:
            _start, end = limit_period_bounds(reward.limit_period, now=now, tz=tz)
            usage = LimitUsage(used=counts.get(reward.pk, {}).get(reward.limit_period, 0), again_at=end)
        tiers = list(reward.tiers.all())
        refusal = blocked() if blocked else reward_refusal(
            reward=reward, tiers=tiers, now=now, tz=tz, member_tier=member_tier, usage=usage, available_points=available)
        offers.append(reward_offer(reward=reward, refusal=refusal, available=available, usage=usage))
    return offers


def reward_offer(*, reward: Reward, refusal: LoyaltyError | None, available: int,
                 usage: LimitUsage | None) -> RewardOffer:
    """A reward as the member sees it, from its refusal (None: redeemable) and their points and limit usage."""
    limit_hit = isinstance(refusal, RedemptionLimitReached)
    return RewardOffer(
        reward=reward, name=reward_name(reward), description=reward_description(reward),
        image_url=reward.image.url if reward.image else "", kind=reward.kind, points_cost=reward.points_cost,
        cash_price=reward.cash_price, stock=reward.stock, can_redeem=refusal is None,
        affordable=available >= reward.points_cost, reason=str(refusal) if refusal is not None else "",
        available_again=usage.again_at if limit_hit and usage is not None else None,
        limit_used=usage.used if usage is not None else None, donation_percent=donation_percent(reward),
    )


def points_available(*, member: Member) -> int:
    """Spendable points now (pending points are not; a debt counts as 0). One query."""
    balance = Account.objects.filter(member=member, kind=AccountKind.MEMBER_POINTS).values_list(
        "credits_posted", "debits_posted").first()
    return max(0, balance[0] - balance[1]) if balance else 0


def member_block(member: Member) -> type[LoyaltyError] | None:
    """The refusal every redemption gets while the member is frozen or closed; None when active."""
    return {MemberStatus.FROZEN: MemberFrozen, MemberStatus.CLOSED: MemberClosed}.get(member.status)


# ---- REDEMPTIONS ----


def pickup_code_normalise(code: str | None) -> str:
    """Upper case without spaces or dashes: "abcd-efgh" typed at the counter matches ABCDEFGH."""
    return "".join(ch for ch in str(code or "").upper() if ch not in " -\t")


def redemption_pending_by_pickup_code(*, code: str) -> Redemption | None:
    """The pending redemption a pickup code belongs to (the counter types what the member shows), or None."""
    code = pickup_code_normalise(code)
    if not code:
        return None
    return (Redemption.objects.select_related("member", "reward")
            .filter(pickup_code=code, status=RedemptionStatus.PENDING).first())
