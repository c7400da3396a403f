"""Purchases in batches (POS end-of-day, offline sync): up to 1,000 at once, each applied exactly once.

Set-based, not 1,000 calls of ``purchase_record``: the configuration is read once, members, stores and
already-recorded orders are each found with one query, every involved member's accounts are locked in one
statement in primary-key order (the lock order of ``loyalty.locks``), the points are worked out with the pure
engine item by item (caps and first-purchase facts see the earlier items of the same member, in order), and
purchases, transfers, lots, balances and outbox events are written with one statement each.

The result of every item is the one ``purchase_record`` would give for the same purchases posted one by one
in the batch's order. Members for whom that would take more than the common path fall back to
``purchase_record`` for their items, still inside the batch and in order: a member whom the batch could lift
to a higher tier (an upgrade mid-batch changes the multiplier, the event stream and possibly the points).
Debt settlement and pending points stay on the bulk path.
"""

import datetime as dt
import gc
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Collection
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import DateTimeField, DecimalField, F, Lookup, Q, Sum, Value
from django.db.models.base import ModelState
from django.db.models.functions import Coalesce
from django.db.models.lookups import In
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from psycopg import errors as psycopg_errors

from loyalty.earning import Basket, CapUsage, CompiledRuleSet, Line, MemberFacts, earn_evaluate
from loyalty.exceptions import (
    InvalidInput,
    LoyaltyError,
    MemberClosed,
    MemberFrozen,
    MemberNotFound,
    StoreNotAllowed,
    StoreNotFound,
)
from loyalty.idempotency import idempotency_key_check
from loyalty.locks import POINTS_KINDS
from loyalty.models import (
    Account,
    AccountKind,
    Channel,
    Event,
    EventType,
    Lot,
    Modifier,
    Purchase,
    RuleSet,
    RuleSetStatus,
    SystemAccount,
    TierWindow,
    Transfer,
    TransferCode,
    TransferSource,
)
from loyalty.models.program import NegativeBalancePolicy
from loyalty.rules import rule_set_compile
from loyalty.services.ledger import system_account
from loyalty.services.program import program_settings_get
from loyalty.services.purchases import purchase_record
from loyalty.services.tiers import (
    tier_for_figures,
    tier_policy_get,
    tiers_ordered,
    window_start,
)
from loyalty.validation import (
    FUTURE_TOLERANCE,
    lines_clean,
    money_clean,
    text_clean,
    time_clean,
)
from members.models import Member, MemberStatus, Store
from members.services import phone_normalise

MAX_ITEMS = 1000
CREATED, DUPLICATE, ERROR = "created", "duplicate", "error"
ZERO_MONEY = Decimal("0.00")


class DuplicateInBatch(LoyaltyError):
    code = "duplicate_in_batch"
    default_message = _("An earlier item of this batch has the same store and external_id ({external_id}).")
    http_status = 409


class CheckoutNotInBatch(LoyaltyError):
    code = "checkout_not_in_batch"
    default_message = _("Coupons and points payments are not taken in a batch: post this purchase alone with "
                        "POST /purchases.")
    http_status = 400


@dataclass
class BatchResult:
    index: int
    external_id: str
    status: str = ERROR
    purchase: Purchase | None = None
    error: LoyaltyError | None = None
    points_balance: int | None = None  # the member's balance just after this purchase (or now, for a duplicate)
    fallback: bool = False  # recorded by ``purchase_record`` (a member the batch may lift to a higher tier)


@dataclass
class _Item:
    index: int
    raw: dict
    result: BatchResult
    store: Store | None = None
    member: "_Member | None" = None
    total: Decimal = ZERO_MONEY
    occurred_at: dt.datetime | None = None
    lines: list = field(default_factory=list)
    channel: str = Channel.STORE
    promo_codes: list[str] = field(default_factory=list)
    external_id: str = ""
    key: str = ""


_MONEY_TEXT = re.compile(r"\d{1,10}(?:\.\d{1,2})?")
_CENTS = Decimal("0.01")
_CHANNELS = frozenset(Channel.values)


def _money_quick(value, *, zero_ok: bool) -> Decimal | None:
    """``money_clean`` of a plainly valid amount (a decimal string or a Decimal); None for anything else."""
    if type(value) is Decimal:  # as ``money_clean``: the amount its text gives
        value = str(value)
    if type(value) is not str or not _MONEY_TEXT.fullmatch(value):
        return None
    amount = Decimal(value)
    return amount.quantize(_CENTS) if amount or zero_ok else None


def _text_quick(value, limit: int, *, required: bool = True) -> str | None:
    """``text_clean`` of a plainly valid string (None, meaning "check it properly", for anything else)."""
    if value is None and not required:
        return ""
    if type(value) is not str:
        return None
    text = value.strip()
    return text if (text or not required) and len(text) <= limit else None


def _clean_quick(item: _Item, *, now: dt.datetime) -> bool:
    """``_clean`` for a plainly well-formed item, with the same results, in a fraction of the time; False
    (nothing set that ``_clean`` does not set again) for anything else, which ``_clean`` then checks and
    refuses with its exact error."""
    raw = item.raw
    if raw.get("points_payment_quote") is not None or raw.get("coupon_codes"):
        return False
    total = _money_quick(raw.get("total"), zero_ok=False)
    at = raw.get("occurred_at")
    if total is None or not isinstance(at, dt.datetime) or at.utcoffset() is None or at > now + FUTURE_TOLERANCE:
        return False
    raw_lines = raw.get("lines")
    if not raw_lines:
        lines = [Line(sku="", category="", quantity=1, amount=total)]
    else:
        if type(raw_lines) is not list or len(raw_lines) > 500:
            return False
        lines = []
        for line in raw_lines:
            if type(line) is not dict:
                return False
            quantity = line.get("quantity", 1)
            sku, category = _text_quick(line.get("sku"), 64), _text_quick(line.get("category"), 64, required=False)
            amount = _money_quick(line.get("amount"), zero_ok=True)
            if type(quantity) is not int or quantity < 1 or sku is None or category is None or amount is None:
                return False
            lines.append(Line(sku=sku, category=category, quantity=quantity, amount=amount))
        if sum(line.amount for line in lines) != total:
            return False
    promo = raw.get("promo_codes") or []
    if not isinstance(promo, list | tuple):
        return False
    codes = [_text_quick(code, 32) for code in promo]
    external_id = _text_quick(raw.get("external_id"), 64)
    channel = raw.get("channel") or Channel.STORE
    ref = raw.get("member")
    if (None in codes or external_id is None or not isinstance(channel, str) or channel not in _CHANNELS
            or not isinstance(ref, dict) or len(ref) != 1 or next(iter(ref)) not in ("id", "phone", "member_number")
            or _text_quick(raw.get("store"), 32) is None):
        return False
    item.total, item.occurred_at, item.lines, item.promo_codes = total, at, lines, sorted(set(codes))
    item.external_id, item.channel = external_id, channel
    return True


def _clean(item: _Item, *, now: dt.datetime) -> None:
    """The checks ``purchase_record`` makes before it locks anything, in the same order."""
    raw = item.raw
    if raw.get("points_payment_quote") is not None or raw.get("coupon_codes"):
        raise CheckoutNotInBatch()
    item.total = money_clean(raw.get("total"), field="total")
    item.occurred_at = time_clean(raw.get("occurred_at"), field="occurred_at", now=now)
    item.lines = lines_clean(raw.get("lines") or None, total=item.total)
    promo = raw.get("promo_codes") or []
    if not isinstance(promo, list | tuple):
        raise InvalidInput(_("promo_codes: give a list of codes."), field="promo_codes")
    item.promo_codes = sorted({text_clean(code, field="promo_codes", max_length=32) for code in promo})
    item.external_id = text_clean(raw.get("external_id"), field="external_id", max_length=64)
    item.channel = raw.get("channel") or Channel.STORE
    if item.channel not in Channel.values:
        raise InvalidInput(_("channel: “{value}” is not a channel."), field="channel", value=item.channel)
    ref = raw.get("member")
    if not isinstance(ref, dict) or len(ref) != 1 or next(iter(ref)) not in ("id", "phone", "member_number"):
        raise InvalidInput(_("member: give exactly one of id, phone or member_number."), field="member")
    text_clean(raw.get("store"), field="store", max_length=32)


class _AnyOf(Lookup):
    """``column IN (values)`` as ``column = ANY(%s::type[])`` on PostgreSQL: one array parameter however many
    values (Django's ``__in`` prepares, quotes and sends each of a thousand values on its own). Other databases
    get Django's ``IN``."""

    lookup_name = "batch_any_of"
    prepare_rhs = False

    def __init__(self, column: str, values, *, db_type: str):
        self.db_type = db_type
        super().__init__(F(column), list(values))

    def get_prep_lookup(self):
        return self.rhs

    def as_sql(self, compiler, connection):
        lhs, params = compiler.compile(self.lhs)
        return f"{lhs} = ANY(%s::{self.db_type}[])", [*params, _array_literal(self.rhs, self.db_type)]

    def as_sqlite(self, compiler, connection):
        return compiler.compile(In(self.lhs, self.rhs))


def _array_literal(values: list, db_type: str) -> str:
    """A PostgreSQL array literal: one string parameter for Django's client-side binding (which otherwise
    adapts a list element by element in Python)."""
    if db_type == "bigint":
        return "{" + ",".join([str(int(v)) for v in values]) + "}"
    return "{" + ",".join(['"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]) + "}"


def _ids(column: str, values) -> _AnyOf:
    return _AnyOf(column, values, db_type="bigint")


def _texts(column: str, values) -> _AnyOf:
    return _AnyOf(column, values, db_type="text")


@dataclass(slots=True)
class _Member:
    """What the batch needs of a member (the model instance only for members that fall back)."""

    pk: int
    birthday: dt.date | None
    joined_at: dt.datetime | None


_BIGINT = range(-(2**63), 2**63)


def _members_resolve(items: list[_Item]) -> None:
    """Every item's member (None: no such member), by id, phone or card number: one query for the batch."""
    ids, phones, numbers, wanted = set(), set(), set(), {}
    for item in items:
        (kind, value), = item.raw["member"].items()
        if kind == "id":
            value = value if isinstance(value, int) and not isinstance(value, bool) else None
            ids.add(value)
        elif kind == "phone":
            try:
                value = phone_normalise(phone=str(value))
            except DjangoValidationError:  # not a phone number: no such member
                value = None
            phones.add(value)
        else:
            value = str(value)
            numbers.add(value)
        wanted[item.index] = (kind, value)
    ids = {i for i in ids if i in _BIGINT}  # None and ids no bigint column can hold: no such member
    phones.discard(None)
    by: dict[str, dict] = {"id": {}, "phone": {}, "member_number": {}}
    if ids or phones or numbers:
        query = Q()
        for lookup, values in ((_ids("pk", ids), ids), (_texts("phone", phones), phones),
                               (_texts("member_number", numbers), numbers)):
            if values:
                query |= Q(lookup)
        for pk, phone, number, birthday, joined_at in Member.objects.filter(query).values_list(
                "pk", "phone", "member_number", "birthday", "joined_at"):
            by["id"][pk] = by["phone"][phone] = by["member_number"][number] = _Member(pk, birthday, joined_at)
    for item in items:
        kind, value = wanted[item.index]
        item.member = by[kind].get(value)


def _fail(item: _Item, error: LoyaltyError) -> None:
    item.result.status, item.result.error = ERROR, error


class _Config:
    """The rule sets in force over the batch's times, compiled once, and the tier set-up."""

    def __init__(self, *, program, times: list[dt.datetime]):
        self.program = program
        self.rule_sets: list[tuple[RuleSet, CompiledRuleSet]] = []
        if times:
            earliest, latest = min(times), max(times)
            published = RuleSet.objects.filter(status=RuleSetStatus.PUBLISHED)
            first = published.filter(effective_from__lte=earliest).order_by("-effective_from", "-id").first()
            chosen = published.filter(effective_from__lte=latest)
            if first is not None:
                chosen = chosen.filter(effective_from__gte=first.effective_from)
            sets = list(chosen.order_by("-effective_from", "-id"))
            modifiers = defaultdict(list)
            for m in Modifier.objects.filter(rule_set__in=sets, is_active=True):
                modifiers[m.rule_set_id].append(m)
            self.rule_sets = [
                (rs, rule_set_compile(rs, time_zone=program.time_zone, modifiers=modifiers[rs.pk])) for rs in sets]
        self.standard = rule_set_compile(None, time_zone=program.time_zone)
        self.tiers = tiers_ordered()
        self.policy = tier_policy_get()

    def rules_at(self, at: dt.datetime) -> tuple[RuleSet | None, CompiledRuleSet]:
        for rule_set, compiled in self.rule_sets:  # newest first, as ``rule_set_in_force``
            if rule_set.effective_from <= at:
                return rule_set, compiled
        return None, self.standard


def _cap_windows(at: dt.datetime, tz) -> tuple[dt.datetime, dt.datetime, dt.datetime, dt.datetime]:
    """Local day, ISO week and month starts and the day's end, as ``cap_usage`` counts them."""
    local = at.astimezone(tz)
    day_start = dt.datetime.combine(local.date(), dt.time.min, tzinfo=tz)
    return (day_start, day_start - dt.timedelta(days=local.weekday()), day_start.replace(day=1),
            day_start + dt.timedelta(days=1))


@dataclass
class _Plan:
    """What one bulk item will write."""

    item: _Item
    purchase: Purchase
    rule_set: Any
    points: int
    breakdown: dict
    pending: bool
    settled: int


def purchases_record_batch(*, items: list[dict], now: dt.datetime, bound_store_id: int | None = None,
                           partner_account: Account | None = None, staff_user: AbstractBaseUser | None = None,
                           refused: Collection[int] = ()) -> list[BatchResult]:
    """Record up to 1,000 purchases (each the body of ``POST /purchases``: ``member`` ref, ``store`` code,
    ``external_id``, ``occurred_at``, ``total``, ``lines``, ``channel``, ``promo_codes``), one result per item.

    An item whose store and external id were recorded before is a ``duplicate`` carrying the original; a bad
    item is an ``error`` and does not stop the others. ``bound_store_id``: the API key's store binding.
    ``refused``: indexes of items the caller already refused (its own input checks); they are skipped but
    still count as appearances of their order. A refusal of one item is that item's result only.
    """
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise InvalidInput(_("purchases: give a list of 1 to {limit} purchases."), field="purchases", limit=MAX_ITEMS)
    with gc_paused():
        for attempt in range(3):
            try:
                with transaction.atomic():
                    return _batch(items=items, now=now, bound_store_id=bound_store_id,
                                  partner_account=partner_account, staff_user=staff_user, refused=set(refused))
            except IntegrityError:
                # Another transaction recorded one of these orders for a member outside this batch between our
                # check and our insert (its row lock is not ours). Everything rolled back: look again.
                if attempt == 2:
                    raise
    raise AssertionError("unreachable")


@contextmanager
def gc_paused():
    """No cyclic garbage collection while a batch runs: its tens of thousands of short-lived dicts and lists
    (freed by reference counting) would otherwise set off collections that walk every object of the process,
    up to a third of a batch's time. Restores the collector as it was (nested use leaves it off)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _batch(*, items, now, bound_store_id, partner_account, staff_user, refused) -> list[BatchResult]:
    work = [_Item(index=i, raw=raw if isinstance(raw, dict) else {},
                  result=BatchResult(index=i, external_id=str(raw.get("external_id", "")) if isinstance(raw, dict) else ""))
            for i, raw in enumerate(items)]
    program = program_settings_get()
    live: list[_Item] = []
    repeats: set[tuple[str, str]] = set()
    for item in work:
        if not item.raw:
            _fail(item, InvalidInput(_("Each purchase is an object."), field="purchases"))
            continue
        order = (str(item.raw.get("store", "")).strip(), str(item.raw.get("external_id", "")).strip())
        if order in repeats:  # each order once per batch, whatever became of its first appearance
            _fail(item, DuplicateInBatch(external_id=order[1]))
            continue
        repeats.add(order)
        if item.index in refused:
            _fail(item, InvalidInput(field="purchases"))
            continue
        try:
            if not _clean_quick(item, now=now):
                _clean(item, now=now)
        except LoyaltyError as exc:
            _fail(item, exc)
            continue
        item.result.external_id = item.external_id
        live.append(item)

    # Stores (one query), binding, repeats inside the batch.
    codes = {str(item.raw["store"]).strip() for item in live}
    stores = {s.code: s for s in Store.objects.filter(code__in=codes, is_active=True)} if codes else {}
    placed: list[_Item] = []
    for item in live:
        item.store = stores.get(str(item.raw["store"]).strip())
        if item.store is None:
            _fail(item, StoreNotFound())
        elif bound_store_id and item.store.pk != bound_store_id:
            _fail(item, StoreNotAllowed())
        else:
            item.key = idempotency_key_check(f"purchase:{item.store.code}:{item.external_id}")
            placed.append(item)

    # Lock first (every member the batch names, one statement, pk order), then look for orders already recorded
    # (by an earlier batch, POST /purchases or the till; one query): a writer for these members that committed
    # while we waited for the locks is seen.
    _members_resolve(placed)
    locked = _lock([item for item in placed if item.member is not None])
    existing: dict[tuple[int, str], Purchase] = {}
    if placed:
        found = _recorded([(item.store.pk, item.external_id) for item in placed])
        if found:  # the originals as models (a replayed batch); none at all in the common case
            existing = {(p.store_id, p.external_id): p
                        for p in Purchase.objects.filter(_ids("pk", found)).select_related("store")}
    fresh: list[_Item] = []
    duplicates: list[_Item] = []
    for item in placed:
        original = existing.get((item.store.pk, item.external_id))
        if original is not None:
            original.tier_change = None
            item.result.status, item.result.purchase = DUPLICATE, original
            duplicates.append(item)
        elif item.member is None:
            _fail(item, MemberNotFound())
        else:
            fresh.append(item)
    # Status and tier record after the lock (what the locked writer sees), one query.
    states = {pk: (status, tier_id) for pk, status, tier_id in Member.objects.filter(
        _ids("pk", {i.member.pk for i in fresh})).values_list("pk", "status", "tier_state__tier_id")} if fresh else {}
    ready: list[_Item] = []
    for item in fresh:
        accounts = locked.get(item.member.pk, {})
        status = states.get(item.member.pk, (None, None))[0]
        if AccountKind.MEMBER_POINTS not in accounts or status is None:
            _fail(item, MemberNotFound())
        elif status == MemberStatus.FROZEN:
            _fail(item, MemberFrozen())
        elif status == MemberStatus.CLOSED:
            _fail(item, MemberClosed())
        else:
            ready.append(item)

    if ready:
        _record(ready, locked=locked, tier_ids={mid: tier_id for mid, (_s, tier_id) in states.items()},
                program=program, now=now, partner_account=partner_account, staff_user=staff_user)
    if duplicates:
        balances = {mid: credits - debits for mid, credits, debits in Account.objects.filter(
            _ids("member_id", {i.result.purchase.member_id for i in duplicates}), kind=AccountKind.MEMBER_POINTS,
        ).values_list("member_id", "credits_posted", "debits_posted")}
        allow_negative = program.negative_balance_policy == NegativeBalancePolicy.ALLOW_NEGATIVE
        for item in duplicates:
            net = balances.get(item.result.purchase.member_id, 0)
            item.result.points_balance = net if allow_negative else max(0, net)
    return [item.result for item in work]


@dataclass(slots=True)
class _Account:
    """A locked member account: what the batch needs of it (cheaper than thousands of model instances)."""

    pk: int
    credits_posted: int
    debits_posted: int

    @property
    def balance(self) -> int:
        return self.credits_posted - self.debits_posted


def _lock(items: list[_Item]) -> dict[int, dict[str, _Account]]:
    """Lock every involved member's points accounts in one statement, in primary-key order (``loyalty.locks``)."""
    if not items:
        return {}
    rows = Account.objects.select_for_update().filter(
        _ids("member_id", {i.member.pk for i in items}), kind__in=POINTS_KINDS,
    ).order_by("pk").values_list("pk", "member_id", "kind", "credits_posted", "debits_posted")
    locked: dict[int, dict[str, _Account]] = defaultdict(dict)
    for pk, member_id, kind, credits, debits in rows:
        locked[member_id][kind] = _Account(pk=pk, credits_posted=credits, debits_posted=debits)
    return locked


def _record(items: list[_Item], *, locked, tier_ids: dict[int, int | None], program, now, partner_account,
            staff_user) -> None:
    tz = program.tz
    config = _Config(program=program, times=[i.occurred_at for i in items])
    tiers, policy = config.tiers, config.policy
    member_ids = {i.member.pk for i in items}
    entry = tiers[0] if tiers else None
    tiers_by_pk = {t.pk: t for t in tiers}
    current = {mid: tiers_by_pk[tier_ids[mid]] if tier_ids.get(mid) else entry for mid in member_ids}
    compiled = {id(item): config.rules_at(item.occurred_at) for item in items}

    has_purchase: set[int] = set()
    if any(c.needs_first_purchase for _rs, c in compiled.values()):
        has_purchase = _with_purchases(member_ids)
    capped = [item for item in items if compiled[id(item)][1].has_member_caps]
    cap_windows = {id(i): _cap_windows(i.occurred_at, tz) for i in capped}
    recorded_usage = _cap_usage_recorded(capped, windows=cap_windows) if capped else {}
    usage_rows: dict[int, list[tuple[dt.datetime, int]]] = defaultdict(list)  # the batch's own earlier items

    # Work out every item with the pure engine, in batch order (each member sees its own earlier items).
    evaluated: dict[int, tuple] = {}
    facts_cache: dict[tuple, MemberFacts] = {}
    for item in items:
        mid = item.member.pk
        rule_set, rules = compiled[id(item)]
        tier = current[mid]
        first = rules.needs_first_purchase and mid not in has_purchase
        fkey = (mid, id(rules), first)
        facts = facts_cache.get(fkey)
        if facts is None:
            member = item.member
            facts = facts_cache[fkey] = MemberFacts(
                tier_code=tier.code if tier else "", tier_name=tier.name if tier else "",
                tier_multiplier=Decimal(tier.earn_multiplier) if tier else Decimal(1), birthday=member.birthday,
                joined_on=member.joined_at.astimezone(tz).date() if member.joined_at else None, is_first_purchase=first)
        usage = None
        if rules.has_member_caps:
            day, week, month, end = cap_windows[id(item)]
            rows = usage_rows[mid]
            used = recorded_usage.get(id(item), (0, 0, 0))
            usage = CapUsage(day=used[0] + sum(p for at, p in rows if day <= at < end),
                             week=used[1] + sum(p for at, p in rows if week <= at < end),
                             month=used[2] + sum(p for at, p in rows if month <= at < end))
        basket = Basket(total=item.total, lines=tuple(item.lines), occurred_at=item.occurred_at,
                        store_code=item.store.code, channel=item.channel, paid_with_points=ZERO_MONEY,
                        coupon_discount=ZERO_MONEY, stored_value_paid=ZERO_MONEY,
                        promo_codes=frozenset(item.promo_codes))
        earn = earn_evaluate(rules=rules, basket=basket, member=facts, usage=usage)
        evaluated[id(item)] = (rule_set, earn)
        has_purchase.add(mid)
        usage_rows[mid].append((item.occurred_at, earn.points))

    fallback = _may_upgrade(items, evaluated=evaluated, current=current, tiers=tiers, policy=policy, tz=tz)

    # Write the common path in bulk.
    issuance = partner_account or system_account(SystemAccount.ISSUANCE)
    pending_days = program.pending_days
    allow_negative = program.negative_balance_policy == NegativeBalancePolicy.ALLOW_NEGATIVE
    points_balance = {mid: a[AccountKind.MEMBER_POINTS].balance for mid, a in locked.items()}
    plans: list[_Plan] = []
    constant = {"points_paid": 0, "points_paid_value": program.points_to_money(0), "coupon_discount": ZERO_MONEY,
                "stored_value_paid": ZERO_MONEY, "staff_user_id": staff_user.pk if staff_user else None}
    pending = bool(pending_days)
    for item in items:
        mid = item.member.pk
        if mid in fallback:
            continue
        rule_set, earn = evaluated[id(item)]
        tier = current[mid]
        purchase = _new(
            Purchase, cache={"store": item.store}, **constant,
            member_id=mid, store_id=item.store.pk, external_id=item.external_id, channel=item.channel,
            occurred_at=item.occurred_at, total=item.total,
            lines=[{"sku": line.sku, "category": line.category, "quantity": line.quantity, "amount": str(line.amount),
                    "refunded_quantity": 0} for line in item.lines],
            promo_codes=item.promo_codes, tier_id=tier.pk if tier else None,
            rule_set_id=rule_set.pk if rule_set else None, points_earned=earn.points,
            earn_breakdown=earn.breakdown, idempotency_key=item.key, fingerprint=_fingerprint(item),
        )
        purchase.tier_change = None
        settled = 0
        if earn.points and not pending:
            settled = min(earn.points, max(0, -points_balance[mid]))
            points_balance[mid] += earn.points
        plans.append(_Plan(item=item, purchase=purchase, rule_set=rule_set, points=earn.points,
                           breakdown=earn.breakdown, pending=pending, settled=settled))
        net = points_balance[mid]
        item.result.points_balance = net if allow_negative else max(0, net)
        item.result.status, item.result.purchase = CREATED, purchase
    if plans:
        if connection.vendor == "postgresql":
            _write_copy(plans, locked=locked, issuance=issuance, program=program, staff_user=staff_user)
        else:
            _write(plans, locked=locked, issuance=issuance, program=program, staff_user=staff_user)

    # Members the batch may lift to a higher tier: one purchase at a time, in order, inside this batch.
    members = {m.pk: m for m in Member.objects.filter(_ids("pk", fallback))} if fallback else {}
    for item in items:
        if item.member.pk not in fallback:
            continue
        try:
            purchase = purchase_record(
                member=members[item.member.pk], store=item.store, external_id=item.external_id,
                occurred_at=item.occurred_at, total=item.total,
                lines=[dict(line.__dict__) for line in item.lines] if item.raw.get("lines") else None,
                channel=item.channel, promo_codes=item.promo_codes, idempotency_key=item.key, now=now,
                staff_user=staff_user, partner_account=partner_account)
        except LoyaltyError as exc:
            _fail(item, exc)
            continue
        net = Account.objects.filter(member_id=item.member.pk, kind=AccountKind.MEMBER_POINTS).values_list(
            "credits_posted", "debits_posted").first()
        net = net[0] - net[1] if net else 0
        item.result.points_balance = net if allow_negative else max(0, net)
        item.result.status, item.result.purchase, item.result.fallback = CREATED, purchase, True


_json_string = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) writes for a str


def _fingerprint(item: _Item) -> str:
    """The fingerprint ``purchase_record`` stores for the same request (a later retry there replays):
    ``loyalty.idempotency.fingerprint`` of the same payload, its canonical JSON (sorted keys, no spaces,
    Decimals as strings) written directly (tests/loyalty/test_batch_fingerprint.py holds the two equal)."""
    lines = ",".join(
        f'{{"amount":{_json_string(str(line.amount))},"category":{_json_string(line.category)},'
        f'"quantity":{int(line.quantity)},"sku":{_json_string(line.sku)}}}' for line in item.lines)
    codes = ",".join(_json_string(code) for code in item.promo_codes)
    occurred = item.occurred_at.astimezone(dt.UTC).isoformat()
    canonical = (
        f'{{"channel":{_json_string(item.channel)},"coupon_discount":"0.00",'
        f'"external_id":{_json_string(item.external_id)},"lines":[{lines}],"member":{int(item.member.pk)},'
        f'"occurred_at":{_json_string(occurred)},"points_to_pay":0,"promo_codes":[{codes}],'
        f'"store":{int(item.store.pk)},"stored_value_paid":"0.00","total":{_json_string(str(item.total))}}}')
    return hashlib.sha256(canonical.encode()).hexdigest()


# As loyalty.services.tiers.qualifying_figures (the spend and points of the window), with one array parameter.
_SPEND = Coalesce(Sum(F("total") - F("refunded_amount")), Value(Decimal(0)),
                  output_field=DecimalField(max_digits=14, decimal_places=2))
_POINTS = Coalesce(Sum(F("points_earned") - F("points_reversed")), Value(0))
_CENT = Decimal("0.01")


def _qualifying_figures(*, member_ids, start: dt.datetime, end: dt.datetime) -> dict[int, tuple[Decimal, int]]:
    if connection.vendor == "postgresql":
        rows = [row[:3] for row in _fetch(
            f"SELECT m.id, s.spend, s.points, s.n FROM unnest(%b::bigint[]) AS m(id) CROSS JOIN LATERAL ("
            f"SELECT COALESCE(SUM(p.total - p.refunded_amount), 0) AS spend, "
            f"COALESCE(SUM(p.points_earned - p.points_reversed), 0) AS points, COUNT(*) AS n FROM {_PURCHASES} p "
            f"WHERE p.member_id = m.id AND p.occurred_at >= %s AND p.occurred_at <= %s) s",
            [list(member_ids), start, end]) if row[3]]
    else:
        rows = (Purchase.objects.filter(_ids("member_id", member_ids), occurred_at__gte=start, occurred_at__lte=end)
                .values("member_id").annotate(spend=_SPEND, points=_POINTS).values_list("member_id", "spend", "points"))
    return {mid: (Decimal(spend).quantize(_CENT), int(points)) for mid, spend, points in rows}


# ---- look-ups that stay index probes on PostgreSQL whatever the planner's statistics say: each is a LATERAL
# subquery per order or member (an aggregate or LIMIT keeps it from being flattened into a join), so it is one
# probe of the member's or order's index. A join or ``= ANY`` let a purchases table that had grown since it was
# last analysed (any fresh database: every bench run) be read whole, more of it with every batch. -------------

_PURCHASES = connection.ops.quote_name(Purchase._meta.db_table)


class _ServerBoundCursor(psycopg.Cursor):
    """Parameters bound on the server, never a prepared statement: after a few runs of the same text psycopg
    would prepare it and PostgreSQL may then plan it once for any array size."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=False, binary=binary)


def _cursor():
    """On PostgreSQL a cursor that binds parameters on the server (``%b``: arrays sent in binary, no quoting of
    each value in Python, as Django's client-side binding does), in Django's wrapper (errors, query log)."""
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.ensure_connection()
    return connection._prepare_cursor(_ServerBoundCursor(connection.connection))


def _fetch(sql: str, params: list) -> list[tuple]:
    with _cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _recorded(orders: list[tuple[int, str]]) -> list[int]:
    """Ids of the purchases already recorded for these (store id, external id) orders."""
    if connection.vendor == "postgresql":
        return [row[0] for row in _fetch(
            f"SELECT p.id FROM unnest(%b::bigint[], %b::text[]) AS o(store_id, external_id) CROSS JOIN LATERAL ("
            f"SELECT id FROM {_PURCHASES} WHERE store_id = o.store_id AND external_id = o.external_id LIMIT 1) p",
            [[store for store, _e in orders], [external for _s, external in orders]])]
    by_store: dict[int, list[str]] = defaultdict(list)
    for store_id, external_id in orders:
        by_store[store_id].append(external_id)
    query = Q()
    for store_id, external_ids in by_store.items():
        query |= Q(store_id=store_id) & Q(_texts("external_id", external_ids))
    return list(Purchase.objects.filter(query).values_list("pk", flat=True))


def _with_purchases(member_ids: set[int]) -> set[int]:
    """The members who have recorded a purchase before (first-purchase rules)."""
    if connection.vendor == "postgresql":
        return {row[0] for row in _fetch(
            f"SELECT m.id FROM unnest(%b::bigint[]) AS m(id) CROSS JOIN LATERAL ("
            f"SELECT 1 FROM {_PURCHASES} WHERE member_id = m.id LIMIT 1) p", [list(member_ids)])}
    return set(Purchase.objects.filter(_ids("member_id", member_ids)).values_list("member_id", flat=True).distinct())


def _cap_usage_recorded(items: list[_Item], *, windows: dict[int, tuple]) -> dict[int, tuple[int, int, int]]:
    """Points of recorded purchases in each item's local day, week and month (``windows``: ``_cap_windows`` by
    ``id(item)``), by ``id(item)``; the batch's own earlier items come on top."""
    if connection.vendor == "postgresql":  # summed in the database: no purchase times to load
        keys = list(windows)
        return {key: (day, week, month) for key, day, week, month in _fetch(
            f"SELECT w.key, s.day, s.week, s.month "
            f"FROM unnest(%b::bigint[], %b::bigint[], %b::timestamptz[], %b::timestamptz[], %b::timestamptz[], "
            f"%b::timestamptz[]) AS w(key, member_id, day, week, month, stop) CROSS JOIN LATERAL ("
            f"SELECT COALESCE(SUM(p.points_earned) FILTER (WHERE p.occurred_at >= w.day), 0)::bigint AS day, "
            f"COALESCE(SUM(p.points_earned) FILTER (WHERE p.occurred_at >= w.week), 0)::bigint AS week, "
            f"COALESCE(SUM(p.points_earned) FILTER (WHERE p.occurred_at >= w.month), 0)::bigint AS month "
            f"FROM {_PURCHASES} p WHERE p.member_id = w.member_id AND p.occurred_at >= LEAST(w.week, w.month) "
            f"AND p.occurred_at < w.stop) s",
            [keys, [i.member.pk for i in items], *([windows[k][n] for k in keys] for n in range(4))])}
    start, end = min(min(w[1], w[2]) for w in windows.values()), max(w[3] for w in windows.values())
    rows: dict[int, list[tuple[dt.datetime, int]]] = defaultdict(list)
    for mid, at, points in Purchase.objects.filter(
            _ids("member_id", {i.member.pk for i in items}), occurred_at__gte=start, occurred_at__lt=end,
    ).values_list("member_id", "occurred_at", "points_earned"):
        rows[mid].append((at, points))
    out = {}
    for item in items:
        day, week, month, stop = windows[id(item)]
        mine = rows[item.member.pk]
        out[id(item)] = (sum(p for at, p in mine if day <= at < stop), sum(p for at, p in mine if week <= at < stop),
                         sum(p for at, p in mine if month <= at < stop))
    return out


def _may_upgrade(items, *, evaluated, current, tiers, policy, tz) -> set[int]:
    """Members whom some item of the batch could take over a higher tier's threshold (``purchase_record``
    would upgrade them mid-batch). Decided on an upper bound: all their qualifying figures over the widest
    window any of their items looks at, plus all their batch items; below every higher threshold, no item
    can upgrade them."""
    if not tiers or policy.window == TierWindow.CONSECUTIVE_MONTHS:
        return set()
    top = tiers[-1].rank
    candidates = {i.member.pk for i in items if current[i.member.pk] is None or current[i.member.pk].rank != top}
    if not candidates:
        return set()
    mine = [i for i in items if i.member.pk in candidates]
    start = min(window_start(policy=policy, at=i.occurred_at, tz=tz) for i in mine)
    end = max(i.occurred_at for i in mine)
    figures = _qualifying_figures(member_ids=candidates, start=start, end=end)
    spend = {mid: figures.get(mid, (Decimal(0), 0))[0] for mid in candidates}
    points = {mid: figures.get(mid, (Decimal(0), 0))[1] for mid in candidates}
    for item in mine:
        spend[item.member.pk] += item.total
        points[item.member.pk] += evaluated[id(item)][1].points
    out = set()
    for mid in candidates:
        target = tier_for_figures(tiers, spend=spend[mid], points=points[mid])
        if target is not None and (current[mid] is None or target.rank > current[mid].rank):
            out.add(mid)
    return out


def _write(plans: list[_Plan], *, locked, issuance: Account, program, staff_user) -> None:
    """Purchases, EARN transfers, lots, balances and events with ``bulk_create`` (databases other than
    PostgreSQL; ``_write_copy`` writes the same rows there)."""
    if not issuance.is_system:  # never: issuance and partner accounts are system accounts (no hot row)
        raise AssertionError("points are issued from a system account")
    # Insert in (store, external id) order: two batches racing on the same orders wait for each other in one order.
    plans.sort(key=lambda p: (p.item.store.pk, p.item.external_id))
    Purchase.objects.bulk_create([p.purchase for p in plans])
    plans.sort(key=lambda p: p.item.index)
    earning = [p for p in plans if p.points]
    transfers, bumps = [], defaultdict(int)
    for p in earning:
        target = locked[p.item.member.pk][AccountKind.MEMBER_PENDING if p.pending else AccountKind.MEMBER_POINTS]
        breakdown = {**p.breakdown, "debt_settled": p.settled} if p.settled else p.breakdown
        transfers.append(_new(
            Transfer, debit_account_id=issuance.pk, credit_account_id=target.pk, amount=p.points, unit=issuance.unit,
            code=TransferCode.EARN, occurred_at=p.item.occurred_at, idempotency_key=f"{p.item.key}:earn",
            source=TransferSource.PURCHASE, member_id=p.item.member.pk, breakdown=breakdown,
            purchase_id=p.purchase.pk, staff_user_id=staff_user.pk if staff_user else None,
        ))
        bumps[target.pk] += p.points
    Transfer.objects.bulk_create(transfers)
    pending_days = program.pending_days
    Lot.objects.bulk_create([_new(
        Lot, account_id=transfer.credit_account_id, transfer_id=transfer.pk, amount=p.points,
        remaining=p.points - p.settled, earned_at=p.item.occurred_at, expires_at=program.expires_at_for(p.item.occurred_at),
        pending=p.pending, available_at=p.item.occurred_at + dt.timedelta(days=pending_days) if p.pending else p.item.occurred_at,
    ) for p, transfer in zip(earning, transfers, strict=True)])
    _credits_bump(bumps, locked=locked, stamp=timezone.now())
    Event.objects.bulk_create([
        _new(Event, type=EventType.POINTS_EARNED, member_id=p.item.member.pk, occurred_at=p.item.occurred_at, payload={
            "purchase": p.purchase.pk, "store": p.item.store.code, "external_id": p.item.external_id,
            "points": p.points, "pending": bool(pending_days)})
        for p in earning])


def _write_copy(plans: list[_Plan], *, locked, issuance: Account, program, staff_user) -> None:
    """The rows of ``_write`` on PostgreSQL: ids drawn from the four sequences in one query, then one ``COPY``
    per table of rows written directly as COPY text (no model instance, no per-field adaptation: a batch of
    1,000 spent most of its time there), and one UPDATE of the accounts."""
    if not issuance.is_system:  # never: issuance and partner accounts are system accounts (no hot row)
        raise AssertionError("points are issued from a system account")
    stamp = timezone.now()
    # Insert in (store, external id) order: two batches racing on the same orders wait for each other in one order.
    plans.sort(key=lambda p: (p.item.store.pk, p.item.external_id))
    earning = sorted((p for p in plans if p.points), key=lambda p: p.item.index)
    staff_id = staff_user.pk if staff_user else None
    with connection.cursor() as cursor:
        sequences = _sequences(cursor)
        cursor.execute("SELECT " + ", ".join(
            ["ARRAY(SELECT nextval(%s::regclass) FROM generate_series(1, %s))"] * 4), [
            sequences[Purchase], len(plans), sequences[Transfer], len(earning), sequences[Lot], len(earning),
            sequences[Event], len(earning)])
        purchase_ids, transfer_ids, lot_ids, event_ids = cursor.fetchone()

        columns, row = _copy_layout(Purchase, (
            "id", "member_id", "store_id", "external_id", "channel", "occurred_at", "total", "lines", "promo_codes",
            "tier_id", "rule_set_id", "points_earned", "earn_breakdown", "idempotency_key", "fingerprint",
        ), stamp=stamp, points_paid=0, points_paid_value=program.points_to_money(0), coupon_discount=ZERO_MONEY,
            stored_value_paid=ZERO_MONEY, staff_user_id=staff_id)
        dumped = {}
        try:
            with cursor.cursor.copy(f"COPY {connection.ops.quote_name(Purchase._meta.db_table)} ({columns}) "
                                    f"FROM STDIN") as copy:
                text = []
                for p, pk in zip(plans, purchase_ids, strict=True):
                    v = p.purchase.__dict__
                    dumped[id(p)] = breakdown = json.dumps(p.breakdown).replace("\\", "\\\\")
                    text.append(row.format(
                        pk, v["member_id"], v["store_id"], _copy_escape(v["external_id"]),
                        _copy_escape(str(v["channel"])), v["occurred_at"], v["total"],
                        json.dumps(v["lines"]).replace("\\", "\\\\"), json.dumps(v["promo_codes"]).replace("\\", "\\\\"),
                        _NULL if v["tier_id"] is None else v["tier_id"],
                        _NULL if v["rule_set_id"] is None else v["rule_set_id"], v["points_earned"], breakdown,
                        _copy_escape(v["idempotency_key"]), v["fingerprint"]))
                    v["id"], v["created_at"], v["updated_at"] = pk, stamp, stamp
                    p.purchase._state.adding, p.purchase._state.db = False, connection.alias
                    if len(text) == 100:  # sent as it is written: PostgreSQL inserts while the rest is formatted
                        copy.write("".join(text))
                        text.clear()
                copy.write("".join(text))
                # The other tables' rows are written out while PostgreSQL finishes the purchases.
                transfers, lots, events, bumps = _earn_rows(
                    earning, dumped, transfer_ids=transfer_ids, lot_ids=lot_ids, event_ids=event_ids, locked=locked,
                    issuance=issuance, program=program, staff_id=staff_id, stamp=stamp)
        except psycopg_errors.IntegrityError as exc:  # the COPY bypasses Django's error wrapper
            raise IntegrityError(*exc.args) from exc
        _copy(cursor, Transfer, *transfers)
        _copy(cursor, Lot, *lots)
        _credits_bump(bumps, locked=locked, stamp=stamp)
        _copy(cursor, Event, *events)


def _earn_rows(earning: list[_Plan], dumped: dict, *, transfer_ids, lot_ids, event_ids, locked, issuance, program,
               staff_id, stamp) -> tuple[tuple, tuple, tuple, dict[int, int]]:
    """COPY columns and rows of the EARN transfers, their lots and their events, and the credit of each account."""
    columns, row = _copy_layout(Transfer, (
        "id", "credit_account_id", "amount", "occurred_at", "idempotency_key", "member_id", "breakdown",
        "purchase_id",
    ), stamp=stamp, debit_account_id=issuance.pk, unit=issuance.unit, code=TransferCode.EARN,
        source=TransferSource.PURCHASE, staff_user_id=staff_id)
    text, bumps, targets = [], defaultdict(int), []
    for p, pk in zip(earning, transfer_ids, strict=True):
        target = locked[p.item.member.pk][AccountKind.MEMBER_PENDING if p.pending else AccountKind.MEMBER_POINTS].pk
        targets.append(target)
        breakdown = dumped[id(p)] if not p.settled else json.dumps(
            {**p.breakdown, "debt_settled": p.settled}).replace("\\", "\\\\")
        text.append(row.format(pk, target, p.points, p.item.occurred_at, _copy_escape(f"{p.item.key}:earn"),
                               p.item.member.pk, breakdown, p.purchase.pk))
        bumps[target] += p.points
    transfers = (columns, text)

    pending_days = program.pending_days
    pending = bool(pending_days)
    columns, row = _copy_layout(Lot, (
        "id", "account_id", "transfer_id", "amount", "remaining", "earned_at", "expires_at", "available_at",
    ), stamp=stamp, pending=pending)
    text, expiry = [], {}
    wait = dt.timedelta(days=pending_days)
    tz = program.tz
    for p, pk, transfer_id, target in zip(earning, lot_ids, transfer_ids, targets, strict=True):
        at = p.item.occurred_at
        day = at.astimezone(tz).date()  # expiry depends on the local day only
        expires = expiry[day] if day in expiry else expiry.setdefault(day, program.expires_at_for(at))
        text.append(row.format(pk, target, transfer_id, p.points, p.points - p.settled, at,
                               _NULL if expires is None else expires, at + wait if p.pending else at))
    lots = (columns, text)

    columns, row = _copy_layout(Event, ("id", "member_id", "payload", "occurred_at"), stamp=stamp,
                                type=EventType.POINTS_EARNED)
    text = []
    flag = "true" if pending else "false"
    for p, pk in zip(earning, event_ids, strict=True):
        payload = (f'{{"purchase": {p.purchase.pk}, "store": {_json_ascii(p.item.store.code)}, '
                   f'"external_id": {_json_ascii(p.item.external_id)}, "points": {p.points}, "pending": {flag}}}')
        text.append(row.format(pk, p.item.member.pk, payload.replace("\\", "\\\\"), p.item.occurred_at))
    return transfers, lots, (columns, text), bumps


_SEQUENCES: dict = {}


def _sequences(cursor) -> dict:
    """The id sequence of each table the batch writes, looked up once per process (``nextval`` of a name
    given as ``pg_get_serial_sequence(…)`` looks it up for every id: ten times the cost)."""
    if not _SEQUENCES:
        models = (Purchase, Transfer, Lot, Event)
        cursor.execute("SELECT " + ", ".join(["pg_get_serial_sequence(%s, 'id')"] * len(models)),
                       [m._meta.db_table for m in models])
        _SEQUENCES.update(zip(models, cursor.fetchone(), strict=True))
    return _SEQUENCES


_NULL = "\\N"
_json_ascii = json.encoder.encode_basestring_ascii  # what json.dumps writes for a str


def _copy_escape(text: str) -> str:
    """A string as a COPY text field."""
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def _copy_value(value) -> str:
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dict | list):
        return _copy_escape(json.dumps(value))
    return _copy_escape(str(value))


def _copy_layout(model, variable: tuple[str, ...], *, stamp: dt.datetime, **constant) -> tuple[str, str]:
    """The COPY column list of every concrete field of ``model`` and a row template: ``{n}`` for the n-th of
    ``variable`` (the caller writes those as COPY text), every other field its value in ``constant``, the
    batch's time for ``auto_now`` fields, or else its default (a field added to the model later is written
    at its default, as ``bulk_create`` would)."""
    fields = model._meta.concrete_fields
    unknown = set(variable) - {f.attname for f in fields}
    if unknown:
        raise AssertionError(f"{model.__name__} has no field {', '.join(sorted(unknown))}")
    parts = []
    for f in fields:
        if f.attname in variable:
            parts.append(f"{{{variable.index(f.attname)}}}")
            continue
        if f.attname in constant:
            value = constant[f.attname]
        elif isinstance(f, DateTimeField) and (f.auto_now or f.auto_now_add):
            value = stamp
        else:
            value = f.get_default()
        parts.append(_copy_value(value).replace("{", "{{").replace("}", "}}"))
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    return columns, "\t".join(parts) + "\n"


def _copy(cursor, model, columns: str, rows: list[str]) -> None:
    if not rows:
        return
    try:
        with cursor.cursor.copy(f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN") as copy:
            copy.write("".join(rows))
    except psycopg_errors.IntegrityError as exc:  # the COPY bypasses Django's error wrapper
        raise IntegrityError(*exc.args) from exc


_DEFAULTS: dict = {}


def _new(model, *, cache: dict | None = None, **values):
    """A model instance without ``Model.__init__`` (a tenth of the cost for thousands of rows): the given
    attribute values, every other concrete field at its default."""
    defaults = _DEFAULTS.get(model)
    if defaults is None:
        fields = model._meta.concrete_fields
        # Plain values are shared; a callable default (list, dict, a function) is called for every instance.
        defaults = _DEFAULTS[model] = (
            {f.attname: f.default for f in fields if f.has_default() and not callable(f.default)}
            | {f.attname: f.get_default() for f in fields if not f.has_default()},
            [(f.attname, f.default) for f in fields if f.has_default() and callable(f.default)])
    plain, made = defaults
    obj = model.__new__(model)
    attrs = obj.__dict__
    attrs.update(plain)
    for attname, default in made:
        if attname not in values:
            attrs[attname] = default()
    attrs.update(values)
    obj._state = ModelState()
    if cache:
        obj._state.fields_cache.update(cache)
    return obj


def _credits_bump(bumps: dict[int, int], *, locked, stamp: dt.datetime) -> None:
    """``credits_posted += amount`` for many locked accounts in one UPDATE, and the same on the ``_Account``
    figures the batch holds."""
    if not bumps:
        return
    table = connection.ops.quote_name(Account._meta.db_table)
    if connection.vendor == "postgresql":
        sql = (f"UPDATE {table} SET credits_posted = {table}.credits_posted + v.amount, updated_at = %s "
               f"FROM unnest(%b::bigint[], %b::bigint[]) AS v(id, amount) WHERE {table}.id = v.id")
        params: list[Any] = [stamp, list(bumps), list(bumps.values())]
    else:  # SQLite names VALUES columns column1, column2
        values = ", ".join(["(CAST(%s AS bigint), CAST(%s AS bigint))"] * len(bumps))
        sql = (f"UPDATE {table} SET credits_posted = {table}.credits_posted + v.column2, updated_at = %s "
               f"FROM (VALUES {values}) AS v WHERE {table}.id = v.column1")
        params = [connection.ops.adapt_datetimefield_value(stamp),
                  *(x for pk, amount in bumps.items() for x in (pk, amount))]
    with _cursor() as cursor:
        cursor.execute(sql, params)
    by_pk = {a.pk: a for accounts in locked.values() for a in accounts.values()}
    for pk, amount in bumps.items():
        by_pk[pk].credits_posted += amount
