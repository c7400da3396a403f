"""A member with everything the portal shows, made through the real services (the ledger audit stays clean).

Used by the browser tests and by the portal's access and quality tests: tiers (the member is silver, on
the way to gold), a published rule set with a "double points" modifier (so history entries have a
breakdown), purchases over the last weeks and one a year ago (points expiring within 30 days), a
redemption of points, a stored-value top-up with a bonus rule, coupons, a reward the member can afford
and one pending redemption with a pickup code, and a lucky draw.
"""

import datetime as dt
import itertools
from dataclasses import dataclass, field
from decimal import Decimal

from django.utils import timezone

from loyalty.models import Tier, Transfer
from loyalty.services import points_redeem
from members.models import Member, Store
from rewards.models import (
    CouponTemplate,
    DrawCampaign,
    Prize,
    PrizeKind,
    Redemption,
    Reward,
    RewardKind,
    TopUpBonusRule,
)
from rewards.services.catalogue import redemption_create
from rewards.services.wallet import wallet_topup
from tests.factories import StoreFactory
from tests.loyalty.helpers import buy, rules_publish
from tests.rewards.factories import CouponTemplateFactory, coupon_make

_keys = itertools.count(1)

TIERS = [  # code, name, rank, qualifying spend, earn multiplier
    ("standard", "Standard", 0, "0", "1.0"),
    ("silver", "Silver", 1, "500", "1.1"),
    ("gold", "Gold", 2, "2000", "1.2"),
    ("diamond", "Diamond", 3, "10000", "1.5"),
]


@dataclass
class Program:
    """The catalogue side every member sees: tiers, rules, rewards, coupon templates, a lucky draw."""

    store: Store
    tiers: dict[str, Tier]
    reward: Reward
    coupon_template: CouponTemplate
    campaign: DrawCampaign


@dataclass
class Rich:
    member: Member
    program: Program
    coupons: list = field(default_factory=list)
    redemption: Redemption | None = None
    transfers: list[Transfer] = field(default_factory=list)


def program_setup() -> Program:
    """Tiers, one published rule set, a reward, coupon templates, a top-up bonus and a lucky draw (once per test)."""
    tiers = {code: Tier.objects.get_or_create(code=code, defaults={
        "name": name, "rank": rank, "spend_threshold": Decimal(spend), "earn_multiplier": Decimal(mult),
        "perks": "" if rank == 0 else f"{name} members get a birthday coffee.",
    })[0] for code, name, rank, spend, mult in TIERS}
    rules_publish(name="Browser test rules", modifiers=[{"name": "Double points", "value": Decimal(2)}])
    reward = Reward.objects.create(name="Cinema ticket", name_zh_hans="电影票", kind=RewardKind.GOODS, points_cost=300,
                                   description="One ticket, any film.", description_zh_hans="任意影片一张票。")
    Reward.objects.create(name="Spa day", name_zh_hans="水疗日", kind=RewardKind.SERVICE, points_cost=10**7)
    template = CouponTemplateFactory(free_coffee=True)
    TopUpBonusRule.objects.create(name="Top up 100, get 20", minimum=Decimal("100.00"), bonus=Decimal("20.00"))
    campaign = DrawCampaign.objects.create(name="Spring draw", name_zh_hans="春季抽奖", cost_points=50, daily_limit=3)
    Prize.objects.create(campaign=campaign, name="100 points", name_zh_hans="100积分", kind=PrizeKind.POINTS, weight=1,
                         points=100)
    Prize.objects.create(campaign=campaign, name="Better luck next time", name_zh_hans="谢谢参与", kind=PrizeKind.NOTHING,
                         weight=1)
    return Program(store=StoreFactory(), tiers=tiers, reward=reward, coupon_template=template, campaign=campaign)


def rich_member(member: Member, program: Program, *, now: dt.datetime | None = None, purchases: int = 12,
                redeem: bool = True) -> Rich:
    """Give ``member`` a history: ``purchases`` purchases in the last weeks (silver tier), one a year ago
    (expiring soon), a points redemption, a top-up, two coupons, and (``redeem``) a pending reward."""
    now = now or timezone.now()
    rich = Rich(member=member, program=program)
    year_ago = now - dt.timedelta(days=350)
    buys = [buy(member, program.store, "400.00", at=year_ago)]
    for i in range(purchases):
        at = now - dt.timedelta(days=2 * (purchases - i), hours=3)
        buys.append(buy(member, program.store, f"{60 + 7 * i}.50", at=at))
    rich.transfers.extend(Transfer.objects.filter(purchase__in=buys).order_by("pk"))
    rich.transfers.append(points_redeem(member=member, points=25, reason="Parking", now=now - dt.timedelta(hours=2),
                                        idempotency_key=f"rich-redeem-{next(_keys)}"))
    wallet_topup(member=member, amount=Decimal("100.00"), now=now - dt.timedelta(hours=1), store=program.store,
                 idempotency_key=f"rich-topup-{next(_keys)}")
    rich.coupons = [coupon_make(template=program.coupon_template, member=member, now=now - dt.timedelta(minutes=30)),
                    coupon_make(member=member, now=now - dt.timedelta(minutes=20))]
    if redeem:
        rich.redemption = redemption_create(member=member, reward_id=program.reward.pk, now=now - dt.timedelta(minutes=10),
                                            idempotency_key=f"rich-redemption-{next(_keys)}")
    return rich
