"""Scheduled ledger work: expiry, yearly clearance, pending → spendable.

Each batch is its own transaction and locks member accounts first (pk order), then their lots, the
same order as every other write. A killed run leaves whole batches done; a rerun picks up the rest
and finds nothing to do when all is done.
"""

import datetime as dt
from collections import defaultdict

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from loyalty.locks import accounts_lock
from loyalty.models import (
    Account,
    AccountKind,
    Event,
    EventType,
    ExpiryPolicy,
    Lot,
    SystemAccount,
    Transfer,
    TransferCode,
    TransferSource,
)
from loyalty.models import end_of_local_day as _end_of_day
from loyalty.services.ledger import system_account
from loyalty.services.program import program_settings_get


def accounts_bump_many(field: str, amounts: dict[int, int]) -> None:
    """One UPDATE for many accounts: ``field += amounts[pk]``."""
    if not amounts:
        return
    Account.objects.filter(pk__in=list(amounts)).update(**{
        field: F(field) + Case(*[When(pk=pk, then=Value(n)) for pk, n in amounts.items()], default=Value(0)),
        "updated_at": timezone.now(),
    })


def lots_in_batches(candidates, *, batch_size: int, work) -> int:
    """Run ``work(lot_ids)`` per batch of due lot ids until none are left; each batch one transaction."""
    done = 0
    last_id = 0
    while True:
        ids = list(candidates.filter(pk__gt=last_id).order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return done
        last_id = ids[-1]
        with transaction.atomic():
            done += work(ids)


def points_expire_due(*, now: dt.datetime, cutoff: dt.datetime | None = None, batch_size: int | None = None) -> int:
    """Expire every available lot with points left whose expiry is at or before ``cutoff`` (default ``now``).

    One EXPIRE transfer per lot, moving its remaining points to the breakage account. Returns lots expired.
    """
    cutoff = cutoff or now
    batch_size = batch_size or settings.LOYALTY_BATCH_SIZE
    breakage = system_account(SystemAccount.BREAKAGE)
    # Points lots only: stored-value bonus lots expire through the wallet's own job, into its own account.
    due = Lot.objects.filter(remaining__gt=0, pending=False, expires_at__lte=cutoff, account__kind=AccountKind.MEMBER_POINTS)

    def work(ids: list[int]) -> int:
        account_ids = set(Lot.objects.filter(pk__in=ids).values_list("account_id", flat=True))
        accounts = accounts_lock(ids=account_ids)
        lots = list(due.filter(pk__in=ids).select_for_update().order_by("pk"))  # re-check under the lock
        if not lots:
            return 0
        transfers, debits = [], defaultdict(int)
        for lot in lots:
            account = accounts[lot.account_id]
            transfers.append(Transfer(
                debit_account_id=lot.account_id, credit_account=breakage, amount=lot.remaining, unit=account.unit,
                code=TransferCode.EXPIRE, member_id=account.member_id, occurred_at=max(lot.expires_at, lot.earned_at),
                source=TransferSource.SCHEDULE, idempotency_key=f"expire:{lot.pk}",
                breakdown={"kind": "expire", "lot": lot.pk, "earned_at": lot.earned_at.isoformat(),
                           "expires_at": lot.expires_at.isoformat()},
            ))
            debits[lot.account_id] += lot.remaining
        Transfer.objects.bulk_create(transfers)
        Event.objects.bulk_create([
            Event(type=EventType.POINTS_EXPIRED, member_id=accounts[lot.account_id].member_id, occurred_at=t.occurred_at,
                  payload={"lot": lot.pk, "points": t.amount, "earned_at": lot.earned_at.isoformat()})
            for lot, t in zip(lots, transfers, strict=True)
        ])
        Lot.objects.filter(pk__in=[lot.pk for lot in lots]).update(remaining=0, updated_at=timezone.now())
        accounts_bump_many("debits_posted", debits)
        return len(lots)

    return lots_in_batches(due, batch_size=batch_size, work=work)


def points_clearance_run(*, now: dt.datetime, batch_size: int | None = None) -> int:
    """Yearly clearance (年底清零): on the clearance date, expire what expires by the end of that day.

    Lots earned under a yearly policy expire at the end of the clearance date of the next year, so
    running on 31 Dec 2027 clears the points earned in 2026. Any other day it does nothing.
    """
    program = program_settings_get()
    if program.expiry_policy != ExpiryPolicy.YEARLY:
        return 0
    today = now.astimezone(program.tz).date()
    if (today.month, today.day) != (program.clearance_month, program.clearance_day):
        return 0
    return points_expire_due(now=now, cutoff=_end_of_day(today, program.tz), batch_size=batch_size)


def points_release_pending(*, now: dt.datetime, batch_size: int | None = None) -> int:
    """Make pending points spendable once their pending period is over (RELEASE transfer per lot).

    Released points settle the member's debt first, like any credit.
    """
    batch_size = batch_size or settings.LOYALTY_BATCH_SIZE
    due = Lot.objects.filter(pending=True, available_at__lte=now)

    def work(ids: list[int]) -> int:
        pending_ids = set(Lot.objects.filter(pk__in=ids).values_list("account_id", flat=True))
        points_ids = dict(
            Account.objects.filter(
                kind=AccountKind.MEMBER_POINTS,
                member_id__in=Account.objects.filter(pk__in=pending_ids).values("member_id"),
            ).values_list("member_id", "pk")
        )
        accounts = accounts_lock(ids=pending_ids | set(points_ids.values()))
        lots = list(due.filter(pk__in=ids).select_for_update().order_by("pk"))
        transfers, changed = [], []
        debits, credits = defaultdict(int), defaultdict(int)
        for lot in lots:
            pending_account = accounts[lot.account_id]
            points_account = accounts[points_ids[pending_account.member_id]]
            lot.pending = False
            lot.account_id = points_account.pk
            changed.append(lot)
            if lot.remaining == 0:  # fully clawed back by a refund while pending
                continue
            debt = max(0, -(points_account.balance + credits[points_account.pk]))
            settled = min(debt, lot.remaining)
            transfers.append(Transfer(
                debit_account=pending_account, credit_account=points_account, amount=lot.remaining,
                unit=pending_account.unit, code=TransferCode.RELEASE, member_id=pending_account.member_id,
                occurred_at=lot.available_at, source=TransferSource.SCHEDULE, idempotency_key=f"release:{lot.pk}",
                breakdown={"kind": "release", "lot": lot.pk, **({"debt_settled": settled} if settled else {})},
            ))
            debits[pending_account.pk] += lot.remaining
            credits[points_account.pk] += lot.remaining
            lot.remaining -= settled
        Transfer.objects.bulk_create(transfers)
        stamp = timezone.now()
        for lot in changed:
            lot.updated_at = stamp
        Lot.objects.bulk_update(changed, ["pending", "account", "remaining", "updated_at"])
        accounts_bump_many("debits_posted", debits)
        accounts_bump_many("credits_posted", credits)
        return len(changed)

    return lots_in_batches(due, batch_size=batch_size, work=work)


EXPIRING_SOON_DAYS = (30, 7)


def points_expiring_soon_record(*, now: dt.datetime, horizons: tuple[int, ...] = EXPIRING_SOON_DAYS) -> int:
    """Record ``points.expiring_soon`` per member whose points expire exactly 30 (or 7) local days from today.

    One grouped query per horizon; events carry a key (member, expiry date, horizon), so running the job
    twice on a day records nothing new. Notifications and webhooks consume the events.
    """
    from django.db.models import Sum

    tz = program_settings_get().tz
    today = now.astimezone(tz).date()
    recorded = 0
    for days in horizons:
        day = today + dt.timedelta(days=days)
        start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
        rows = (Lot.objects.filter(account__kind=AccountKind.MEMBER_POINTS, pending=False, remaining__gt=0,
                                   expires_at__gte=start, expires_at__lt=start + dt.timedelta(days=1))
                .values("account__member_id").annotate(points=Sum("remaining")).order_by("account__member_id"))
        events = [
            Event(type=EventType.POINTS_EXPIRING_SOON, member_id=row["account__member_id"], occurred_at=now,
                  key=f"expiring:{row['account__member_id']}:{day.isoformat()}:{days}",
                  payload={"points": row["points"], "expires_on": day.isoformat(), "days": days})
            for row in rows
        ]
        seen = set(Event.objects.filter(key__in=[e.key for e in events]).values_list("key", flat=True))
        fresh = [e for e in events if e.key not in seen]
        Event.objects.bulk_create(fresh, ignore_conflicts=True, batch_size=1000)  # a racing rerun adds nothing
        recorded += len(fresh)
    return recorded
