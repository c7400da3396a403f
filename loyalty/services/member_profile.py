"""Member profile changes (name, birthday, home store) — the fields a partner or the member may correct.
Phone, member number and status have their own procedures and are not changed here."""

import datetime as dt

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from loyalty.exceptions import InvalidInput
from loyalty.services.program import program_settings_get
from loyalty.validation import text_clean
from members.models import Member, Store

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
