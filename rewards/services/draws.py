"""Lucky draws (积分抽奖): one transaction per draw — cost, pick, stock, prize, record.

* Order of work: lock the member's points accounts (``member_accounts_for_write``), check the campaign
  is open and the member's daily (program local day) and campaign limits, take the cost (``DRAW`` to
  the redemption account), lock the campaign's prizes (pk order), pick among prizes with stock by
  weight, decrement the stock with a conditional UPDATE, deliver, record the ``Draw``.
* Randomness: ``secrets.SystemRandom`` (the operating system's CSPRNG). The integer drawn in
  ``[0, total weight)`` and the weights in play are stored in ``Draw.outcome``, so staff can check any
  draw by hand: the prize is the first whose cumulative weight exceeds the number.
* Delivery: points through the ledger (``PRIZE`` from issuance, expiring per program); a coupon through
  ``rewards.services.coupons.coupon_issue`` in the same transaction; goods are recorded for pickup at
  the counter; "nothing" is recorded. A prize that cannot be delivered rolls the whole draw back.
"""

import datetime as dt
import secrets
from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from loyalty.exceptions import IdempotencyKeyReused
from loyalty.idempotency import idempotency_key_check
from loyalty.models import SystemAccount, TransferCode, TransferSource
from loyalty.services import program_settings_get
from loyalty.services.ledger import member_accounts_for_write, points_credit, points_debit, system_account
from loyalty.validation import time_clean
from members.models import Member
from rewards.exceptions import DrawLimitReached, DrawNotAvailable, DrawPrizesExhausted
from rewards.models import Draw, DrawCampaign, Prize, PrizeKind
from rewards.services.wallet import ledger_key

K = TypeVar("K")

RANDOM_SOURCE = "secrets.SystemRandom"


def prize_pick(weights: Sequence[tuple[K, int]], *, rng: Any = None) -> tuple[K, int]:
    """Pick a key with probability weight / total. Returns ``(key, number)``, ``number`` in ``[0, total)``.

    The key picked is the first whose cumulative weight exceeds ``number`` (so anyone can re-check it).
    """
    total = sum(weight for _key, weight in weights)
    if total <= 0:
        raise ValueError("no positive weight to pick from")
    number = (rng or secrets.SystemRandom()).randrange(total)
    cumulative = 0
    for key, weight in weights:
        cumulative += weight
        if number < cumulative:
            return key, number
    raise AssertionError("unreachable: number < total")  # pragma: no cover


def prizes_in_play(prizes: Sequence[Prize]) -> list[Prize]:
    """Prizes that can still be won: unlimited stock (None) or some left."""
    return [p for p in prizes if p.stock is None or p.stock > 0]


def local_day_bounds(*, at: dt.datetime, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """Start of ``at``'s day and of the next day in the program time zone."""
    day = at.astimezone(tz).date()
    start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    return start, dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=tz)


def draw_campaign_is_open(*, campaign: DrawCampaign, now: dt.datetime) -> bool:
    return (campaign.is_active and (campaign.starts_at is None or campaign.starts_at <= now)
            and (campaign.ends_at is None or now < campaign.ends_at))


def _limits_check(*, member: Member, campaign: DrawCampaign, now: dt.datetime) -> None:
    draws = Draw.objects.filter(member=member, campaign=campaign)
    if campaign.daily_limit is not None:
        start, end = local_day_bounds(at=now, tz=program_settings_get().tz)
        if draws.filter(drawn_at__gte=start, drawn_at__lt=end).count() >= campaign.daily_limit:
            raise DrawLimitReached(period=_("for today"), extra={"limit": campaign.daily_limit, "period": "day"})
    if campaign.campaign_limit is not None and draws.count() >= campaign.campaign_limit:
        raise DrawLimitReached(period=_("in this lucky draw"), extra={"limit": campaign.campaign_limit,
                                                                      "period": "campaign"})


@transaction.atomic
def draw_perform(*, member: Member, campaign: DrawCampaign, now: dt.datetime, idempotency_key: str) -> Draw:
    """Draw once: take the cost, pick a prize by weight among those in stock, deliver it, record it all.

    Idempotent by key: the same member and campaign get the first draw back; anything else is refused.
    """
    now = time_clean(now, field="now", now=now)
    key = idempotency_key_check(idempotency_key)

    accounts = member_accounts_for_write(member=member)
    existing = Draw.objects.filter(idempotency_key=key).first()
    if existing is not None:
        if (existing.member_id, existing.campaign_id) != (member.pk, campaign.pk):
            raise IdempotencyKeyReused()
        return existing
    campaign = DrawCampaign.objects.get(pk=campaign.pk)  # current settings
    if not draw_campaign_is_open(campaign=campaign, now=now):
        raise DrawNotAvailable()
    _limits_check(member=member, campaign=campaign, now=now)

    prizes = list(Prize.objects.select_for_update().filter(campaign=campaign).order_by("pk"))
    in_play = prizes_in_play(prizes)
    if not in_play:
        raise DrawPrizesExhausted()
    cost = points_debit(
        accounts=accounts, to_account=system_account(SystemAccount.REDEMPTION), amount=campaign.cost_points,
        code=TransferCode.DRAW, occurred_at=now, idempotency_key=ledger_key("draw", key, "cost"),
        source=TransferSource.DRAW, reason=campaign.name,
        breakdown={"kind": "draw", "campaign": {"id": campaign.pk, "name": campaign.name}},
    )
    prize, number = prize_pick([(p, p.weight) for p in in_play])
    outcome: dict[str, Any] = {
        "random": {"source": RANDOM_SOURCE, "number": number, "total_weight": sum(p.weight for p in in_play)},
        "weights": [{"prize": p.pk, "name": p.name, "kind": p.kind, "weight": p.weight, "stock": p.stock}
                    for p in in_play],
        "out_of_stock": [p.pk for p in prizes if p not in in_play],
        "cost_points": campaign.cost_points,
        "prize": {"id": prize.pk, "name": prize.name, "kind": prize.kind},
    }
    if prize.stock is not None:
        taken = Prize.objects.filter(pk=prize.pk, stock__gt=0).update(stock=F("stock") - 1, updated_at=timezone.now())
        if taken != 1:  # pragma: no cover - the prize rows are locked; never expected
            raise DrawPrizesExhausted()
        outcome["stock_left"] = prize.stock - 1

    prize_transfer = coupon = None
    if prize.kind == PrizeKind.POINTS:
        prize_transfer = points_credit(
            accounts=accounts, from_account=system_account(SystemAccount.ISSUANCE), amount=prize.points,
            code=TransferCode.PRIZE, occurred_at=now, expires_at=program_settings_get().expires_at_for(now),
            idempotency_key=ledger_key("draw", key, "prize"), source=TransferSource.DRAW, reason=prize.name,
            breakdown={"kind": "draw_prize", "campaign": campaign.pk, "prize": prize.pk},
        )
        outcome["delivery"] = {"points": prize.points}
    elif prize.kind == PrizeKind.COUPON:
        from rewards.models import CouponSource
        from rewards.services.coupons import coupon_issue

        coupon = coupon_issue(template=prize.coupon_template, member=member, source=CouponSource.DRAW, now=now,
                              idempotency_key=ledger_key("draw", key, "coupon"))
        outcome["delivery"] = {"coupon": coupon.pk, "template": prize.coupon_template_id}
    elif prize.kind == PrizeKind.GOODS:
        outcome["delivery"] = {"goods": prize.name, "pickup": "counter"}
    else:
        outcome["delivery"] = None
    return Draw.objects.create(
        campaign=campaign, member=member, prize=prize, outcome=outcome, drawn_at=now, cost_transfer=cost,
        prize_transfer=prize_transfer, coupon=coupon, idempotency_key=key,
    )
