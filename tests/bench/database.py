"""A throwaway database for the benchmark, so it never touches the development or test data.

PostgreSQL (when DATABASE_URL points to one): a database named ``loyalty_bench`` on the same server,
created before and dropped after. Otherwise SQLite in a temporary file, with the project's settings.
Call ``bench_database_url`` before ``django.setup()``: settings read DATABASE_URL once.

Each suite starts from the same freshly migrated, empty database: the runner migrates once, keeps that
state as a template (``loyalty_bench_template`` on PostgreSQL, a copy of the file on SQLite) and restores it
before every suite with ``bench_database_restore``.
"""

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# LOYALTY_BENCH_DB names another bench database, so that two bench runs on one server do not collide.
BENCH_DB_NAME = os.environ.get("LOYALTY_BENCH_DB", "loyalty_bench")
TEMPLATE_DB_NAME = f"{BENCH_DB_NAME}_template"


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
        _pg_admin(original, f"DROP DATABASE IF EXISTS {TEMPLATE_DB_NAME} WITH (FORCE)")
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
        Path(f"{sqlite_file}.template").unlink(missing_ok=True)
    elif original and is_postgres(original):
        _pg_admin(original, f"DROP DATABASE IF EXISTS {BENCH_DB_NAME} WITH (FORCE)")
        _pg_admin(original, f"DROP DATABASE IF EXISTS {TEMPLATE_DB_NAME} WITH (FORCE)")


def bench_database_keep_template(original: str, sqlite_file: Path | None) -> None:
    """Keep the migrated, empty bench database as the starting point of every suite."""
    from django.db import connections

    connections.close_all()
    if sqlite_file is not None:
        shutil.copyfile(sqlite_file, f"{sqlite_file}.template")
    else:
        _pg_admin(original, f"DROP DATABASE IF EXISTS {TEMPLATE_DB_NAME} WITH (FORCE)")
        _pg_admin(original, f"CREATE DATABASE {TEMPLATE_DB_NAME} TEMPLATE {BENCH_DB_NAME}")


def bench_database_restore(original: str, sqlite_file: Path | None) -> None:
    """Put the bench database back to the migrated, empty template (closing Django's connections)."""
    from django.db import connections

    connections.close_all()
    if sqlite_file is not None:
        for suffix in ("-wal", "-shm"):
            Path(f"{sqlite_file}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(f"{sqlite_file}.template", sqlite_file)
    else:
        _pg_admin(original, f"DROP DATABASE IF EXISTS {BENCH_DB_NAME} WITH (FORCE)")
        _pg_admin(original, f"CREATE DATABASE {BENCH_DB_NAME} TEMPLATE {TEMPLATE_DB_NAME}")


def server_version() -> str:
    from django.db import connection

    if connection.vendor == "postgresql":
        major, minor = divmod(connection.pg_version, 10000)
        return f"PostgreSQL {major}.{minor}"
    import sqlite3

    return f"SQLite {sqlite3.sqlite_version}"
