"""Reads of the ledger that are more than a one-line query."""

import calendar
import datetime as dt
from dataclasses import dataclass

from django.db.models import F, QuerySet, Sum
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from loyalty.explain import breakdown_lines, money, points, rule_set_describe
from loyalty.models import (
    Account,
    AccountKind,
    ExpiryPolicy,
    Lot,
    NegativeBalancePolicy,
    Transfer,
    TransferCode,
    TransferSource,
    Unit,
)
from loyalty.rules import rule_set_compile, rule_set_in_force
from loyalty.selectors_tiers import TierLine, tier_policy_describe, tiers_describe
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
    elif code == TransferCode.ADJUST and transfer.source == TransferSource.MEMBER:
        text = transfer.reason  # the member's own action, e.g. closing the account
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


# ---- member portal: history, expiring points, the earning guide ----

HISTORY_PAGE_SIZE = 20
HISTORY_KINDS: dict[str, tuple[str, ...]] = {
    # What a member means by each filter; every points code is in exactly one group.
    "earned": (TransferCode.EARN, TransferCode.PRIZE, TransferCode.RELEASE),
    "spent": (TransferCode.PAYMENT, TransferCode.REDEEM, TransferCode.DRAW),
    "expired": (TransferCode.EXPIRE,),
    "adjusted": (TransferCode.ADJUST, TransferCode.REVERSAL, TransferCode.RETURN, TransferCode.CANCEL),
}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class LotState:
    """What became of the points a transfer credited: pending, open (some left), used, or expired."""

    state: str  # "pending" | "open" | "used" | "expired"
    amount: int
    remaining: int
    expired: int  # points of this lot that expired (or are past expiry and about to)
    expires_at: dt.datetime | None
    available_at: dt.datetime


@dataclass(frozen=True)
class HistoryRow:
    transfer: Transfer
    signed: int
    text: str
    lot: LotState | None


@dataclass(frozen=True)
class HistoryPage:
    rows: list[HistoryRow]
    next_cursor: str | None  # None: this is the last page


def history_cursor_encode(*, occurred_at: dt.datetime, transfer_id: int) -> str:
    """An opaque keyset position: microseconds since the epoch and the transfer id (exact, no floats)."""
    return f"{(occurred_at - _EPOCH) // dt.timedelta(microseconds=1)}_{transfer_id}"


def history_cursor_decode(cursor: str | None) -> tuple[dt.datetime, int] | None:
    """The position a cursor names, or None for anything that is not one we made."""
    if not cursor or len(cursor) > 40:
        return None
    micros, sep, transfer_id = cursor.partition("_")
    if not sep or not micros.isascii() or not micros.isdigit() or not transfer_id.isascii() or not transfer_id.isdigit():
        return None
    try:
        return _EPOCH + dt.timedelta(microseconds=int(micros)), int(transfer_id)
    except OverflowError:
        return None


def member_transfers_filtered(*, member: Member, kind: str | None = None, start: dt.datetime | None = None,
                              end: dt.datetime | None = None) -> QuerySet[Transfer]:
    """``member_transfers`` narrowed to one ``HISTORY_KINDS`` group and ``start <= occurred_at < end``."""
    qs = member_transfers(member=member)
    if kind in HISTORY_KINDS:
        qs = qs.filter(code__in=HISTORY_KINDS[kind])
    if start is not None:
        qs = qs.filter(occurred_at__gte=start)
    if end is not None:
        qs = qs.filter(occurred_at__lt=end)
    return qs


def transfer_lot_states(*, transfers: list[Transfer], now: dt.datetime) -> dict[int, LotState]:
    """The lot each transfer credited (earn, prize, refund return, …), keyed by transfer id. Two queries at most."""
    lots = list(Lot.objects.filter(transfer_id__in=[t.pk for t in transfers]).order_by("id"))
    spent_out = [lot.pk for lot in lots if lot.remaining == 0 and lot.expires_at is not None and lot.expires_at <= now]
    expired_by_lot: dict[int, int] = {}
    if spent_out:  # an emptied lot past its expiry: expired, or used before it could expire?
        keys = {f"expire:{pk}": pk for pk in spent_out}
        for key, amount in Transfer.objects.filter(idempotency_key__in=list(keys)).values_list("idempotency_key", "amount"):
            expired_by_lot[keys[key]] = amount
    states: dict[int, LotState] = {}
    for lot in lots:
        overdue = lot.expires_at is not None and lot.expires_at <= now
        if lot.pending:
            state, expired = "pending", 0
        elif lot.remaining > 0:
            state, expired = ("expired", lot.remaining) if overdue else ("open", 0)
        else:
            expired = expired_by_lot.get(lot.pk, 0)
            state = "expired" if expired else "used"
        states[lot.transfer_id] = LotState(state=state, amount=lot.amount, remaining=lot.remaining, expired=expired,
                                           expires_at=lot.expires_at, available_at=lot.available_at)
    return states


def member_history_page(*, member: Member, now: dt.datetime, kind: str | None = None, start: dt.datetime | None = None,
                        end: dt.datetime | None = None, after: tuple[dt.datetime, int] | None = None,
                        size: int = HISTORY_PAGE_SIZE) -> HistoryPage:
    """One page of the member's points history, newest first, after the keyset position ``after``.

    Keyset, not OFFSET: ``occurred_at <= t`` is a range on the (member, -occurred_at, -id) index and the
    tie-break on id drops the few rows at exactly ``t`` already shown, so page 500 costs what page 1 does.
    Three queries: transfers (with purchase, store, accounts, staff), their lots, and expiry transfers of
    emptied lots (only when there are some).
    """
    qs = member_transfers_filtered(member=member, kind=kind, start=start, end=end)
    if after is not None:
        at, transfer_id = after
        qs = qs.filter(occurred_at__lte=at).exclude(occurred_at=at, id__gte=transfer_id)
    transfers = list(qs[: size + 1])
    more = len(transfers) > size
    transfers = transfers[:size]
    lots = transfer_lot_states(transfers=transfers, now=now) if transfers else {}
    rows = [HistoryRow(transfer=t, signed=transfer_signed_amount(transfer=t), text=transfer_describe(transfer=t),
                       lot=lots.get(t.pk)) for t in transfers]
    last = transfers[-1] if more else None
    return HistoryPage(rows=rows, next_cursor=history_cursor_encode(occurred_at=last.occurred_at, transfer_id=last.pk)
                       if last else None)


def member_transfer_get(*, member: Member, transfer_id: int, now: dt.datetime) -> HistoryRow | None:
    """One points transfer of this member (None for anyone else's, or a stored-value one)."""
    transfer = member_transfers(member=member).filter(pk=transfer_id).first()
    if transfer is None:
        return None
    lot = transfer_lot_states(transfers=[transfer], now=now).get(transfer.pk)
    return HistoryRow(transfer=transfer, signed=transfer_signed_amount(transfer=transfer),
                      text=transfer_describe(transfer=transfer), lot=lot)


def _local_date_text(value: dt.datetime | str | None, tz) -> str:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if value is None:
        return ""
    return date_format(value.astimezone(tz).date(), "DATE_FORMAT")


def transfer_breakdown_lines(*, transfer: Transfer, currency: str, tz) -> list[str]:
    """How a transfer was made up, in words: the earn rules that gave what ("Gold ×1.2: +20"), which
    lots a spend took points from, what an expiry expired. Empty when there is nothing more to say."""
    b = transfer.breakdown or {}
    out = list(breakdown_lines(b, currency=currency))
    if b.get("kind") == "expire":
        out.append(_("Earned on %(earned)s; expired at the end of %(expires)s") % {
            "earned": _local_date_text(b.get("earned_at"), tz), "expires": _local_date_text(b.get("expires_at"), tz)})
    for _lot_id, taken, expires in b.get("lots", []):
        if expires:
            out.append(_("%(points)s taken from points expiring on %(date)s") % {
                "points": points(taken), "date": _local_date_text(expires, tz)})
        else:
            out.append(_("%(points)s taken from points that never expire") % {"points": points(taken)})
    if b.get("debt_settled"):
        out.append(_("%(points)s settled an earlier debt") % {"points": points(b["debt_settled"])})
    if b.get("debt_created"):
        out.append(_("%(points)s could not be taken and were recorded as debt") % {"points": points(b["debt_created"])})
    return out


@dataclass(frozen=True)
class ExpiringDate:
    expires_at: dt.datetime
    points: int


def member_points_expiring(*, member: Member, now: dt.datetime, days: int = 30, limit: int = 10) -> list[ExpiringDate]:
    """Available points expiring within ``days``, summed per expiry time (one per local day), soonest first.

    Lots already past expiry but not yet swept by the nightly job are included (they go at the next run).
    """
    rows = (
        Lot.objects.filter(account__member=member, account__kind=AccountKind.MEMBER_POINTS, pending=False,
                           remaining__gt=0, expires_at__lte=now + dt.timedelta(days=days))
        .values("expires_at").annotate(points=Sum("remaining")).order_by("expires_at")[:limit]
    )
    return [ExpiringDate(expires_at=r["expires_at"], points=r["points"]) for r in rows]


@dataclass(frozen=True)
class EarningGuide:
    """The program as a member reads it ("how to earn"), built from the live configuration."""

    points_name: str
    currency: str
    rules_name: str
    rules_since: dt.datetime | None
    rules: list[str]
    tiers: list[TierLine]
    tier_window: str
    expiry: str
    pending: str
    points_value: str
    spending_order: str


def program_expiry_describe(program) -> str:
    """The expiry policy in words, e.g. "Points expire 12 months after they are earned"."""
    if program.expiry_policy == ExpiryPolicy.NEVER:
        return _("Points never expire.")
    if program.expiry_policy == ExpiryPolicy.YEARLY:
        month = program.clearance_month if 1 <= (program.clearance_month or 0) <= 12 else 12
        day = min(program.clearance_day or 31, calendar.monthrange(2001, month)[1])
        return _("Points earned in one year expire at the end of %(date)s the following year.") % {
            "date": date_format(dt.date(2001, month, day), "MONTH_DAY_FORMAT")}
    n = program.expiry_months
    if program.expiry_to_month_end:
        return ngettext("Points expire at the end of the month, %(n)s month after the month they are earned in.",
                        "Points expire at the end of the month, %(n)s months after the month they are earned in.",
                        n) % {"n": n}
    return ngettext("Points expire %(n)s month after the day they are earned, at the end of that day.",
                    "Points expire %(n)s months after the day they are earned, at the end of that day.", n) % {"n": n}


def program_pending_describe(program) -> str:
    if not program.pending_days:
        return _("Points from a purchase can be used straight away.")
    return ngettext("Points from a purchase are pending for %(n)s day (the return window), then you can use them.",
                    "Points from a purchase are pending for %(n)s days (the return window), then you can use them.",
                    program.pending_days) % {"n": program.pending_days}


def earning_guide_get(*, now: dt.datetime) -> EarningGuide:
    """Everything the "how to earn" page says, from the rule set in force, tiers and program settings.

    Queries: program settings, rule set in force, its modifiers, tiers, tier policy.
    """
    program = program_settings_get()
    rule_set = rule_set_in_force(at=now)
    compiled = rule_set_compile(rule_set, time_zone=program.time_zone)
    tiers = tiers_describe(currency=program.currency)
    return EarningGuide(
        points_name=program.points_name, currency=program.currency,
        rules_name=str(compiled.name), rules_since=rule_set.effective_from if rule_set else None,
        rules=rule_set_describe(compiled, currency=program.currency,
                                tier_names={line.code: line.name for line in tiers}),
        tiers=tiers, tier_window=tier_policy_describe() if tiers else "",
        expiry=program_expiry_describe(program), pending=program_pending_describe(program),
        points_value=_("When you pay with points, %(points)s are worth %(money)s.") % {
            "points": points(program.points_value_points), "money": money(program.points_value_amount, program.currency)},
        spending_order=_("Points are spent soonest-expiring first, so the points that would expire first are used first."),
    )
