"""A throwaway database for the benchmark, so it never touches the development or test data.

PostgreSQL (when DATABASE_URL points to one): a database named ``loyalty_bench`` on the same server,
created before and dropped after. Otherwise SQLite in a temporary file, with the project's settings.
Call ``bench_database_url`` before ``django.setup()``: settings read DATABASE_URL once.
"""

import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BENCH_DB_NAME = "loyalty_bench"


def is_postgres(url: str) -> bool:
    return urlsplit(url).scheme in ("postgres", "postgresql", "pgsql", "psql")


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _pg_admin(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(_with_db(url, "postgres").replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(statement)


def bench_database_url(original: str) -> tuple[str, str, Path | None]:
    """(bench DATABASE_URL, label, temporary SQLite file or None), the database created and empty."""
    if original and is_postgres(original):
        _pg_admin(original, f"DROP DATABASE IF EXISTS {BENCH_DB_NAME} WITH (FORCE)")
        _pg_admin(original, f"CREATE DATABASE {BENCH_DB_NAME}")
        return _with_db(original, BENCH_DB_NAME), "PostgreSQL", None
    fd, name = tempfile.mkstemp(prefix="loyalty_bench_", suffix=".sqlite3")
    os.close(fd)
    return f"sqlite:///{name}", "SQLite", Path(name)


def bench_database_drop(original: str, sqlite_file: Path | None) -> None:
    from django.db import connections

    connections.close_all()
    if sqlite_file is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sqlite_file}{suffix}").unlink(missing_ok=True)
    elif original and is_postgres(original):
        _pg_admin(original, f"DROP DATABASE IF EXISTS {BENCH_DB_NAME} WITH (FORCE)")


def server_version() -> str:
    from django.db import connection

    if connection.vendor == "postgresql":
        major, minor = divmod(connection.pg_version, 10000)
        return f"PostgreSQL {major}.{minor}"
    import sqlite3

    return f"SQLite {sqlite3.sqlite_version}"
