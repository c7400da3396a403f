"""Batch bench (``python -m tests.bench batch``): purchases per second through ``purchases_record_batch`` in
batches of 1,000, and the same through ``POST /api/v1/purchases/batch`` with Django's test client
(in-process: authentication, idempotency record, validation, service, response; no network).

Setup: a rule set with modifiers and member caps (so the engine and the cap look-ups do real work), three
tiers whose thresholds the bench purchases stay below, members in bulk (tests/bench/bulk.py), one store.
Each batch names 1,000 purchases of members drawn at random (some members twice in a batch), with two lines
each. Target: at least 10,000 purchases per second through the service on PostgreSQL. ``--quick``: 5,000
purchases through the service and 2,000 through the API.
"""

import datetime as dt
import os
import random
import statistics
import time
from decimal import Decimal

TITLE = "Purchases in batches"
BATCH = 1000


def _setup(*, members: int, log):
    from loyalty.models import Modifier, RuleSet, RuleSetStatus, Tier, TierPolicy
    from loyalty.services import program_settings_get
    from members.models import Store
    from tests.bench.bulk import members_bulk_create

    program_settings_get()
    rule_set = RuleSet.objects.create(
        name="Bench", status=RuleSetStatus.PUBLISHED, effective_from=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        earn_points=1, earn_spend=Decimal("1"), cap_day=5000)
    Modifier.objects.create(rule_set=rule_set, name="Drinks ×2", kind="MULTIPLIER", value=Decimal("2"),
                            stacking="MULTIPLY", priority=1, categories=["drinks"])
    Modifier.objects.create(rule_set=rule_set, name="Weekend bonus", kind="BONUS", value=Decimal("20"),
                            stacking="ADD", priority=2, weekdays=[6, 7])
    Tier.objects.create(code="BASIC", name="Basic", rank=0, spend_threshold=Decimal("0"))
    Tier.objects.create(code="SILVER", name="Silver", rank=1, spend_threshold=Decimal("50000"),
                        earn_multiplier=Decimal("1.2"))
    Tier.objects.create(code="GOLD", name="Gold", rank=2, spend_threshold=Decimal("200000"),
                        earn_multiplier=Decimal("1.5"))
    TierPolicy.objects.update_or_create(pk=1, defaults={})
    store = Store.objects.create(code="BENCH", name="Bench store")
    ids = members_bulk_create(count=members, events=False, log=log)
    return store, ids


def _items(rng: random.Random, *, ids: list[int], start: int, now: dt.datetime) -> list[dict]:
    out = []
    for i in range(start, start + BATCH):
        cents = rng.randint(500, 30000)
        drinks = rng.randint(0, cents)
        out.append({
            "member": {"id": rng.choice(ids)}, "store": "BENCH", "external_id": f"B{i:08d}",
            "occurred_at": now - dt.timedelta(minutes=rng.randint(1, 60 * 24 * 6)),
            "total": str(Decimal(cents) / 100),
            "lines": [{"sku": "LATTE", "category": "drinks", "quantity": 1, "amount": str(Decimal(drinks) / 100)},
                      {"sku": "BAGEL", "category": "bakery", "quantity": 1, "amount": str(Decimal(cents - drinks) / 100)}],
        })
    return out


def _rate(seconds: list[float]) -> tuple[float, float, float]:
    total = sum(seconds)
    p50 = statistics.median(seconds) * 1000
    p95 = (statistics.quantiles(seconds, n=20)[-1] if len(seconds) >= 2 else seconds[0]) * 1000
    return BATCH * len(seconds) / total, p50, p95


def run(ctx) -> str:
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from loyalty.audit import ledger_audit_run
    from loyalty.models import Purchase, Scope
    from loyalty.services.api_clients import api_client_create
    from loyalty.services.purchases_batch import purchases_record_batch

    settings.DEBUG = False  # no query log in memory while measuring, as in production
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    service_n = 5_000 if ctx.quick else 100_000
    api_n = 2_000 if ctx.quick else 20_000
    members = 2_000 if ctx.quick else 20_000
    rng = random.Random(5)
    now = dt.datetime.now(dt.UTC)
    ctx.log(f"setup: {members:,} members in bulk, rules, tiers …")
    _store, ids = _setup(members=members, log=ctx.log)

    ctx.log(f"service: {service_n:,} purchases in batches of {BATCH:,} …")
    load = os.getloadavg()[0]  # other work on the machine slows both this process and PostgreSQL
    service_times, statuses, queries, fallback = [], {"created": 0, "duplicate": 0, "error": 0}, [], 0
    cpu_times = []  # this process's CPU per batch: the rest of a batch's time is spent waiting on PostgreSQL
    for start in range(0, service_n, BATCH):
        items = _items(rng, ids=ids, start=start, now=now)
        with CaptureQueriesContext(connection) as captured:
            t0, c0 = time.perf_counter(), time.process_time()
            results = purchases_record_batch(items=items, now=dt.datetime.now(dt.UTC))
            service_times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
        queries.append(len(captured))
        for r in results:
            statuses[r.status] += 1
            fallback += r.fallback
    service_rate, service_p50, service_p95 = _rate(service_times)
    ctx.log(f"service: {service_rate:,.0f} purchases/s (batch p50 {service_p50:.0f} ms)")

    ctx.log("replay: the first 10 batches again (every item a duplicate) …")
    replay_times = []
    for start in range(0, min(service_n, 10 * BATCH), BATCH):
        items = _items(random.Random(start), ids=ids, start=start, now=now)
        t0 = time.perf_counter()
        replayed = purchases_record_batch(items=items, now=dt.datetime.now(dt.UTC))
        replay_times.append(time.perf_counter() - t0)
        assert all(r.status == "duplicate" for r in replayed)
    replay_rate, _p50, _p95 = _rate(replay_times)

    ctx.log(f"api: {api_n:,} purchases through POST /api/v1/purchases/batch (test client) …")
    _client, key = api_client_create(name="Bench batch", scopes=[Scope.PURCHASES_WRITE])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    from loyalty.models import ApiClient
    ApiClient.objects.filter(pk=_client.pk).update(rate_limit_per_minute=0)
    api_times = []
    for start in range(service_n, service_n + api_n, BATCH):
        items = _items(rng, ids=ids, start=start, now=now)
        for item in items:
            item["occurred_at"] = item["occurred_at"].isoformat()
        t0 = time.perf_counter()
        response = client.post("/api/v1/purchases/batch", {"purchases": items}, content_type="application/json", secure=True,
                               HTTP_IDEMPOTENCY_KEY=f"bench-{start}")
        api_times.append(time.perf_counter() - t0)
        assert response.status_code == 200, (response.status_code, response.content[:500])
        assert response.json()["created"] == BATCH, response.content[:500]
    api_rate, api_p50, api_p95 = _rate(api_times)
    ctx.log(f"api: {api_rate:,.0f} purchases/s")

    ctx.log("ledger audit …")
    problems = ledger_audit_run()
    recorded = Purchase.objects.count()
    verdict = "meets" if service_rate >= 10_000 else "misses"
    return "\n".join([
        f"{service_n:,} purchases through the service and {api_n:,} through the API, in batches of {BATCH:,}, "
        f"{members:,} members, on {ctx.label}.",
        "",
        "| Path | Purchases | Purchases/s | Batch p50 | Batch p95 |",
        "|---|---:|---:|---:|---:|",
        f"| `purchases_record_batch` (service) | {service_n:,} | {service_rate:,.0f} | {service_p50:.0f} ms | "
        f"{service_p95:.0f} ms |",
        f"| same batches again (all duplicates) | {len(replay_times) * BATCH:,} | {replay_rate:,.0f} | | |",
        f"| `POST /api/v1/purchases/batch` (test client) | {api_n:,} | {api_rate:,.0f} | {api_p50:.0f} ms | "
        f"{api_p95:.0f} ms |",
        "",
        f"Results: {statuses['created']:,} created, {statuses['duplicate']:,} duplicates, {statuses['error']:,} "
        f"errors; {recorded:,} purchases in the database; SQL statements per batch of 1,000: "
        f"{min(queries)}–{max(queries)}; Python CPU per batch (p50): {statistics.median(cpu_times) * 1000:.0f} ms, "
        f"the rest of the batch waits on PostgreSQL (load average when the service run started: {load:.1f}); "
        f"ledger audit: "
        f"{'clean' if not problems else f'{len(problems)} problems'}. "
        f"The service {verdict} the target of 10,000 purchases/s"
        f"{' (the target is set for PostgreSQL)' if not ctx.is_postgres else ''}. Purchases that fell back to "
        f"`purchase_record` (members the batch could lift to a higher tier): {fallback:,}.",
    ])
