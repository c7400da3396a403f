"""Ledger invariants, checked set-based. ``ledger_audit_run`` returns one line per broken rule."""

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce

from loyalty.models import Account, AccountKind, Lot, Transfer


def _sums(field: str) -> dict[int, int]:
    return dict(Transfer.objects.values_list(field).annotate(total=Sum("amount")).values_list(field, "total"))


def ledger_audit_run() -> list[str]:
    problems: list[str] = []
    credited, debited = _sums("credit_account"), _sums("debit_account")
    accounts = {a.pk: a for a in Account.objects.only("pk", "kind", "unit", "member_id", "system_code",
                                                       "credits_posted", "debits_posted")}
    lots = {
        (row["account_id"], row["pending"]): row["remaining"]
        for row in Lot.objects.values("account_id", "pending").annotate(remaining=Sum("remaining"))
    }
    unit_totals: dict[str, int] = {}
    for pk, account in accounts.items():
        credits, debits = credited.get(pk, 0), debited.get(pk, 0)
        balance = credits - debits
        unit_totals[account.unit] = unit_totals.get(account.unit, 0) + balance
        if account.kind == AccountKind.SYSTEM:
            if account.credits_posted or account.debits_posted:
                problems.append(f"account {pk} ({account}): system account carries cached figures")
            continue
        if (account.credits_posted, account.debits_posted) != (credits, debits):
            problems.append(
                f"account {pk} ({account}): cached credits/debits {account.credits_posted}/{account.debits_posted}"
                f" != transfers {credits}/{debits}"
            )
        if account.kind == AccountKind.MEMBER_POINTS:
            open_points = lots.get((pk, False), 0)
            # balance = open lots − debt, and while in debt no lot holds points
            if (balance >= 0 and open_points != balance) or (balance < 0 and open_points != 0):
                problems.append(f"account {pk} ({account}): balance {balance} != open lots {open_points} minus debt")
            if lots.get((pk, True), 0):
                problems.append(f"account {pk} ({account}): pending lots on the points account")
        elif account.kind in (AccountKind.MEMBER_WALLET, AccountKind.MEMBER_WALLET_BONUS):
            open_value = lots.get((pk, False), 0)
            if balance != open_value or balance < 0:
                problems.append(f"account {pk} ({account}): stored value {balance} != open lots {open_value}")
        elif account.kind == AccountKind.MEMBER_PENDING:
            pending_points = lots.get((pk, True), 0)
            if balance != pending_points:
                problems.append(f"account {pk} ({account}): pending balance {balance} != pending lots {pending_points}")
            if balance < 0:
                problems.append(f"account {pk} ({account}): negative pending balance {balance}")
    for unit, total in unit_totals.items():
        if total != 0:
            problems.append(f"unit {unit}: accounts sum to {total}, not 0")
    for lot in Lot.objects.filter(Q(remaining__lt=0) | Q(remaining__gt=F("amount"))).values("pk", "account_id", "remaining"):
        problems.append(f"account {lot['account_id']}: lot {lot['pk']} has remaining {lot['remaining']} out of range")
    mismatched = Transfer.objects.filter(
        ~Q(debit_account__unit=F("unit")) | ~Q(credit_account__unit=F("unit")) | Q(amount__lte=0)
    ).values_list("pk", "debit_account_id", "credit_account_id")
    for pk, debit, credit in mismatched:
        problems.append(f"transfer {pk} (accounts {debit} → {credit}): unit mismatch or non-positive amount")
    orphan_lots = Lot.objects.exclude(transfer__credit_account=F("account")).exclude(
        transfer__credit_account__member=F("account__member")
    ).aggregate(n=Coalesce(Count("pk"), 0))["n"]
    if orphan_lots:
        problems.append(f"{orphan_lots} lot(s) not credited to their member by their transfer")
    return problems
