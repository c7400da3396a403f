"""Member profile changes (name, birthday, home store) — the fields a partner or the member may correct.
Phone, member number and status have their own procedures and are not changed here."""

import datetime as dt
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from django.utils import formats
from django.utils.translation import gettext_lazy as _

from loyalty.exceptions import InvalidInput, LoyaltyError
from loyalty.locks import member_accounts_lock
from loyalty.models import AccountKind, EventType, Lot, TransferSource
from loyalty.services.events import event_record
from loyalty.services.points import points_adjust
from loyalty.services.program import program_settings_get
from loyalty.validation import text_clean
from members.models import Member, MemberLogin, MemberStatus, OneTimeCode, Store

UNSET = object()


@transaction.atomic
def member_profile_update(*, member: Member, now: dt.datetime, name=UNSET, birthday=UNSET,
                          home_store: Store | None | object = UNSET) -> Member:
    """Change the given fields only (``None`` clears birthday or home store); returns the member."""
    member = Member.objects.select_for_update().get(pk=member.pk)
    changed = []
    if name is not UNSET:
        member.name = text_clean(name, field="name", max_length=100)
        changed.append("name")
    if birthday is not UNSET:
        if birthday is not None and (not isinstance(birthday, dt.date) or isinstance(birthday, dt.datetime)):
            raise InvalidInput(_("birthday: give a date."), field="birthday")
        if birthday is not None and birthday > now.astimezone(program_settings_get().tz).date():
            raise InvalidInput(_("birthday: the date is in the future."), field="birthday")
        member.birthday = birthday
        changed.append("birthday")
    if home_store is not UNSET:
        member.home_store = home_store
        changed.append("home_store")
    if changed:
        member.save(update_fields=[*changed, "updated_at"])
    return member


# ---- CLOSING AN ACCOUNT (the member's own request, from the portal) ----

CLOSED_MEMBER_NAME = "Closed member"  # stored as data: the row no longer names a person
CLOSE_FORFEIT_REASON = "Account closed: remaining points forfeited"  # stored on the ledger, like staff reasons
ALL_MEMBER_KINDS = (AccountKind.MEMBER_POINTS, AccountKind.MEMBER_PENDING, AccountKind.MEMBER_WALLET,
                    AccountKind.MEMBER_WALLET_BONUS)


class AccountAlreadyClosed(LoyaltyError):
    code = "account_already_closed"
    default_message = _("This account is already closed.")


class StoredValueNotEmpty(LoyaltyError):
    code = "stored_value_not_empty"
    default_message = _("Your stored value is {amount}. Spend it or ask for a refund at the counter before closing "
                        "the account.")


class PendingPointsNotReleased(LoyaltyError):
    code = "pending_points_not_released"
    default_message = _("{points} points are still pending. The account can be closed once they are available "
                        "(on {date} at the latest).")


@transaction.atomic
def member_close(*, member: Member, now: dt.datetime) -> Member:
    """Close the account for good, in one transaction.

    Refused while the member has stored value or pending points. Any available points are forfeited
    through ``points_adjust`` (the ledger keeps every transfer for the merchant's books; a debt stays
    recorded). The member row is anonymised (name, phone, birthday, email, consent) and kept, so the
    ledger still points at it; the portal login and one-time codes are deleted, which ends every session.
    """
    locked = member_accounts_lock(member=member, kinds=ALL_MEMBER_KINDS)
    member = Member.objects.select_for_update().get(pk=member.pk)
    if member.status == MemberStatus.CLOSED:
        raise AccountAlreadyClosed()
    stored = sum(locked[k].balance for k in (AccountKind.MEMBER_WALLET, AccountKind.MEMBER_WALLET_BONUS) if k in locked)
    overdue_bonus = Lot.objects.filter(
        account__member=member, account__kind=AccountKind.MEMBER_WALLET_BONUS, remaining__gt=0, expires_at__lte=now,
    ).aggregate(s=Sum("remaining"))["s"] or 0
    if stored - overdue_bonus != 0:
        amount = Decimal(stored - overdue_bonus) / 100
        raise StoredValueNotEmpty(amount=f"{formats.number_format(amount, 2)} {program_settings_get().currency}")
    pending = locked.get(AccountKind.MEMBER_PENDING)
    if pending is not None and pending.balance > 0:
        last = Lot.objects.filter(account=pending, remaining__gt=0, pending=True).order_by("-available_at", "-id") \
            .values_list("available_at", flat=True).first()
        date = formats.date_format(last.astimezone(program_settings_get().tz).date()) if last else ""
        raise PendingPointsNotReleased(points=pending.balance, date=date)
    points = locked.get(AccountKind.MEMBER_POINTS)
    forfeited = max(0, points.balance) if points is not None else 0
    if forfeited:
        points_adjust(member=member, points=-forfeited, reason=CLOSE_FORFEIT_REASON, staff_user=None,
                      idempotency_key=f"member-close:{member.pk}", now=now, source=TransferSource.MEMBER)
    if member.marketing_consent:
        member.consent_updated_at = now
    member.name = CLOSED_MEMBER_NAME
    member.phone = f"closed-{member.pk}"
    member.birthday = None
    member.email = ""
    member.marketing_consent = False
    member.status = MemberStatus.CLOSED
    member.closed_at = now
    member.save(update_fields=["name", "phone", "birthday", "email", "marketing_consent", "consent_updated_at",
                               "status", "closed_at", "updated_at"])
    OneTimeCode.objects.filter(member=member).delete()
    MemberLogin.objects.filter(member=member).delete()
    event_record(type=EventType.MEMBER_CLOSED, member=member, occurred_at=now,
                 payload={"member_number": member.member_number, "points_forfeited": forfeited})
    return member
