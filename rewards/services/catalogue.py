"""Redeeming catalogue rewards (积分兑换), handing them over at the counter, and cancelling.

Lock order (the same as every ledger write): the member's accounts first (``member_accounts_for_write``;
for a stored-value reward their wallet accounts too, in the same pk-ordered lock), then the reward row, then
anything the reward's effect touches. Holding the member lock serialises one member's redemptions, so the
per-member limit count cannot race; holding the reward row serialises its stock, so it is never oversold.

Every refusal raises before or instead of a write inside one transaction, so a refused request leaves
nothing behind. The cash leg of a points + cash reward runs last, after every check and write that can
refuse: a declined payment rolls the whole redemption back and no points are taken.
"""

import datetime as dt
import hmac
import logging

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _

from loyalty.exceptions import IdempotencyKeyReused, InvalidInput
from loyalty.idempotency import fingerprint, idempotency_key_check, replay_or_refuse
from loyalty.locks import POINTS_KINDS, WALLET_KINDS, member_accounts_lock
from loyalty.models import EventType as EventType
from loyalty.models import SystemAccount, Tier, TierChangeReason, Transfer, TransferCode, TransferSource
from loyalty.services.events import event_record
from loyalty.services.ledger import (
    MemberAccounts,
    member_accounts_for_write,
    points_credit,
    points_debit,
    system_account,
)
from loyalty.services.program import program_settings_get
from loyalty.services.tiers import member_tier_current, tier_policy_get, tier_set
from loyalty.validation import text_clean
from members.models import Member, Store
from members.services import random_code
from rewards import payment_gateway
from rewards.exceptions import (
    CashPaymentFailed,
    CashRefundFailed,
    OutOfStock,
    PickupCodeInvalid,
    RedemptionNotFound,
    RedemptionStateConflict,
    RewardNotFound,
)
from rewards.models import CouponSource, Redemption, RedemptionStatus, Reward, RewardKind
from rewards.selectors_catalogue import limit_usage, pickup_code_normalise, reward_refusal

logger = logging.getLogger(__name__)

PICKUP_CODE_LENGTH = 8  # 25^8 ≈ 1.5·10^11 codes from the unambiguous alphabet: read aloud, typed at a counter
# Keys of the writes a redemption makes are derived from its own (``redemption:{key}:coupon``, …): room for them.
MAX_KEY_LENGTH = 180


def _key_check(key: str | None) -> str:
    key = idempotency_key_check(key)
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(_("The idempotency key is longer than {limit} characters."), field="idempotency_key",
                           limit=MAX_KEY_LENGTH)
    return key


def _now_check(now: dt.datetime) -> dt.datetime:
    if not isinstance(now, dt.datetime) or timezone.is_naive(now):
        raise InvalidInput(_("{field}: the time must carry a time zone offset."), field="now")
    return now


def _id_check(value, *, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(_("{field}: give the id as a whole number."), field=field)
    return value


def _status_text(status: str):
    """"pending" / "fulfilled" / "cancelled" in the language the message is read in."""
    return lazy(lambda: str(RedemptionStatus(status).label).lower(), str)()


def _state_conflict(redemption: Redemption) -> RedemptionStateConflict:
    return RedemptionStateConflict(status=_status_text(redemption.status), extra={"status": redemption.status})


# ---- REDEEM ----


@transaction.atomic
def redemption_create(*, member: Member, reward_id: int, now: dt.datetime, idempotency_key: str,
                      source: str = TransferSource.REDEMPTION) -> Redemption:
    """Redeem one ``reward_id`` for ``member``: take the points (and the cash part), take one from stock, and
    give what the reward gives.

    Goods and services that are handed over at the counter stay PENDING with a pickup code; every other kind
    (and goods without fulfilment) is FULFILLED at once. Idempotent: the same key with the same request
    returns the first redemption (whatever changed since); with a different request it is refused.
    Raises ``RewardNotFound``, ``RewardNotAvailable``, ``RedemptionLimitReached``, ``OutOfStock``,
    ``InsufficientPoints``, ``CashPaymentFailed``, member-state errors; nothing is written when it does.
    """
    try:
        with transaction.atomic():  # savepoint: a unique-key clash below leaves this transaction usable
            return _redemption_create(member=member, reward_id=reward_id, now=now, idempotency_key=idempotency_key,
                                      source=source)
    except IntegrityError:
        # Another member's request with the same key committed between our check and our insert.
        if Redemption.objects.filter(idempotency_key=str(idempotency_key).strip()).exists():
            raise IdempotencyKeyReused() from None
        raise


def _redemption_create(*, member: Member, reward_id: int, now: dt.datetime, idempotency_key: str,
                       source: str) -> Redemption:
    key = _key_check(idempotency_key)
    _now_check(now)
    reward_id = _id_check(reward_id, field="reward_id")
    if source not in TransferSource.values:
        raise InvalidInput(_("source: “{value}” is not a source."), field="source", value=source)
    request = fingerprint({"op": "reward_redeem", "member": member.pk, "reward": reward_id})

    # Which accounts to lock depends on the kind; a kind edited meanwhile is caught after the reward lock.
    kind = Reward.objects.filter(pk=reward_id).values_list("kind", flat=True).first()
    if kind == RewardKind.STORED_VALUE:
        member_accounts_lock(member=member, kinds=POINTS_KINDS + WALLET_KINDS)
    accounts = member_accounts_for_write(member=member)
    existing = Redemption.objects.filter(idempotency_key=key).first()
    if existing is not None:
        replay_or_refuse(stored_fingerprint=existing.fingerprint, request_fingerprint=request)
        return existing
    reward = (Reward.objects.select_for_update(of=("self",)).select_related("upgrade_tier", "coupon_template")
              .filter(pk=reward_id).first())
    if reward is None:
        raise RewardNotFound()
    if reward.kind != kind and reward.kind == RewardKind.STORED_VALUE:
        # The kind was edited between the peek and the lock (admin refuses that once redeemed): still no
        # cycle, as every writer of this member's wallet that also locks a reward holds their points first.
        member_accounts_lock(member=member, kinds=POINTS_KINDS + WALLET_KINDS)

    tz = program_settings_get().tz
    refusal = reward_refusal(
        reward=reward, tiers=list(reward.tiers.all()), now=now, tz=tz, member_tier=member_tier_current(member=member),
        usage=limit_usage(member=member, reward=reward, now=now, tz=tz), available_points=accounts.available,
    )
    if refusal is not None:
        raise refusal

    if reward.stock is not None:
        # Conditional decrement under the row lock: the database refuses to go below 0 either way.
        if not Reward.objects.filter(pk=reward.pk, stock__gte=1).update(stock=F("stock") - 1, updated_at=timezone.now()):
            raise OutOfStock()
        reward.stock -= 1
    name = reward.name[:255]
    transfer = points_debit(
        accounts=accounts, to_account=system_account(SystemAccount.REDEMPTION), amount=reward.points_cost,
        code=TransferCode.REDEEM, occurred_at=now, idempotency_key=f"redemption:{key}", fingerprint=request,
        source=source, reason=name,
        breakdown={"kind": "redemption", "reward": reward.pk, "reward_kind": reward.kind, "cash": str(reward.cash_price)},
    )
    pending = reward.kind in (RewardKind.GOODS, RewardKind.SERVICE) and reward.needs_fulfilment
    redemption = _redemption_insert(
        member=member, reward=reward, points=reward.points_cost, cash=reward.cash_price,
        status=RedemptionStatus.PENDING if pending else RedemptionStatus.FULFILLED, redeemed_at=now,
        fulfilled_at=None if pending else now, transfer=transfer, idempotency_key=key, fingerprint=request,
        with_pickup_code=pending,
    )
    _effect_apply(redemption=redemption, reward=reward, key=key, now=now, tz=tz)
    if reward.cash_price > 0:
        _cash_take(redemption=redemption, member=member, key=key)
    payload = {"redemption": redemption.pk, "reward": reward.pk, "reward_name": reward.name, "points": redemption.points,
               "cash": str(redemption.cash), "status": redemption.status}
    event_record(type=EventType.REDEMPTION_CREATED, member=member, occurred_at=now, payload=payload)
    event_record(type=EventType.POINTS_REDEEMED, member=member, occurred_at=now,
                 payload={"transfer": transfer.pk, "points": redemption.points, "reason": reward.name})
    return redemption


def _redemption_insert(*, with_pickup_code: bool, **fields) -> Redemption:
    """Insert the redemption; a pickup code that collides with another (1 in 10^11) is drawn again."""
    for _attempt in range(5):
        code = random_code(length=PICKUP_CODE_LENGTH) if with_pickup_code else None
        try:
            with transaction.atomic():
                return Redemption.objects.create(pickup_code=code, **fields)
        except IntegrityError:
            if not with_pickup_code or Redemption.objects.filter(idempotency_key=fields["idempotency_key"]).exists():
                raise
    raise RuntimeError("could not draw a unique pickup code")  # pragma: no cover


def _effect_apply(*, redemption: Redemption, reward: Reward, key: str, now: dt.datetime, tz) -> None:
    """What the reward gives besides a pickup: a coupon, stored value, a tier, a donation.

    The coupon and wallet services are imported here, where they are used: the admin imports this module at
    start-up, and neither belongs on that path.
    """
    member = redemption.member
    if reward.kind == RewardKind.COUPON:
        from rewards.services.coupons import coupon_issue

        redemption.coupon = coupon_issue(template=reward.coupon_template, member=member,
                                         source=CouponSource.REDEMPTION, now=now,
                                         idempotency_key=f"redemption:{key}:coupon")
        redemption.save(update_fields=["coupon", "updated_at"])
    elif reward.kind == RewardKind.STORED_VALUE:
        from rewards.services.wallet import wallet_credit

        wallet_credit(member=member, amount=reward.stored_value, now=now, reason=reward.name[:255],
                      idempotency_key=f"redemption:{key}:wallet", source=redemption.transfer.source)
    elif reward.kind == RewardKind.TIER_UPGRADE:
        tier: Tier = reward.upgrade_tier
        tier_set(
            member=member, tier=tier, reason=TierChangeReason.REDEMPTION, at=now, tz=tz, policy=tier_policy_get(),
            details={"via": "redemption", "redemption": redemption.pk, "reward": reward.pk, "reward_name": reward.name},
            key=f"tier:{member.pk}:redemption:{redemption.pk}",
        )
    elif reward.kind == RewardKind.DONATION:
        Reward.objects.filter(pk=reward.pk).update(donated_points=F("donated_points") + reward.points_cost,
                                                   updated_at=timezone.now())
        reward.donated_points += reward.points_cost


def _cash_take(*, redemption: Redemption, member: Member, key: str) -> None:
    try:
        reference = payment_gateway.cash_charge(amount=redemption.cash, reference=f"redemption:{key}", member=member)
    except payment_gateway.PaymentDeclined as exc:
        raise CashPaymentFailed(reason=exc.reason, extra={"amount": str(redemption.cash)}) from None
    except Exception:
        logger.exception("cash charge for redemption key %s failed", key)
        raise CashPaymentFailed(reason=_("the payment service did not answer"),
                                extra={"amount": str(redemption.cash)}) from None
    redemption.cash_reference = reference
    redemption.save(update_fields=["cash_reference", "updated_at"])


# ---- FULFIL (hand over at the counter) ----


@transaction.atomic
def redemption_fulfil(*, redemption_id: int, pickup_code: str, now: dt.datetime, store: Store | None = None,
                      staff_user: AbstractBaseUser | None = None) -> Redemption:
    """Hand a pending redemption over against its pickup code, once.

    The code is compared case-insensitively in constant time. A redemption that is not PENDING (already
    handed over, cancelled, or never needing a pickup) raises ``RedemptionStateConflict``.
    """
    _now_check(now)
    redemption_id = _id_check(redemption_id, field="redemption_id")
    given = pickup_code_normalise(pickup_code)
    if not given:
        raise InvalidInput(_("Enter the pickup code the member shows."), field="pickup_code")
    redemption = Redemption.objects.select_for_update().filter(pk=redemption_id).first()
    if redemption is None:
        raise RedemptionNotFound()
    if redemption.status != RedemptionStatus.PENDING or not redemption.pickup_code:
        raise _state_conflict(redemption)
    if not hmac.compare_digest(given.encode(), redemption.pickup_code.upper().encode()):
        raise PickupCodeInvalid()
    redemption.status = RedemptionStatus.FULFILLED
    redemption.fulfilled_at = now
    redemption.fulfilled_store = store
    redemption.fulfilled_by = staff_user
    redemption.save(update_fields=["status", "fulfilled_at", "fulfilled_store", "fulfilled_by", "updated_at"])
    event_record(type=EventType.REDEMPTION_FULFILLED, member_id=redemption.member_id, occurred_at=now,
                 payload={"redemption": redemption.pk, "reward": redemption.reward_id,
                          "store": store.code if store else None})
    return redemption


# ---- CANCEL ----


@transaction.atomic
def redemption_cancel(*, redemption_id: int, now: dt.datetime, reason: str, staff_user: AbstractBaseUser | None = None,
                      idempotency_key: str | None = None) -> Redemption:
    """Cancel a PENDING redemption: the points come back as new transfers (lots with the expiry they had), one
    item goes back to stock, and the cash part is refunded through the payment gateway.

    Only pending redemptions (goods and services not yet handed over) can be cancelled; coupons, stored
    value, tier upgrades and donations take effect at once and are final. With ``idempotency_key`` a retry
    of the same cancellation returns the cancelled redemption instead of a conflict.
    """
    _now_check(now)
    redemption_id = _id_check(redemption_id, field="redemption_id")
    reason = text_clean(reason, field="reason", max_length=255)
    key = _key_check(idempotency_key) if idempotency_key is not None else None
    request = fingerprint({"op": "redemption_cancel", "redemption": redemption_id, "reason": reason})

    member_id = Redemption.objects.filter(pk=redemption_id).values_list("member_id", flat=True).first()
    if member_id is None:
        raise RedemptionNotFound()
    member = Member.objects.get(pk=member_id)
    accounts = member_accounts_for_write(member=member, require="any")  # a frozen member still gets points back
    redemption = Redemption.objects.select_for_update().select_related("transfer", "reward").get(pk=redemption_id)
    if redemption.status == RedemptionStatus.CANCELLED and key is not None and redemption.return_transfer_id:
        returned = Transfer.objects.get(pk=redemption.return_transfer_id)
        if returned.breakdown.get("cancel_key") == key:
            replay_or_refuse(stored_fingerprint=returned.fingerprint, request_fingerprint=request)
            return redemption
    if redemption.status != RedemptionStatus.PENDING:
        raise _state_conflict(redemption)

    reward = Reward.objects.select_for_update().get(pk=redemption.reward_id)
    first = _points_return(redemption=redemption, accounts=accounts, now=now, staff_user=staff_user, cancel_key=key,
                           request=request)
    if reward.stock is not None:
        Reward.objects.filter(pk=reward.pk).update(stock=F("stock") + 1, updated_at=timezone.now())
    redemption.status = RedemptionStatus.CANCELLED
    redemption.cancelled_at = now
    redemption.cancel_reason = reason
    redemption.return_transfer = first
    redemption.save(update_fields=["status", "cancelled_at", "cancel_reason", "return_transfer", "updated_at"])
    if redemption.cash > 0:
        try:
            payment_gateway.cash_refund(amount=redemption.cash, reference=f"redemption-cancel:{redemption.pk}",
                                        charge_reference=redemption.cash_reference, member=member)
        except payment_gateway.PaymentDeclined as exc:
            raise CashRefundFailed(reason=exc.reason) from None
        except Exception:
            logger.exception("cash refund for redemption %s failed", redemption.pk)
            raise CashRefundFailed(reason=_("the payment service did not answer")) from None
    return redemption


def _points_return(*, redemption: Redemption, accounts: MemberAccounts, now: dt.datetime,
                   staff_user: AbstractBaseUser | None, cancel_key: str | None, request: str) -> Transfer:
    """Credit the redemption's points back from REDEMPTION, one transfer per original expiry date (latest first),
    each lot expiring when the points it replaces would have (or now, if that has passed). Returns the first."""
    debit = redemption.transfer
    by_expiry: dict[str | None, int] = {}
    for _lot_id, taken, expires in debit.breakdown.get("lots", []):
        by_expiry[expires] = by_expiry.get(expires, 0) + taken
    left = debit.amount - sum(by_expiry.values())
    if left > 0:  # a debit without a lot record (not expected): those points come back as fresh points
        fresh = program_settings_get().expires_at_for(now)
        fresh_key = fresh.isoformat() if fresh else None
        by_expiry[fresh_key] = by_expiry.get(fresh_key, 0) + left
    ordered = sorted(by_expiry.items(), key=lambda kv: kv[0] or "9999", reverse=True)
    name = redemption.reward.name[:255]
    transfers = []
    for part, (expires, amount) in enumerate(ordered):
        if not amount:
            continue
        transfers.append(points_credit(
            accounts=accounts, from_account=system_account(SystemAccount.REDEMPTION), amount=amount,
            code=TransferCode.CANCEL, occurred_at=now,
            expires_at=max(dt.datetime.fromisoformat(expires), now) if expires else None,
            idempotency_key=f"redemption:{redemption.pk}:cancel:{part}", reverses=debit,
            source=debit.source, staff_user=staff_user, reason=name,
            fingerprint=request if part == 0 else "",
            breakdown={"kind": "redemption_cancel", "redemption": redemption.pk, "expires_at": expires,
                       **({"cancel_key": cancel_key} if cancel_key and part == 0 else {})},
        ))
    return transfers[0]
