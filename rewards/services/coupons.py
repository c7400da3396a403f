"""Coupons (优惠券): issue, check, redeem (核销) exactly once, expire on schedule.

Codes
    Eleven characters drawn with ``secrets`` from ``members.services.UNAMBIGUOUS_ALPHABET`` (25 characters:
    no 0/O, 1/I/L, 2/Z, 5/S, 8/B) plus one check character: 25^11 ≈ 2.4·10^15 codes, so codes cannot be
    guessed or enumerated, and they are not sequential. Printed in groups of four (``ACDE-FGHJ-KMNP``);
    accepted in any case, with spaces and dashes (also full-width ones) ignored.

Check character (weighted sum modulo 25)
    Give each character its index in the alphabet (A=0 … 9=24). Number the positions from the right, the
    check character being position 0, and weigh position *i* by ``(1, 2, 3)[i % 3]``. The check character
    is chosen so that the weighted sum of the whole code is 0 modulo 25. The weights 1, 2, 3 and their
    pairwise differences are all prime to 25, so every single wrong character, every swap of two
    neighbours and every swap of characters two apart changes the sum and is caught. A code that fails the
    check is refused as ``CouponInvalid`` before any lookup, so a typo never reaches someone else's coupon.

Refusals
    A malformed or unknown code is ``CouponInvalid`` (the message does not say whether it exists); another
    member's coupon is ``CouponNotYours``; then used, expired, not yet valid, void; then the template's
    conditions (stores, minimum spend, stacking) as ``CouponNotApplicable`` with the reason in words.

Discounts
    FIXED: the amount, never more than the order. PERCENT: the percentage of the order rounded half up to
    the cent, capped at ``max_discount``. SPEND_SAVE (满减): Y once the order reaches X (``minimum_spend``).
    FREE_ITEM: no money off (discount 0); the item (``template.free_item``) is handed over at the counter
    and the redeemed coupon with its reference is the record of it.
"""

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.utils import dateformat, timezone
from django.utils.functional import Promise
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from loyalty.exceptions import IdempotencyKeyReused, InvalidInput, MemberClosed, MemberFrozen, MemberNotFound
from loyalty.explain import money
from loyalty.idempotency import fingerprint, idempotency_key_check, replay_or_refuse
from loyalty.models import EventType as EventType
from loyalty.services.events import event_record
from loyalty.services.program import program_settings_get
from loyalty.validation import money_clean, text_clean
from members.models import Member, MemberStatus, Store
from members.qr import qr_svg
from members.services import UNAMBIGUOUS_ALPHABET, random_code
from rewards.exceptions import (
    CouponAlreadyUsed,
    CouponExpired,
    CouponInvalid,
    CouponNotApplicable,
    CouponNotYetValid,
    CouponNotYours,
    CouponTemplateInactive,
    CouponVoid,
)
from rewards.models import Coupon, CouponKind, CouponSource, CouponStatus, CouponTemplate

# ---- CODES ----

CODE_RANDOM_LENGTH = 11
CODE_LENGTH = CODE_RANDOM_LENGTH + 1
_BASE = len(UNAMBIGUOUS_ALPHABET)  # 25
_VALUE = {c: i for i, c in enumerate(UNAMBIGUOUS_ALPHABET)}
_WEIGHTS = (1, 2, 3)
# Spaces, dashes, dots, underscores and slashes a code may be printed or typed with (after NFKC folding).
_SEPARATORS = re.compile(r"[\s\-‐‑‒–—―−_.·/]+")


def _weighted_sum(chars: str, *, first_position: int) -> int:
    """Σ weight(position) × value over ``chars`` read from the right, the rightmost at ``first_position``."""
    return sum(_WEIGHTS[(first_position + i) % 3] * _VALUE[c] for i, c in enumerate(reversed(chars)))


def coupon_code_check_character(body: str) -> str:
    """The character that makes ``body + check`` sum to 0 modulo 25 (see the module docstring)."""
    return UNAMBIGUOUS_ALPHABET[-_weighted_sum(body, first_position=1) % _BASE]


def coupon_code_generate() -> str:
    body = random_code(length=CODE_RANDOM_LENGTH)  # secrets.choice over the unambiguous alphabet
    return body + coupon_code_check_character(body)


def coupon_code_normalise(raw: object) -> str:
    """Upper case, full-width folded to ASCII, separators removed. The result may still be malformed."""
    text = unicodedata.normalize("NFKC", "" if raw is None else str(raw))
    return _SEPARATORS.sub("", text).upper()


def coupon_code_is_well_formed(code: str) -> bool:
    """Right length, only alphabet characters, and the check character holds. No database access."""
    return (
        len(code) == CODE_LENGTH
        and all(c in _VALUE for c in code)
        and _weighted_sum(code, first_position=0) % _BASE == 0
    )


def coupon_code_format(code: str) -> str:
    """``ACDEFGHJKMNP`` → ``ACDE-FGHJ-KMNP`` for printing and reading aloud."""
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def coupon_code_clean(raw: object) -> str:
    """The normalised code, or ``CouponInvalid`` when it is malformed or its check character fails."""
    code = coupon_code_normalise(raw)
    if not coupon_code_is_well_formed(code):
        raise CouponInvalid(extra={"reason": "malformed"})
    return code


def coupon_qr_svg(*, coupon: Coupon) -> str:
    """Inline SVG markup of a QR code holding the coupon code (what a counter scanner types in)."""
    return qr_svg(coupon.code, scalable=False)


# ---- ISSUE ----


def now_check(now: dt.datetime) -> dt.datetime:
    if not isinstance(now, dt.datetime) or timezone.is_naive(now):
        raise InvalidInput(_("{field}: the time must carry a time zone offset."), field="now")
    return now


def member_active_check(member: Member) -> None:
    """Refuse frozen and closed members (no lock: coupons and quotes do not move points)."""
    status = Member.objects.filter(pk=member.pk).values_list("status", flat=True).first()
    if status is None:
        raise MemberNotFound()
    if status == MemberStatus.FROZEN:
        raise MemberFrozen()
    if status == MemberStatus.CLOSED:
        raise MemberClosed()


def _local_text(value: dt.datetime) -> str:
    return dateformat.format(value.astimezone(program_settings_get().tz), "Y-m-d H:i")


def coupon_validity(*, template: CouponTemplate, now: dt.datetime) -> tuple[dt.datetime, dt.datetime | None]:
    """(valid from, valid until) of a coupon issued now. Both ends are included.

    ``valid_days`` N: from issue until the end of the N-th day after the issue day (program time zone), so
    a coupon issued on 3 March with 7 days is good until 10 March 23:59:59.999999. Fixed dates: the
    template's. Neither: from issue, no end.
    """
    if template.valid_days:
        tz = program_settings_get().tz
        last_day = now.astimezone(tz).date() + dt.timedelta(days=template.valid_days)
        return now, dt.datetime.combine(last_day, dt.time.max, tzinfo=tz)
    return max(template.valid_from, now) if template.valid_from else now, template.valid_until


def coupon_issue_or_replay(*, template: CouponTemplate, member: Member, source: str, now: dt.datetime,
                           idempotency_key: str) -> tuple[Coupon, bool]:
    """``coupon_issue`` that also says whether it issued: ``created`` is False when the key replays an earlier
    issue (bulk issue reports such rows as skipped). The caller holds a transaction."""
    key = idempotency_key_check(idempotency_key)
    now_check(now)
    if source not in CouponSource.values:
        raise InvalidInput(_("source: “{value}” is not a coupon source."), field="source", value=source)

    def replay(existing: Coupon) -> tuple[Coupon, bool]:
        if (existing.template_id, existing.member_id) != (template.pk, member.pk):
            raise IdempotencyKeyReused()
        return existing, False

    if (existing := Coupon.objects.filter(idempotency_key=key).first()) is not None:
        return replay(existing)
    template = CouponTemplate.objects.filter(pk=template.pk).first() or template  # the current settings
    if not template.is_active:
        raise CouponTemplateInactive(name=template.name)
    member_active_check(member)
    valid_from, valid_until = coupon_validity(template=template, now=now)
    if valid_until is not None and valid_until < now:
        raise CouponTemplateInactive(_("Coupons “{name}” are no longer issued: they ended on {date}."),
                                     name=template.name, date=_local_text(valid_until))
    for _attempt in range(5):
        try:
            with transaction.atomic():  # savepoint: a clash leaves the caller's transaction usable
                coupon = Coupon.objects.create(
                    template=template, member=member, code=coupon_code_generate(), status=CouponStatus.ISSUED,
                    source=source, issued_at=now, valid_from=valid_from, valid_until=valid_until,
                    idempotency_key=key,
                )
            return coupon, True
        except IntegrityError:
            # The same key committed by a concurrent request (replay it), or — once in 10^15 — a code clash.
            if (existing := Coupon.objects.filter(idempotency_key=key).first()) is not None:
                return replay(existing)
    raise IntegrityError("could not draw an unused coupon code")  # pragma: no cover


@transaction.atomic
def coupon_issue(*, template: CouponTemplate, member: Member, source: str, now: dt.datetime,
                 idempotency_key: str) -> Coupon:
    """Issue one coupon of ``template`` to ``member``. Idempotent: the same key returns the same coupon (a
    different template or member with that key is ``IdempotencyKeyReused``).

    Refuses inactive templates and templates whose fixed end has passed (``CouponTemplateInactive``), and
    frozen or closed members. Validity: see ``coupon_validity``.
    """
    coupon, _created = coupon_issue_or_replay(template=template, member=member, source=source, now=now,
                                              idempotency_key=idempotency_key)
    return coupon


# ---- CHECK AND REDEEM ----


@dataclass(frozen=True)
class CouponCheck:
    coupon: Coupon
    discount: Decimal
    payable: Decimal
    message: str | Promise  # translated when displayed
    free_item: str = ""


def _not_applicable(reason: str | Promise, **params) -> CouponNotApplicable:
    return CouponNotApplicable(reason=format_lazy(reason, **params) if params else reason)


def _store_names(codes: list[str]) -> str:
    names = dict(Store.objects.filter(code__in=codes).values_list("code", "name"))
    return ", ".join(f"{names[c]} ({c})" if c in names else c for c in codes)


def coupon_discount(*, template: CouponTemplate, order_amount: Decimal) -> Decimal:
    """Money off ``order_amount`` (conditions already met); never more than the order."""
    if template.kind == CouponKind.PERCENT:
        off = (order_amount * template.percent / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)
        if template.max_discount is not None:
            off = min(off, template.max_discount)
    elif template.kind in (CouponKind.FIXED, CouponKind.SPEND_SAVE):
        off = template.amount or Decimal("0.00")
    else:  # FREE_ITEM: the item is handed over; no money off
        off = Decimal("0.00")
    return min(off, order_amount)


def _coupon_check(*, coupon: Coupon, member: Member | None, store: Store | None, order_amount: Decimal,
                  now: dt.datetime, with_points: bool, other_coupons: int) -> CouponCheck:
    if member is not None and coupon.member_id != member.pk:
        raise CouponNotYours()
    if coupon.status == CouponStatus.REDEEMED:
        raise CouponAlreadyUsed()
    if coupon.status == CouponStatus.VOID:
        raise CouponVoid()
    if coupon.status == CouponStatus.EXPIRED or (coupon.valid_until is not None and now > coupon.valid_until):
        raise CouponExpired(date=_local_text(coupon.valid_until) if coupon.valid_until else "—")
    if now < coupon.valid_from:
        raise CouponNotYetValid(date=_local_text(coupon.valid_from))
    template = coupon.template
    currency = program_settings_get().currency
    if template.stores and (store is None or store.code not in template.stores):
        raise _not_applicable(_("it is valid only at {stores}."), stores=_store_names(list(template.stores)))
    if order_amount < template.minimum_spend:
        raise _not_applicable(_("the order must come to at least {minimum}; this one is {amount}."),
                              minimum=money(template.minimum_spend, currency), amount=money(order_amount, currency))
    if with_points and not template.stacks_with_points:
        raise _not_applicable(_("it cannot be combined with paying with points."))
    if other_coupons and not template.stacks_with_coupons:
        raise _not_applicable(_("it cannot be combined with other coupons."))
    if template.kind != CouponKind.FREE_ITEM and order_amount <= 0:
        raise _not_applicable(_("there is nothing to pay that it could take money off."))
    off = coupon_discount(template=template, order_amount=order_amount)
    payable = order_amount - off
    if template.kind == CouponKind.FREE_ITEM:
        message = format_lazy(_("Free: {item}. {payable} to pay."), item=template.free_item, payable=money(payable, currency))
    else:
        message = format_lazy(_("{discount} off: {payable} to pay."), discount=money(off, currency),
                              payable=money(payable, currency))
    return CouponCheck(coupon=coupon, discount=off, payable=payable, message=message,
                       free_item=template.free_item if template.kind == CouponKind.FREE_ITEM else "")


def _inputs_clean(*, code: str, order_amount, now: dt.datetime, other_coupons: int) -> tuple[str, Decimal]:
    code = coupon_code_clean(code)  # before any lookup
    order_amount = money_clean(order_amount, field="order_amount", allow_zero=True)
    now_check(now)
    if isinstance(other_coupons, bool) or not isinstance(other_coupons, int) or other_coupons < 0:
        raise InvalidInput(_("{field}: give a whole number of at least 0."), field="other_coupons")
    return code, order_amount


def coupon_validate(*, code: str, member: Member | None, store: Store | None, order_amount: Decimal,
                    now: dt.datetime, with_points: bool = False, other_coupons: int = 0) -> CouponCheck:
    """Can this code be used for this order, and what would it take off? Writes nothing.

    ``member`` None: the coupon is presented at the counter without a member card (the code is the proof).
    ``with_points``: part of the order is paid with points; ``other_coupons``: how many other coupons the
    order uses. Raises the refusals listed in the module docstring.
    """
    code, order_amount = _inputs_clean(code=code, order_amount=order_amount, now=now, other_coupons=other_coupons)
    coupon = Coupon.objects.select_related("template").filter(code=code).first()
    if coupon is None:
        raise CouponInvalid()
    return _coupon_check(coupon=coupon, member=member, store=store, order_amount=order_amount, now=now,
                         with_points=with_points, other_coupons=other_coupons)


@transaction.atomic
def coupon_redeem(*, code: str, member: Member | None, store: Store | None, order_amount: Decimal,
                  now: dt.datetime, idempotency_key: str, reference: str = "", with_points: bool = False,
                  other_coupons: int = 0) -> Coupon:
    """Redeem (核销) the coupon for this order: exactly once, however many tills try at the same moment.

    The coupon row is locked (``select_for_update``) and its state checked again under the lock, so of
    concurrent attempts one redeems and the others see ``CouponAlreadyUsed``. Records the discount, store,
    reference and time. The same idempotency key with the same request returns the coupon unchanged (with
    another request: ``IdempotencyKeyReused``); so does the same order reference at the same store.
    """
    key = idempotency_key_check(idempotency_key)
    reference = text_clean(reference, field="reference", max_length=64, required=False)
    code, order_amount = _inputs_clean(code=code, order_amount=order_amount, now=now, other_coupons=other_coupons)
    coupon = Coupon.objects.select_for_update(of=("self",)).select_related("template").filter(code=code).first()
    if coupon is None:
        raise CouponInvalid()
    request = fingerprint({"code": code, "member": member.pk if member else None, "store": store.pk if store else None,
                           "order_amount": order_amount, "reference": reference, "with_points": with_points,
                           "other_coupons": other_coupons})
    if coupon.redeem_idempotency_key == key:  # the same redemption, retried
        replay_or_refuse(stored_fingerprint=coupon.redeem_fingerprint, request_fingerprint=request)
        return coupon
    if Coupon.objects.filter(redeem_idempotency_key=key).exists():
        raise IdempotencyKeyReused()
    if member is not None and coupon.member_id != member.pk:
        raise CouponNotYours()
    if (reference and coupon.status == CouponStatus.REDEEMED and coupon.redeemed_reference == reference
            and coupon.redeemed_store_id == (store.pk if store else None)):
        return coupon  # the same order (POS reference) retried under a new key
    check = _coupon_check(coupon=coupon, member=member, store=store, order_amount=order_amount, now=now,
                          with_points=with_points, other_coupons=other_coupons)
    coupon.status = CouponStatus.REDEEMED
    coupon.redeemed_at = now
    coupon.redeemed_store = store
    coupon.redeemed_reference = reference
    coupon.discount = check.discount
    coupon.redeem_idempotency_key, coupon.redeem_fingerprint = key, request
    coupon.save(update_fields=["status", "redeemed_at", "redeemed_store", "redeemed_reference", "discount",
                               "redeem_idempotency_key", "redeem_fingerprint", "updated_at"])
    event_record(type=EventType.COUPON_REDEEMED, member_id=coupon.member_id, occurred_at=now, payload={
        "coupon": coupon.pk, "template": coupon.template_id, "discount": str(coupon.discount), "reference": reference,
        "store": store.code if store else None})
    return coupon


# ---- EXPIRY ----

EXPIRE_BATCH_SIZE = 1000


def coupons_expire_due(*, now: dt.datetime, batch_size: int | None = None) -> int:
    """Mark ISSUED coupons whose end has passed as EXPIRED; returns how many. Set-based UPDATEs of at most
    ``batch_size`` rows, each in its own short transaction; safe to rerun and to run beside redemptions
    (the UPDATE re-checks ``status = ISSUED``, so a coupon redeemed meanwhile stays redeemed)."""
    now_check(now)
    batch = batch_size or EXPIRE_BATCH_SIZE
    total = 0
    while True:
        with transaction.atomic():
            due = Coupon.objects.filter(status=CouponStatus.ISSUED, valid_until__lt=now)
            ids = list(due.order_by("valid_until", "id").values_list("pk", flat=True)[:batch])
            if ids:
                total += due.filter(pk__in=ids).update(status=CouponStatus.EXPIRED, updated_at=timezone.now())
        if len(ids) < batch:
            return total
