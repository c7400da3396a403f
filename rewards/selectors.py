"""Reads for the member portal's spending pages: one reward, redemptions, coupons, lucky draws, the wallet.

Every function that takes an id also takes the member and filters by them, so another member's object is
simply not found (the views answer 404). Names and conditions come out in the active language.
"""

import datetime as dt
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import BooleanField, Count, ExpressionWrapper, Prefetch, Q, QuerySet
from django.utils import formats
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from loyalty.exceptions import InsufficientPoints, MemberClosed, MemberFrozen
from loyalty.explain import CURRENCY_SYMBOLS
from loyalty.models import Tier, Transfer, TransferCode, Unit
from loyalty.services.program import program_settings_get
from loyalty.services.tiers import member_tier_current
from members.models import Member, MemberStatus, Store
from rewards.models import (
    Coupon,
    CouponKind,
    CouponStatus,
    CouponTemplate,
    Draw,
    DrawCampaign,
    Prize,
    Redemption,
    Reward,
    TopUpBonusRule,
)
from rewards.selectors_catalogue import (
    RewardOffer,
    _chinese,
    limit_usage,
    member_block,
    points_available,
    reward_offer,
    reward_refusal,
)


def money_text(amount: Decimal, currency: str | None = None) -> str:
    """``¥1,234.50`` with the active language's separators (two places, the program currency)."""
    currency = currency or program_settings_get().currency
    value = Decimal(amount).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return f"{CURRENCY_SYMBOLS.get(currency, currency + ' ')}{formats.number_format(value, 2, force_grouping=True)}"


def offer_worded(offer: RewardOffer, *, available: int) -> RewardOffer:
    """Say "not enough points" as what is missing ("You need 120 more points."), the one thing a member can fix.

    The refusal checks points last, so an ``InsufficientPoints`` reason means every other check passed.
    """
    if offer.can_redeem or offer.reason != str(InsufficientPoints(available=available, requested=offer.points_cost)):
        return offer
    need = offer.points_cost - available
    reason = ngettext("You need %(n)s more point.", "You need %(n)s more points.", need) % {
        "n": formats.number_format(need, force_grouping=True)}
    return replace(offer, reason=reason)


def reward_list_upcoming(*, member: Member, now: dt.datetime) -> list[RewardOffer]:
    """Active rewards not yet open (``available_from`` in the future), each with the date it opens. One query."""
    tz = program_settings_get().tz
    rewards = Reward.objects.filter(is_active=True, available_from__gt=now).order_by("available_from", "sort_order", "id")
    available = points_available(member=member) if rewards else 0
    return [
        reward_offer(reward=r, refusal=reward_refusal(reward=r, tiers=[], now=now, tz=tz, member_tier=None, usage=None,
                                               available_points=None), available=available, usage=None)
        for r in rewards
    ]


@dataclass(frozen=True)
class RewardConfirm:
    offer: RewardOffer
    available: int  # the member's spendable points now
    balance_after: int  # what they would have left


def reward_offer_get(*, member: Member, reward_id: int, now: dt.datetime) -> RewardConfirm | None:
    """One reward as ``member`` sees it now, with the same refusal ``redemption_create`` would raise; None when
    there is no such reward (inactive ones are shown with their reason)."""
    reward = (
        Reward.objects.select_related("upgrade_tier", "coupon_template")
        .prefetch_related(Prefetch("tiers", queryset=Tier.objects.order_by("rank")))
        .filter(pk=reward_id).first()
    )
    if reward is None:
        return None
    tz = program_settings_get().tz
    available = points_available(member=member)
    usage = limit_usage(member=member, reward=reward, now=now, tz=tz)
    blocked = member_block(member)
    refusal = blocked() if blocked else reward_refusal(
        reward=reward, tiers=list(reward.tiers.all()), now=now, tz=tz, member_tier=member_tier_current(member=member),
        usage=usage, available_points=available)
    offer = offer_worded(reward_offer(reward=reward, refusal=refusal, available=available, usage=usage), available=available)
    return RewardConfirm(offer=offer, available=available, balance_after=available - reward.points_cost)


def redemption_list_for_member(*, member: Member) -> QuerySet[Redemption]:
    """The member's redemptions, newest first, with their rewards (one query per page)."""
    return Redemption.objects.filter(member=member).select_related("reward").order_by("-redeemed_at", "-id")


def redemption_get_for_member(*, member: Member, redemption_id: int) -> Redemption | None:
    return (Redemption.objects.select_related("reward", "coupon__template")
            .filter(pk=redemption_id, member=member).first())


# ---- COUPONS ----


def coupon_name(template: CouponTemplate) -> str:
    return template.name_zh_hans if _chinese() and template.name_zh_hans else template.name


def coupon_description(template: CouponTemplate) -> str:
    return template.description_zh_hans if _chinese() and template.description_zh_hans else template.description


def coupon_conditions(template: CouponTemplate, *, store_names: dict[str, str], currency: str) -> list[str]:
    """What the coupon gives and when it can be used, as sentences in the active language."""
    lines = []
    if template.kind == CouponKind.FIXED and template.amount:
        lines.append(_("%(amount)s off the bill.") % {"amount": money_text(template.amount, currency)})
    elif template.kind == CouponKind.SPEND_SAVE and template.amount:
        lines.append(_("Spend %(minimum)s, save %(amount)s.") % {
            "minimum": money_text(template.minimum_spend, currency), "amount": money_text(template.amount, currency)})
    elif template.kind == CouponKind.PERCENT and template.percent:
        percent = formats.number_format(template.percent.normalize(), decimal_pos=None)
        if template.max_discount:
            lines.append(_("%(percent)s%% off, at most %(cap)s.") % {
                "percent": percent, "cap": money_text(template.max_discount, currency)})
        else:
            lines.append(_("%(percent)s%% off.") % {"percent": percent})
    elif template.kind == CouponKind.FREE_ITEM:
        lines.append(_("Free: %(item)s.") % {"item": template.free_item or coupon_name(template)})
    if template.minimum_spend and template.minimum_spend > 0 and template.kind != CouponKind.SPEND_SAVE:
        lines.append(_("The bill must come to at least %(minimum)s.") % {
            "minimum": money_text(template.minimum_spend, currency)})
    if template.stores:
        names = ", ".join(store_names.get(code, code) for code in template.stores)
        lines.append(_("Only at: %(stores)s.") % {"stores": names})
    else:
        lines.append(_("At every store."))
    if not template.stacks_with_points:
        lines.append(_("Cannot be combined with paying with points."))
    lines.append(_("Can be combined with other coupons.") if template.stacks_with_coupons
                 else _("Cannot be combined with other coupons."))
    return lines


@dataclass(frozen=True)
class CouponView:
    coupon: Coupon
    name: str
    description: str
    code_text: str  # printed in groups of four
    state: str  # "usable", "not_yet", "used", "expired", "void"
    conditions: list[str]


@dataclass(frozen=True)
class CouponGroups:
    usable: list[CouponView]
    used: list[CouponView]
    expired: list[CouponView]
    more_usable: bool
    more_used: bool
    more_expired: bool


def _coupon_state(coupon: Coupon, now: dt.datetime) -> str:
    if coupon.status == CouponStatus.REDEEMED:
        return "used"
    if coupon.status == CouponStatus.VOID:
        return "void"
    if coupon.status == CouponStatus.EXPIRED or (coupon.valid_until is not None and coupon.valid_until < now):
        return "expired"
    if coupon.valid_from > now:
        return "not_yet"
    return "usable"


def coupon_views(coupons: list[Coupon], *, now: dt.datetime) -> list[CouponView]:
    """Coupons (with templates loaded) as the portal shows them; one query for all their store names."""
    from rewards.services.coupons import coupon_code_format

    codes = {code for c in coupons for code in (c.template.stores or [])}
    store_names = dict(Store.objects.filter(code__in=codes).values_list("code", "name")) if codes else {}
    currency = program_settings_get().currency
    return [
        CouponView(coupon=c, name=coupon_name(c.template), description=coupon_description(c.template),
                   code_text=coupon_code_format(c.code), state=_coupon_state(c, now),
                   conditions=coupon_conditions(c.template, store_names=store_names, currency=currency))
        for c in coupons
    ]


def coupon_groups_for_member(*, member: Member, now: dt.datetime, usable_limit: int = 30,
                             past_limit: int = 20) -> CouponGroups:
    """The member's coupons: usable (soonest ending first), used and expired/cancelled (latest first).

    Three bounded queries (+ one for store names), whatever the number of coupons.
    """
    base = Coupon.objects.filter(member=member).select_related("template")
    usable = list(
        base.filter(status=CouponStatus.ISSUED).filter(Q(valid_until__isnull=True) | Q(valid_until__gte=now))
        .order_by("valid_until", "id")[:usable_limit + 1]
    )
    used = list(base.filter(status=CouponStatus.REDEEMED).order_by("-redeemed_at", "-id")[:past_limit + 1])
    expired = list(
        base.filter(Q(status__in=[CouponStatus.EXPIRED, CouponStatus.VOID])
                    | Q(status=CouponStatus.ISSUED, valid_until__lt=now))
        .order_by("-valid_until", "-id")[:past_limit + 1]
    )
    views = coupon_views(usable[:usable_limit] + used[:past_limit] + expired[:past_limit], now=now)
    n_usable, n_used = len(usable[:usable_limit]), len(used[:past_limit])
    return CouponGroups(usable=views[:n_usable], used=views[n_usable:n_usable + n_used],
                        expired=views[n_usable + n_used:], more_usable=len(usable) > usable_limit,
                        more_used=len(used) > past_limit,
                        more_expired=len(expired) > past_limit)


def coupon_get_for_member(*, member: Member, coupon_id: int) -> Coupon | None:
    return Coupon.objects.select_related("template").filter(pk=coupon_id, member=member).first()


# ---- LUCKY DRAWS ----


def draw_campaign_name(campaign: DrawCampaign) -> str:
    return campaign.name_zh_hans if _chinese() and campaign.name_zh_hans else campaign.name


def prize_name(prize: Prize) -> str:
    return prize.name_zh_hans if _chinese() and prize.name_zh_hans else prize.name


def draw_campaigns_open(*, now: dt.datetime) -> list[DrawCampaign]:
    """Lucky draws open now (active, started, not ended), oldest first. One query."""
    return list(
        DrawCampaign.objects.filter(is_active=True)
        .filter(Q(starts_at__isnull=True) | Q(starts_at__lte=now), Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        .order_by("starts_at", "id")
    )


@dataclass(frozen=True)
class PrizeOdds:
    prize: Prize
    name: str
    percent: str  # the chance per draw, e.g. "12.5%"; "" when none are left
    gone: bool


@dataclass(frozen=True)
class DrawPanel:
    campaign: DrawCampaign
    name: str
    is_open: bool
    prizes: list[PrizeOdds]
    left_today: int | None  # None: no daily limit
    left_total: int | None  # None: no campaign limit
    available: int
    can_draw: bool
    reason: str  # why not, in words ("" when they can)


def _percent_text(weight: int, total: int) -> str:
    value = (Decimal(weight) * 100 / Decimal(total))
    places = 0 if value == value.to_integral_value() else (1 if value >= 1 else 2)
    value = value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
    return f"{formats.number_format(value, places)}%"


def draw_panel_get(*, member: Member, campaign_id: int, now: dt.datetime) -> DrawPanel | None:
    """A lucky draw as ``member`` sees it: the chance of each prize from the weights in play (prizes with stock
    left), draws left today and in total, and whether they can draw now. None when there is no such active draw.

    Four queries: the campaign, its prizes, the member's draw counts, their points.
    """
    from rewards.services.draws import draw_campaign_is_open, local_day_bounds, prizes_in_play

    campaign = DrawCampaign.objects.filter(pk=campaign_id, is_active=True).first()
    if campaign is None:
        return None
    prizes = list(Prize.objects.filter(campaign=campaign).order_by("-weight", "pk"))
    in_play = prizes_in_play(prizes)
    total = sum(p.weight for p in in_play)
    odds = [PrizeOdds(prize=p, name=prize_name(p), percent=_percent_text(p.weight, total) if p in in_play else "",
                      gone=p not in in_play) for p in prizes]
    start, end = local_day_bounds(at=now, tz=program_settings_get().tz)
    counts = Draw.objects.filter(member=member, campaign=campaign).aggregate(
        today=Count("id", filter=Q(drawn_at__gte=start, drawn_at__lt=end)), total=Count("id"))
    left_today = max(0, campaign.daily_limit - counts["today"]) if campaign.daily_limit is not None else None
    left_total = max(0, campaign.campaign_limit - counts["total"]) if campaign.campaign_limit is not None else None
    available = points_available(member=member)
    is_open = draw_campaign_is_open(campaign=campaign, now=now)
    reason = ""
    if member.status == MemberStatus.FROZEN:
        reason = str(MemberFrozen())
    elif member.status == MemberStatus.CLOSED:
        reason = str(MemberClosed())
    elif not is_open:
        reason = _("This lucky draw is not open.")
    elif not in_play:
        reason = _("All the prizes of this lucky draw are gone.")
    elif left_total == 0:
        reason = _("You have used all your draws in this lucky draw.")
    elif left_today == 0:
        reason = _("You have used all your draws for today. Come back tomorrow.")
    elif available < campaign.cost_points:
        reason = ngettext("You need %(n)s more point to draw.", "You need %(n)s more points to draw.",
                          campaign.cost_points - available) % {
            "n": formats.number_format(campaign.cost_points - available, force_grouping=True)}
    return DrawPanel(campaign=campaign, name=draw_campaign_name(campaign), is_open=is_open, prizes=odds,
                     left_today=left_today, left_total=left_total, available=available, can_draw=not reason,
                     reason=reason)


def draw_get_for_member(*, member: Member, draw_id: int, campaign_id: int) -> Draw | None:
    return (Draw.objects.select_related("prize", "coupon")
            .filter(pk=draw_id, member=member, campaign_id=campaign_id).first())


# ---- WALLET ----


def wallet_history_for_member(*, member: Member) -> QuerySet[Transfer]:
    """Movements of the member's stored value (top-ups, bonuses, spends, refunds, expiries), newest first.

    ``incoming`` is True when money came into the wallet. One query per page.
    """
    return (
        Transfer.objects.filter(member=member, unit=Unit.MONEY)
        .annotate(incoming=ExpressionWrapper(Q(credit_account__member=member), output_field=BooleanField()))
        .order_by("-occurred_at", "-id")
    )


def wallet_entry_label(transfer: Transfer) -> str:
    """What a stored-value movement was, in words."""
    kind = (transfer.breakdown or {}).get("kind", "")
    part = (transfer.breakdown or {}).get("part", "")
    if transfer.code == TransferCode.TOPUP:
        return _("Top-up")
    if transfer.code == TransferCode.TOPUP_BONUS:
        if kind == "wallet_credit":
            return _("Stored value from a reward: %(name)s") % {"name": transfer.reason}
        return _("Top-up bonus: %(rule)s") % {"rule": transfer.reason} if transfer.reason else _("Top-up bonus")
    if transfer.code == TransferCode.SPEND:
        return _("Paid from bonus money") if part == "bonus" else _("Paid")
    if transfer.code == TransferCode.TOPUP_REFUND:
        return _("Top-up refunded")
    if transfer.code == TransferCode.BONUS_REMOVED:
        return _("Bonus taken back (its top-up was refunded)")
    if transfer.code == TransferCode.EXPIRE:
        return _("Bonus money expired")
    return transfer.get_code_display()


def wallet_bonus_rules_in_force(*, now: dt.datetime) -> list[TopUpBonusRule]:
    """Top-up bonus rules that apply to a top-up made now, smallest top-up first. One query."""
    return list(
        TopUpBonusRule.objects.filter(is_active=True)
        .filter(Q(valid_from__isnull=True) | Q(valid_from__lte=now), Q(valid_until__isnull=True) | Q(valid_until__gt=now))
        .order_by("minimum", "-bonus", "pk")
    )



# ---- PAGES ----


def currency_symbol(currency: str) -> str:
    return CURRENCY_SYMBOLS.get(currency, currency + " ")


@dataclass(frozen=True)
class CataloguePage:
    offers: list[RewardOffer]  # open now: redeemable first is not forced; catalogue order
    upcoming: list[RewardOffer]  # not open yet, with the date
    draws: list[DrawCampaign]
    available: int
    count_all: int
    count_redeemable: int


def reward_catalogue_page(*, member: Member, now: dt.datetime, redeemable_only: bool) -> CataloguePage:
    """The portal catalogue: what the member can redeem and why not for the rest, what opens later, and the open
    lucky draws. A fixed number of queries whatever the catalogue's size."""
    from rewards.selectors_catalogue import reward_list_available

    available = points_available(member=member)
    offers = [offer_worded(o, available=available) for o in reward_list_available(member=member, now=now)]
    upcoming = reward_list_upcoming(member=member, now=now)
    redeemable = [o for o in offers if o.can_redeem]
    return CataloguePage(
        offers=redeemable if redeemable_only else offers, upcoming=[] if redeemable_only else upcoming,
        draws=draw_campaigns_open(now=now), available=available,
        count_all=len(offers) + len(upcoming), count_redeemable=len(redeemable),
    )
