"""A plain earn as one SQL statement (PostgreSQL): purchase, transfer, lot, balance and outbox event.

``purchase_record`` decides everything in Python first (rules, tier, expiry, pending, debt) while it holds
the member's account lock; this module only writes the result, in one round trip, with data-modifying
CTEs. The purchase insert is ``ON CONFLICT DO NOTHING``: when its idempotency key or its (store, external
id) is already taken, nothing at all is written and the caller replays or refuses. Columns and values come
from the models' own fields (``get_db_prep_save``), so the statement follows the schema; the result is the
same rows ``transfer_post``/``points_credit``/``event_record`` would write (the tests compare both paths).
See docs/decisions/0006-earn-hot-path.md.
"""

import datetime as dt
import functools

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.utils import timezone

from loyalty.db import hot_fetch
from loyalty.models import (
    Account,
    Event,
    EventType,
    Lot,
    Purchase,
    Transfer,
    TransferCode,
    TransferSource,
)
from loyalty.services.ledger import MemberAccounts


@functools.lru_cache(maxsize=32)
def _insert_sql(model: type[models.Model], refs: tuple[tuple[str, str], ...], source: str | None,
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


def _insert_select(model_obj: models.Model, *, refs: dict[str, tuple[str, list]], source: str | None) -> tuple[str, list]:
    """``INSERT INTO <table> (<cols>) SELECT|VALUES …`` for an unsaved instance; ``refs`` maps a column to an
    SQL expression over ``source`` and its parameters (e.g. ``{"purchase_id": ("p.id", [])}``)."""
    sql, slots = _insert_sql(type(model_obj), tuple((k, e) for k, (e, _p) in refs.items()), source, connection.vendor)
    params, conn = [], connections[DEFAULT_DB_ALIAS]
    for slot in slots:
        if isinstance(slot, str):
            params += refs[slot][1]
        else:
            params.append(_reader(slot)(model_obj, conn))
    return sql, params


def _insert_row(model: type[models.Model], values: dict, *, refs: dict[str, tuple[str, list]], source: str | None
                ) -> tuple[str, list]:
    """The same for a row given as ``{attname: value}``, without building the instance: what is not given is the
    field's default (``auto_now``/``auto_now_add``: now), as ``Model(**values)`` and ``save()`` would have it."""
    sql, slots = _insert_sql(model, tuple((k, e) for k, (e, _p) in refs.items()), source, connection.vendor)
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


def earn_write_one_statement(*, purchase: Purchase, accounts: MemberAccounts, issuer: Account,
                             expires_at: dt.datetime | None, available_at: dt.datetime | None) -> Purchase | None:
    """Write ``purchase`` and its earn; None (nothing written) when the purchase's key or reference is taken.

    Preconditions (checked by the caller): no points paid, no tier change, the member's accounts locked.
    """
    ctes, params = [], []
    sql, p = _insert_select(purchase, refs={}, source=None)
    ctes.append(f"p AS ({sql} ON CONFLICT DO NOTHING RETURNING id)")
    params += p
    amount = purchase.points_earned
    if amount:
        pending = available_at is not None and available_at > purchase.occurred_at
        target = accounts.pending if pending else accounts.points
        settled = 0 if pending else min(amount, accounts.debt)
        breakdown = dict(purchase.earn_breakdown)
        if settled:
            breakdown["debt_settled"] = settled
        sql, p = _insert_row(Transfer, {
            "debit_account_id": issuer.pk, "credit_account_id": target.pk, "amount": amount, "unit": issuer.unit,
            "code": TransferCode.EARN, "occurred_at": purchase.occurred_at,
            "idempotency_key": f"{purchase.idempotency_key}:earn", "source": TransferSource.PURCHASE,
            "member_id": accounts.member.pk, "breakdown": breakdown, "staff_user_id": purchase.staff_user_id,
        }, refs={"purchase_id": ("p.id", [])}, source="p")
        ctes.append(f"t AS ({sql} RETURNING id)")
        params += p
        sql, p = _insert_row(Lot, {
            "account_id": target.pk, "amount": amount, "remaining": amount - settled, "earned_at": purchase.occurred_at,
            "expires_at": expires_at, "pending": pending, "available_at": available_at if pending else purchase.occurred_at,
        }, refs={"transfer_id": ("t.id", [])}, source="t")
        ctes.append(f"l AS ({sql} RETURNING id)")
        params += p
        bumped = [(target, "credits_posted")] + ([] if issuer.is_system else [(issuer, "debits_posted")])
        for i, (account, column) in enumerate(bumped):
            ctes.append(
                f"a{i} AS (UPDATE {Account._meta.db_table} SET {column} = {column} + %s, updated_at = %s "
                f"WHERE id = %s AND EXISTS (SELECT 1 FROM p))"
            )
            params += [amount, timezone.now(), account.pk]
        payload = Event._meta.get_field("payload").get_db_prep_save({
            "purchase": None, "store": purchase.store.code, "external_id": purchase.external_id, "points": amount,
            "pending": available_at is not None}, connection)
        sql, p = _insert_row(Event, {"type": EventType.POINTS_EARNED, "member_id": accounts.member.pk,
                                     "occurred_at": purchase.occurred_at}, source="p", refs={
            "payload": ("jsonb_set(%s::jsonb, '{purchase}', to_jsonb(p.id))", [payload])})
        params += p
        ctes.append(f"e AS ({sql} RETURNING id)")
    select = "SELECT p.id FROM p"
    rows = hot_fetch(f"WITH {', '.join(ctes)} {select}", params)
    if not rows:
        return None
    row = rows[0]
    purchase.pk = row[0]
    purchase._state.adding = False
    if amount:
        for account, column in bumped:
            setattr(account, column, getattr(account, column) + amount)
    return purchase

