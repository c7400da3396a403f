"""The earn hot path's fixed SQL on PostgreSQL, bound and prepared on the server.

Django's psycopg cursors bind parameters on the client (``ClientCursor``): every execution sends the whole
statement text with the values quoted in, and PostgreSQL parses and plans it again. The handful of statements
an earn runs (account lock, member figures, the one-statement write) have fixed texts, so they are sent with
server-side binding and prepared once per connection instead: after the first time only the values travel,
and PostgreSQL neither parses nor plans them again. See docs/decisions/0008-earn-fast-lane.md.

``DATABASE_PREPARED_STATEMENTS=false`` (environment) turns preparing off, for a pooler that does not keep
prepared statements (PgBouncer in transaction mode before 1.21); the binding stays server-side.

Statements run here are logged in ``connection.queries`` like any other when queries are being logged (DEBUG,
``CaptureQueriesContext``), so query counts in tests include them.
"""

import functools
import re
import time

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg.pq import ExecStatus


def hot_fetch(sql: str, params: list | tuple) -> list[tuple]:
    """Run one fixed statement (``%s`` placeholders) in the current transaction; its rows (empty if it returns none)."""
    db = connections[DEFAULT_DB_ALIAS]  # the wrapper itself: every access through the proxy costs a lookup
    db.ensure_connection()
    logged = db.queries_logged
    start = time.monotonic() if logged else 0.0
    with db.wrap_database_errors, psycopg.RawCursor(db.connection) as cursor:
        cursor.execute(_numbered(sql), params, prepare=settings.DATABASE_PREPARED_STATEMENTS)
        result = cursor.pgresult
        rows = cursor.fetchall() if result is not None and result.status == ExecStatus.TUPLES_OK else []
    if logged:
        db.queries_log.append({"sql": sql, "time": f"{time.monotonic() - start:.3f}"})
    return rows


@functools.lru_cache(maxsize=512)
def _numbered(sql: str) -> str:
    """``%s`` placeholders as PostgreSQL's ``$1, $2, …`` (a raw cursor sends the text as it is: psycopg does not
    parse it again on every execution, which it would for a long statement)."""
    numbers = iter(range(1, sql.count("%s") + 1))
    return re.sub(r"%(s|%)", lambda m: f"${next(numbers)}" if m.group(1) == "s" else "%", sql)
