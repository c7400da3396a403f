"""The ``api`` suite: ``POST /api/v1/purchases`` under gunicorn beside the same earn in raw SQL under pgbench.

PostgreSQL only. In the bench database: ten stores, four tiers, a published rule set with the eleven
modifiers of the rules suite (daily cap on), N members in bulk (``tests.bench.bulk``) and an API client with
the ``purchases:write`` scope. Then, in the same run on the same machine:

* **API**: gunicorn (``config.wsgi``; DEBUG off, a random secret key, persistent database connections,
  plain HTTP as behind a TLS-terminating proxy) on 127.0.0.1, loaded by ``wrk`` with a Lua script
  (C, event-driven: two load threads cost a fraction of a core, so the client is not the bottleneck) —
  or, without ``wrk``, by Python ``http.client`` keep-alive clients in several processes. Each request is a
  new purchase: a unique ``Idempotency-Key`` and external id, a random member, store and basket of 1–3
  lines. Every response must be 201; anything else is counted and shown.
* **pgbench**: the raw-SQL earn — lock the member's points account (``SELECT … FOR UPDATE``), insert a
  transfer and a lot, bump the account's posted credits — ``pgbench -n -f earn.sql -c C -j 2 -T D -M
  prepared``, durable commits (``synchronous_commit`` untouched).

Afterwards the rows are counted (every 201 wrote its purchase and transfer; every pgbench transaction its
transfer) and ``ledger_audit`` must be clean. SQL statements per API earn are counted with
``CaptureQueriesContext`` around requests through Django's test client on the same database.
"""

import datetime as dt
import json
import os
import random
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

TITLE = "Partner API earn: gunicorn vs pgbench"
ROOT = Path(__file__).resolve().parents[2]
TARGET_RATIO = 0.3
TARGET_P99_MS = 50.0
TARGET_QUERIES = 6
# gunicorn layouts tried (workers × threads; 1 thread = sync worker), the fastest at the first client count kept
LAYOUTS = ((4, 1), (2, 4), (3, 2))


# ---- the programme ------------------------------------------------------------------------------

def programme() -> dict:
    """Stores, tiers, the published rule set (eleven modifiers, daily cap) and the issuance account."""
    from loyalty.models import Modifier, RuleSet, RuleSetStatus, SystemAccount, Tier
    from loyalty.services.ledger import system_account
    from members.models import Store
    from tests.bench.rules import DRAFT_MODIFIERS, DRAFT_RULE_SET, STORES, TIERS, TZ

    stores = Store.objects.bulk_create([Store(code=code, name=f"Store {code}") for code in STORES])
    Tier.objects.bulk_create([
        Tier(code=code, name=name, rank=rank, earn_multiplier=multiplier, spend_threshold=Decimal(rank * 1000))
        for code, name, rank, multiplier in TIERS
    ])
    live = RuleSet.objects.create(name="Bench live rules", status=RuleSetStatus.PUBLISHED,
                                  effective_from=dt.datetime(2020, 1, 1, tzinfo=TZ), **DRAFT_RULE_SET)
    Modifier.objects.bulk_create([Modifier(rule_set=live, **m) for m in DRAFT_MODIFIERS])
    issuance = system_account(SystemAccount.ISSUANCE)
    return {"stores": [s.code for s in stores], "issuance": issuance.pk, "rule_set": live}


def api_key() -> str:
    from loyalty.models import ApiClient, Scope
    from loyalty.services.api_clients import api_client_create

    client, key = api_client_create(name="Bench POS", scopes=[Scope.PURCHASES_WRITE])
    # The rate limit stays on (counted in the per-process cache, as configured) but out of reach.
    ApiClient.objects.filter(pk=client.pk).update(rate_limit_per_minute=100_000_000)
    return key


# ---- requests -----------------------------------------------------------------------------------

def purchase_body(rng: random.Random, *, member_id: int, external_id: str, occurred_at: str) -> dict:
    from tests.bench.rules import CATALOGUE, STORES

    lines = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        sku, category = rng.choice(CATALOGUE)
        lines.append({"sku": sku, "category": category, "quantity": 1, "amount": f"{rng.randint(5, 300)}.{rng.randrange(100):02d}"})
    total = sum((Decimal(line["amount"]) for line in lines), Decimal(0))
    return {"member": {"id": member_id}, "store": rng.choice(STORES), "external_id": external_id,
            "occurred_at": occurred_at, "total": str(total), "lines": lines}


def queries_per_earn(*, key: str, member_ids: tuple[int, int], occurred_at: str, n: int = 5) -> dict:
    """SQL statements of one API earn through the WSGI application gunicorn serves (``config.wsgi``, with the earn
    fast lane), in this process; the first request warms per-process caches."""
    import io

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from config.wsgi import application

    rng = random.Random(5)
    counts, statements = [], []
    for i in range(n):
        payload = json.dumps(purchase_body(rng, member_id=rng.randint(*member_ids), external_id=f"Q-{i}",
                                           occurred_at=occurred_at)).encode()
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/purchases", "SCRIPT_NAME": "", "QUERY_STRING": "",
                   "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "443", "HTTP_HOST": "127.0.0.1",
                   "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(payload),
                   "wsgi.errors": sys.stderr, "CONTENT_LENGTH": str(len(payload)), "CONTENT_TYPE": "application/json",
                   "HTTP_AUTHORIZATION": f"Bearer {key}", "HTTP_IDEMPOTENCY_KEY": f"q-{i}", "REMOTE_ADDR": "127.0.0.1"}
        answer: dict = {}

        def start_response(status, headers, exc_info=None, answer=answer):
            answer["status"] = status

        with CaptureQueriesContext(connection) as captured:
            content = b"".join(application(environ, start_response))
        if not answer["status"].startswith("201"):
            raise RuntimeError(f"query count: POST /purchases answered {answer['status']}: {content[:300]!r}")
        counts.append(len(captured.captured_queries))
        statements = [q["sql"] for q in captured.captured_queries]
    control = sum(1 for sql in statements if re.match(r"\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b", sql, re.I))
    return {"first": counts[0], "steady": statistics.median(counts[1:]), "counts": counts, "statements": statements,
            "control": control, "written": n}


# ---- gunicorn -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    def __init__(self, *, database_url: str, workers: int, threads: int, log: Path):
        self.port = free_port()
        self.workers, self.threads = workers, threads
        env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_DEBUG": "false",
               "DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "DJANGO_SECURE_SSL_REDIRECT": "false",
               "DJANGO_CONN_MAX_AGE": "600", "DJANGO_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
        command = [str(ROOT / ".venv" / "bin" / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{self.port}",
                   "--workers", str(workers), "--backlog", "2048", "--keep-alive", "30", "--log-level", "warning",
                   "--worker-tmp-dir", "/dev/shm" if Path("/dev/shm").is_dir() else tempfile.gettempdir()]
        if threads > 1:
            command += ["--worker-class", "gthread", "--threads", str(threads)]
        self.log = log.open("ab")
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gunicorn did not start; see {log}")
            time.sleep(0.3)

    def drain(self) -> None:
        """Wait until the requests a load run left queued (its clients gone) are done, so the next run starts
        on an idle server: a health check answered means everything accepted before it was handled."""
        for _ in range(max(2, self.workers)):
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=300) as r:
                r.read()

    @property
    def layout(self) -> str:
        return f"{self.workers} sync workers" if self.threads == 1 else f"{self.workers} gthread workers × {self.threads} threads"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# ---- CPU per earn (Linux /proc; the server and PostgreSQL on this machine) --------------------------

def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_snapshot(server: "Gunicorn") -> dict[str, dict[int, float]]:
    """CPU seconds so far of the gunicorn master and workers, and of the PostgreSQL backends serving the
    bench database (other than this process's own connection)."""
    from django.db import connection

    app = [server.process.pid]
    try:
        app += [int(p) for p in Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()]
    except OSError:
        pass
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        backends = [row[0] for row in cursor.fetchall()]
    return {"app": {pid: _cpu_of(pid) for pid in app}, "db": {pid: _cpu_of(pid) for pid in backends}}


def cpu_per_earn(before: dict, after: dict, earns: int) -> tuple[float, float]:
    """(ms of gunicorn CPU, ms of PostgreSQL backend CPU) per earn between two snapshots."""
    def spent(kind: str) -> float:
        return sum(max(0.0, seconds - before[kind].get(pid, 0.0)) for pid, seconds in after[kind].items())
    if not earns:
        return 0.0, 0.0
    return spent("app") * 1000 / earns, spent("db") * 1000 / earns


# ---- load: wrk (preferred) or Python ------------------------------------------------------------

WRK_SCRIPT = r"""
-- POST /api/v1/purchases, each a new purchase. Arguments: key lo hi run occurred_at stores
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
local CATS = {"new", "coffee", "food", "merch", "service"}
function init(args)
  key, lo, hi, run, occurred = args[1], tonumber(args[2]), tonumber(args[3]), args[4], args[5]
  nstores = tonumber(args[6])
  math.randomseed(tid * 7919 + os.time())
  n, ok, bad, firstbad = 0, 0, 0, ""
  statuses = {}
end
function request()
  n = n + 1
  local ext = run .. "-" .. tid .. "-" .. n
  local parts, total = {}, 0
  for i = 1, ({1, 1, 2, 3})[math.random(4)] do
    local cents = math.random(500, 30099)
    total = total + cents
    local sku = math.random(0, 59)
    parts[i] = string.format('{"sku":"SKU%03d","category":"%s","quantity":1,"amount":"%d.%02d"}',
      sku, CATS[sku % 5 + 1], math.floor(cents / 100), cents % 100)
  end
  local body = string.format(
    '{"member":{"id":%d},"store":"S%02d","external_id":"%s","occurred_at":"%s","total":"%d.%02d","lines":[%s]}',
    math.random(lo, hi), math.random(1, nstores), ext, occurred, math.floor(total / 100), total % 100,
    table.concat(parts, ","))
  return wrk.format("POST", "/api/v1/purchases", {
    ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json", ["Idempotency-Key"] = ext,
  }, body)
end
function response(status, headers, body)
  if status == 201 then
    ok = ok + 1
  else
    bad = bad + 1
    statuses[status] = (statuses[status] or 0) + 1
    if firstbad == "" then firstbad = status .. " " .. string.sub(body, 1, 200) end
  end
end
function done(summary, latency, requests)
  local ok_total, bad_total, first = 0, 0, ""
  for _, t in ipairs(threads) do
    ok_total = ok_total + t:get("ok")
    bad_total = bad_total + t:get("bad")
    if first == "" then first = t:get("firstbad") end
  end
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"ok":%d,"bad":%d,"p50_us":%d,"p99_us":%d,' ..
    '"mean_us":%f,"max_us":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"first_bad":%q}\n',
    summary.requests, summary.duration, ok_total, bad_total, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.timeout, first))
end
"""


def wrk_run(*, port: int, clients: int, seconds: int, key: str, members: tuple[int, int], run: str,
            occurred_at: str, stores: int, workdir: Path) -> dict:
    script = workdir / "earn.lua"
    script.write_text(WRK_SCRIPT)
    threads = 2 if clients >= 2 else 1
    command = ["wrk", "-t", str(threads), "-c", str(clients), "-d", f"{seconds}s", "--timeout", "10s", "-s", str(script),
               f"http://127.0.0.1:{port}/api/v1/purchases", "--", key, str(members[0]), str(members[1]), run,
               occurred_at, str(stores)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    match = re.search(r"^WRKJSON (.*)$", out.stdout, re.M)
    if not match:
        raise RuntimeError(f"wrk failed: {out.stdout[-800:]} {out.stderr[-800:]}")
    raw = json.loads(match.group(1).replace("\\\n", "\\n"))
    socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return {"clients": clients, "seconds": raw["duration_us"] / 1e6, "requests": raw["requests"], "ok": raw["ok"],
            "errors": raw["bad"] + socket_errors, "first_error": raw["first_bad"] or (
                f"socket errors: {socket_errors}" if socket_errors else ""),
            "rps": raw["ok"] / (raw["duration_us"] / 1e6), "p50_ms": raw["p50_us"] / 1000, "p99_ms": raw["p99_us"] / 1000}


def _python_client(args) -> dict:  # pragma: no cover - runs in a worker process
    import http.client
    import threading

    port, threads, seconds, key, members, run, occurred_at, worker = args
    latencies, statuses, lock = [], {}, threading.Lock()
    deadline = time.monotonic() + seconds

    def client(tid: int) -> None:
        rng = random.Random(f"{run}-{worker}-{tid}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine, n = [], 0
        while time.monotonic() < deadline:
            n += 1
            ext = f"{run}-{worker}-{tid}-{n}"
            body = json.dumps(purchase_body(rng, member_id=rng.randint(*members), external_id=ext,
                                            occurred_at=occurred_at))
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/api/v1/purchases", body=body, headers={
                    "Authorization": f"Bearer {key}", "Content-Type": "application/json", "Idempotency-Key": ext})
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                status = 0
            mine.append((time.perf_counter() - t0, status))
        with lock:
            for latency, status in mine:
                latencies.append(latency)
                statuses[status] = statuses.get(status, 0) + 1

    pool = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return {"latencies": latencies, "statuses": statuses}


def python_run(*, port: int, clients: int, seconds: int, key: str, members: tuple[int, int], run: str,
               occurred_at: str, **_ignored) -> dict:
    import multiprocessing

    processes = min(clients, 4)
    share = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_python_client, [(port, n, seconds, key, members, run, occurred_at, w) for w, n in enumerate(share)])
    elapsed = time.perf_counter() - t0
    latencies = sorted(x for p in parts for x in p["latencies"])
    statuses: dict[int, int] = {}
    for p in parts:
        for status, count in p["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    ok = statuses.get(201, 0)
    return {"clients": clients, "seconds": seconds, "requests": len(latencies), "ok": ok, "errors": len(latencies) - ok,
            "first_error": ", ".join(f"{s}×{c}" for s, c in statuses.items() if s != 201), "rps": ok / seconds,
            "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else 0,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0, "wall": elapsed}


# ---- pgbench ------------------------------------------------------------------------------------

PGBENCH_SCRIPT = """\
\\set mid random(:lo, :hi)
\\set points random(5, 900)
BEGIN;
SELECT id AS acct FROM loyalty_account WHERE member_id = :mid AND kind = 'MEMBER_POINTS' AND unit = 'POINTS' FOR UPDATE \\gset
INSERT INTO loyalty_transfer (debit_account_id, credit_account_id, amount, unit, code, member_id, occurred_at, source, idempotency_key, fingerprint, reason, breakdown, created_at) VALUES (:issuance, :acct, :points, 'POINTS', 'EARN', :mid, now(), 'PURCHASE', 'pgbench:' || :client_id || ':' || gen_random_uuid(), '', '', '{"kind": "earn"}', now()) RETURNING id AS transfer \\gset
INSERT INTO loyalty_lot (account_id, transfer_id, amount, remaining, earned_at, expires_at, pending, available_at, created_at, updated_at) VALUES (:acct, :transfer, :points, :points, now(), now() + interval '2 years', false, now(), now(), now());
UPDATE loyalty_account SET credits_posted = credits_posted + :points, updated_at = now() WHERE id = :acct;
END;
"""


def pgbench_run(*, database_url: str, clients: int, seconds: int, members: tuple[int, int], issuance: int,
                workdir: Path) -> dict:
    parts = urlsplit(database_url)
    script = workdir / "earn.sql"
    script.write_text(PGBENCH_SCRIPT)
    logdir = workdir / f"pgbench-{clients}"
    shutil.rmtree(logdir, ignore_errors=True)
    logdir.mkdir()
    env = {**os.environ}
    if parts.password:
        env["PGPASSWORD"] = parts.password
    command = ["pgbench", "-n", "-f", str(script), "-c", str(clients), "-j", "2", "-T", str(seconds), "-M", "prepared",
               "-D", f"lo={members[0]}", "-D", f"hi={members[1]}", "-D", f"issuance={issuance}",
               "-l", "--log-prefix", str(logdir / "tx"),
               "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432), "-U", parts.username or "postgres",
               parts.path.lstrip("/")]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=seconds + 120)
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed: {out.stdout[-800:]} {out.stderr[-800:]}")
    latencies = []
    for path in logdir.iterdir():  # per transaction: client_id transaction_no time_us script_no epoch epoch_us
        for line in path.read_text().splitlines():
            latencies.append(int(line.split()[2]))
    latencies.sort()
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
    processed = int(re.search(r"number of transactions actually processed: (\d+)", out.stdout).group(1))
    return {"clients": clients, "seconds": seconds, "requests": processed, "ok": processed,
            "errors": int(failed.group(1)) if failed else 0, "first_error": "",
            "rps": float(tps.group(1)) if tps else processed / seconds,
            "p50_ms": latencies[len(latencies) // 2] / 1000 if latencies else 0,
            "p99_ms": latencies[int(len(latencies) * 0.99)] / 1000 if latencies else 0}


# ---- the suite ----------------------------------------------------------------------------------

def _server_cpu() -> str:
    return f"{os.cpu_count()} cores"


def run(ctx) -> str:
    from django.core.management import call_command
    from django.db import connection, connections

    from loyalty.models import IdempotencyRecord, IdempotencyState, Purchase, Transfer, TransferCode
    from tests.bench.bulk import members_bulk_create
    from tests.bench.runner import skipped_on_sqlite

    if not ctx.is_postgres:
        return skipped_on_sqlite(ctx)
    opts = ctx.options
    quick = ctx.quick
    n_members = 2_000 if quick else getattr(opts, "api_members", 100_000)
    seconds = 3 if quick else getattr(opts, "duration", 20)
    warmup = 2 if quick else 5
    trial = 2 if quick else 6
    client_counts = [int(c) for c in str(getattr(opts, "clients", "8,32")).split(",") if c.strip()]
    layouts = LAYOUTS
    if getattr(opts, "workers", ""):
        layouts = tuple(tuple(int(x) for x in item.split("x")) for item in opts.workers.split(","))
    loadgen = getattr(opts, "loadgen", "auto")
    if loadgen == "wrk" and not shutil.which("wrk"):
        raise RuntimeError("--loadgen wrk: wrk is not installed (apt-get install wrk)")
    load = wrk_run if loadgen == "wrk" or (loadgen == "auto" and shutil.which("wrk")) else python_run
    load_name = "wrk 4.1 (Lua script, 2 threads)" if load is wrk_run else "Python http.client (keep-alive, 4 processes)"

    ctx.log("programme: 10 stores, 4 tiers, a published rule set of 11 modifiers with a daily cap …")
    made = programme()
    t0 = time.perf_counter()
    ids = members_bulk_create(count=n_members, log=ctx.log)
    ctx.log(f"{n_members:,} members with their accounts in {time.perf_counter() - t0:.1f} s (bulk COPY)")
    if ids[-1] - ids[0] + 1 != len(ids):
        raise RuntimeError("bulk members are not numbered contiguously")
    members = (ids[0], ids[-1])
    key = api_key()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    occurred_at = dt.datetime.now(dt.UTC).replace(microsecond=0).astimezone(dt.timezone(dt.timedelta(hours=8)))
    occurred_at = (occurred_at - dt.timedelta(minutes=5)).isoformat()

    queries = queries_per_earn(key=key, member_ids=members, occurred_at=occurred_at)
    ctx.log(f"SQL statements per API earn: {queries['steady']:g}, {queries['control']} of them transaction control "
            f"(first request of the process: {queries['first']})")
    for sql in queries["statements"]:
        ctx.log(f"  {sql[:160]}")
    written = queries["written"]
    in_flight = 0  # requests a load run may leave unanswered when it stops: one per connection
    connections.close_all()

    workdir = Path(tempfile.mkdtemp(prefix="loyalty_bench_api_"))
    log = workdir / "gunicorn.log"
    api_rows: list[dict] = []
    tried: list[str] = []
    common = {"key": key, "members": members, "occurred_at": occurred_at, "stores": len(made["stores"]),
              "workdir": workdir}
    try:
        best = None
        if len(layouts) > 1:
            for workers, threads in layouts:
                server = Gunicorn(database_url=ctx.database_url, workers=workers, threads=threads, log=log)
                try:
                    written += load(port=server.port, clients=client_counts[0], seconds=warmup, run=f"w{workers}x{threads}",
                                    **common)["ok"]
                    in_flight += 2 * client_counts[0]
                    server.drain()
                    result = load(port=server.port, clients=client_counts[0], seconds=trial, run=f"t{workers}x{threads}",
                                  **common)
                    server.drain()
                    written += result["ok"]
                finally:
                    server.stop()
                tried.append(f"{server.layout}: {result['rps']:,.0f} req/s")
                ctx.log(f"trial {server.layout} at {client_counts[0]} clients: {result['rps']:,.0f} req/s, "
                        f"p99 {result['p99_ms']:.1f} ms, errors {result['errors']}")
                if best is None or result["rps"] > best[2]:
                    best = (workers, threads, result["rps"])
        else:
            best = (*layouts[0], 0)
        server = Gunicorn(database_url=ctx.database_url, workers=best[0], threads=best[1], log=log)
        layout = server.layout
        try:
            for clients in client_counts:
                written += load(port=server.port, clients=clients, seconds=warmup, run=f"warm{clients}", **common)["ok"]
                in_flight += 2 * clients
                server.drain()
                before = cpu_snapshot(server)
                result = load(port=server.port, clients=clients, seconds=seconds, run=f"api{clients}", **common)
                server.drain()
                result["cpu_app_ms"], result["cpu_db_ms"] = cpu_per_earn(before, cpu_snapshot(server), result["ok"])
                written += result["ok"]
                ctx.log(f"API@{clients}: {result['rps']:,.0f} req/s, p50 {result['p50_ms']:.1f} ms, "
                        f"p99 {result['p99_ms']:.1f} ms, non-201/errors {result['errors']} {result['first_error']}; "
                        f"CPU per earn: gunicorn {result['cpu_app_ms']:.1f} ms, PostgreSQL {result['cpu_db_ms']:.1f} ms")
                api_rows.append(result)
        finally:
            server.stop()
        pg_rows = []
        for clients in client_counts:
            pgbench_run(database_url=ctx.database_url, clients=clients, seconds=warmup, members=members,
                        issuance=made["issuance"], workdir=workdir)
            result = pgbench_run(database_url=ctx.database_url, clients=clients, seconds=seconds, members=members,
                                 issuance=made["issuance"], workdir=workdir)
            ctx.log(f"pgbench@{clients}: {result['rps']:,.0f} tps, p50 {result['p50_ms']:.2f} ms, "
                    f"p99 {result['p99_ms']:.2f} ms, failed {result['errors']}")
            pg_rows.append(result)
    finally:
        gunicorn_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        shutil.rmtree(workdir, ignore_errors=True)
    if "Traceback" in gunicorn_log:
        ctx.log(f"gunicorn logged errors:\n{gunicorn_log}")

    # Every earn the API answered wrote its purchase, its earn transfer and its stored answer (201); the
    # clients saw all but those still in flight when a load run stopped (at most one per connection).
    purchases = Purchase.objects.count()
    earning = Purchase.objects.filter(points_earned__gt=0).count()
    api_transfers = Transfer.objects.filter(code=TransferCode.EARN, purchase__isnull=False).count()
    answered = IdempotencyRecord.objects.filter(state=IdempotencyState.DONE, status_code=201).count()
    unfinished = IdempotencyRecord.objects.exclude(state=IdempotencyState.DONE, status_code=201).count()
    pg_transfers = Transfer.objects.filter(idempotency_key__startswith="pgbench:").count()
    counted_ok = (purchases == answered and api_transfers == earning and not unfinished
                  and written <= purchases <= written + in_flight)
    ctx.log(f"rows: {purchases:,} purchases, {answered:,} stored 201 answers ({unfinished} other), {written:,} 201s "
            f"seen by the clients (+ at most {in_flight} in flight at the end of runs); {api_transfers:,} API earn "
            f"transfers for {earning:,} purchases that earned; {pg_transfers:,} pgbench transfers")
    t0 = time.perf_counter()
    try:
        call_command("ledger_audit", verbosity=0)
        audit = "clean"
    except Exception as exc:  # CommandError: the problems were written to stderr
        audit = f"FAILED ({exc})"
    ctx.log(f"ledger_audit: {audit} ({time.perf_counter() - t0:.1f} s)")

    return section(ctx=ctx, api_rows=api_rows, pg_rows=pg_rows, queries=queries, layout=layout, tried=tried,
                   load_name=load_name, n_members=n_members, seconds=seconds, warmup=warmup, counted_ok=counted_ok,
                   purchases=purchases, written=written, pg_transfers=pg_transfers, audit=audit)


def section(*, ctx, api_rows, pg_rows, queries, layout, tried, load_name, n_members, seconds, warmup, counted_ok,
            purchases, written, pg_transfers, audit) -> str:
    from tests.bench.database import server_version
    from tests.bench.report import machine

    pg_by_clients = {r["clients"]: r for r in pg_rows}
    lines = ["| run | clients | throughput /s | p50 ms | p99 ms | non-201 / failed | API ÷ pgbench | CPU ms per earn: app + db |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    ratios = {}
    for r in api_rows:
        pg = pg_by_clients.get(r["clients"])
        ratio = r["rps"] / pg["rps"] if pg and pg["rps"] else 0.0
        ratios[r["clients"]] = ratio
        lines.append(f"| API `POST /purchases` | {r['clients']} | {r['rps']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                     f"{r['errors']:,} | {ratio:.2f}× | {r.get('cpu_app_ms', 0):.1f} + {r.get('cpu_db_ms', 0):.1f} |")
    for r in pg_rows:
        lines.append(f"| pgbench raw-SQL earn | {r['clients']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['errors']:,} | | |")
    first = api_rows[0] if api_rows else None
    ratio_ok = bool(ratios) and all(v >= TARGET_RATIO for v in ratios.values())
    p99_ok = first is not None and first["p99_ms"] < TARGET_P99_MS
    queries_ok = queries["steady"] <= TARGET_QUERIES
    errors = sum(r["errors"] for r in api_rows)
    verdict = "met" if ratio_ok and p99_ok and queries_ok and not errors else "NOT MET"
    clients0 = first["clients"] if first else 8
    text = [
        f"{dt.datetime.now(dt.UTC).date().isoformat()} · {machine()} · {server_version()} · "
        f"{n_members:,} members · gunicorn {layout} · load: {load_name} · {seconds} s a run after a {warmup} s warm-up"
        + (" · **quick run: not comparable**" if ctx.quick else ""),
        "",
        *lines,
        "",
        f"**Target** (≥ {TARGET_RATIO}× the pgbench earn rate, p99 < {TARGET_P99_MS:.0f} ms at {clients0} clients, "
        f"≤ {TARGET_QUERIES} SQL statements per earn): **{verdict}** — ratio "
        + ", ".join(f"{v:.2f}× at {c}" for c, v in ratios.items())
        + (f"; p99 {first['p99_ms']:.1f} ms at {clients0}" if first else "")
        + f"; {queries['steady']:g} SQL statements per API earn, {queries['control']} of them BEGIN/COMMIT/SAVEPOINT "
        f"(the first request of a process: {queries['first']}).",
        "",
        "CPU per earn: the gunicorn processes' and the bench database's PostgreSQL backends' CPU time during the "
        "measured run (/proc) divided by the earns; a machine busy with other work inflates it.",
        "",
        f"Checks: {purchases:,} purchases, each with its earn transfer and its stored 201 answer, for {written:,} "
        "201s seen by the load clients (runs stop with a few requests in flight) "
        + ("— every API earn written" if counted_ok else "— **MISMATCH**")
        + f", {pg_transfers:,} pgbench transfers; `ledger_audit` {audit}; API responses other than 201: {errors:,}.",
    ]
    if tried:
        text += ["", "gunicorn layouts tried at " + f"{clients0} clients (the fastest kept): " + "; ".join(tried) + "."]
    text += ["", f"<details><summary>The {len(queries['statements'])} SQL statements of one API earn</summary>", "",
             *[f"{n}. `{_statement_head(sql)}`" for n, sql in enumerate(queries["statements"], start=1)],
             "", "</details>"]
    return "\n".join(text)


def _statement_head(sql: str, width: int = 140) -> str:
    """The start of a statement, one line, without its values (they change on every run)."""
    sql = re.sub(r"\s+", " ", sql).replace("`", "'")
    sql = re.sub(r"'(?:[^']|'')*'", "'…'", sql)
    sql = re.sub(r"\b\d+\b", "N", sql)
    sql = re.sub(r"^SELECT (?:DISTINCT )?(\"[^()]{40,}?) FROM ", "SELECT … FROM ", sql)  # a long column list
    sql = re.sub(r"(INSERT INTO \"\w+\" )\([^()]{30,}?\)", r"\1(…)", sql)
    return sql if len(sql) <= width else sql[:width] + " …"


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run it with: python -m tests.bench api")
