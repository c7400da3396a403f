"""One lock order everywhere: member account rows first, in primary-key order, then their lots."""

from collections.abc import Iterable

from loyalty.models import Account, AccountKind, Unit
from members.models import Member


def accounts_lock(*, ids: Iterable[int]) -> dict[int, Account]:
    # pk order: concurrent writers lock rows in the same order and cannot deadlock.
    qs = Account.objects.select_for_update().filter(pk__in=list(ids)).order_by("pk")
    return {a.pk: a for a in qs}


def member_accounts_lock(*, member: Member, unit: str = Unit.POINTS) -> dict[str, Account]:
    """Lock the member's points and pending accounts; returns them by kind."""
    qs = (
        Account.objects.select_for_update()
        .filter(member=member, unit=unit, kind__in=[AccountKind.MEMBER_POINTS, AccountKind.MEMBER_PENDING])
        .order_by("pk")
    )
    return {a.kind: a for a in qs}
