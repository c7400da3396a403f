"""One lock order everywhere: member account rows first, in primary-key order, then their lots."""

from collections.abc import Iterable

from loyalty.models import Account, AccountKind
from members.models import Member


def accounts_lock(*, ids: Iterable[int]) -> dict[int, Account]:
    # pk order: concurrent writers lock rows in the same order and cannot deadlock.
    qs = Account.objects.select_for_update().filter(pk__in=list(ids)).order_by("pk")
    return {a.pk: a for a in qs}


POINTS_KINDS = (AccountKind.MEMBER_POINTS, AccountKind.MEMBER_PENDING)
WALLET_KINDS = (AccountKind.MEMBER_WALLET, AccountKind.MEMBER_WALLET_BONUS)


def member_accounts_lock(*, member: Member, kinds: tuple[str, ...] = POINTS_KINDS) -> dict[str, Account]:
    """Lock the member's accounts of these kinds (pk order); returns them by kind.

    A write that touches points and stored value locks both sets in one call, so the order holds.
    """
    qs = Account.objects.select_for_update().filter(member=member, kind__in=kinds).order_by("pk")
    return {a.kind: a for a in qs}
