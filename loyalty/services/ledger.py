"""Ledger primitives. Callers hold the member's account locks (``loyalty.locks``) and an atomic block."""

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import connection, models, transaction
from django.db.models import F, Q, Subquery
from django.utils import timezone

from loyalty.db import hot_fetch
from loyalty.exceptions import InsufficientPoints, LoyaltyError, MemberClosed, MemberFrozen, MemberNotFound
from loyalty.locks import POINTS_KINDS
from loyalty.models import (
    Account,
    AccountKind,
    ConfigVersion,
    Lot,
    MemberTier,
    SystemAccount,
    Tier,
    Transfer,
    Unit,
)
from members.models import Member, MemberStatus
from members.services import phone_normalise


@dataclass
class MemberAccounts:
    member: Member
    points: Account
    pending: Account
    config_token: str | None = None
    tier_state: MemberTier | None = None  # the member's tier record when the lock query found one

    @property
    def available(self) -> int:
        return max(0, self.points.balance)

    @property
    def debt(self) -> int:
        return max(0, -self.points.balance)


class LedgerInconsistent(LoyaltyError):
    """Cached figures disagree with lots: never expected; ``ledger_audit`` names the account."""

    code = "ledger_inconsistent"
    http_status = 500


def system_account(code: SystemAccount | str, unit: str = Unit.POINTS) -> Account:
    """The system account; every database has them from migration ``loyalty 0014``. One missing (a database
    emptied by hand or by a test) is created here, inside the caller's transaction."""
    account, _ = Account.objects.get_or_create(kind=AccountKind.SYSTEM, system_code=str(code), unit=unit)
    return account


@dataclass(frozen=True)
class MemberRef:
    """A member named by the caller (API): by id, phone or member number. Resolved inside the lock query."""

    id: int | None = None
    phone: str | None = None
    member_number: str | None = None

    def column_value(self) -> tuple[str, Any] | None:
        """The member column and value to look for; None when the reference cannot match anyone."""
        if self.id is not None:
            return "id", self.id
        if self.phone is not None:
            try:
                return "phone", phone_normalise(phone=self.phone)
            except ValidationError:
                return None
        if self.member_number is not None:
            return "member_number", self.member_number
        return None

    def lookup(self) -> Q | None:
        """The accounts filter (the ORM lock query); None when the reference cannot match anyone."""
        found = self.column_value()
        return Q(**{f"member__{found[0]}": found[1]}) if found is not None else None


def member_accounts_for_write(*, member: Member | MemberRef, require: str = "active") -> MemberAccounts:
    """Lock the member's points accounts (pk order) and check the member may do this. One query.

    The same statement reads the member (fresh: its status), the member's tier record and the
    configuration token (``loyalty.config``), so the earn path needs no separate look-ups.
    ``member``: a Member, or a ``MemberRef`` resolved here (unknown → ``MemberNotFound``).
    ``require``: "active" (earn, spend), "open" (not closed: staff adjustments), "any" (refunds).
    """
    if connection.vendor == "postgresql":
        found = member.column_value() if isinstance(member, MemberRef) else ("id", member.pk)
        if found is None:
            raise MemberNotFound()
        rows = _accounts_lock_pg(*found)
    else:
        lookup = member.lookup() if isinstance(member, MemberRef) else Q(member_id=member.pk)
        if lookup is None:
            raise MemberNotFound()
        rows = list(
            Account.objects.select_for_update(of=("self",)).select_related("member__tier_state__tier")
            .filter(lookup, kind__in=POINTS_KINDS)
            .annotate(config_token=Subquery(ConfigVersion.objects.filter(pk=1).values("token")[:1]))
            .order_by("pk")
        )
    locked = {a.kind: a for a in rows}
    if AccountKind.MEMBER_POINTS not in locked:
        raise MemberNotFound()
    fresh = locked[AccountKind.MEMBER_POINTS].member
    if require == "active" and fresh.status == MemberStatus.FROZEN:
        raise MemberFrozen()
    if require in ("active", "open") and fresh.status == MemberStatus.CLOSED:
        raise MemberClosed()
    if isinstance(member, Member):
        member.status = fresh.status
    else:
        member = fresh
    return MemberAccounts(member=member, points=locked[AccountKind.MEMBER_POINTS],
                          pending=locked[AccountKind.MEMBER_PENDING], config_token=rows[0].config_token,
                          tier_state=getattr(fresh, "tier_state", None) if _has_tier_state(fresh) else None)


_LOCK_JOIN = (Account, Member, MemberTier, Tier)


@functools.lru_cache(maxsize=4)
def _accounts_lock_sql(column: str) -> str:
    """The PostgreSQL text of the lock query of ``member_accounts_for_write`` (built once per process: the
    ORM would compile the same joins on every earn)."""
    q = connection.ops.quote_name
    select = ", ".join(f"{alias}.{q(f.column)}" for model, alias in zip(_LOCK_JOIN, ("a", "m", "mt", "t"), strict=True)
                       for f in model._meta.concrete_fields)
    table = {model: q(model._meta.db_table) for model in (*_LOCK_JOIN, ConfigVersion)}
    return (
        f"SELECT {select}, (SELECT token FROM {table[ConfigVersion]} WHERE id = 1) "
        f"FROM {table[Account]} a JOIN {table[Member]} m ON m.id = a.member_id "
        f"LEFT JOIN {table[MemberTier]} mt ON mt.member_id = m.id LEFT JOIN {table[Tier]} t ON t.id = mt.tier_id "
        f"WHERE m.{q(Member._meta.get_field(column).column)} = %s AND a.kind IN (%s, %s) ORDER BY a.id FOR UPDATE OF a"
    )


def _instance(model, values: list) -> models.Model | None:
    fields = model._meta.concrete_fields
    if values[0] is None:  # the LEFT JOIN found nothing
        return None
    converted = [f.from_db_value(v, None, connection) if hasattr(f, "from_db_value") else v
                 for f, v in zip(fields, values, strict=True)]
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


def _accounts_lock_pg(column: str, value: Any) -> list[Account]:
    """The rows of the lock query as the ORM's select_related would give them."""
    rows = hot_fetch(_accounts_lock_sql(column), [value, *POINTS_KINDS])
    sizes = [len(model._meta.concrete_fields) for model in _LOCK_JOIN]
    accounts, member = [], None
    for row in rows:
        parts, at = [], 0
        for size in sizes:
            parts.append(list(row[at:at + size]))
            at += size
        account = _instance(Account, parts[0])
        if member is None:
            member = _instance(Member, parts[1])
            state, tier = _instance(MemberTier, parts[2]), _instance(Tier, parts[3])
            if state is not None:
                state.tier = tier
                member.tier_state = state
            else:
                member._state.fields_cache["tier_state"] = None
        account.member = member
        account.config_token = row[-1]
        accounts.append(account)
    return accounts


def _has_tier_state(member: Member) -> bool:
    try:
        member.tier_state  # noqa: B018 — loaded by select_related; raises when there is none
    except ObjectDoesNotExist:
        return False
    return True


def _bump(account: Account, field: str, amount: int) -> None:
    if account.is_system:  # derived from transfers: no hot row
        return
    Account.objects.filter(pk=account.pk).update(**{field: F(field) + amount, "updated_at": timezone.now()})
    setattr(account, field, getattr(account, field) + amount)


def transfer_post(*, debit: Account, credit: Account, amount: int, code: str, occurred_at: dt.datetime,
                  idempotency_key: str, source: str, member: Member | None = None, breakdown: dict | None = None,
                  **fields: Any) -> Transfer:
    """Append one transfer and bump the cached figures of the member accounts it touches."""
    assert transaction.get_connection().in_atomic_block, "post transfers inside the caller's transaction"
    transfer = Transfer.objects.create(
        debit_account=debit, credit_account=credit, amount=amount, unit=debit.unit, code=code,
        occurred_at=occurred_at, idempotency_key=idempotency_key, source=source, member=member,
        breakdown=breakdown or {}, **fields,
    )
    _bump(debit, "debits_posted", amount)
    _bump(credit, "credits_posted", amount)
    return transfer


def points_credit(*, accounts: MemberAccounts, from_account: Account, amount: int, code: str, occurred_at: dt.datetime,
                  expires_at: dt.datetime | None, idempotency_key: str, available_at: dt.datetime | None = None,
                  breakdown: dict | None = None, **fields: Any) -> Transfer:
    """Credit points as a new lot; pending until ``available_at`` when that is later than ``occurred_at``.

    Points credited to a member in debt settle the debt first: the lot keeps only the rest.
    """
    pending = available_at is not None and available_at > occurred_at
    target = accounts.pending if pending else accounts.points
    settled = 0 if pending else min(amount, accounts.debt)
    breakdown = dict(breakdown or {})
    if settled:
        breakdown["debt_settled"] = settled
    transfer = transfer_post(
        debit=from_account, credit=target, amount=amount, code=code, occurred_at=occurred_at,
        idempotency_key=idempotency_key, member=accounts.member, breakdown=breakdown, **fields,
    )
    Lot.objects.create(
        account=target, transfer=transfer, amount=amount, remaining=amount - settled, earned_at=occurred_at,
        expires_at=expires_at, pending=pending, available_at=available_at if pending else occurred_at,
    )
    return transfer


def lots_consume(*, account: Account, amount: int, prefer_transfer_id: int | None = None,
                 pending: bool = False) -> tuple[list[list], int]:
    """Take ``amount`` from open lots: soonest-expiring first, then oldest, never-expiring last.

    Lots credited by ``prefer_transfer_id`` (a refunded purchase's own points) go first.
    Returns ``([[lot_id, taken, expires_at_iso], …], shortfall)``.
    """
    lots = list(
        Lot.objects.select_for_update()
        .filter(account=account, remaining__gt=0, pending=pending)
        .order_by(F("expires_at").asc(nulls_last=True), "earned_at", "id")
    )
    if prefer_transfer_id is not None:
        lots.sort(key=lambda lot: lot.transfer_id != prefer_transfer_id)  # stable: order kept otherwise
    consumed, changed, left = [], [], amount
    for lot in lots:
        if left == 0:
            break
        take = min(lot.remaining, left)
        lot.remaining -= take
        left -= take
        changed.append(lot)
        consumed.append([lot.pk, take, lot.expires_at.isoformat() if lot.expires_at else None])
    if changed:
        now = timezone.now()
        for lot in changed:
            lot.updated_at = now
        Lot.objects.bulk_update(changed, ["remaining", "updated_at"])
    return consumed, left


def points_debit(*, accounts: MemberAccounts, to_account: Account, amount: int, code: str, occurred_at: dt.datetime,
                 idempotency_key: str, allow_debt: bool = False, prefer_transfer_id: int | None = None,
                 breakdown: dict | None = None, **fields: Any) -> Transfer:
    """Debit available points (lots soonest-expiring first). Only refund clawbacks may create debt."""
    if amount > accounts.available and not allow_debt:
        raise InsufficientPoints(available=accounts.available, requested=amount)
    consumed, shortfall = lots_consume(
        account=accounts.points, amount=min(amount, accounts.available), prefer_transfer_id=prefer_transfer_id
    )
    if shortfall:
        raise LedgerInconsistent(f"lots of account {accounts.points.pk} do not cover its balance")
    breakdown = dict(breakdown or {})
    breakdown["lots"] = consumed
    debt_created = amount - min(amount, accounts.available)
    if debt_created:
        breakdown["debt_created"] = debt_created
    return transfer_post(
        debit=accounts.points, credit=to_account, amount=amount, code=code, occurred_at=occurred_at,
        idempotency_key=idempotency_key, member=accounts.member, breakdown=breakdown, **fields,
    )
