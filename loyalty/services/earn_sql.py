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

from django.db import connection
from django.utils import timezone

from loyalty.db import hot_fetch, insert_instance, insert_row
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


def earn_write_one_statement(*, purchase: Purchase, accounts: MemberAccounts, issuer: Account,
                             expires_at: dt.datetime | None, available_at: dt.datetime | None) -> Purchase | None:
    """Write ``purchase`` and its earn; None (nothing written) when the purchase's key or reference is taken.

    Preconditions (checked by the caller): no points paid, no tier change, the member's accounts locked.
    """
    ctes, params = [], []
    sql, p = insert_instance(purchase, refs={}, source=None)
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
        sql, p = insert_row(Transfer, {
            "debit_account_id": issuer.pk, "credit_account_id": target.pk, "amount": amount, "unit": issuer.unit,
            "code": TransferCode.EARN, "occurred_at": purchase.occurred_at,
            "idempotency_key": f"{purchase.idempotency_key}:earn", "source": TransferSource.PURCHASE,
            "member_id": accounts.member.pk, "breakdown": breakdown, "staff_user_id": purchase.staff_user_id,
        }, refs={"purchase_id": ("p.id", [])}, source="p")
        ctes.append(f"t AS ({sql} RETURNING id)")
        params += p
        sql, p = insert_row(Lot, {
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
        sql, p = insert_row(Event, {"type": EventType.POINTS_EARNED, "member_id": accounts.member.pk,
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

