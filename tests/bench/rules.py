"""The benchmark's programme: tiers, a live rule set (base rate and tier multipliers, as most merchants
start) and a draft with ten modifiers of different conditions, plus random purchases that exercise them."""

import datetime as dt
import random
import zoneinfo
from decimal import Decimal

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
CENT = Decimal("0.01")

TIERS = [  # code, name, rank, multiplier
    ("basic", "普通", 0, Decimal("1.000")),
    ("silver", "银卡", 1, Decimal("1.100")),
    ("gold", "金卡", 2, Decimal("1.200")),
    ("diamond", "钻石", 3, Decimal("1.500")),
]
STORES = [f"S{n:02d}" for n in range(1, 11)]
CATEGORIES = ["new", "coffee", "food", "merch", "service"]
CATALOGUE = [(f"SKU{n:03d}", CATEGORIES[n % len(CATEGORIES)]) for n in range(60)]

# Modifier field values, as the admin would store them (priority, stacking and every kind of condition).
DRAFT_MODIFIERS = [
    {"name": "New product ×2", "kind": "MULTIPLIER", "value": Decimal(2), "stacking": "MULTIPLY", "priority": 10,
     "categories": ["new"]},
    {"name": "Weekday afternoons ×3", "kind": "MULTIPLIER", "value": Decimal(3), "stacking": "MULTIPLY", "priority": 20,
     "weekdays": [1, 2, 3, 4, 5], "time_from": dt.time(14), "time_to": dt.time(17)},
    {"name": "Member day ×2", "kind": "MULTIPLIER", "value": Decimal(2), "stacking": "MULTIPLY", "priority": 20,
     "date_from": dt.date(2025, 6, 18), "date_to": dt.date(2025, 6, 20), "cap_per_order": 1000},
    {"name": "Flagship stores ×1.5", "kind": "MULTIPLIER", "value": Decimal("1.5"), "stacking": "MULTIPLY",
     "priority": 25, "stores": ["S01", "S02"]},
    {"name": "Birthday month ×2", "kind": "MULTIPLIER", "value": Decimal(2), "stacking": "MULTIPLY", "priority": 30,
     "birthday_month": True},
    {"name": "First purchase ×5", "kind": "MULTIPLIER", "value": Decimal(5), "stacking": "BEST", "priority": 40,
     "first_purchase": True},
    {"name": "Gold and diamond coffee ×1.2", "kind": "MULTIPLIER", "value": Decimal("1.2"), "stacking": "ADD",
     "priority": 45, "tiers": ["gold", "diamond"], "categories": ["coffee"]},
    {"name": "Anniversary +200", "kind": "BONUS", "value": Decimal(200), "stacking": "ADD", "priority": 50,
     "anniversary_month": True},
    {"name": "App orders +50", "kind": "BONUS", "value": Decimal(50), "stacking": "ADD", "priority": 50,
     "channels": ["APP"]},
    {"name": "Big basket +100", "kind": "BONUS", "value": Decimal(100), "stacking": "BEST", "priority": 60,
     "minimum_spend": Decimal(200)},
    {"name": "Promo DOUBLE ×2", "kind": "MULTIPLIER", "value": Decimal(2), "stacking": "MULTIPLY", "priority": 70,
     "promo_code": "DOUBLE", "cap_per_order": 500},
]
DRAFT_RULE_SET = {"cap_day": 3000}


def random_lines(rng: random.Random) -> list[dict]:
    """1–4 lines, amounts ¥5–¥300."""
    lines = []
    for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
        sku, category = rng.choice(CATALOGUE)
        quantity = rng.choice((1, 1, 1, 2, 3))
        amount = (Decimal(rng.randint(500, 30000)) * CENT).quantize(CENT)
        lines.append({"sku": sku, "category": category, "quantity": quantity, "amount": amount})
    return lines


def random_time(rng: random.Random, start: dt.datetime, days: int) -> dt.datetime:
    """Opening hours 08:00–22:00 local on a random day."""
    day = start + dt.timedelta(days=rng.randrange(days))
    return day.replace(hour=rng.randint(8, 21), minute=rng.randrange(60), second=rng.randrange(60))


def random_payment(rng: random.Random, total: Decimal) -> tuple[int, Decimal, Decimal, Decimal]:
    """(points paid, their value at 100 points = ¥1, coupon discount, stored value paid)."""
    points, points_value, coupon, stored = 0, Decimal(0), Decimal(0), Decimal(0)
    roll = rng.random()
    if roll < 0.08 and total >= 20:
        points = rng.randint(1, int(total * 10)) * 10  # at most a tenth of the order
        points_value = (Decimal(points) / 100).quantize(CENT)
    elif roll < 0.15 and total >= 50:
        coupon = Decimal(rng.choice((5, 10, 20)))
    elif roll < 0.22:
        stored = (total * Decimal("0.5")).quantize(CENT)
    return points, points_value, coupon, stored


# ---- the ``rules`` suite --------------------------------------------------------------------------

TITLE = "Rule evaluation and backtest"


def run(ctx) -> str:
    """(a) rule evaluation per purchase, (b) backtest of 100,000 purchases; one table row per database."""
    from tests.bench.backtest import backtest_bench
    from tests.bench.database import server_version
    from tests.bench.evaluation import evaluation_bench
    from tests.bench.report import rules_section, table

    opts = ctx.options
    evaluations = 2_000 if ctx.quick else getattr(opts, "evaluations", 20_000)
    purchases = 5_000 if ctx.quick else getattr(opts, "purchases", 100_000)
    members = 500 if ctx.quick else getattr(opts, "members", 5_000)
    ctx.log(f"(a) {evaluations:,} rule evaluations …")
    evaluation = evaluation_bench(n=evaluations)
    ctx.log(f"(b) inserting {purchases:,} purchases of {members:,} members (bulk_create; no ledger rows: "
            "the backtest reads purchases only) …")
    backtest = backtest_bench(purchases=purchases, members=members)
    database = server_version()
    print("\n" + table(evaluation=evaluation, backtest=backtest, database=database), flush=True)
    ctx.record = ctx.record and purchases == 100_000  # only the 100,000-purchase figure is comparable
    return rules_section(evaluation=evaluation, backtest=backtest, database=database)
