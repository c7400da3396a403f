"""Paying with points (积分抵现) and the checkout that combines coupons, points and the rest.

A till first asks for a quote (how many points may pay for this order, and what they are worth), shows it,
and then commits it — on its own (``points_quote_commit``) or, better, as part of ``checkout``, which
redeems the coupons, commits the quote and records the purchase in one transaction. What points and
coupons leave is paid in cash or stored value (mixed payment); this module does not see that money.

Rules of a quote (``SpendingSettings`` and the program's value of a point):

* paying with points may be switched off; orders below ``points_minimum_order`` cannot use points;
* at most ``points_maximum_share`` % of the order (empty: 上不封顶, the whole order);
* points are used in multiples of ``points_step`` (rounded down), never more than the member has available;
* the quote holds for ``quote_ttl_seconds``, then it cannot commit; it commits once — the same
  idempotency key replays the first commit, any other attempt is ``QuoteAlreadyCommitted``.

The commit posts one ``PAYMENT`` transfer (member → ``REDEMPTION`` system account, soonest-expiring lots
first) and keeps it on the quote; the purchase keeps it as ``payment_transfer``, so a refund returns the
points that paid for the refunded part (``loyalty.services.refund_record``).
"""

import datetime as dt
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from loyalty.exceptions import IdempotencyKeyReused, InsufficientPoints, InvalidInput
from loyalty.explain import money
from loyalty.idempotency import fingerprint, idempotency_key_check
from loyalty.models import (
    Account,
    Channel,
    ProgramSettings,
    Purchase,
    SystemAccount,
    Transfer,
    TransferCode,
    TransferSource,
)
from loyalty.services.ledger import member_accounts_for_write, points_debit, system_account
from loyalty.services.program import program_settings_get
from loyalty.services.purchases import purchase_record
from loyalty.validation import money_clean, points_clean, text_clean
from members.models import Member, Store
from rewards.exceptions import (
    PointsPaymentNotAllowed,
    QuoteAlreadyCommitted,
    QuoteExpired,
    QuoteMismatch,
    QuoteNotFound,
)
from rewards.models import PointsQuote, QuoteStatus, SpendingSettings
from rewards.selectors_catalogue import points_available
from rewards.services.coupons import coupon_code_clean, coupon_redeem, member_active_check, now_check

# Keys of the writes a checkout makes are derived from its own (``{key}:coupon:{code}``, ``{key}:points``).
MAX_KEY_LENGTH = 160
PAYMENT_KEY_PREFIX = "points-payment:"


def spending_settings_get() -> SpendingSettings:
    """The spending settings, created with their defaults on first use."""
    settings, _created = SpendingSettings.objects.get_or_create(pk=1)
    return settings


def _key_check(key: str | None) -> str:
    key = idempotency_key_check(key)
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(_("The idempotency key is longer than {limit} characters."), field="idempotency_key",
                           limit=MAX_KEY_LENGTH)
    return key


def _id_check(value: Any, *, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(_("{field}: give the id as a whole number."), field=field)
    return value


def _not_allowed(reason, **params) -> PointsPaymentNotAllowed:
    return PointsPaymentNotAllowed(reason=format_lazy(reason, **params) if params else reason)


# ---- QUOTE ----


def points_for_value(*, program: ProgramSettings, value: Decimal) -> int:
    """The most whole points whose value (as ``points_to_money`` rounds it) is not more than ``value``."""
    points = int((value * program.points_value_points / program.points_value_amount).to_integral_value(ROUND_FLOOR))
    while points > 0 and program.points_to_money(points) > value:
        points -= 1
    return max(points, 0)


@transaction.atomic
def points_quote_create(*, member: Member, order_amount: Decimal, now: dt.datetime, store: Store | None = None,
                        points: int | None = None) -> PointsQuote:
    """Offer to pay part of an order of ``order_amount`` with points; ``points`` None asks for the most allowed.

    The amount is what is left to pay after coupons. Asking for more than the member has is
    ``InsufficientPoints``; more than the order allows, or an order that cannot use points at all, is
    ``PointsPaymentNotAllowed`` with the reason. A request that is not a multiple of the step is rounded
    down to it. Nothing is taken yet: the quote expires after ``quote_ttl_seconds`` unless committed.
    """
    order_amount = money_clean(order_amount, field="order_amount")
    now_check(now)
    if points is not None:
        points = points_clean(points, field="points")
    spending, program = spending_settings_get(), program_settings_get()
    currency = program.currency
    if not spending.points_payment_enabled:
        raise _not_allowed(_("paying with points is switched off."))
    member_active_check(member)
    if order_amount < spending.points_minimum_order:
        raise _not_allowed(_("the order must come to at least {minimum} to pay with points; this one is {amount}."),
                           minimum=money(spending.points_minimum_order, currency), amount=money(order_amount, currency))
    share = spending.points_maximum_share
    max_value = order_amount if share is None else (order_amount * share / 100).quantize(Decimal("0.01"), ROUND_FLOOR)
    by_value = points_for_value(program=program, value=max_value)
    available = points_available(member=member)
    step = spending.points_step
    if points is None:
        points = min(by_value, available)
    elif points > available:
        raise InsufficientPoints(available=available, requested=points)
    elif points > by_value:
        raise _not_allowed(_("at most {points} points ({value}) can pay for this order."),
                           points=by_value - by_value % step, value=money(max_value, currency))
    points -= points % step
    if points <= 0:
        if available < step:
            raise _not_allowed(_("{available} points are available, and points are used in steps of {step}."),
                               available=available, step=step)
        raise _not_allowed(_("at most {value} of this order can be paid with points, less than one step of {step} "
                             "points."), value=money(max_value, currency), step=step)
    return PointsQuote.objects.create(
        member=member, store=store, order_amount=order_amount, points=points, value=program.points_to_money(points),
        status=QuoteStatus.OPEN, expires_at=now + dt.timedelta(seconds=spending.quote_ttl_seconds),
    )


# ---- COMMIT ----


def _quote_locked(*, quote_id: int, member: Member | None) -> PointsQuote:
    """Lock the member's accounts, then the quote (the ledger's lock order). Another member's quote is not found."""
    quote = PointsQuote.objects.select_related("member").filter(pk=quote_id).first()
    if quote is None or (member is not None and quote.member_id != member.pk):
        raise QuoteNotFound()
    member_accounts_for_write(member=quote.member)
    return PointsQuote.objects.select_for_update(of=("self",)).select_related("member", "transfer", "purchase").get(
        pk=quote.pk)


@transaction.atomic
def points_quote_commit(*, quote_id: int, member: Member | None, now: dt.datetime, idempotency_key: str,
                        source: str = TransferSource.REDEMPTION, partner_account: Account | None = None) -> PointsQuote:
    """Take the quoted points: one PAYMENT transfer to the redemption account, kept on the quote.

    Commits once. The same idempotency key replays the first result (even after the quote's time is up);
    another commit of a committed quote is ``QuoteAlreadyCommitted``; a quote past its time is
    ``QuoteExpired``; ``InsufficientPoints`` if the member spent the points meanwhile.
    """
    key = _key_check(idempotency_key)
    quote_id = _id_check(quote_id, field="quote_id")
    now_check(now)
    if source not in TransferSource.values:
        raise InvalidInput(_("source: “{value}” is not a source."), field="source", value=source)
    quote = _quote_locked(quote_id=quote_id, member=member)
    transfer_key = PAYMENT_KEY_PREFIX + key
    existing = Transfer.objects.filter(idempotency_key=transfer_key).only("pk").first()
    if existing is not None:
        if existing.pk == quote.transfer_id:
            return quote
        raise IdempotencyKeyReused()
    if quote.status == QuoteStatus.COMMITTED:
        raise QuoteAlreadyCommitted()
    if quote.status != QuoteStatus.OPEN or now >= quote.expires_at:
        raise QuoteExpired()
    accounts = member_accounts_for_write(member=quote.member)  # already locked above: returns at once
    quote.transfer = points_debit(
        accounts=accounts, to_account=partner_account or system_account(SystemAccount.REDEMPTION), amount=quote.points,
        code=TransferCode.PAYMENT, occurred_at=now, idempotency_key=transfer_key, source=source,
        fingerprint=fingerprint({"op": "points_quote_commit", "quote": quote.pk}),
        breakdown={"kind": "payment", "quote": quote.pk, "value": str(quote.value),
                   "order_amount": str(quote.order_amount)},
    )
    quote.status = QuoteStatus.COMMITTED
    quote.committed_at = now
    quote.save(update_fields=["transfer", "status", "committed_at", "updated_at"])
    return quote


# ---- CHECKOUT ----


@transaction.atomic
def checkout(*, member: Member, store: Store, external_id: str, occurred_at: dt.datetime, total: Any,
             lines: list[dict] | None, now: dt.datetime, quote_id: int | None = None, coupon_codes=(),
             channel: str = Channel.STORE, idempotency_key: str | None = None,
             staff_user: AbstractBaseUser | None = None, stored_value_paid: Any = "0",
             promo_codes: list[str] | None = None, partner_account: Account | None = None) -> Purchase:
    """Record a purchase paid partly with coupons and points, in one transaction.

    1. The member's accounts are locked (every coupon of the order is theirs, so one member's checkouts
       are serialised); the quote, if any, is locked next.
    2. The coupons are redeemed in the order given, each on what the ones before it left to pay (minimum
       spend included). A coupon that does not stack with points refuses when a quote is used; one that
       does not stack with other coupons refuses when the order has more than one.
    3. The quote must be for what is left after the coupons (and for this store, if it names one). An open
       quote is committed now; a quote committed earlier is used as it is, once.
    4. ``purchase_record`` records the purchase with the coupons' discount and the points payment, earns
       on the rest, and the quote is linked to the purchase.

    Idempotent: the key (default ``purchase:{store}:{external_id}``, as ``purchase_record``) replays the
    first purchase; coupons and quote replay with keys derived from it. Any refusal writes nothing.
    """
    total = money_clean(total, field="total")
    external_id = text_clean(external_id, field="external_id", max_length=64)
    key = _key_check(idempotency_key or f"purchase:{store.code}:{external_id}")
    now_check(now)
    coupon_codes = () if coupon_codes is None else coupon_codes
    if isinstance(coupon_codes, str | bytes):
        raise InvalidInput(_("coupon_codes: give a list of codes."), field="coupon_codes")
    codes = [coupon_code_clean(code) for code in coupon_codes]  # a typo is refused before any lookup
    if len(set(codes)) != len(codes):
        raise InvalidInput(_("coupon_codes: the same coupon is given twice."), field="coupon_codes")
    if quote_id is not None:
        quote_id = _id_check(quote_id, field="quote_id")

    member_accounts_for_write(member=member)
    quote = _quote_locked(quote_id=quote_id, member=member) if quote_id is not None else None

    discount = Decimal("0.00")
    for code in codes:
        coupon = coupon_redeem(
            code=code, member=member, store=store, order_amount=total - discount, now=now,
            idempotency_key=f"{key}:coupon:{code}", reference=external_id, with_points=quote is not None,
            other_coupons=len(codes) - 1,
        )
        discount += coupon.discount

    payment = None
    if quote is not None:
        currency = program_settings_get().currency
        due = total - discount
        if quote.order_amount != due:
            raise QuoteMismatch(reason=format_lazy(
                _("it was made for {quoted}, but {due} is left to pay after coupons; ask for a new quote."),
                quoted=money(quote.order_amount, currency), due=money(due, currency)))
        if quote.store_id is not None and quote.store_id != store.pk:
            raise QuoteMismatch(reason=_("it was made for another store."))
        if quote.status == QuoteStatus.OPEN:
            quote = points_quote_commit(quote_id=quote.pk, member=member, now=now, idempotency_key=f"{key}:points",
                                        source=TransferSource.PURCHASE, partner_account=partner_account)
        elif quote.status != QuoteStatus.COMMITTED:
            raise QuoteExpired()
        elif quote.purchase_id is not None and quote.purchase.idempotency_key != key:
            raise QuoteAlreadyCommitted()
        payment = quote.transfer

    purchase = purchase_record(
        member=member, store=store, external_id=external_id, occurred_at=occurred_at, total=total, now=now,
        lines=lines, channel=channel, coupon_discount=discount, stored_value_paid=stored_value_paid,
        promo_codes=promo_codes, idempotency_key=key, staff_user=staff_user, points_paid_by=payment,
        partner_account=partner_account,
    )
    if quote is not None and quote.purchase_id is None:
        quote.purchase = purchase
        quote.save(update_fields=["purchase", "updated_at"])
    return purchase
