"""Redeeming points (a plain debit for now; the rewards catalogue builds on it) and staff adjustments."""

import datetime as dt

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from loyalty.exceptions import InvalidInput
from loyalty.idempotency import fingerprint, idempotency_key_check, replay_or_refuse
from loyalty.models import Account, EventType, SystemAccount, Transfer, TransferCode, TransferSource
from loyalty.services.events import event_record
from loyalty.services.ledger import member_accounts_for_write, points_credit, points_debit, system_account
from loyalty.services.program import program_settings_get
from loyalty.validation import points_clean, text_clean, time_clean
from members.models import Member


def _replayed(key: str, request: str) -> Transfer | None:
    existing = Transfer.objects.filter(idempotency_key=key).first()
    if existing is not None:
        replay_or_refuse(stored_fingerprint=existing.fingerprint, request_fingerprint=request)
    return existing


@transaction.atomic
def points_redeem(*, member: Member, points: int, reason: str, idempotency_key: str, now: dt.datetime,
                  occurred_at: dt.datetime | None = None, source: str = TransferSource.STAFF,
                  staff_user: AbstractBaseUser | None = None, partner_account: Account | None = None) -> Transfer:
    """Take ``points`` from the member's available points, soonest-expiring lots first.

    ``partner_account``: spent at an alliance partner, whose system account receives the points.
    """
    points = points_clean(points, field="points")
    reason = text_clean(reason, field="reason", max_length=255)
    occurred_at = time_clean(occurred_at or now, field="occurred_at", now=now)
    key = idempotency_key_check(idempotency_key)
    request = fingerprint({"op": "redeem", "member": member.pk, "points": points, "reason": reason})
    accounts = member_accounts_for_write(member=member)
    if (existing := _replayed(key, request)) is not None:
        return existing
    transfer = points_debit(
        accounts=accounts, to_account=partner_account or system_account(SystemAccount.REDEMPTION), amount=points,
        code=TransferCode.REDEEM,
        occurred_at=occurred_at, idempotency_key=key, fingerprint=request, reason=reason, source=source,
        staff_user=staff_user, breakdown={"kind": "redeem"},
    )
    event_record(type=EventType.POINTS_REDEEMED, member=member, occurred_at=occurred_at,
                 payload={"transfer": transfer.pk, "points": points, "reason": reason})
    return transfer


@transaction.atomic
def points_adjust(*, member: Member, points: int, reason: str, staff_user: AbstractBaseUser | None,
                  idempotency_key: str, now: dt.datetime, source: str = TransferSource.STAFF) -> Transfer:
    """Add (points > 0) or remove (points < 0) points by hand. A reason is required and recorded."""
    points = points_clean(points, field="points", allow_negative=True)
    reason = text_clean(reason, field="reason", max_length=255)
    if source == TransferSource.STAFF and staff_user is None:
        raise InvalidInput(_("An adjustment names the staff user who made it."), field="staff_user")
    key = idempotency_key_check(idempotency_key)
    request = fingerprint({"op": "adjust", "member": member.pk, "points": points, "reason": reason})
    accounts = member_accounts_for_write(member=member, require="open")
    if (existing := _replayed(key, request)) is not None:
        return existing
    adjustment = system_account(SystemAccount.ADJUSTMENT)
    common = {"code": TransferCode.ADJUST, "occurred_at": now, "idempotency_key": key, "fingerprint": request,
              "reason": reason, "source": source, "staff_user": staff_user, "breakdown": {"kind": "adjust"}}
    if points > 0:
        transfer = points_credit(
            accounts=accounts, from_account=adjustment, amount=points,
            expires_at=program_settings_get().expires_at_for(now), **common,
        )
    else:
        transfer = points_debit(accounts=accounts, to_account=adjustment, amount=-points, **common)
    event_record(type=EventType.POINTS_ADJUSTED, member=member, occurred_at=now,
                 payload={"transfer": transfer.pk, "points": points, "reason": reason})
    return transfer
