"""Schedules: bounded batches, safe to run twice, safe to resume after being killed; beat declarations."""

import datetime as dt

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from loyalty import tasks
from loyalty.models import Lot, Transfer, TransferCode
from loyalty.services import points_adjust, points_expire_due, points_release_pending
from loyalty.services import schedules as schedules_module
from tests.factories import MemberFactory, StoreFactory
from tests.loyalty.helpers import buy, program_set, row_counts, summary

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]


@pytest.fixture
def expired_lots(now, staff):
    """Three members × three lots, all expired a minute before ``now``."""
    members = [MemberFactory() for _ in range(3)]
    for m in members:
        for k in range(3):
            t = points_adjust(member=m, points=10 + k, reason="setup", staff_user=staff,
                              idempotency_key=f"{m.pk}-{k}", now=now - dt.timedelta(days=2))
            Lot.objects.filter(transfer=t).update(expires_at=now - dt.timedelta(minutes=1))
    return members


def test_expiry_processes_every_lot_in_small_batches(expired_lots, now):
    assert points_expire_due(now=now, batch_size=2) == 9
    assert all(summary(m).available == 0 for m in expired_lots)
    assert Transfer.objects.filter(code=TransferCode.EXPIRE).count() == 9


def test_expiry_batch_cost_does_not_grow_with_the_number_of_lots(expired_lots, now, staff):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    points_expire_due(now=now - dt.timedelta(days=30))  # nothing due; creates the breakage account once
    with CaptureQueriesContext(connection) as nine:
        assert points_expire_due(now=now, batch_size=100) == 9
    for m in expired_lots:  # three times as many lots, still one batch
        for k in range(9):
            t = points_adjust(member=m, points=5, reason="more", staff_user=staff, idempotency_key=f"x{m.pk}-{k}", now=now)
            Lot.objects.filter(transfer=t).update(expires_at=now)
    with CaptureQueriesContext(connection) as twenty_seven:
        assert points_expire_due(now=now, batch_size=100) == 27

    assert len(twenty_seven) == len(nine)  # set-based: no query per lot


def test_expiry_resumes_after_being_killed_mid_run(expired_lots, now, monkeypatch):
    real_bump = schedules_module.accounts_bump_many
    calls = {"n": 0}

    def dies_in_second_batch(field, amounts):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        real_bump(field, amounts)

    monkeypatch.setattr(schedules_module, "accounts_bump_many", dies_in_second_batch)
    with pytest.raises(KeyboardInterrupt):
        points_expire_due(now=now, batch_size=4)
    assert Transfer.objects.filter(code=TransferCode.EXPIRE).count() == 4  # the first batch is whole, the second undone

    monkeypatch.setattr(schedules_module, "accounts_bump_many", real_bump)
    assert points_expire_due(now=now, batch_size=4) == 5
    before = row_counts()
    assert points_expire_due(now=now, batch_size=4) == 0
    assert row_counts() == before


def test_release_settles_debt_first(member, store, now):
    from decimal import Decimal

    from loyalty.services import points_redeem, refund_record

    program_set(pending_days=0)
    first = buy(member, store, "100.00", at=now)
    points_redeem(member=member, points=100, reason="gift", idempotency_key="all", now=now)
    refund_record(purchase=first, amount=Decimal("100.00"), occurred_at=now, idempotency_key="r", now=now)
    assert summary(member).debt == 100
    program_set(pending_days=2)
    buy(member, store, "150.00", at=now)
    assert (summary(member).pending, summary(member).debt) == (150, 100)

    assert points_release_pending(now=now + dt.timedelta(days=2)) == 1

    s = summary(member)
    assert (s.pending, s.debt, s.available) == (0, 0, 50)


def test_expiry_ignores_pending_lots(member, store, now):
    program_set(pending_days=60, expiry_months=1)
    buy(member, store, "10.00", at=now)
    assert points_expire_due(now=now + dt.timedelta(days=45)) == 0
    assert summary(member).pending == 10


def test_setup_periodic_tasks_declares_each_schedule_once_and_every_task_exists(capsys):
    from config.celery import app
    from loyalty.management.commands.setup_periodic_tasks import SCHEDULES

    call_command("setup_periodic_tasks")
    call_command("setup_periodic_tasks")

    declared = PeriodicTask.objects.exclude(name="celery.backend_cleanup")
    assert declared.count() == len(SCHEDULES)
    tasks = set(declared.values_list("task", flat=True))
    assert {"loyalty.tasks.points_expire_due_task", "loyalty.tasks.points_clearance_task",
            "loyalty.tasks.points_release_pending_task"} <= tasks
    app.loader.import_default_modules()
    assert tasks <= set(app.tasks), "every schedule names a registered Celery task"


def test_tasks_call_the_services(expired_lots):
    assert tasks.points_expire_due_task.apply().get() == 9
    assert tasks.points_release_pending_task.apply().get() == 0
    assert tasks.points_clearance_task.apply().get() == 0  # months policy: no clearance day
    StoreFactory()  # tasks ran without touching anything else
