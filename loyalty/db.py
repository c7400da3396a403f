"""The earn hot path's fixed SQL on PostgreSQL, bound and prepared on the server.

Django's psycopg cursors bind parameters on the client (``ClientCursor``): every execution sends the whole
statement text with the values quoted in, and PostgreSQL parses and plans it again. The handful of statements
an earn runs (account lock, member figures, the one-statement write) have fixed texts, so they are sent with
server-side binding and prepared once per connection instead: after the first time only the values travel,
and PostgreSQL neither parses nor plans them again. See docs/decisions/0008-earn-fast-lane.md.

``DATABASE_PREPARED_STATEMENTS=false`` (environment) turns preparing off, for a pooler that does not keep
prepared statements (PgBouncer in transaction mode before 1.21); the binding stays server-side.

``insert_instance`` / ``insert_row`` build the ``INSERT`` of a model row from the model's own fields (the text once
per process), for the one-statement earn write (loyalty/services/earn_sql.py) and the fast lane's idempotency record.

Statements run here are logged in ``connection.queries`` like any other when queries are being logged (DEBUG,
``CaptureQueriesContext``), so query counts in tests include them.
"""

import functools
import re
import time

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.utils import timezone
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


# ---- INSERT statements that follow the models (columns and values from the fields) --------------------

@functools.lru_cache(maxsize=32)
def insert_sql(model: type[models.Model], refs: tuple[tuple[str, str], ...], source: str | None,
                vendor: str) -> tuple[str, tuple[models.Field | str, ...]]:
    """The statement text for ``model`` (built once per process) and, per value slot, the field whose
    value goes there or the attname of a ``refs`` expression."""
    expressions = dict(refs)
    columns, values, slots = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.attname in expressions:
            values.append(expressions[field.attname])
            slots.append(field.attname)
            continue
        values.append(f"%s::{field.cast_db_type(connection)}" if source else "%s")
        slots.append(field)
    head = f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({', '.join(columns)})"
    body = f"SELECT {', '.join(values)} FROM {source}" if source else f"VALUES ({', '.join(values)})"
    return f"{head} {body}", tuple(slots)


def insert_instance(model_obj: models.Model, *, refs: dict[str, tuple[str, list]], source: str | None) -> tuple[str, list]:
    """``INSERT INTO <table> (<cols>) SELECT|VALUES …`` and its parameters for an unsaved instance; ``refs`` maps a column to an
    SQL expression over ``source`` and its parameters (e.g. ``{"purchase_id": ("p.id", [])}``)."""
    sql, slots = insert_sql(type(model_obj), tuple((k, e) for k, (e, _p) in refs.items()), source, connection.vendor)
    params, conn = [], connections[DEFAULT_DB_ALIAS]
    for slot in slots:
        if isinstance(slot, str):
            params += refs[slot][1]
        else:
            params.append(_reader(slot)(model_obj, conn))
    return sql, params


def insert_row(model: type[models.Model], values: dict, *, refs: dict[str, tuple[str, list]], source: str | None
                ) -> tuple[str, list]:
    """The same for a row given as ``{attname: value}``, without building the instance: what is not given is the
    field's default (``auto_now``/``auto_now_add``: now), as ``Model(**values)`` and ``save()`` would have it."""
    sql, slots = insert_sql(model, tuple((k, e) for k, (e, _p) in refs.items()), source, connection.vendor)
    params, conn, now = [], connections[DEFAULT_DB_ALIAS], timezone.now()
    for slot in slots:
        if isinstance(slot, str):
            params += refs[slot][1]
            continue
        if getattr(slot, "auto_now", False) or getattr(slot, "auto_now_add", False):
            value = now
        else:
            value = values[slot.attname] if slot.attname in values else slot.get_default()
        params.append(slot.get_db_prep_save(value, conn) if isinstance(slot, models.JSONField) else value)
    return sql, params


# Fields whose Python value is already what psycopg sends: read as they are (``get_db_prep_save`` for these
# only converts what the caller already holds, at a cost per field that the earn pays ~60 times).
_PLAIN = (models.CharField, models.TextField, models.IntegerField, models.BooleanField, models.ForeignKey,
          models.DecimalField)  # Decimal in, Decimal out: PostgreSQL takes it as it is


@functools.cache
def _reader(field: models.Field):
    """How to read ``field``'s database value off an unsaved instance, chosen once per field."""
    if isinstance(field, _PLAIN) or (isinstance(field, models.DateTimeField)
                                     and not (field.auto_now or field.auto_now_add)):
        attname = field.attname
        return lambda obj, conn: getattr(obj, attname)
    return lambda obj, conn: field.get_db_prep_save(field.pre_save(obj, add=True), conn)
