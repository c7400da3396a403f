"""Stored value (储值): top-ups with bonus rules, spends, top-up refunds, bonus expiry, balances.

Money lives in the loyalty ledger in minor units (fen, ``Unit.MONEY``), in two member accounts:
principal (``MEMBER_WALLET``, money paid in, refundable) and bonus (``MEMBER_WALLET_BONUS``, given by a
bonus rule or a reward, never paid out as cash). Every credit is a lot; the audit checks that each
wallet account's balance equals its open lots.

* Top-up: principal ``WALLET_FUNDING → MEMBER_WALLET`` (lot, no expiry); bonus by the best active rule
  ``WALLET_BONUS → MEMBER_WALLET_BONUS`` (lot, expiring after ``wallet_bonus_expiry_days`` if set);
  points at the rule set's top-up rate, all in one transaction.
* Spend: bonus first (default) or principal first, soonest-expiring lots first within an account;
  one ``SPEND`` transfer per account touched, to ``WALLET_SPEND``.
* Top-up refund: pays back at most that top-up's unspent principal (``TOPUP_REFUND`` to
  ``WALLET_REFUND``) and removes that top-up's unspent bonus, all of it (``BONUS_REMOVED`` to
  ``WALLET_BONUS_EXPIRY``): the bonus was given for the whole top-up. Points earned on the top-up are
  reversed in proportion to the principal refunded (cumulative rounding: a full refund reverses all);
  points already spent become debt, as on a purchase refund.
* Bonus expiry: an ``EXPIRE`` transfer per lot to ``WALLET_BONUS_EXPIRY``, by the scheduled batch job
  or, for one member, just before that member's wallet is used (an expired bonus is never spent).

Locks: every write locks the member's points and wallet accounts in one ``member_accounts_lock`` call
(pk order), then their lots — the order every other ledger write uses.
"""

import datetime as dt
import hashlib
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from loyalty.exceptions import InvalidInput
from loyalty.idempotency import MAX_KEY_LENGTH, fingerprint, idempotency_key_check, replay_or_refuse
from loyalty.locks import POINTS_KINDS, WALLET_KINDS, accounts_lock, member_accounts_lock
from loyalty.models import (
    Account,
    AccountKind,
    Lot,
    SystemAccount,
    Transfer,
    TransferCode,
    TransferSource,
    Unit,
    end_of_local_day,
)
from loyalty.models import EventType as EventType
from loyalty.services import points_earn_topup, program_settings_get
from loyalty.services.events import event_record
from loyalty.services.ledger import (
    LedgerInconsistent,
    MemberAccounts,
    lots_consume,
    member_accounts_for_write,
    points_debit,
    system_account,
    transfer_post,
)
from loyalty.services.schedules import accounts_bump_many, lots_in_batches
from loyalty.validation import money_clean, text_clean, time_clean
from members.models import Member, Store
from rewards.exceptions import InsufficientStoredValue, TopUpRefundTooLarge
from rewards.models import TopUp, TopUpBonusRule, WalletPreference, WalletSpend
from rewards.services.payments import spending_settings_get

CENT = Decimal("0.01")
BONUS_FIRST = "BONUS_FIRST"
PRINCIPAL_FIRST = "PRINCIPAL_FIRST"


# ---- helpers ----


def fen(amount: Decimal) -> int:
    """Yuan (two places, already cleaned) → fen. Exact."""
    return int(amount * 100)


def yuan(minor: int) -> Decimal:
    return (Decimal(minor) / 100).quantize(CENT)


def ledger_key(prefix: str, key: str, suffix: str = "") -> str:
    """A transfer key derived from a caller's key: ``prefix:key:suffix``, or a digest when that is too long.

    Deterministic, so a retry derives the same key; namespaced, so it never collides with another
    writer's keys in the ledger's one unique index.
    """
    tail = f":{suffix}" if suffix else ""
    scoped = f"{prefix}:{key}{tail}"
    if len(scoped) <= MAX_KEY_LENGTH:
        return scoped
    return f"{prefix}:sha256:{hashlib.sha256(key.encode()).hexdigest()}{tail}"


def _now_clean(now: Any) -> dt.datetime:
    return time_clean(now, field="now", now=now)  # a datetime with a time zone


@dataclass
class WalletAccounts:
    member: Member
    points: MemberAccounts
    principal: Account | None
    bonus: Account | None

    @property
    def total(self) -> int:
        return sum(a.balance for a in (self.principal, self.bonus) if a is not None)


def wallet_accounts_get_or_create(*, member: Member) -> tuple[Account, Account]:
    """The member's principal and bonus stored-value accounts, created on first use."""
    principal, _created = Account.objects.get_or_create(member=member, kind=AccountKind.MEMBER_WALLET, unit=Unit.MONEY)
    bonus, _created = Account.objects.get_or_create(member=member, kind=AccountKind.MEMBER_WALLET_BONUS, unit=Unit.MONEY)
    return principal, bonus


def _wallet_lock(*, member: Member, require: str) -> WalletAccounts:
    """Lock points and wallet accounts in one call (pk order), then check the member may do this."""
    locked = member_accounts_lock(member=member, kinds=POINTS_KINDS + WALLET_KINDS)
    points = member_accounts_for_write(member=member, require=require)  # rows already held: status check only
    return WalletAccounts(member=member, points=points, principal=locked.get(AccountKind.MEMBER_WALLET),
                          bonus=locked.get(AccountKind.MEMBER_WALLET_BONUS))


def _lot_open(*, account: Account, transfer: Transfer, amount: int, at: dt.datetime,
              expires_at: dt.datetime | None) -> Lot:
    return Lot.objects.create(account=account, transfer=transfer, amount=amount, remaining=amount, earned_at=at,
                              expires_at=expires_at, pending=False, available_at=at)


def _bonus_expires_at(at: dt.datetime) -> dt.datetime | None:
    """End of the local day ``wallet_bonus_expiry_days`` after ``at`` (program time zone), or never."""
    days = spending_settings_get().wallet_bonus_expiry_days
    if not days:
        return None
    tz = program_settings_get().tz
    return end_of_local_day(at.astimezone(tz).date() + dt.timedelta(days=days), tz)


def _expire_transfer(*, lot: Lot, account: Account, expiry: Account) -> Transfer:
    return Transfer(
        debit_account_id=lot.account_id, credit_account=expiry, amount=lot.remaining, unit=Unit.MONEY,
        code=TransferCode.EXPIRE, member_id=account.member_id, occurred_at=max(lot.expires_at, lot.earned_at),
        source=TransferSource.SCHEDULE, idempotency_key=f"wallet:expire:{lot.pk}",
        breakdown={"kind": "wallet_bonus_expire", "lot": lot.pk, "earned_at": lot.earned_at.isoformat(),
                   "expires_at": lot.expires_at.isoformat()},
    )


def _bonus_expire_member(*, bonus: Account | None, now: dt.datetime) -> int:
    """Expire this member's due bonus lots now (caller holds the account lock): an expired bonus is never spent."""
    if bonus is None:
        return 0
    lots = list(Lot.objects.select_for_update().filter(account=bonus, remaining__gt=0, expires_at__lte=now).order_by("pk"))
    if not lots:
        return 0
    expiry = system_account(SystemAccount.WALLET_BONUS_EXPIRY, Unit.MONEY)
    transfers = [_expire_transfer(lot=lot, account=bonus, expiry=expiry) for lot in lots]
    Transfer.objects.bulk_create(transfers)
    total = sum(t.amount for t in transfers)
    Lot.objects.filter(pk__in=[lot.pk for lot in lots]).update(remaining=0, updated_at=timezone.now())
    accounts_bump_many("debits_posted", {bonus.pk: total})
    bonus.debits_posted += total
    return total


def _bonus_rule_for(*, amount: Decimal, at: dt.datetime) -> TopUpBonusRule | None:
    """The best active rule: the largest minimum the top-up reaches (then the largest bonus), valid at ``at``."""
    return (
        TopUpBonusRule.objects.filter(is_active=True, minimum__lte=amount)
        .filter(Q(valid_from__isnull=True) | Q(valid_from__lte=at), Q(valid_until__isnull=True) | Q(valid_until__gt=at))
        .order_by("-minimum", "-bonus", "pk")
        .first()
    )


# ---- top-up ----


@transaction.atomic
def wallet_topup(*, member: Member, amount: Any, now: dt.datetime, occurred_at: dt.datetime | None = None,
                 store: Store | None = None, reference: str = "", idempotency_key: str,
                 staff_user: AbstractBaseUser | None = None) -> TopUp:
    """Top up stored value: principal, the best bonus rule's bonus, and points at the top-up rate.

    Idempotent: the same key and request return the first top-up; another request with that key is refused.
    """
    now = _now_clean(now)
    amount = money_clean(amount, field="amount")
    explicit_time = occurred_at is not None
    occurred_at = time_clean(occurred_at if explicit_time else now, field="occurred_at", now=now)
    reference = text_clean(reference, field="reference", max_length=64, required=False)
    if store is not None and not isinstance(store, Store):
        raise InvalidInput(_("store: not a store."), field="store")
    key = idempotency_key_check(idempotency_key)
    request = fingerprint({
        "op": "wallet_topup", "member": member.pk, "amount": amount, "store": store.pk if store else None,
        "reference": reference,
        # a retry without an explicit business time is the same request whatever the clock says
        "occurred_at": occurred_at.astimezone(dt.UTC).isoformat() if explicit_time else None,
    })

    wallet_accounts_get_or_create(member=member)  # a refusal below rolls this back too
    wallet = _wallet_lock(member=member, require="active")
    existing = TopUp.objects.filter(idempotency_key=key).first()
    if existing is not None:
        replay_or_refuse(stored_fingerprint=existing.fingerprint, request_fingerprint=request)
        return existing

    rule = _bonus_rule_for(amount=amount, at=occurred_at)
    topup = TopUp.objects.create(
        member=member, store=store, amount=amount, bonus=rule.bonus if rule else Decimal("0.00"), bonus_rule=rule,
        reference=reference, occurred_at=occurred_at, idempotency_key=key, fingerprint=request,
    )
    common = {"occurred_at": occurred_at, "member": member, "source": TransferSource.TOPUP, "staff_user": staff_user}
    topup.principal_transfer = transfer_post(
        debit=system_account(SystemAccount.WALLET_FUNDING, Unit.MONEY), credit=wallet.principal, amount=fen(amount),
        code=TransferCode.TOPUP, idempotency_key=f"wallet:topup:{topup.pk}:principal", fingerprint=request,
        reason=reference, breakdown={"kind": "topup", "topup": topup.pk, "amount": str(amount)}, **common,
    )
    _lot_open(account=wallet.principal, transfer=topup.principal_transfer, amount=fen(amount), at=occurred_at,
              expires_at=None)
    if rule is not None:
        topup.bonus_transfer = transfer_post(
            debit=system_account(SystemAccount.WALLET_BONUS, Unit.MONEY), credit=wallet.bonus, amount=fen(rule.bonus),
            code=TransferCode.TOPUP_BONUS, idempotency_key=f"wallet:topup:{topup.pk}:bonus", reason=rule.name,
            breakdown={"kind": "topup_bonus", "topup": topup.pk, "rule": {"id": rule.pk, "name": rule.name,
                       "minimum": str(rule.minimum), "bonus": str(rule.bonus)}}, **common,
        )
        _lot_open(account=wallet.bonus, transfer=topup.bonus_transfer, amount=fen(rule.bonus), at=occurred_at,
                  expires_at=_bonus_expires_at(occurred_at))
    topup.points_transfer = points_earn_topup(
        member=member, amount=amount, reference=reference or f"TOPUP-{topup.pk}", occurred_at=occurred_at, now=now,
        idempotency_key=f"wallet:topup:{topup.pk}:points",
    )
    topup.save(update_fields=["principal_transfer", "bonus_transfer", "points_transfer", "updated_at"])
    _wallet_event(member=member, at=occurred_at, change="topup", ref=topup.pk, amount=amount)
    return topup


# ---- spend ----


@transaction.atomic
def wallet_spend(*, member: Member, amount: Any, now: dt.datetime, store: Store | None = None, reference: str = "",
                 idempotency_key: str) -> WalletSpend:
    """Pay ``amount`` from stored value, in the program's order (bonus first by default).

    Refused with ``InsufficientStoredValue`` when principal and unexpired bonus together fall short;
    the member's accounts are locked, so concurrent spends can never overdraw.
    """
    now = _now_clean(now)
    amount = money_clean(amount, field="amount")
    reference = text_clean(reference, field="reference", max_length=64, required=False)
    if store is not None and not isinstance(store, Store):
        raise InvalidInput(_("store: not a store."), field="store")
    key = idempotency_key_check(idempotency_key)
    request = fingerprint({"op": "wallet_spend", "member": member.pk, "amount": amount,
                           "store": store.pk if store else None, "reference": reference})

    wallet = _wallet_lock(member=member, require="active")
    existing = WalletSpend.objects.filter(idempotency_key=key).first()
    if existing is not None:
        replay_or_refuse(stored_fingerprint=existing.fingerprint, request_fingerprint=request)
        return existing
    _bonus_expire_member(bonus=wallet.bonus, now=now)
    wanted = fen(amount)
    if wallet.total < wanted:
        raise InsufficientStoredValue(available=yuan(wallet.total), requested=amount)

    order = [wallet.bonus, wallet.principal]
    if spending_settings_get().wallet_spend_order == PRINCIPAL_FIRST:
        order.reverse()
    takes: list[tuple[Account, int]] = []
    left = wanted
    for account in order:
        take = min(left, account.balance) if account is not None else 0
        if take:
            takes.append((account, take))
            left -= take

    spend = WalletSpend.objects.create(
        member=member, store=store, amount=amount, reference=reference, occurred_at=now, idempotency_key=key,
        fingerprint=request,
    )
    spent = system_account(SystemAccount.WALLET_SPEND, Unit.MONEY)
    for account, take in takes:
        consumed = _lots_take(account=account, amount=take)
        part = "bonus" if account.kind == AccountKind.MEMBER_WALLET_BONUS else "principal"
        transfer_post(
            debit=account, credit=spent, amount=take, code=TransferCode.SPEND, occurred_at=now, member=member,
            idempotency_key=f"wallet:spend:{spend.pk}:{part}", fingerprint=request,
            source=TransferSource.WALLET, reason=reference,
            breakdown={"kind": "wallet_spend", "spend": spend.pk, "part": part, "lots": consumed},
        )
        setattr(spend, f"from_{part}", yuan(take))
    spend.save(update_fields=["from_bonus", "from_principal", "updated_at"])
    _wallet_event(member=member, at=now, change="spend", ref=spend.pk, amount=-spend.amount)
    return spend


def _lots_take(*, account: Account, amount: int) -> list[list]:
    """Consume lots soonest-expiring first (never-expiring principal: oldest first)."""
    consumed, shortfall = lots_consume(account=account, amount=amount)
    if shortfall:
        raise LedgerInconsistent(f"lots of account {account.pk} do not cover its balance")
    return consumed


# ---- top-up refund ----


@transaction.atomic
def wallet_topup_refund(*, topup: TopUp, amount: Any | None, now: dt.datetime, idempotency_key: str,
                        staff_user: AbstractBaseUser | None = None) -> TopUp:
    """Pay back unspent principal of one top-up (``amount`` None: all of it) and remove its unspent bonus.

    More than the unspent principal is refused (``TopUpRefundTooLarge``) and nothing is written. Points
    earned on the top-up are reversed in proportion to the principal refunded (spent ones become debt).
    """
    now = _now_clean(now)
    clean_amount = money_clean(amount, field="amount") if amount is not None else None
    key = idempotency_key_check(idempotency_key)
    request = fingerprint({"op": "topup_refund", "topup": topup.pk, "amount": clean_amount})
    principal_key = ledger_key("wallet:topup-refund", key, "principal")

    wallet = _wallet_lock(member=topup.member, require="any")
    existing = Transfer.objects.filter(idempotency_key=principal_key).first()
    if existing is not None:
        replay_or_refuse(stored_fingerprint=existing.fingerprint, request_fingerprint=request)
        return TopUp.objects.get(pk=topup.pk)
    topup = TopUp.objects.select_related("member").get(pk=topup.pk)  # fresh, under the member lock
    principal_lot = Lot.objects.select_for_update().get(transfer_id=topup.principal_transfer_id)
    unspent = principal_lot.remaining
    refund = fen(clean_amount) if clean_amount is not None else unspent
    if refund == 0 or refund > unspent:
        raise TopUpRefundTooLarge(refundable=yuan(unspent), extra={"refundable": str(yuan(unspent))})

    _bonus_expire_member(bonus=wallet.bonus, now=now)  # a bonus already due expires; it is not "removed"
    member = topup.member
    common = {"occurred_at": now, "member": member, "source": TransferSource.TOPUP, "staff_user": staff_user}
    principal_lot.remaining -= refund
    principal_lot.save(update_fields=["remaining", "updated_at"])
    transfer_post(
        debit=wallet.principal, credit=system_account(SystemAccount.WALLET_REFUND, Unit.MONEY), amount=refund,
        code=TransferCode.TOPUP_REFUND, idempotency_key=principal_key, fingerprint=request,
        reverses=topup.principal_transfer,
        breakdown={"kind": "topup_refund", "topup": topup.pk, "lot": principal_lot.pk, "amount": str(yuan(refund)),
                   "idempotency_key": key}, **common,
    )
    if topup.bonus_transfer_id is not None:
        bonus_lot = Lot.objects.select_for_update().get(transfer_id=topup.bonus_transfer_id)
        if bonus_lot.remaining:
            removed = bonus_lot.remaining
            bonus_lot.remaining = 0
            bonus_lot.save(update_fields=["remaining", "updated_at"])
            transfer_post(
                debit=wallet.bonus, credit=system_account(SystemAccount.WALLET_BONUS_EXPIRY, Unit.MONEY), amount=removed,
                code=TransferCode.BONUS_REMOVED, idempotency_key=ledger_key("wallet:topup-refund", key, "bonus"),
                reverses=topup.bonus_transfer,
                breakdown={"kind": "topup_bonus_removed", "topup": topup.pk, "lot": bonus_lot.pk}, **common,
            )
    topup.refunded_amount += yuan(refund)
    _topup_points_reverse(wallet=wallet, topup=topup, key=key, common=common)
    topup.save(update_fields=["refunded_amount", "updated_at"])
    _wallet_event(member=topup.member, at=now, change="topup_refund", ref=topup.pk, amount=-yuan(refund))
    return topup


def _topup_points_reverse(*, wallet: WalletAccounts, topup: TopUp, key: str, common: dict) -> None:
    """Reverse the top-up's points in proportion to the principal refunded so far (floor; all on a full refund)."""
    earned = topup.points_transfer
    if earned is None:
        return
    if topup.refunded_amount == topup.amount:
        target = earned.amount
    else:
        target = int((Decimal(earned.amount) * topup.refunded_amount / topup.amount).to_integral_value(ROUND_FLOOR))
    already = Transfer.objects.filter(reverses=earned, code=TransferCode.REVERSAL).aggregate(s=Sum("amount"))["s"] or 0
    if target <= already:
        return
    points_debit(
        accounts=wallet.points, to_account=system_account(SystemAccount.ISSUANCE), amount=target - already,
        code=TransferCode.REVERSAL, allow_debt=True, prefer_transfer_id=earned.pk,
        idempotency_key=ledger_key("wallet:topup-refund", key, "points"), reverses=earned,
        breakdown={"kind": "topup_refund_reversal", "topup": topup.pk}, occurred_at=common["occurred_at"],
        source=TransferSource.TOPUP, staff_user=common["staff_user"],
    )


# ---- credit from a reward ----


@transaction.atomic
def wallet_credit(*, member: Member, amount: Any, now: dt.datetime, reason: str, idempotency_key: str,
                  source: str = TransferSource.REDEMPTION) -> Transfer:
    """Credit stored value given as a reward (the catalogue's stored-value reward).

    It is bonus money: it goes to the bonus account, is spent like a top-up bonus, expires like one
    (``wallet_bonus_expiry_days``) and is never paid out by a top-up refund.
    """
    now = _now_clean(now)
    amount = money_clean(amount, field="amount")
    reason = text_clean(reason, field="reason", max_length=255)
    key = idempotency_key_check(idempotency_key)
    transfer_key = ledger_key("wallet:credit", key)
    request = fingerprint({"op": "wallet_credit", "member": member.pk, "amount": amount, "reason": reason})

    wallet_accounts_get_or_create(member=member)
    wallet = _wallet_lock(member=member, require="active")
    existing = Transfer.objects.filter(idempotency_key=transfer_key).first()
    if existing is not None:
        replay_or_refuse(stored_fingerprint=existing.fingerprint, request_fingerprint=request)
        return existing
    transfer = transfer_post(
        debit=system_account(SystemAccount.WALLET_BONUS, Unit.MONEY), credit=wallet.bonus, amount=fen(amount),
        code=TransferCode.TOPUP_BONUS, occurred_at=now, idempotency_key=transfer_key, fingerprint=request,
        member=member, source=source, reason=reason,
        breakdown={"kind": "wallet_credit", "amount": str(amount), "idempotency_key": key},
    )
    _lot_open(account=wallet.bonus, transfer=transfer, amount=fen(amount), at=now, expires_at=_bonus_expires_at(now))
    _wallet_event(member=member, at=now, change="credit", ref=transfer.pk, amount=amount)
    return transfer


# ---- bonus expiry (scheduled) ----


def wallet_bonus_expire_due(*, now: dt.datetime, batch_size: int | None = None) -> int:
    """Expire every bonus lot with money left whose expiry is at or before ``now``. Returns lots expired.

    Set-based batches, each its own transaction: accounts locked first (pk order), then the lots,
    re-checked under the lock. Safe to rerun; a killed run leaves whole batches done.
    """
    batch_size = batch_size or settings.LOYALTY_BATCH_SIZE
    expiry = system_account(SystemAccount.WALLET_BONUS_EXPIRY, Unit.MONEY)
    due = Lot.objects.filter(
        account__kind=AccountKind.MEMBER_WALLET_BONUS, remaining__gt=0, pending=False, expires_at__lte=now,
    )

    def work(ids: list[int]) -> int:
        account_ids = set(Lot.objects.filter(pk__in=ids).values_list("account_id", flat=True))
        accounts = accounts_lock(ids=account_ids)
        lots = list(due.filter(pk__in=ids).select_for_update(of=("self",)).order_by("pk"))
        if not lots:
            return 0
        transfers, debits = [], defaultdict(int)
        for lot in lots:
            transfers.append(_expire_transfer(lot=lot, account=accounts[lot.account_id], expiry=expiry))
            debits[lot.account_id] += lot.remaining
        Transfer.objects.bulk_create(transfers)
        Lot.objects.filter(pk__in=[lot.pk for lot in lots]).update(remaining=0, updated_at=timezone.now())
        accounts_bump_many("debits_posted", debits)
        return len(lots)

    return lots_in_batches(due, batch_size=batch_size, work=work)


# ---- balance and low-balance threshold ----


@dataclass(frozen=True)
class WalletBalance:
    principal: Decimal
    bonus: Decimal  # unexpired bonus only
    total: Decimal
    threshold: Decimal | None
    low_balance: bool  # total below the member's threshold


def wallet_balance(*, member: Member, now: dt.datetime | None = None) -> WalletBalance:
    """What the member can spend now. Bonus past its expiry (not yet swept by the job) is left out."""
    now = now or timezone.now()
    figures = {
        a.kind: a.balance for a in Account.objects.filter(member=member, kind__in=WALLET_KINDS)
        .only("kind", "credits_posted", "debits_posted")
    }
    overdue = Lot.objects.filter(
        account__member=member, account__kind=AccountKind.MEMBER_WALLET_BONUS, remaining__gt=0, expires_at__lte=now,
    ).aggregate(s=Sum("remaining"))["s"] or 0
    principal = figures.get(AccountKind.MEMBER_WALLET, 0)
    bonus = figures.get(AccountKind.MEMBER_WALLET_BONUS, 0) - overdue
    threshold = WalletPreference.objects.filter(member=member).values_list("low_balance_threshold", flat=True).first()
    total = yuan(principal + bonus)
    return WalletBalance(principal=yuan(principal), bonus=yuan(bonus), total=total, threshold=threshold,
                         low_balance=threshold is not None and total < threshold)


def wallet_low_balance_set(*, member: Member, threshold: Any | None) -> WalletPreference:
    """Alert the member when their stored value falls below ``threshold`` (None: no alert)."""
    clean = money_clean(threshold, field="threshold", allow_zero=True) if threshold is not None else None
    preference, _created = WalletPreference.objects.update_or_create(
        member=member, defaults={"low_balance_threshold": clean},
    )
    return preference


def _wallet_event(*, member: Member, at: dt.datetime, change: str, ref: int, amount: Decimal) -> None:
    """``wallet.changed`` with the new balance, in the same transaction as the change."""
    balance = wallet_balance(member=member, now=at)
    event_record(type=EventType.WALLET_CHANGED, member=member, occurred_at=at, payload={
        "change": change, "reference": ref, "amount": str(amount), "balance": str(balance.total),
        "low_balance": balance.low_balance})
