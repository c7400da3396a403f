"""``python -m tests.bench`` (``make bench``): rule evaluation per purchase and backtest time for 100,000
purchases, printed as a table and recorded in docs/benchmarks.md.

Uses DATABASE_URL like the rest of the project: PostgreSQL when it points to one (a separate database
``loyalty_bench`` on that server, created and dropped here), otherwise SQLite in a temporary file.
Options: ``--purchases N`` (default 100000), ``--members N`` (5000), ``--evaluations N`` (20000),
``--no-record`` (do not update docs/benchmarks.md).
"""

import argparse
import os
import sys

from tests.bench.database import bench_database_drop, bench_database_url


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=5_000)
    parser.add_argument("--evaluations", type=int, default=20_000)
    parser.add_argument("--no-record", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench")
    original = os.environ.get("DATABASE_URL", "")
    url, label, sqlite_file = bench_database_url(original)
    os.environ["DATABASE_URL"] = url
    try:
        import django

        django.setup()
        from django.core.management import call_command

        from tests.bench.backtest import backtest_bench
        from tests.bench.database import server_version
        from tests.bench.evaluation import evaluation_bench
        from tests.bench.report import machine, record, table

        print(f"bench: {machine()}; database: {label} (a separate bench database, dropped at the end)", flush=True)
        print(f"bench: (a) {args.evaluations:,} rule evaluations …", flush=True)
        evaluation = evaluation_bench(n=args.evaluations)
        print("bench: (b) migrating the bench database …", flush=True)
        call_command("migrate", verbosity=0, interactive=False)
        print(f"bench: (b) inserting {args.purchases:,} purchases of {args.members:,} members (bulk_create; "
              "no ledger rows: the backtest reads purchases only) …", flush=True)
        backtest = backtest_bench(purchases=args.purchases, members=args.members)
        database = server_version()
        print()
        print(table(evaluation=evaluation, backtest=backtest, database=database))
        if not args.no_record and args.purchases == 100_000:
            path = record(evaluation=evaluation, backtest=backtest, database=database)
            print(f"\nbench: figures recorded in {path}")
    finally:
        bench_database_drop(original, sqlite_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
