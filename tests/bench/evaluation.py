"""(a) Rule evaluation per purchase: ``earn_evaluate`` over a compiled rule set of ten modifiers."""

import datetime as dt
import random
import statistics
import time
from decimal import Decimal

from loyalty.earning import Basket, CapUsage, Line, MemberFacts, earn_evaluate
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


def compiled_rules():
    from loyalty.models import Modifier, RuleSet
    from loyalty.rules import rule_set_compile

    rule_set = RuleSet(id=1, name="Bench draft", effective_from=dt.datetime(2025, 1, 1, tzinfo=TZ), **DRAFT_RULE_SET)
    modifiers = [Modifier(id=i, rule_set=rule_set, **m) for i, m in enumerate(DRAFT_MODIFIERS, start=1)]
    return rule_set_compile(rule_set, time_zone="Asia/Shanghai", modifiers=modifiers)


def cases(n: int, seed: int) -> list[tuple[Basket, MemberFacts, CapUsage]]:
    rng = random.Random(seed)
    start = dt.datetime(2025, 1, 1, tzinfo=TZ)
    out = []
    for _ in range(n):
        raw = random_lines(rng)
        lines = tuple(Line(sku=r["sku"], category=r["category"], quantity=r["quantity"], amount=r["amount"]) for r in raw)
        total = sum((line.amount for line in lines), Decimal(0))
        _points, points_value, coupon, stored = random_payment(rng, total)
        basket = Basket(total=total, lines=lines, occurred_at=random_time(rng, start, 365), store_code=rng.choice(STORES),
                        channel=rng.choice(("STORE", "STORE", "STORE", "APP", "ONLINE")), paid_with_points=points_value,
                        coupon_discount=coupon, stored_value_paid=stored,
                        promo_codes=frozenset({"DOUBLE"}) if rng.random() < 0.05 else frozenset())
        code, name, _rank, multiplier = rng.choice(TIERS)
        facts = MemberFacts(tier_code=code, tier_name=name, tier_multiplier=multiplier,
                            birthday=dt.date(1990, rng.randint(1, 12), 1) if rng.random() < 0.8 else None,
                            joined_on=dt.date(rng.randint(2019, 2024), rng.randint(1, 12), 1),
                            is_first_purchase=rng.random() < 0.02)
        usage = CapUsage(day=rng.choice((0, 0, 0, 200, 2900)), week=0, month=0)
        out.append((basket, facts, usage))
    return out


def evaluation_bench(*, n: int = 20_000, seed: int = 7) -> dict:
    rules = compiled_rules()
    work = cases(n, seed)
    for basket, facts, usage in work[:500]:  # warm-up
        earn_evaluate(rules=rules, basket=basket, member=facts, usage=usage)
    timings = []
    clock = time.perf_counter_ns
    fired = 0
    for basket, facts, usage in work:
        t0 = clock()
        result = earn_evaluate(rules=rules, basket=basket, member=facts, usage=usage)
        timings.append(clock() - t0)
        fired += sum(1 for s in result.breakdown["steps"] if s["type"] == "modifier")
    timings.sort()
    return {
        "evaluations": n,
        "modifiers": len(rules.modifiers),
        "lines": "1–4",
        "median_us": statistics.median(timings) / 1000,
        "mean_us": statistics.fmean(timings) / 1000,
        "p95_us": timings[int(len(timings) * 0.95)] / 1000,
        "fired_per_purchase": fired / n,
    }
