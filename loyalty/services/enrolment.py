"""Member enrolment: a member and their ledger accounts, created together."""

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from loyalty.exceptions import InvalidInput, LoyaltyError
from loyalty.models import Account, AccountKind, EventType, Unit
from loyalty.services.events import event_record
from loyalty.services.program import program_settings_get
from loyalty.validation import text_clean
from members.models import Member, Store
from members.services import member_number_generate, phone_normalise, referral_code_generate


class MemberAlreadyExists(LoyaltyError):
    code = "member_exists"
    default_message = _("A member with this phone number already exists.")
    http_status = 409


@transaction.atomic
def member_enrol(*, phone: str, name: str, now: dt.datetime, birthday: dt.date | None = None,
                 home_store: Store | None = None, member_number: str | None = None,
                 referred_by: Member | None = None) -> Member:
    try:
        phone = phone_normalise(phone=phone)
    except ValidationError as exc:
        raise InvalidInput(exc.messages[0], field="phone") from None
    name = text_clean(name, field="name", max_length=100)
    if birthday is not None and (not isinstance(birthday, dt.date) or isinstance(birthday, dt.datetime)):
        raise InvalidInput(_("birthday: give a date."), field="birthday")
    if birthday is not None and birthday > now.astimezone(program_settings_get().tz).date():  # the program's today
        raise InvalidInput(_("birthday: the date is in the future."), field="birthday")
    if member_number is not None:
        member_number = text_clean(member_number, field="member_number", max_length=20)
        if Member.objects.filter(member_number=member_number).exists():
            raise InvalidInput(_("member_number: this member number is taken."), field="member_number")
    if Member.objects.filter(phone=phone).exists():
        raise MemberAlreadyExists()
    for _attempt in range(5):
        try:
            with transaction.atomic():
                member = Member.objects.create(
                    phone=phone, name=name, birthday=birthday, home_store=home_store, joined_at=now,
                    member_number=member_number or member_number_generate(),
                    referral_code=referral_code_generate(), referred_by=referred_by,
                )
            break
        except IntegrityError:
            if Member.objects.filter(phone=phone).exists():
                raise MemberAlreadyExists() from None
            if member_number is not None and Member.objects.filter(member_number=member_number).exists():
                raise InvalidInput(_("member_number: this member number is taken."), field="member_number") from None
            continue  # a random code collided: draw again
    else:  # pragma: no cover - five collisions in a 10^11 space
        raise LoyaltyError(_("Could not allocate a member number; try again."))
    Account.objects.bulk_create([
        Account(kind=AccountKind.MEMBER_POINTS, unit=Unit.POINTS, member=member),
        Account(kind=AccountKind.MEMBER_PENDING, unit=Unit.POINTS, member=member),
    ])
    event_record(type=EventType.MEMBER_CREATED, member=member, occurred_at=now,
                 payload={"member_number": member.member_number, "name": member.name,
                          "home_store": home_store.code if home_store else None})
    return member
