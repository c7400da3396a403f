"""The demo member for ``make run``: an activated portal member with a year of rich history.

Everything a member sees in the portal exists for them: a tier with progress to the next one, points
expiring within 30 days, a refund, a staff adjustment, rewards they can and cannot afford (and one for
a higher tier only), two coupons, a lucky draw, a top-up bonus rule and a top-up. Ledger rows are
written only through the real services, each with ``now=`` at its business time (as ``loyalty.demo``
does); configuration rows (tiers, rewards, coupon templates, draws, bonus rules) are created the way
the admin creates them, checked with ``full_clean``.

Idempotent: nothing happens when the demo member exists. Deterministic given ``now`` (one seeded RNG).
"""

import datetime as dt
import random
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from django.conf import settings
from django.db import transaction

from loyalty.demo import PRODUCTS, demo_staff_get_or_create
from loyalty.models import Tier
from loyalty.services import (
    member_enrol,
    points_adjust,
    points_expire_due,
    program_settings_get,
    purchase_record,
    refund_record,
)
from members.models import Member, Store
from members.services import portal_login_activate
from rewards.models import (
    CouponKind,
    CouponSource,
    CouponTemplate,
    DrawCampaign,
    Prize,
    PrizeKind,
    Reward,
    TopUpBonusRule,
)
from rewards.services.coupons import coupon_issue
from rewards.services.wallet import wallet_topup

DEMO_MEMBER_PHONE = "+8613800000000"
DEMO_MEMBER_NAME = "陈小雨"
DEMO_STORE_CODE = "DEMO01"  # only when the database has no store at all
PORTAL_URL = "http://127.0.0.1:8000/portal/"
CENT = Decimal("0.01")
KEY = "demo-member"


@dataclass(frozen=True)
class DemoMember:
    member: Member
    created: bool


def demo_member_login_file() -> Path:
    return Path(settings.VAR_DIR) / "demo-member-login.txt"


def demo_member_get() -> Member | None:
    return Member.objects.filter(phone=DEMO_MEMBER_PHONE).first()


def _clean_save(obj):
    obj.full_clean()
    obj.save()
    return obj


def _tiers() -> list[Tier]:
    """The program's tiers; a four-step ladder when none is configured (the demo needs tier progress)."""
    tiers = list(Tier.objects.order_by("rank"))
    if tiers:
        return tiers
    ladder = [("basic", "普通会员", 0, "0", "1.000", "", ""),
              ("silver", "银卡", 1, "1500", "1.100", "5", "生日双倍积分"),
              ("gold", "金卡", 2, "6000", "1.200", "8", "生日双倍积分；每月一杯免费咖啡"),
              ("platinum", "铂金卡", 3, "20000", "1.500", "10", "专属客服；新品优先品尝")]
    return [_clean_save(Tier(code=code, name=name, rank=rank, spend_threshold=Decimal(spend),
                             earn_multiplier=Decimal(mult), discount_percent=Decimal(discount or "0"), perks=perks))
            for code, name, rank, spend, mult, discount, perks in ladder]


def _target_spend(tiers: list[Tier]) -> Decimal:
    """A year's spend that lands in a middle tier, about 60% of the way to the next one."""
    with_spend = [t for t in tiers if t.spend_threshold is not None]
    if len(with_spend) < 2:
        return Decimal("3000.00")
    index = max(1, len(with_spend) - 3) if len(with_spend) >= 3 else 0
    low, high = with_spend[index].spend_threshold, with_spend[index + 1].spend_threshold
    return (low + (high - low) * Decimal("0.6")).quantize(CENT)


def _store() -> Store:
    store = Store.objects.filter(is_active=True).order_by("pk").first()
    if store is None:
        store = _clean_save(Store(code=DEMO_STORE_CODE, name="演示门店", address="上海市黄浦区"))
    return store


def _catalogue(tiers: list[Tier], *, now: dt.datetime) -> CouponTemplate:
    """Rewards (affordable, not affordable, tier-only), a coupon template, a lucky draw, a top-up bonus rule."""
    template = CouponTemplate.objects.filter(name="¥5 off your coffee").first() or _clean_save(CouponTemplate(
        name="¥5 off your coffee", name_zh_hans="咖啡立减5元券", kind=CouponKind.SPEND_SAVE, amount=Decimal("5.00"),
        minimum_spend=Decimal("30.00"), valid_days=30, description="Spend ¥30 or more on one order, save ¥5.",
        description_zh_hans="单笔满30元减5元。"))
    top_tier = tiers[-1] if len(tiers) > 1 else None
    rewards = [
        dict(name="Americano", name_zh_hans="美式咖啡", points_cost=300, sort_order=10,
             description="A regular Americano at any store.", description_zh_hans="任意门店中杯美式一杯。"),
        dict(name="Insulated tumbler", name_zh_hans="保温杯", points_cost=50000, sort_order=30, stock=20,
             description="Our 500 ml steel tumbler.", description_zh_hans="500毫升不锈钢保温杯。"),
    ]
    for fields in rewards:
        if not Reward.objects.filter(name=fields["name"]).exists():
            _clean_save(Reward(**fields))
    if top_tier is not None and not Reward.objects.filter(name="Tasting with the roaster").exists():
        reward = _clean_save(Reward(name="Tasting with the roaster", name_zh_hans="烘焙师品鉴会", points_cost=200,
                                    sort_order=20, description=f"Only for {top_tier.name} members.",
                                    description_zh_hans=f"仅限{top_tier.name}会员。"))
        reward.tiers.set([top_tier])
    if not DrawCampaign.objects.filter(name="Spring lucky draw").exists():
        campaign = _clean_save(DrawCampaign(name="Spring lucky draw", name_zh_hans="春季幸运抽奖", cost_points=50,
                                            daily_limit=3, starts_at=now - dt.timedelta(days=7),
                                            ends_at=now + dt.timedelta(days=60)))
        for prize in (Prize(campaign=campaign, name="200 points", name_zh_hans="200积分", kind=PrizeKind.POINTS,
                            weight=10, points=200),
                      Prize(campaign=campaign, name="¥5 coupon", name_zh_hans="5元券", kind=PrizeKind.COUPON,
                            weight=25, coupon_template=template),
                      Prize(campaign=campaign, name="Canvas bag", name_zh_hans="帆布袋", kind=PrizeKind.GOODS,
                            weight=5, stock=50),
                      Prize(campaign=campaign, name="Not this time", name_zh_hans="谢谢参与", kind=PrizeKind.NOTHING,
                            weight=60)):
            _clean_save(prize)
    if not TopUpBonusRule.objects.filter(name="Top up ¥200, get ¥20").exists():
        _clean_save(TopUpBonusRule(name="Top up ¥200, get ¥20", minimum=Decimal("200.00"), bonus=Decimal("20.00")))
    return template


def _lines(rng: random.Random, budget: Decimal) -> list[dict]:
    lines, total = [], Decimal(0)
    for product in rng.sample(PRODUCTS, len(PRODUCTS)):
        if total + product.price > budget and lines:
            continue
        lines.append({"sku": product.sku, "category": product.category, "quantity": 1, "amount": product.price})
        total += product.price
        if total >= budget * Decimal("0.8"):
            break
    return lines


def _history(member: Member, store: Store, *, tiers: list[Tier], now: dt.datetime, staff) -> None:
    """A year of purchases (older ones close to expiring), one refund, one adjustment, one expired lot."""
    rng = random.Random(20260601)
    tz = program_settings_get().tz
    target = _target_spend(tiers)
    # Days ago: three visits 340–355 days ago (their points expire within 30 days), then about weekly.
    days = [355, 348, 341] + sorted(rng.sample(range(3, 330), 45), reverse=True)
    budget = (target / len(days)).quantize(CENT, ROUND_HALF_UP)
    purchases = []
    for n, ago in enumerate(days, start=1):
        local = (now - dt.timedelta(days=ago)).astimezone(tz).replace(hour=12, minute=rng.randrange(60), second=0,
                                                                      microsecond=0)
        at = min(local, now - dt.timedelta(minutes=5))
        lines = _lines(rng, budget * Decimal(str(rng.uniform(0.7, 1.3))))
        total = sum((line["amount"] for line in lines), Decimal(0))
        purchases.append(purchase_record(
            member=member, store=store, external_id=f"DEMO-M-{n:04d}", occurred_at=at, total=total, lines=lines,
            idempotency_key=f"{KEY}:purchase:{n}", now=at))
    refunded = purchases[-8]
    refund_at = refunded.occurred_at + dt.timedelta(days=1)
    refund_record(purchase=refunded, occurred_at=refund_at, now=refund_at, idempotency_key=f"{KEY}:refund",
                  lines=[{"sku": refunded.lines[0]["sku"], "quantity": 1}], staff_user=staff)
    adjust_at = now - dt.timedelta(days=40)
    points_adjust(member=member, points=80, reason="客诉补偿：咖啡出品慢", staff_user=staff,
                  idempotency_key=f"{KEY}:adjust", now=adjust_at)


def demo_member_seed(*, now: dt.datetime, password: str) -> DemoMember:
    """Create the demo member and everything around them, unless the member exists (then nothing)."""
    existing = demo_member_get()
    if existing is not None:
        return DemoMember(member=existing, created=False)
    with transaction.atomic():
        tiers = _tiers()
        store = _store()
        staff = demo_staff_get_or_create()
        template = _catalogue(tiers, now=now)
        joined = now - dt.timedelta(days=400)
        member = member_enrol(phone=DEMO_MEMBER_PHONE, name=DEMO_MEMBER_NAME, now=joined,
                              birthday=dt.date(1994, 6, 18), home_store=store)
        # A visit 380 days ago whose points have expired through the real expiry job.
        early = now - dt.timedelta(days=380)
        purchase_record(member=member, store=store, external_id="DEMO-M-0000", occurred_at=early,
                        total=Decimal("58.00"), lines=[{"sku": "CF1002", "category": "咖啡", "quantity": 2,
                                                         "amount": Decimal("58.00")}],
                        idempotency_key=f"{KEY}:purchase:0", now=early)
        points_expire_due(now=now - dt.timedelta(days=10))
        _history(member, store, tiers=tiers, now=now, staff=staff)
        for n in (1, 2):
            coupon_issue(template=template, member=member, source=CouponSource.CAMPAIGN,
                         now=now - dt.timedelta(days=3 * n), idempotency_key=f"{KEY}:coupon:{n}")
        topup_at = now - dt.timedelta(days=20)
        wallet_topup(member=member, amount=Decimal("200.00"), now=topup_at, store=store, reference="DEMO-TOPUP-1",
                     idempotency_key=f"{KEY}:topup")
        portal_login_activate(member=member, password=password, now=now)
    return DemoMember(member=member, created=True)
