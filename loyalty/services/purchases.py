"""Purchases and refunds: earn at the base rate, pay with points, claw back and return on refund."""

import datetime as dt
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from loyalty.config import config_snapshot
from loyalty.db import hot_fetch
from loyalty.earning import Basket, CapUsage, earn_evaluate, topup_evaluate
from loyalty.exceptions import DuplicatePurchase, InvalidInput, RefundExceedsPurchase, StoreNotFound
from loyalty.idempotency import fingerprint, idempotency_key_check, replay_or_refuse
from loyalty.models import (
    Account,
    Channel,
    EventType,
    Lot,
    Purchase,
    Refund,
    SystemAccount,
    Transfer,
    TransferCode,
    TransferSource,
)
from loyalty.rules import cap_usage, cap_windows, member_facts, rule_set_compile, rule_set_in_force
from loyalty.services.earn_sql import earn_write_one_statement
from loyalty.services.events import event_record
from loyalty.services.ledger import (
    MemberRef,
    member_accounts_for_write,
    points_credit,
    points_debit,
    system_account,
    transfer_post,
)
from loyalty.services.program import program_settings_get
from loyalty.services.tiers import (
    tier_change_event,
    tier_upgrade_after_purchase,
    tier_upgrade_due,
    tier_upgrade_possible,
    window_start,
)
from loyalty.validation import lines_clean, money_clean, points_clean, text_clean, time_clean
from members.models import Member, Store

# PostgreSQL writes a plain earn as one statement (loyalty/services/earn_sql.py); tests turn it off to compare.
EARN_ONE_STATEMENT = True


@transaction.atomic
def purchase_record(*, member: Member | MemberRef, store: Store, external_id: str, occurred_at: dt.datetime,
                    total: Any, now: dt.datetime, lines: list[dict] | None = None, channel: str = Channel.STORE,
                    points_to_pay: int = 0, coupon_discount: Any = "0", stored_value_paid: Any = "0",
                    promo_codes: list[str] | None = None, idempotency_key: str | None = None,
                    staff_user: AbstractBaseUser | None = None, points_paid_by: Transfer | None = None,
                    partner_account: Account | None = None) -> Purchase:
    """Record a purchase: take the points that pay for part of it, earn on the rest by the rules in force
    at its business time, and upgrade the member's tier at once if it takes them over a threshold.

    Idempotent: the key defaults to the store and external reference, so a POS retry replays.
    The returned purchase carries ``tier_change`` (a ``TierChange`` or None) and ``points_balance`` (the
    member's points balance after it) for the caller.
    ``member``: a Member, or a ``MemberRef`` (id / phone / member number) resolved in the lock query.
    ``points_paid_by``: a PAYMENT transfer already posted for this order (a committed points-payment
    quote); the purchase records it instead of taking points again. ``partner_account``: the purchase is at an
    alliance partner, whose system account issues the points earned and receives the points paid.

    A plain earn costs three statements (lock, tier figures, write) on PostgreSQL: see
    docs/decisions/0006-earn-hot-path.md.
    """
    total = money_clean(total, field="total")
    occurred_at = time_clean(occurred_at, field="occurred_at", now=now)
    clean_lines = lines_clean(lines, total=total)
    points_to_pay = points_clean(points_to_pay, field="points_to_pay", allow_zero=True)
    coupon_discount = money_clean(coupon_discount, field="coupon_discount", allow_zero=True)
    stored_value_paid = money_clean(stored_value_paid, field="stored_value_paid", allow_zero=True)
    promo_codes = sorted({text_clean(code, field="promo_codes", max_length=32) for code in (promo_codes or [])})
    external_id = text_clean(external_id, field="external_id", max_length=64)
    if channel not in Channel.values:
        raise InvalidInput(_("channel: “{value}” is not a channel."), field="channel", value=channel)
    key = idempotency_key_check(idempotency_key or f"purchase:{store.code}:{external_id}")
    if points_paid_by is not None and points_to_pay:
        raise InvalidInput(_("points_to_pay: the points were already paid with a quote."), field="points_to_pay")

    accounts = member_accounts_for_write(member=member)
    member = accounts.member
    request = fingerprint({
        "member": member.pk, "store": store.pk, "external_id": external_id, "occurred_at": occurred_at.astimezone(dt.UTC).isoformat(),
        "total": total, "lines": [line.__dict__ for line in clean_lines], "channel": channel, "points_to_pay": points_to_pay,
        "coupon_discount": coupon_discount, "stored_value_paid": stored_value_paid, "promo_codes": promo_codes,
    })
    if points_paid_by is not None:
        points_to_pay = points_paid_by.amount
        request = fingerprint({"request": request, "paid_by": points_paid_by.pk})
    config = config_snapshot(accounts.config_token)
    store = _store_current(store, config)
    fast = EARN_ONE_STATEMENT and connection.vendor == "postgresql" and not points_to_pay and points_paid_by is None
    if not fast:
        existing = _purchase_existing(key=key, store=store, external_id=external_id, request=request)
        if existing is not None:
            return existing
    if points_paid_by is not None and (
        points_paid_by.code != TransferCode.PAYMENT or points_paid_by.member_id != member.pk
        or Purchase.objects.filter(payment_transfer=points_paid_by).exists()
    ):
        raise InvalidInput(_("The points payment does not belong to this order."), field="points_payment")

    program = config.program
    paid_value = program.points_to_money(points_to_pay)
    if paid_value + coupon_discount + stored_value_paid > total:
        raise InvalidInput(_("The points, coupons and stored value paid are worth more than the purchase."),
                           field="points_to_pay")
    tz = program.tz
    rule_set = config.rule_set_at(occurred_at)
    rules = config.rules_for(rule_set)
    tiers, policy = config.tiers, config.policy
    tier = accounts.tier_state.tier if accounts.tier_state is not None else (tiers[0] if tiers else None)
    basket = Basket(total=total, lines=tuple(clean_lines), occurred_at=occurred_at, store_code=store.code,
                    channel=channel, paid_with_points=paid_value, coupon_discount=coupon_discount,
                    stored_value_paid=stored_value_paid, promo_codes=frozenset(promo_codes))
    window = None  # the tier window's (spend, points) so far, when the fast path needs it for the upgrade
    if fast:
        needs_window = tier_upgrade_possible(current=tier, tiers=tiers, policy=policy)
        first, usage, window = member_figures_one_query(
            member=member, at=occurred_at, tz=tz, rules=rules,
            window_from=window_start(policy=policy, at=occurred_at, tz=tz) if needs_window else None)
        facts = member_facts(member=member, tier=tier, at=occurred_at, tz=tz, rules=rules, is_first_purchase=first)
    else:
        facts = member_facts(member=member, tier=tier, at=occurred_at, tz=tz, rules=rules)
        usage = cap_usage(member=member, at=occurred_at, tz=tz, rules=rules)
    earn = earn_evaluate(rules=rules, basket=basket, member=facts, usage=usage)
    purchase = Purchase(
        member=member, store=store, external_id=external_id, channel=channel, occurred_at=occurred_at, total=total,
        lines=[{**line.__dict__, "amount": str(line.amount), "refunded_quantity": 0} for line in clean_lines],
        points_paid=points_to_pay, points_paid_value=paid_value, coupon_discount=coupon_discount,
        stored_value_paid=stored_value_paid, promo_codes=promo_codes, tier=tier, rule_set=rule_set,
        points_earned=earn.points, earn_breakdown=earn.breakdown, idempotency_key=key, fingerprint=request,
        staff_user=staff_user,
    )
    issuer = partner_account or config.system_account(SystemAccount.ISSUANCE) or system_account(SystemAccount.ISSUANCE)
    upgrade_to = tier_upgrade_due(member=member, purchase=purchase, current=tier, tiers=tiers, policy=policy, tz=tz,
                                  figures=window) if fast else None
    if fast and upgrade_to is None:
        written = earn_write_one_statement(purchase=purchase, accounts=accounts, issuer=issuer,
                                           expires_at=program.expires_at_for(occurred_at),
                                           available_at=_available_at(program, occurred_at))
        if written is None:  # the key or (store, external id) was taken: replay or refuse
            return _purchase_taken(key=key, store=store, external_id=external_id, request=request)
        purchase.tier_change = None
        purchase.points_balance = accounts.points.balance
        return purchase

    try:
        with transaction.atomic():  # a savepoint: another member's order may take this reference first
            purchase.save(force_insert=True)
    except IntegrityError:
        return _purchase_taken(key=key, store=store, external_id=external_id, request=request)
    common = {"occurred_at": occurred_at, "source": TransferSource.PURCHASE, "purchase": purchase, "staff_user": staff_user}
    if points_paid_by is not None:
        purchase.payment_transfer = points_paid_by
        purchase.save(update_fields=["payment_transfer", "updated_at"])
    elif points_to_pay:
        purchase.payment_transfer = points_debit(
            accounts=accounts, to_account=partner_account or system_account(SystemAccount.REDEMPTION), amount=points_to_pay,
            code=TransferCode.PAYMENT, idempotency_key=f"{key}:payment",
            breakdown={"kind": "payment", "value": str(paid_value)}, **common,
        )
        purchase.save(update_fields=["payment_transfer", "updated_at"])
    change = tier_upgrade_after_purchase(member=member, purchase=purchase, current=tier, tiers=tiers, policy=policy, tz=tz)
    if change is not None and policy.earn_at_new_tier:
        facts = member_facts(member=member, tier=change.to_tier, at=occurred_at, tz=tz, rules=rules)
        earn = earn_evaluate(rules=rules, basket=basket, member=facts, usage=usage)
        purchase.points_earned, purchase.earn_breakdown = earn.points, earn.breakdown
        purchase.save(update_fields=["points_earned", "earn_breakdown", "updated_at"])
    if earn.points:
        points_credit(
            accounts=accounts, from_account=issuer, amount=earn.points, code=TransferCode.EARN,
            expires_at=program.expires_at_for(occurred_at), available_at=_available_at(program, occurred_at),
            idempotency_key=f"{key}:earn", breakdown=earn.breakdown, **common,
        )
        event_record(type=EventType.POINTS_EARNED, member=member, occurred_at=occurred_at,
                     payload=_earned_payload(purchase, program))
    if change is not None:
        tier_change_event(change=change)
    purchase.tier_change = change
    purchase.points_balance = accounts.points.balance
    return purchase


def member_figures_one_query(*, member: Member, at: dt.datetime, tz, rules, window_from: dt.datetime | None
                             ) -> tuple[bool | None, CapUsage | None, tuple[Decimal, int] | None]:
    """What the earn needs from the member's purchases so far, in one query (PostgreSQL, the fast path):
    whether this is the first purchase (only if a rule asks), the cap usage of the local day, week and month
    (only with member caps) and the tier window's spend and points up to ``at`` (only if ``window_from``).
    The same figures ``member_facts``, ``cap_usage`` and ``qualifying_figures`` read with three queries."""
    select, params = [], []
    if rules.needs_first_purchase:
        select.append(f"NOT EXISTS (SELECT 1 FROM {Purchase._meta.db_table} WHERE member_id = %s)")
        params.append(member.pk)
    bounds = []
    if rules.has_member_caps:
        day, week, month, day_end = cap_windows(at=at, tz=tz)
        for since in (day, week, month):
            select.append("COALESCE(SUM(points_earned) FILTER (WHERE occurred_at >= %s AND occurred_at < %s), 0)")
            params += [since, day_end]
        bounds += [min(week, month), day_end]
    if window_from is not None:
        select.append("COALESCE(SUM(total - refunded_amount) FILTER (WHERE occurred_at >= %s AND occurred_at <= %s), 0)")
        select.append("COALESCE(SUM(points_earned - points_reversed) "
                      "FILTER (WHERE occurred_at >= %s AND occurred_at <= %s), 0)")
        params += [window_from, at, window_from, at]
        bounds += [window_from, at]
    if not select:
        return None, None, None
    sql = f"SELECT {', '.join(select)}"
    if bounds:
        sql += f" FROM {Purchase._meta.db_table} WHERE member_id = %s AND occurred_at >= %s AND occurred_at <= %s"
        params += [member.pk, min(bounds), max(bounds)]
    row = list(hot_fetch(sql, params)[0])
    first = row.pop(0) if rules.needs_first_purchase else None
    usage = CapUsage(day=int(row.pop(0)), week=int(row.pop(0)), month=int(row.pop(0))) if rules.has_member_caps else None
    window = (Decimal(row[0]).quantize(Decimal("0.01")), int(row[1])) if window_from is not None else None
    return first, usage, window


def _store_current(store: Store, config) -> Store:
    """The caller's store as the fresh configuration knows it: an API caller's Store may come from an older
    snapshot (``loyalty.api.purchases.store_for``), so an unknown one is looked up again by its code."""
    known = config.stores_by_pk.get(store.pk)
    if known is not None and known.code == store.code:
        return known
    current = config.stores_by_code.get(store.code) or Store.objects.filter(pk=store.pk, code=store.code).first()
    if current is None:
        raise StoreNotFound()
    return current


def _available_at(program, occurred_at: dt.datetime) -> dt.datetime | None:
    return occurred_at + dt.timedelta(days=program.pending_days) if program.pending_days else None


def _earned_payload(purchase: Purchase, program) -> dict:
    return {"purchase": purchase.pk, "store": purchase.store.code, "external_id": purchase.external_id,
            "points": purchase.points_earned, "pending": bool(program.pending_days)}


def _purchase_taken(*, key: str, store: Store, external_id: str, request: str) -> Purchase:
    """After the database refused the insert: the purchase that took the key (replayed) or the reference."""
    existing = _purchase_existing(key=key, store=store, external_id=external_id, request=request)
    if existing is None:
        raise DuplicatePurchase(store=store.code, external_id=external_id)
    return existing


def _purchase_existing(*, key: str, store: Store, external_id: str, request: str) -> Purchase | None:
    """The purchase already recorded under this key (replayed: same request) or this store and reference
    (refused as a duplicate); None when there is neither. One query."""
    found = list(Purchase.objects.select_related("store").filter(
        Q(idempotency_key=key) | Q(store=store, external_id=external_id)))
    for existing in found:
        if existing.idempotency_key == key:
            replay_or_refuse(stored_fingerprint=existing.fingerprint, request_fingerprint=request)
            existing.tier_change = None
            existing.points_balance = None
            return existing
    if found:
        raise DuplicatePurchase(store=store.code, external_id=external_id)
    return None


@transaction.atomic
def points_earn_topup(*, member: Member, amount: Any, reference: str, occurred_at: dt.datetime, now: dt.datetime,
                      idempotency_key: str | None = None) -> Transfer | None:
    """Points for a stored-value top-up at the top-up rate in force (充值1元积1分). None when the rate gives 0.

    The wallet calls this in the same transaction as the top-up itself.
    """
    amount = money_clean(amount, field="amount")
    occurred_at = time_clean(occurred_at, field="occurred_at", now=now)
    reference = text_clean(reference, field="reference", max_length=64)
    key = idempotency_key_check(idempotency_key or f"topup:{reference}:earn")
    request = fingerprint({"op": "topup", "member": member.pk, "amount": amount, "reference": reference})
    accounts = member_accounts_for_write(member=member)
    existing = Transfer.objects.filter(idempotency_key=key).first()
    if existing is not None:
        replay_or_refuse(stored_fingerprint=existing.fingerprint, request_fingerprint=request)
        return existing
    program = program_settings_get()
    rules = rule_set_compile(rule_set_in_force(at=occurred_at), time_zone=program.time_zone)
    earn = topup_evaluate(rules=rules, amount=amount)
    if not earn.points:
        return None
    return points_credit(
        accounts=accounts, from_account=system_account(SystemAccount.ISSUANCE), amount=earn.points,
        code=TransferCode.EARN, expires_at=program.expires_at_for(occurred_at), idempotency_key=key,
        fingerprint=request, breakdown={**earn.breakdown, "reference": reference}, occurred_at=occurred_at,
        source=TransferSource.TOPUP,
    )


def _refund_lines_amount(purchase: Purchase, lines: list[dict]) -> tuple[Decimal, Decimal, list[dict]]:
    """Amount and exact earned points of the refunded line quantities; updates ``purchase.lines``."""
    earn_lines = {row["line"]: row for row in purchase.earn_breakdown.get("lines", [])}
    amount, share, applied = Decimal(0), Decimal(0), []
    if not isinstance(lines, list) or not lines:
        raise InvalidInput(_("lines: give at least one line to refund."), field="lines")
    for i, raw in enumerate(lines):
        if not isinstance(raw, dict):
            raise InvalidInput(_("lines: each line is an object."), field=f"lines[{i}]")
        sku = text_clean(raw.get("sku"), field=f"lines[{i}].sku", max_length=64)
        quantity = raw.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise InvalidInput(_("{field}: the quantity is a whole number of at least 1."), field=f"lines[{i}].quantity")
        candidates = [
            (index, line) for index, line in enumerate(purchase.lines)
            if line["sku"] == sku and line["quantity"] - line["refunded_quantity"] >= quantity
        ]
        if not candidates:
            raise RefundExceedsPurchase(
                _("Line {sku}: nothing left to refund in that quantity."), sku=sku, refundable=purchase.refundable_amount
            )
        index, line = candidates[0]
        line_amount = Decimal(line["amount"])
        before = line["refunded_quantity"]
        after = before + quantity
        # Cumulative rounding: refunding every unit returns exactly the line amount.
        portion = (line_amount * after / line["quantity"]).quantize(Decimal("0.01"), ROUND_HALF_UP) - (
            line_amount * before / line["quantity"]).quantize(Decimal("0.01"), ROUND_HALF_UP)
        amount += portion
        if index in earn_lines:
            share += Decimal(earn_lines[index]["points"]) * quantity / line["quantity"]
        line["refunded_quantity"] = after
        applied.append({"line": index, "sku": sku, "quantity": quantity, "amount": str(portion)})
    return amount, share, applied


@transaction.atomic
def refund_record(*, purchase: Purchase, occurred_at: dt.datetime, now: dt.datetime, idempotency_key: str,
                  amount: Any = None, lines: list[dict] | None = None,
                  staff_user: AbstractBaseUser | None = None) -> Refund:
    """Refund part or all of a purchase, by amount or by lines.

    Points that paid for the refunded part come back (with the expiry of the lots they came from);
    points earned on it are clawed back in proportion, from the purchase's own lots first. What the
    member no longer has becomes debt (settled by later earnings) or a negative balance, per policy.
    Rounding is cumulative: a full refund reverses exactly what was earned and returns what was paid.
    """
    if (amount is None) == (lines is None):
        raise InvalidInput(_("Give either an amount or lines to refund, not both."), field="amount")
    occurred_at = time_clean(occurred_at, field="occurred_at", now=now)
    key = idempotency_key_check(idempotency_key)
    clean_amount = money_clean(amount, field="amount") if amount is not None else None
    request = fingerprint({"purchase": purchase.pk, "amount": clean_amount, "lines": lines, "occurred_at": occurred_at.astimezone(dt.UTC).isoformat()})

    accounts = member_accounts_for_write(member=purchase.member, require="any")
    existing = Refund.objects.filter(idempotency_key=key).first()
    if existing is not None:
        replay_or_refuse(stored_fingerprint=existing.fingerprint, request_fingerprint=request)
        return existing
    purchase.refresh_from_db()  # under the member lock: refunds of one purchase are serialised
    if occurred_at < purchase.occurred_at:
        raise InvalidInput(_("occurred_at: a refund cannot come before its purchase."), field="occurred_at")
    exact_total = Decimal(purchase.earn_breakdown.get("exact", "0"))
    if lines is not None:
        refund_amount, share, applied = _refund_lines_amount(purchase, lines)
    else:
        refund_amount, applied = clean_amount, []
        share = exact_total * refund_amount / purchase.total
    if refund_amount <= 0:
        raise InvalidInput(_("lines: the refunded lines were free of charge; there is nothing to refund."), field="lines")
    if refund_amount > purchase.refundable_amount:
        raise RefundExceedsPurchase(refundable=purchase.refundable_amount)

    refunded_after = purchase.refunded_amount + refund_amount
    full = refunded_after == purchase.total
    share_before = Refund.objects.filter(purchase=purchase).aggregate(s=Sum("points_share"))["s"] or Decimal(0)
    if full:
        reversed_target, returned_target = purchase.points_earned, purchase.points_paid
    else:
        reversed_target = 0 if not exact_total else min(
            purchase.points_earned,
            int((purchase.points_earned * (share_before + share) / exact_total).to_integral_value(ROUND_FLOOR)),
        )
        returned_target = min(
            purchase.points_paid,
            int((purchase.points_paid * refunded_after / purchase.total).to_integral_value(ROUND_CEILING)),
        )
    to_reverse = max(0, reversed_target - purchase.points_reversed)
    to_return = max(0, returned_target - purchase.points_returned)

    refund = Refund.objects.create(
        purchase=purchase, occurred_at=occurred_at, amount=refund_amount, lines=applied, points_reversed=to_reverse,
        points_returned=to_return, points_share=share.quantize(Decimal("0.000001")), idempotency_key=key,
        fingerprint=request, staff_user=staff_user,
    )
    common = {"occurred_at": occurred_at, "source": TransferSource.REFUND, "purchase": purchase, "refund": refund,
              "staff_user": staff_user}
    if to_return:
        _points_return(accounts=accounts, purchase=purchase, points=to_return, key=key, common=common)
    if to_reverse:
        refund.debt_created = _points_claw_back(accounts=accounts, purchase=purchase, points=to_reverse, key=key, common=common)
    purchase.refunded_amount = refunded_after
    purchase.points_reversed += to_reverse
    purchase.points_returned += to_return
    purchase.save(update_fields=["refunded_amount", "points_reversed", "points_returned", "lines", "updated_at"])
    if refund.debt_created:
        refund.save(update_fields=["debt_created", "updated_at"])
    return refund


def _points_return(*, accounts, purchase: Purchase, points: int, key: str, common: dict) -> None:
    """Give back points that paid for the refunded part, as lots with the expiry they had.

    Lots that expire latest come back first (in the member's favour); one transfer per expiry date.
    """
    payment = purchase.payment_transfer
    by_expiry: dict[str | None, int] = {}
    for _lot_id, taken, expires in (payment.breakdown.get("lots", []) if payment else []):
        by_expiry[expires] = by_expiry.get(expires, 0) + taken
    already = purchase.points_returned
    # Never-expiring first, then latest expiry first; earlier refunds took the same order.
    ordered = sorted(by_expiry.items(), key=lambda kv: kv[0] or "9999", reverse=True)
    left = points
    for part, (expires, amount) in enumerate(ordered):
        usable = max(0, amount - already)  # skip what earlier refunds returned
        already = max(0, already - amount)
        take = min(usable, left)
        if not take:
            continue
        left -= take
        points_credit(
            accounts=accounts, from_account=system_account(SystemAccount.REDEMPTION), amount=take, code=TransferCode.RETURN,
            # Points whose original expiry has passed come back already due: they expire at the next run,
            # dated at the refund, so the history never shows an expiry before the return.
            expires_at=max(dt.datetime.fromisoformat(expires), common["occurred_at"]) if expires else None,
            idempotency_key=f"refund:{key}:return:{part}", reverses=payment,
            breakdown={"kind": "refund_return", "expires_at": expires}, **common,
        )
    if left:  # payment without lot record (should not happen): return as fresh points
        program = program_settings_get()
        points_credit(
            accounts=accounts, from_account=system_account(SystemAccount.REDEMPTION), amount=left, code=TransferCode.RETURN,
            expires_at=program.expires_at_for(common["occurred_at"]), idempotency_key=f"refund:{key}:return:rest",
            reverses=payment, breakdown={"kind": "refund_return"}, **common,
        )


def _points_claw_back(*, accounts, purchase: Purchase, points: int, key: str, common: dict) -> int:
    """Reverse earned points: still-pending ones first, then the purchase's own lots, then any. Returns debt."""
    earn = purchase.transfers.filter(code=TransferCode.EARN).first()
    issuance = system_account(SystemAccount.ISSUANCE)
    left = points
    if earn is not None:
        pending_lots = list(Lot.objects.select_for_update().filter(transfer=earn, pending=True, remaining__gt=0).order_by("id"))
        take = min(left, sum(lot.remaining for lot in pending_lots))
        if take:
            remaining_take = take
            for lot in pending_lots:
                cut = min(lot.remaining, remaining_take)
                lot.remaining -= cut
                remaining_take -= cut
            stamp = timezone.now()
            for lot in pending_lots:
                lot.updated_at = stamp
            Lot.objects.bulk_update(pending_lots, ["remaining", "updated_at"])
            transfer_post(
                debit=accounts.pending, credit=issuance, amount=take, code=TransferCode.REVERSAL,
                idempotency_key=f"refund:{key}:reversal:pending", member=accounts.member, reverses=earn,
                breakdown={"kind": "refund_reversal", "pending": True}, **common,
            )
            left -= take
    if not left:
        return 0
    transfer = points_debit(
        accounts=accounts, to_account=issuance, amount=left, code=TransferCode.REVERSAL, allow_debt=True,
        prefer_transfer_id=earn.pk if earn else None, idempotency_key=f"refund:{key}:reversal",
        reverses=earn, breakdown={"kind": "refund_reversal"}, **common,
    )
    return transfer.breakdown.get("debt_created", 0)
