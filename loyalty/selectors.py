"""Reads of the ledger that are more than a one-line query."""

import datetime as dt
from dataclasses import dataclass

from django.db.models import F, QuerySet, Sum
from django.utils.translation import gettext as _

from loyalty.models import Account, AccountKind, Lot, NegativeBalancePolicy, Transfer, TransferCode, Unit
from loyalty.services.program import program_settings_get
from members.models import Member


@dataclass(frozen=True)
class PointsSummary:
    balance: int  # as the member sees it: never below 0 under the debt policy
    available: int  # spendable now
    pending: int
    debt: int
    expiring_30d: int


def member_points_summary(*, member: Member, now: dt.datetime) -> PointsSummary:
    figures = {
        a.kind: a.balance for a in Account.objects.filter(
            member=member, kind__in=[AccountKind.MEMBER_POINTS, AccountKind.MEMBER_PENDING]
        ).only("kind", "credits_posted", "debits_posted")
    }
    net = figures.get(AccountKind.MEMBER_POINTS, 0)
    debt = max(0, -net)
    expiring = Lot.objects.filter(
        account__member=member, account__kind=AccountKind.MEMBER_POINTS, pending=False, remaining__gt=0,
        expires_at__lte=now + dt.timedelta(days=30),
    ).aggregate(s=Sum("remaining"))["s"] or 0
    allow_negative = program_settings_get().negative_balance_policy == NegativeBalancePolicy.ALLOW_NEGATIVE
    return PointsSummary(
        balance=net if allow_negative else max(0, net),
        available=max(0, net),
        pending=figures.get(AccountKind.MEMBER_PENDING, 0),
        debt=0 if allow_negative else debt,
        expiring_30d=expiring,
    )


def member_lots_open(*, member: Member) -> QuerySet[Lot]:
    """Lots with points left, in the order they will be spent (pending ones last)."""
    return Lot.objects.filter(
        account__member=member, account__kind__in=[AccountKind.MEMBER_POINTS, AccountKind.MEMBER_PENDING], remaining__gt=0,
    ).order_by(
        "pending", F("expires_at").asc(nulls_last=True), "earned_at", "id"
    )


def member_transfers(*, member: Member) -> QuerySet[Transfer]:
    """The member's points history, newest first (stored value has its own history)."""
    return Transfer.objects.filter(member=member, unit=Unit.POINTS).select_related(
        "debit_account", "credit_account", "purchase__store", "staff_user"
    ).order_by("-occurred_at", "-id")


def transfer_signed_amount(*, transfer: Transfer) -> int:
    """Points from the member's point of view: + credited to them, − taken from them, 0 between their accounts."""
    to_member = transfer.credit_account.member_id == transfer.member_id
    from_member = transfer.debit_account.member_id == transfer.member_id
    if to_member and from_member:
        return 0
    return transfer.amount if to_member else -transfer.amount


def transfer_describe(*, transfer: Transfer) -> str:
    """The reason for a transfer in words, in the active language."""
    b = transfer.breakdown or {}
    purchase = transfer.purchase
    ref = purchase.external_id if purchase else ""
    store = purchase.store.name if purchase else ""
    code = transfer.code
    if code == TransferCode.EARN and b.get("kind") == "topup":
        text = _("Top-up of %(amount)s: earned %(points)s points") % {"amount": b.get("amount", ""), "points": transfer.amount}
    elif code == TransferCode.EARN:
        text = _("Purchase %(ref)s at %(store)s: spent %(amount)s, earned %(points)s points") % {
            "ref": ref, "store": store, "amount": b.get("eligible", ""), "points": transfer.amount}
    elif code == TransferCode.PAYMENT:
        text = _("Paid %(value)s of purchase %(ref)s with points") % {"value": b.get("value", ""), "ref": ref}
    elif code == TransferCode.REVERSAL:
        text = _("Refund of purchase %(ref)s: points earned on the refunded part reversed") % {"ref": ref}
    elif code == TransferCode.RETURN:
        text = _("Refund of purchase %(ref)s: points that paid for it returned") % {"ref": ref}
    elif code == TransferCode.RELEASE:
        text = _("Pending points became available")
    elif code == TransferCode.EXPIRE:
        text = _("Points earned on %(date)s expired") % {"date": (b.get("earned_at") or "")[:10]}
    elif code == TransferCode.REDEEM:
        text = _("Redeemed: %(reason)s") % {"reason": transfer.reason}
    elif code == TransferCode.CANCEL:
        text = _("Redemption cancelled, points returned: %(reason)s") % {"reason": transfer.reason}
    elif code == TransferCode.DRAW:
        text = _("Lucky draw: %(reason)s") % {"reason": transfer.reason} if transfer.reason else _("Lucky draw")
    elif code == TransferCode.PRIZE:
        text = _("Lucky draw prize: %(reason)s") % {"reason": transfer.reason} if transfer.reason else _("Lucky draw prize")
    elif code == TransferCode.ADJUST:
        who = transfer.staff_user.get_username() if transfer.staff_user else _("system")
        text = _("Adjustment by %(who)s: %(reason)s") % {"who": who, "reason": transfer.reason}
    else:
        text = transfer.get_code_display()
    if b.get("debt_settled"):
        text += " " + _("(%(points)s points settled a debt)") % {"points": b["debt_settled"]}
    if b.get("debt_created"):
        text += " " + _("(%(points)s points recorded as debt)") % {"points": b["debt_created"]}
    return text
