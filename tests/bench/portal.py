"""Portal bench (``python -m tests.bench portal``): server time of the member portal's home and history pages
with a million members in the database and one member with 10,000 points transfers, on PostgreSQL.

Setup: the catalogue side of the portal (tiers, a rule set, rewards, a lucky draw), 1,000,000 members in
bulk (tests/bench/bulk.py: rows exactly as enrolment makes them), then one member enrolled and activated
who gets 10,000 transfers through the real services (purchases with the rule set's breakdowns, and a
points redemption every tenth entry), spread over the last year in business-time order, so the ledger
audit stays clean. Measured with Django's test ``Client`` signed in as that member, in-process (no
network): the time from request to response, which covers middleware, session, queries and templates.
Each page is requested 20 times to warm up, then 200 times measured. ``--quick``: 10,000 members,
500 transfers, 30 requests.
"""

import datetime as dt
import re
import statistics
import time
from decimal import Decimal

TITLE = "Portal pages"


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _history_setup(*, member, store, transfers: int, now: dt.datetime, log) -> float:
    from django.db import transaction

    from loyalty.services import points_redeem, purchase_record

    t0 = time.perf_counter()
    start = now - dt.timedelta(days=360)
    step = dt.timedelta(days=359) / transfers
    batch = 250
    for first in range(0, transfers, batch):
        with transaction.atomic():
            for i in range(first, min(first + batch, transfers)):
                at = start + step * i
                if i % 10 == 9:
                    points_redeem(member=member, points=5, reason="Parking", now=at, idempotency_key=f"bench-r{i}")
                else:
                    purchase_record(member=member, store=store, external_id=f"BENCH-{i}", occurred_at=at,
                                    total=Decimal(30 + i % 170) + Decimal("0.50"), lines=None, points_to_pay=0,
                                    idempotency_key=None, now=at)
        if (first // batch) % 8 == 7:
            done = min(first + batch, transfers)
            log(f"  {done:,} of {transfers:,} transfers ({done / (time.perf_counter() - t0):.0f}/s)")
    return time.perf_counter() - t0


def _client_for(member):
    from django.contrib.auth.hashers import make_password
    from django.test import Client
    from django.utils import timezone

    from members.models import MemberLogin
    from members.portal import SESSION_EPOCH, SESSION_MEMBER

    login, _ = MemberLogin.objects.update_or_create(
        member=member, defaults={"password": make_password("Bench-Portal-1"), "activated_at": timezone.now()})
    client = Client()  # requests go secure=True: with DEBUG off plain http is redirected, as in production
    session = client.session
    session[SESSION_MEMBER] = member.pk
    session[SESSION_EPOCH] = login.session_epoch
    session.save()
    return client


def _deep_cursor(client, *, log) -> tuple[str, int]:
    """Follow the history's "more" links (as infinite scroll does) to the last page; its cursor and depth."""
    url, depth, cursor = "/portal/history/", 0, ""
    while True:
        response = client.get(url, secure=True, HTTP_HX_REQUEST="true") if cursor else client.get(url, secure=True)
        assert response.status_code == 200, (url, response.status_code)
        html = response.content.decode()
        found = re.search(r'after=([^"&]+)"', html)
        if not found:
            return cursor, depth
        depth += html.count('id="entry-')
        cursor = found.group(1)
        url = f"/portal/history/?after={cursor}"


def _measure(client, url: str, *, warmup: int, requests: int, htmx: bool = False) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    for _ in range(warmup):
        assert client.get(url, secure=True, **headers).status_code == 200, url
    times = []
    for _ in range(requests):
        t0 = time.perf_counter()
        response = client.get(url, secure=True, **headers)
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, secure=True, **headers)
    return {"p50": _p(times, 50), "p95": _p(times, 95), "max": max(times), "n": requests,
            "queries": len(queries), "kb": len(response.content) / 1024}


def run(ctx) -> str:
    from django.conf import settings
    from django.utils import timezone

    from loyalty.audit import ledger_audit_run
    from loyalty.models import Transfer
    from loyalty.services import member_enrol
    from tests.bench.bulk import members_bulk_create
    from tests.bench.runner import skipped_on_sqlite
    from tests.browser.data import program_setup

    if not ctx.is_postgres:
        return skipped_on_sqlite(ctx)
    members = 10_000 if ctx.quick else 1_000_000
    transfers = 500 if ctx.quick else 10_000
    warmup, requests = (5, 30) if ctx.quick else (20, 200)
    settings.DEBUG = False  # no query log in memory while measuring, as in production
    from django.test.utils import override_settings

    # Plain static files (no collectstatic manifest in a bench database), whatever DEBUG the settings started with.
    override_settings(STORAGES={**settings.STORAGES, "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}).enable()
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]

    program = program_setup()
    t0 = time.perf_counter()
    members_bulk_create(count=members, start=0, home_store_id=program.store.pk)
    seeded = time.perf_counter() - t0
    ctx.log(f"{members:,} members in bulk in {seeded:.1f} s")
    now = timezone.now()
    member = member_enrol(phone="+8613812345678", name="Bench Member", now=now - dt.timedelta(days=400),
                          home_store=program.store)
    ctx.log(f"{transfers:,} transfers for one member through the services …")
    history_s = _history_setup(member=member, store=program.store, transfers=transfers, now=now, log=ctx.log)
    made = Transfer.objects.filter(member=member).count()
    ctx.log(f"{made:,} transfers in {history_s:.0f} s")
    if ctx.quick:
        problems = ledger_audit_run()
        assert not problems, problems
        ctx.log("ledger audit clean")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    client = _client_for(member)
    cursor, depth = _deep_cursor(client, log=ctx.log)
    ctx.log(f"history is {depth:,} entries deep to its last page")
    pages = [
        ("Home (`/portal/`)", "/portal/", False),
        ("History, first page (`/portal/history/`)", "/portal/history/", False),
        (f"History, last page by infinite scroll (HTMX, after {depth:,} entries)", f"/portal/history/?after={cursor}",
         True),
    ]
    rows = []
    for label, url, htmx in pages:
        ctx.log(f"measuring {label} …")
        rows.append((label, _measure(client, url, warmup=warmup, requests=requests, htmx=htmx)))
    lines = [
        f"{ctx.label}, {members:,} members, one member with {made:,} points transfers (through the services: "
        f"purchases with rule breakdowns, a redemption every tenth). Server time in-process (Django test `Client`, "
        f"signed in; middleware, session, queries and templates, no network), {requests} requests per page after "
        f"{warmup} to warm up.",
        "",
        "| page | p50 ms | p95 ms | max ms | queries | HTML KB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {label} | {r['p50']:.1f} | {r['p95']:.1f} | {r['max']:.1f} | {r['queries']} | {r['kb']:.1f} |"
              for label, r in rows]
    first, deep = rows[1][1], rows[2][1]
    lines += ["", f"Seeding: {members:,} members in {seeded:.0f} s (bulk COPY), the member's history in "
              f"{history_s:.0f} s ({made / history_s:.0f} transfers/s through the services). The history's last page "
              f"takes {deep['p95'] / first['p95']:.2f}× the first page's p95 with {deep['queries']} queries against "
              f"{first['queries']} on the first (keyset pages)."]
    return "\n".join(lines)
