"""purchases_record_batch: the same ledger as purchase_record called one by one, set-based and exactly once."""

import datetime as dt
import random
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty.audit import ledger_audit_run
from loyalty.exceptions import LoyaltyError
from loyalty.models import Account, Event, Lot, MemberTier, Purchase, Tier, TierChange, TierPolicy, Transfer
from loyalty.services import points_redeem, purchase_record, refund_record
from loyalty.services.purchases_batch import MAX_ITEMS, purchases_record_batch
from members.models import Member, MemberStatus, Store
from tests.conftest import requires_postgres
from tests.factories import MemberFactory, StoreFactory
from tests.loyalty.helpers import buy, program_set, rules_publish
from tests.loyalty.test_concurrency import run_concurrently

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]


class _Rollback(Exception):
    pass


# ---- a world with caps, modifiers, debt and tiers ------------------------------------------------------------

@pytest.fixture
def world(now):
    stores = [StoreFactory(code="SH001"), StoreFactory(code="BJ002")]
    members = [
        MemberFactory(joined_at=now - dt.timedelta(days=400), birthday=dt.date(1990, 3, 9)),
        MemberFactory(joined_at=now - dt.timedelta(days=800)),
        MemberFactory(joined_at=now - dt.timedelta(days=3)),
        MemberFactory(joined_at=now - dt.timedelta(days=30)),  # will be in debt
        MemberFactory(joined_at=now - dt.timedelta(days=30)),  # near a tier threshold
        MemberFactory(joined_at=now - dt.timedelta(days=30)),  # frozen
    ]
    rules_publish(name="Old", effective_from=now - dt.timedelta(days=60), earn_points=1, earn_spend=Decimal("1"))
    rules_publish(
        name="Spring", effective_from=now - dt.timedelta(days=5), earn_points=2, earn_spend=Decimal("1"),
        cap_day=900, cap_week=2500, cap_month=6000,
        modifiers=[
            {"kind": "BONUS", "value": Decimal("50"), "stacking": "ADD", "priority": 1, "first_purchase": True},
            {"kind": "MULTIPLIER", "value": Decimal("1.5"), "stacking": "MULTIPLY", "priority": 2, "categories": ["drinks"]},
            {"kind": "MULTIPLIER", "value": Decimal("2"), "stacking": "BEST", "priority": 3, "birthday_month": True},
            {"kind": "BONUS", "value": Decimal("30"), "stacking": "ADD", "priority": 4, "promo_code": "SPRING",
             "stores": ["SH001"]},
        ],
    )
    Tier.objects.create(code="BASIC", name="Basic", rank=0, spend_threshold=Decimal("0"))
    Tier.objects.create(code="SILVER", name="Silver", rank=1, spend_threshold=Decimal("30000"), earn_multiplier=Decimal("1.25"))
    Tier.objects.create(code="GOLD", name="Gold", rank=2, spend_threshold=Decimal("100000"), earn_multiplier=Decimal("1.5"))
    TierPolicy.objects.update_or_create(pk=1, defaults={"earn_at_new_tier": True})
    debtor = members[3]
    first = buy(debtor, stores[0], "200.00", at=now - dt.timedelta(days=20))
    points_redeem(member=debtor, points=first.points_earned, reason="gift", idempotency_key="gift", now=now - dt.timedelta(days=19))
    refund_record(purchase=first, amount=Decimal("200.00"), occurred_at=now - dt.timedelta(days=18),
                  now=now - dt.timedelta(days=18), idempotency_key="refund-debt")
    assert Account.objects.get(member=debtor, kind="MEMBER_POINTS").balance < 0
    buy(members[4], stores[1], "29900.00", at=now - dt.timedelta(days=10))
    frozen = members[5]
    Member.objects.filter(pk=frozen.pk).update(status=MemberStatus.FROZEN)
    return {"stores": stores, "members": members}


def purchases_generate(rng: random.Random, world, now, n: int) -> list[dict]:
    items = []
    for i in range(n):
        member = rng.choice(world["members"])
        store = rng.choice(world["stores"])
        at = now - dt.timedelta(days=rng.randint(0, 8), minutes=rng.randint(1, 600))
        total = Decimal(rng.randint(100, 60000)) / 100
        item = {"member": {"id": member.pk}, "store": store.code, "external_id": f"X{rng.randint(1, n * 3)}-{i % 3}",
                "occurred_at": at, "total": str(total)}
        if rng.random() < 0.5:
            first = (total * Decimal(rng.randint(0, 100)) / 100).quantize(Decimal("0.01"))
            item["lines"] = [{"sku": "LATTE", "category": "drinks", "quantity": 2, "amount": str(first)},
                             {"sku": "BAGEL", "category": "bakery", "quantity": 1, "amount": str(total - first)}]
        if rng.random() < 0.2:
            item["promo_codes"] = ["SPRING"]
        roll = rng.random()
        if roll < 0.03:
            item["total"] = "-3"
        elif roll < 0.05:
            item["occurred_at"] = now + dt.timedelta(days=1)
        elif roll < 0.07:
            item["member"] = {"id": 10**9}
        elif roll < 0.08:
            item["store"] = "NOPE"
        items.append(item)
    return items


def one_by_one(items, now) -> list[str]:
    """What posting each purchase alone through purchase_record gives, in order."""
    outcomes, seen = [], set()
    for raw in items:
        if (raw["store"], raw["external_id"]) in seen:  # the batch contract: each order once per batch
            outcomes.append("error")
            continue
        seen.add((raw["store"], raw["external_id"]))
        member = Member.objects.filter(pk=raw["member"]["id"]).first()
        store = Store.objects.filter(code=raw["store"]).first()
        if member is None or store is None:
            outcomes.append("error")
            continue
        if Purchase.objects.filter(store=store, external_id=raw["external_id"]).exists():
            outcomes.append("duplicate")
            continue
        try:
            purchase_record(member=member, store=store, external_id=raw["external_id"], occurred_at=raw["occurred_at"],
                            total=raw["total"], lines=raw.get("lines"), promo_codes=raw.get("promo_codes"), now=now)
        except LoyaltyError:
            outcomes.append("error")
        else:
            outcomes.append("created")
    return outcomes


def ledger_state() -> dict:
    """Everything the purchases wrote, without primary keys of new rows (they differ between two runs)."""
    ext = dict(Purchase.objects.values_list("pk", "external_id"))

    def unpk(payload: dict) -> dict:
        payload = dict(payload)
        if "purchase" in payload:
            payload["purchase"] = ext.get(payload["purchase"])
        if isinstance(payload.get("details"), dict):
            payload["details"] = unpk(payload["details"])
        return payload

    transfers = {t.pk: t for t in Transfer.objects.all()}
    return {
        "purchases": sorted(
            (p.store.code, p.external_id, p.member_id, p.points_earned, p.earn_breakdown, p.tier_id, p.rule_set_id,
             p.total, p.lines, p.promo_codes, p.channel, p.occurred_at, p.idempotency_key, p.fingerprint,
             p.points_paid_value, p.coupon_discount, p.stored_value_paid)
            for p in Purchase.objects.select_related("store")),
        "transfers": sorted(
            (t.idempotency_key, t.debit_account_id, t.credit_account_id, t.amount, t.code, t.member_id, t.occurred_at,
             t.source, ext.get(t.purchase_id), t.breakdown, t.unit) for t in transfers.values()),
        "lots": sorted(
            (transfers[lot.transfer_id].idempotency_key, lot.account_id, lot.amount, lot.remaining, lot.earned_at,
             lot.expires_at, lot.pending, lot.available_at) for lot in Lot.objects.all()),
        "accounts": list(Account.objects.order_by("pk").values_list("pk", "credits_posted", "debits_posted")),
        "events": sorted(
            (e.member_id, e.type, e.occurred_at, repr(unpk(e.payload)))
            for e in Event.objects.order_by("pk")),
        "event_order": [(e.member_id, e.type, e.payload.get("external_id")) for e in Event.objects.order_by("pk")
                        if e.member_id is not None],
        "tier_changes": sorted(
            (c.member_id, c.from_tier_id, c.to_tier_id, c.reason, c.occurred_at, repr(unpk(c.details)))
            for c in TierChange.objects.all()),
        "member_tiers": sorted(MemberTier.objects.values_list("member_id", "tier_id", "since", "review_at", "grace_until")),
    }


def both_ways(items, now) -> tuple[dict, dict, list[str], list[str]]:
    """Run the items one by one and as a batch from the same starting point; both rolled back."""
    states = {}
    for way in ("single", "batch"):
        try:
            with transaction.atomic():
                if way == "single":
                    outcomes = one_by_one(items, now)
                else:
                    results = purchases_record_batch(items=items, now=now)
                    batch = [r.status for r in results]
                assert ledger_audit_run() == []
                states[way] = ledger_state()
                raise _Rollback
        except _Rollback:
            pass
    return states["single"], states["batch"], outcomes, batch


def per_member_event_order(state):
    by_member: dict[int, list] = {}
    for member_id, kind, external_id in state["event_order"]:
        by_member.setdefault(member_id, []).append((kind, external_id))
    return by_member


def assert_same(single, batch):
    for part in single:
        if part == "event_order":  # fallback members' events come after the bulk ones; per member the order holds
            assert per_member_event_order(single) == per_member_event_order(batch)
            continue
        if single[part] != batch[part]:
            first = next((a, b) for a, b in zip(single[part], batch[part], strict=False) if a != b) if len(
                single[part]) == len(batch[part]) else (len(single[part]), len(batch[part]))
            if isinstance(first[0], tuple):
                first = [(i, x, y) for i, (x, y) in enumerate(zip(*first, strict=True)) if x != y]
            raise AssertionError(f"{part}: first difference {first}")


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("pending_days", [0, 7])
def test_batch_equals_one_by_one(world, now, seed, pending_days):
    program_set(pending_days=pending_days)
    items = purchases_generate(random.Random(seed), world, now, 120)
    single, batch, outcomes, statuses = both_ways(items, now)
    assert_same(single, batch)
    assert outcomes == statuses
    assert statuses.count("created") > 50


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=10**6), n=st.integers(min_value=1, max_value=40))
def test_batch_equals_one_by_one_property(world, now, seed, n):
    items = purchases_generate(random.Random(seed), world, now, n)
    single, batch, _outcomes, _statuses = both_ways(items, now)
    assert_same(single, batch)


def test_tier_upgrade_mid_batch_falls_back_and_matches(world, now):
    near = world["members"][4]
    store = world["stores"][0]
    items = [{"member": {"id": near.pk}, "store": store.code, "external_id": f"U{i}", "occurred_at":
              now - dt.timedelta(hours=5 - i), "total": "60.00"} for i in range(4)]
    single, batch, _o, statuses = both_ways(items, now)
    assert statuses == ["created"] * 4
    assert single["tier_changes"] and single["tier_changes"] == batch["tier_changes"]
    assert_same(single, batch)


def test_debt_is_settled_first(world, now):
    debtor = world["members"][3]
    debt = -Account.objects.get(member=debtor, kind="MEMBER_POINTS").balance
    results = purchases_record_batch(items=[{"member": {"id": debtor.pk}, "store": "SH001", "external_id": "D1",
                                             "occurred_at": now - dt.timedelta(hours=1), "total": "500.00"}], now=now)
    assert results[0].status == "created"
    earn = Transfer.objects.get(purchase=results[0].purchase, code="EARN")
    assert earn.breakdown["debt_settled"] == min(debt, earn.amount)
    assert Lot.objects.get(transfer=earn).remaining == earn.amount - min(debt, earn.amount)
    assert results[0].points_balance == max(0, earn.amount - debt)


def test_exactly_once_across_batches_and_single_posts(world, now):
    member, store = world["members"][0], world["stores"][0]
    buy(member, store, "10.00", at=now - dt.timedelta(hours=3), external_id="EARLIER")
    items = [{"member": {"id": member.pk}, "store": store.code, "external_id": ext,
              "occurred_at": now - dt.timedelta(hours=2), "total": "20.00"} for ext in ("EARLIER", "NEW", "NEW")]
    first = purchases_record_batch(items=items, now=now)
    assert [r.status for r in first] == ["duplicate", "created", "error"]
    assert first[0].purchase.external_id == "EARLIER" and first[0].purchase.total == Decimal("10.00")
    assert first[2].error.code == "duplicate_in_batch"
    again = purchases_record_batch(items=items, now=now)
    assert [r.status for r in again] == ["duplicate", "duplicate", "error"]
    assert again[1].purchase.pk == first[1].purchase.pk
    assert Purchase.objects.filter(store=store, external_id="NEW").count() == 1
    assert Transfer.objects.filter(purchase=first[1].purchase).count() == 1


def test_errors_do_not_stop_the_others(world, now):
    frozen, member = world["members"][5], world["members"][0]
    ok = {"member": {"id": member.pk}, "store": "SH001", "occurred_at": now - dt.timedelta(hours=1), "total": "10.00"}
    items = [
        {**ok, "external_id": "A"},
        {**ok, "external_id": "B", "member": {"id": frozen.pk}},
        {**ok, "external_id": "C", "total": "1.234"},
        {**ok, "external_id": "D", "lines": [{"sku": "X", "amount": "3.00"}]},
        {**ok, "external_id": "E", "coupon_codes": ["WELCOME"]},
        {**ok, "external_id": "F", "member": {"phone": "not a phone"}},
        {**ok, "external_id": "G", "channel": "FAX"},
        "not an object",
        {**ok, "external_id": "H"},
    ]
    results = purchases_record_batch(items=items, now=now)
    assert [r.status for r in results] == ["created", "error", "error", "error", "error", "error", "error", "error",
                                           "created"]
    codes = [r.error.code if r.error else None for r in results]
    assert codes == [None, "member_frozen", "invalid_input", "invalid_input", "checkout_not_in_batch",
                     "member_not_found", "invalid_input", "invalid_input", None]
    assert set(Purchase.objects.filter(external_id__in="ABCDEFGH").values_list("external_id", flat=True)) == {"A", "H"}


@pytest.mark.parametrize("items", [[], "x", [{}] * (MAX_ITEMS + 1)])
def test_whole_batch_malformed_writes_nothing(world, now, items):
    before = Purchase.objects.count()
    with pytest.raises(LoyaltyError):
        purchases_record_batch(items=items, now=now)
    assert Purchase.objects.count() == before


def test_store_binding(world, now):
    member = world["members"][0]
    sh, bj = world["stores"]
    results = purchases_record_batch(items=[
        {"member": {"id": member.pk}, "store": code, "external_id": "S1", "occurred_at": now, "total": "5.00"}
        for code in ("SH001", "BJ002")], now=now, bound_store_id=sh.pk)
    assert [r.status for r in results] == ["created", "error"]
    assert results[1].error.code == "store_not_allowed"
    assert not Purchase.objects.filter(store=bj, external_id="S1").exists()


@pytest.mark.parametrize("size", [30, 300])
def test_query_count_does_not_grow_with_the_batch(world, now, size):
    members = world["members"][:3]
    items = [{"member": {"id": members[i % 3].pk}, "store": "SH001", "external_id": f"Q{i}",
              "occurred_at": now - dt.timedelta(minutes=i), "total": "12.00"} for i in range(size)]
    with CaptureQueriesContext(connection) as queries:
        results = purchases_record_batch(items=items, now=now)
    assert all(r.status == "created" for r in results)
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    if connection.vendor == "sqlite":  # SQLite splits a bulk insert by its limit of 999 parameters
        statements = [q for q in statements if not q.startswith("INSERT")]
    assert len(statements) <= 21, "\n".join(q[:150] for q in statements)


# ---- concurrency (PostgreSQL) --------------------------------------------------------------------------------

@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_batches_racing_single_posts_apply_each_purchase_once(now):
    from loyalty.models import SystemAccount
    from loyalty.services import program_settings_get
    from loyalty.services.ledger import system_account
    from loyalty.services.tiers import tier_policy_get

    program_settings_get(), tier_policy_get(), system_account(SystemAccount.ISSUANCE)  # configuration exists
    stores = [StoreFactory(code="SH001"), StoreFactory(code="BJ002")]
    members = [MemberFactory() for _ in range(6)]
    when = now - dt.timedelta(hours=1)
    orders = [(members[i % 6], stores[i % 2], f"R{i}") for i in range(60)]

    def item(member, store, ext):
        return {"member": {"id": member.pk}, "store": store.code, "external_id": ext, "occurred_at": when, "total": "30.00"}

    def batch(order):
        return purchases_record_batch(items=[item(*o) for o in order], now=now)

    def singles(order):
        for member, store, ext in order:
            try:
                purchase_record(member=member, store=store, external_id=ext, occurred_at=when, total="30.00", now=now)
            except LoyaltyError:
                pass

    rng = random.Random(7)
    shuffled = orders[:]
    rng.shuffle(shuffled)
    jobs = [lambda: batch(orders), lambda: batch(shuffled), lambda: batch(orders[::-1]), lambda: singles(orders[10:40])]
    outcomes = run_concurrently(len(jobs), lambda i: jobs[i]())
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert not errors, errors
    assert Purchase.objects.count() == 60
    assert Transfer.objects.filter(code="EARN").count() == 60
    assert Event.objects.filter(type="points.earned").count() == 60
    assert ledger_audit_run() == []


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_batches_of_different_members_racing_for_the_same_orders(now):
    """Two batches name the same orders for different members (no shared lock): one wins each order, the
    other retries and reports it as a duplicate; no IntegrityError, no deadlock."""
    from loyalty.models import SystemAccount
    from loyalty.services import program_settings_get
    from loyalty.services.ledger import system_account
    from loyalty.services.tiers import tier_policy_get

    program_settings_get(), tier_policy_get(), system_account(SystemAccount.ISSUANCE)
    StoreFactory(code="SH001")
    first, second = MemberFactory(), MemberFactory()
    when = now - dt.timedelta(hours=1)

    def batch(member, order):
        return member.pk, purchases_record_batch(items=[
            {"member": {"id": member.pk}, "store": "SH001", "external_id": f"O{i}", "occurred_at": when,
             "total": "10.00"} for i in order], now=now)

    jobs = [lambda: batch(first, range(200)), lambda: batch(second, range(199, -1, -1))]
    outcomes = run_concurrently(len(jobs), lambda i: jobs[i]())
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert not errors, errors
    results = dict(outcomes)
    assert Purchase.objects.count() == 200
    for i in range(200):
        statuses = sorted(r.status for rs in results.values() for r in rs if r.external_id == f"O{i}")
        assert statuses == ["created", "duplicate"]
    assert ledger_audit_run() == []
