"""L13 and L14: real threads, real transactions, PostgreSQL row locks."""

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import close_old_connections, connections
from django.utils import timezone

from loyalty.audit import ledger_audit_run
from loyalty.exceptions import InsufficientPoints
from loyalty.models import Purchase, Transfer, TransferCode
from loyalty.services import points_adjust, points_expire_due, points_redeem, purchase_record
from tests.conftest import requires_postgres
from tests.factories import MemberFactory, StoreFactory
from tests.loyalty.helpers import balance

pytestmark = [pytest.mark.django_db(transaction=True), requires_postgres]

WORKERS = 40  # PostgreSQL allows 100 connections; 40 threads keep all requests truly overlapping


def run_concurrently(n: int, fn):
    """Run ``fn(i)`` for i in range(n) on WORKERS threads released together; returns results or exceptions."""
    barrier = threading.Barrier(min(n, WORKERS))

    def call(i):
        try:
            if i < WORKERS:
                barrier.wait(timeout=30)
            return fn(i)
        except Exception as exc:
            return exc
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = list(pool.map(call, range(n)))
    close_old_connections()
    return results


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="cashier", is_staff=True)


def test_L13_hundred_concurrent_redemptions_of_30_from_1000_exactly_33_succeed(staff):
    now = timezone.now()
    member = MemberFactory()
    points_adjust(member=member, points=1000, reason="setup", staff_user=staff, idempotency_key="seed", now=now)

    results = run_concurrently(100, lambda i: points_redeem(
        member=member, points=30, reason="gift", idempotency_key=f"redeem-{i}", now=timezone.now()))

    succeeded = [r for r in results if isinstance(r, Transfer)]
    refused = [r for r in results if isinstance(r, InsufficientPoints)]
    assert len(succeeded) == 33
    assert len(refused) == 67
    assert balance(member) == 10
    assert ledger_audit_run() == []


def test_L14_twenty_concurrent_identical_purchases_write_one_earn():
    now = timezone.now()
    member, store = MemberFactory(), StoreFactory()

    results = run_concurrently(20, lambda i: purchase_record(
        member=member, store=store, external_id="POS-1", occurred_at=now, total=Decimal("68.90"),
        idempotency_key="same-key", now=now).pk)

    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 1
    assert Purchase.objects.count() == 1
    assert Transfer.objects.filter(code=TransferCode.EARN).count() == 1
    assert balance(member) == 68
    assert ledger_audit_run() == []


def test_expiry_batches_and_redemptions_do_not_deadlock(staff):
    """One lock order everywhere: an expiry run racing redemptions finishes and leaves a clean ledger."""
    now = timezone.now()
    members = [MemberFactory() for _ in range(6)]
    for m in members:
        for k in range(5):
            t = points_adjust(member=m, points=100, reason="setup", staff_user=staff, idempotency_key=f"s{m.pk}-{k}", now=now)
            if k % 2:
                t.lots.update(expires_at=now - dt.timedelta(minutes=1))

    def work(i):
        if i % 10 == 0:
            return points_expire_due(now=timezone.now(), batch_size=3)
        m = members[i % len(members)]
        return points_redeem(member=m, points=20, reason="gift", idempotency_key=f"r{i}", now=timezone.now())

    results = run_concurrently(60, work)

    assert not [r for r in results if isinstance(r, Exception) and not isinstance(r, InsufficientPoints)], results
    assert ledger_audit_run() == []
