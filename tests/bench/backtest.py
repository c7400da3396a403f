"""(b) Backtest time for 100,000 purchases: a year of purchases by 5,000 members in ten stores, bulk-inserted
into the bench database, then ``backtest_run`` of the ten-modifier draft over the whole year.

The backtest reads purchases only, so no ledger rows (accounts, transfers, lots) are written: purchases
carry the live points as ``purchase_record`` would have stored them (base rate × tier multiplier).
"""

import datetime as dt
import random
import time
from decimal import ROUND_FLOOR, Decimal

from tests.bench.rules import (
    DRAFT_MODIFIERS,
    DRAFT_RULE_SET,
    STORES,
    TIERS,
    TZ,
    random_lines,
    random_payment,
    random_time,
)

PERIOD_START = dt.datetime(2025, 1, 1, tzinfo=TZ)
PERIOD_DAYS = 365


def _programme():
    from loyalty.models import Modifier, RuleSet, RuleSetStatus, Tier
    from members.models import Store

    stores = Store.objects.bulk_create([Store(code=code, name=f"Store {code}") for code in STORES])
    tiers = Tier.objects.bulk_create([
        Tier(code=code, name=name, rank=rank, earn_multiplier=multiplier, spend_threshold=Decimal(rank * 1000))
        for code, name, rank, multiplier in TIERS
    ])
    live = RuleSet.objects.create(name="Live", status=RuleSetStatus.PUBLISHED,
                                  effective_from=dt.datetime(2020, 1, 1, tzinfo=TZ))
    draft = RuleSet.objects.create(name="Bench draft", status=RuleSetStatus.DRAFT,
                                   effective_from=dt.datetime(2026, 1, 1, tzinfo=TZ), **DRAFT_RULE_SET)
    Modifier.objects.bulk_create([Modifier(rule_set=draft, **m) for m in DRAFT_MODIFIERS])
    return stores, tiers, live, draft


def _members(n: int, rng: random.Random):
    from members.models import Member

    members = [
        Member(member_number=f"9{i:011d}", phone=f"+86139{i:08d}", name=f"Member {i}", referral_code=f"B{i:07d}",
               birthday=dt.date(rng.randint(1960, 2005), rng.randint(1, 12), rng.randint(1, 28)) if rng.random() < 0.8 else None,
               joined_at=dt.datetime(rng.randint(2018, 2024), rng.randint(1, 12), rng.randint(1, 28), 12, tzinfo=TZ))
        for i in range(n)
    ]
    return Member.objects.bulk_create(members, batch_size=1000)


def populate(*, purchases: int, members: int, seed: int = 11) -> dict:
    """Insert the programme and ``purchases`` purchases; returns what was made and how long it took."""
    from django.db import connection, transaction

    from loyalty.models import Purchase

    rng = random.Random(seed)
    t0 = time.perf_counter()
    with transaction.atomic():
        stores, tiers, live, draft = _programme()
        people = _members(members, rng)
        member_tier = {m.pk: rng.choices(tiers, weights=(60, 25, 10, 5))[0] for m in people}
        batch, made = [], 0
        batch_size = 5000 if connection.vendor == "postgresql" else 2000
        for i in range(purchases):
            member = rng.choice(people)
            store = rng.choice(stores)
            raw = random_lines(rng)
            total = sum((line["amount"] for line in raw), Decimal(0))
            points, points_value, coupon, stored = random_payment(rng, total)
            tier = member_tier[member.pk]
            eligible = max(Decimal(0), total - points_value - coupon - stored)
            earned = int((eligible * tier.earn_multiplier).to_integral_value(rounding=ROUND_FLOOR))
            batch.append(Purchase(
                member_id=member.pk, store_id=store.pk, external_id=f"B{i:07d}",
                channel=rng.choice(("STORE", "STORE", "STORE", "APP", "ONLINE")),
                occurred_at=random_time(rng, PERIOD_START, PERIOD_DAYS), total=total,
                lines=[{**line, "amount": str(line["amount"]), "refunded_quantity": 0} for line in raw],
                points_paid=points, points_paid_value=points_value, coupon_discount=coupon, stored_value_paid=stored,
                promo_codes=["DOUBLE"] if rng.random() < 0.05 else [], tier_id=tier.pk, rule_set_id=live.pk,
                points_earned=earned, earn_breakdown={}, idempotency_key=f"bench:{i}", fingerprint="bench",
            ))
            if len(batch) == batch_size:
                Purchase.objects.bulk_create(batch)
                made += len(batch)
                batch = []
        if batch:
            Purchase.objects.bulk_create(batch)
            made += len(batch)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE loyalty_purchase")
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return {"purchases": made, "members": len(people), "stores": len(stores), "draft": draft,
            "seconds": time.perf_counter() - t0}


def backtest_bench(*, purchases: int = 100_000, members: int = 5_000) -> dict:
    from loyalty.backtest import backtest_run

    made = populate(purchases=purchases, members=members)
    start, end = PERIOD_START, PERIOD_START + dt.timedelta(days=PERIOD_DAYS)
    t0 = time.perf_counter()
    result = backtest_run(rule_set=made["draft"], start=start, end=end)
    seconds = time.perf_counter() - t0
    assert result["purchases"] == made["purchases"], (result["purchases"], made["purchases"])
    return {
        "purchases": result["purchases"], "members": made["members"], "stores": made["stores"],
        "insert_seconds": made["seconds"], "seconds": seconds, "per_second": result["purchases"] / seconds,
        "live_points": result["live"]["points"], "draft_points": result["draft"]["points"],
        "percent": result["difference"]["percent"],
    }
