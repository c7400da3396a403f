"""The bench runner: ``python -m tests.bench [SUITE ...]`` (``make bench BENCH="api batch"``).

Suites: ``rules`` (rule evaluation and backtest), ``api`` (POST /purchases under gunicorn beside the same
earn in raw SQL under pgbench), ``batch`` (POST /purchases/batch service throughput) and ``portal`` (portal
pages with a million members). No names: every suite. Each suite is a module ``tests/bench/<suite>.py``
with ``run(ctx: BenchContext) -> str``, returning a Markdown section body that the runner prints and
records in docs/benchmarks.md between ``<!-- bench:<suite> -->`` and ``<!-- /bench:<suite> -->``
(unless ``--no-record`` or ``--quick``).

The database is never yours: with a PostgreSQL DATABASE_URL, a separate ``loyalty_bench`` database on that
server (migrated once, restored from a template before every suite, dropped at the end); otherwise SQLite
in a temporary file. Every suite starts from an empty, migrated database.
"""

import argparse
import importlib
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

SUITES = ("rules", "api", "batch", "portal")


@dataclass
class BenchContext:
    database_url: str  # the bench database (also what a subprocess such as gunicorn must use)
    label: str  # "PostgreSQL" / "SQLite"
    vendor: str  # "postgresql" / "sqlite"
    quick: bool  # --quick: small sizes and short durations, a smoke run (never recorded)
    suite: str = ""
    options: argparse.Namespace = field(default_factory=argparse.Namespace)  # the command line, for suite options
    started: float = field(default_factory=time.perf_counter)
    record: bool = True  # the runner records the returned section; a suite may set False (e.g. a partial run)

    def log(self, msg: str) -> None:
        print(f"bench[{self.suite}] {time.perf_counter() - self.started:6.1f}s: {msg}", flush=True)

    @property
    def is_postgres(self) -> bool:
        return self.vendor == "postgresql"


def skipped_on_sqlite(ctx: BenchContext) -> str:
    """The one-line section of a suite that measures PostgreSQL only."""
    return (f"Skipped: this suite measures PostgreSQL only (this run used {ctx.label}). "
            "Run `DATABASE_URL=postgres://… make bench` to measure it.")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.splitlines()[0])
    p.add_argument("suites", nargs="*", metavar="SUITE", help=f"any of {', '.join(SUITES)} (default: all)")
    p.add_argument("--quick", action="store_true", help="small sizes and short durations; nothing is recorded")
    p.add_argument("--no-record", action="store_true", help="do not update docs/benchmarks.md")
    # rules
    p.add_argument("--purchases", type=int, default=100_000, help="rules: purchases in the backtest")
    p.add_argument("--members", type=int, default=5_000, help="rules: members in the backtest")
    p.add_argument("--evaluations", type=int, default=20_000, help="rules: rule evaluations timed")
    # api
    p.add_argument("--api-members", type=int, default=100_000, help="api: members created in bulk")
    p.add_argument("--duration", type=int, default=20, help="api: seconds per measured run (after a warm-up)")
    p.add_argument("--clients", default="8,32", help="api: concurrent clients, comma-separated")
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                   help="api: the load generator (auto: wrk when installed, else Python clients)")
    p.add_argument("--workers", default="", help="api: gunicorn worker layouts to try, e.g. '4x1,2x4' "
                                                 "(workers x threads); the fastest at the first client count is kept")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    suites = args.suites or list(SUITES)
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        print(f"bench: unknown suite {', '.join(unknown)}; choose from {', '.join(SUITES)}", file=sys.stderr)
        return 2

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench")
    from tests.bench.database import (
        bench_database_drop,
        bench_database_keep_template,
        bench_database_restore,
        bench_database_url,
        is_postgres,
    )

    original = os.environ.get("DATABASE_URL", "")
    url, label, sqlite_file = bench_database_url(original)
    os.environ["DATABASE_URL"] = url
    failed: list[str] = []
    try:
        import django

        django.setup()
        from django.core.management import call_command

        from tests.bench.report import machine, section_write

        ctx = BenchContext(database_url=url, label=label, vendor="postgresql" if is_postgres(url) else "sqlite",
                           quick=args.quick, options=args)
        record = not (args.no_record or args.quick)
        print(f"bench: {machine()}; database: {label} (a separate bench database, dropped at the end); "
              f"suites: {', '.join(suites)}{' (quick)' if args.quick else ''}", flush=True)
        t0 = time.perf_counter()
        call_command("migrate", verbosity=0, interactive=False)
        bench_database_keep_template(original, sqlite_file)
        print(f"bench: migrated in {time.perf_counter() - t0:.1f} s", flush=True)
        for n, name in enumerate(suites):
            if n:
                bench_database_restore(original, sqlite_file)
            ctx.suite, ctx.started, ctx.record = name, time.perf_counter(), record
            try:
                module = importlib.import_module(f"tests.bench.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"tests.bench.{name}":
                    raise
                print(f"bench[{name}]: not built yet (no tests/bench/{name}.py); skipped", flush=True)
                continue
            try:
                body = module.run(ctx)
            except Exception:  # one suite failing does not lose the others' figures
                traceback.print_exc()
                failed.append(name)
                continue
            print(f"\n## {getattr(module, 'TITLE', name)}\n\n{body.strip()}\n", flush=True)
            if ctx.record:
                path = section_write(suite=name, title=getattr(module, "TITLE", name), body=body)
                print(f"bench[{name}]: recorded in {Path(path).name}", flush=True)
    finally:
        bench_database_drop(original, sqlite_file)
    if failed:
        print(f"bench: FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
