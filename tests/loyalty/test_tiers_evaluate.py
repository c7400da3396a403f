"""The daily tier evaluation as a batch job: bounded batches, safe to rerun, safe to resume after a kill,
a cost per batch that does not grow with its members; the beat task and its schedule."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_beat.models import PeriodicTask

from loyalty import tasks
from loyalty.models import MemberTier, TierChange, TierChangeReason
from loyalty.services import tiers as tiers_module
from loyalty.services.tiers import tiers_evaluate
from tests.conftest import local
from tests.factories import MemberFactory
from tests.loyalty.helpers import buy, row_counts
from tests.loyalty.test_tiers import T4_TIERS, ladder, tier_rows

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

NOW = local(2026, 3, 5, 2, 30)


def spenders(store, amounts, *, at=None) -> list:
    """One member per amount, each with one purchase of that amount ten days before NOW."""
    members = []
    for amount in amounts:
        member = MemberFactory(joined_at=local(2025, 1, 1))
        buy(member, store, amount, at=at or NOW - dt.timedelta(days=10))
        members.append(member)
    return members


def state_rows() -> tuple:
    return tier_rows(), row_counts()


def test_T4_evaluation_works_through_every_member_in_small_batches(store):
    """Purchases first, tiers after: only the evaluation can place these members (batch_size=2, 7 members)."""
    members = spenders(store, ["1200.00", "50.00", "400.00", "999.99", "1000.00", "10.00"])
    MemberFactory()  # no purchases at all
    tiers = ladder(T4_TIERS)

    counts = tiers_evaluate(now=NOW, batch_size=2)

    assert counts == {"members": 7, "upgraded": 4, "kept": 0, "grace": 0, "recovered": 0, "downgraded": 0}
    placed = dict(MemberTier.objects.values_list("member_id", "tier__code"))
    assert placed == {members[0].pk: "gold", members[2].pk: "silver", members[3].pk: "silver",
                      members[4].pk: "gold"}
    assert TierChange.objects.filter(reason=TierChangeReason.UPGRADE).count() == 4
    assert MemberTier.objects.get(member=members[0]).tier == tiers["gold"]

    before = state_rows()
    assert tiers_evaluate(now=NOW, batch_size=2)["upgraded"] == 0  # rerun: nothing to do
    assert tiers_evaluate(now=NOW + dt.timedelta(days=1), batch_size=3)["upgraded"] == 0
    assert state_rows() == before


def test_T4_evaluation_resumes_after_being_killed_mid_run(store, monkeypatch):
    spenders(store, ["1200.00"] * 6)
    ladder(T4_TIERS)
    real_write = tiers_module._outcomes_write
    calls = {"n": 0}

    def dies_in_second_batch(run, outcomes):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        real_write(run, outcomes)

    monkeypatch.setattr(tiers_module, "_outcomes_write", dies_in_second_batch)
    with pytest.raises(KeyboardInterrupt):
        tiers_evaluate(now=NOW, batch_size=2)
    assert MemberTier.objects.count() == TierChange.objects.count() == 2  # the first batch is whole, the second undone

    monkeypatch.setattr(tiers_module, "_outcomes_write", real_write)
    assert tiers_evaluate(now=NOW, batch_size=2)["upgraded"] == 4
    before = state_rows()
    assert tiers_evaluate(now=NOW, batch_size=2)["upgraded"] == 0
    assert state_rows() == before


def test_T4_batch_cost_does_not_grow_with_the_members_in_it(store):
    """Three members or nine, upgraded, in grace and kept: the same number of queries (one batch each)."""
    ladder([("normal", "普通", "0", None), ("silver", "银卡", "300", None),
            ("gold", "金卡", "1000", None, {"retain_spend": Decimal(500)})], grace_days=30)

    def cohort(n):
        up = spenders(store, ["400.00"] * n, at=local(2025, 12, 1, 10, 0))  # silver at once
        gold = spenders(store, ["1000.00"] * (2 * n), at=local(2025, 3, 4, 10, 0))  # gold, due on 5 March 2026
        for member in gold[n:]:  # half of them keep gold on ¥500 (the keep threshold)
            buy(member, store, "500.00", at=local(2025, 10, 1, 10, 0))
        MemberTier.objects.filter(member__in=up).delete()  # as if the tiers came after these purchases
        TierChange.objects.filter(member__in=up).delete()

    cohort(1)
    with CaptureQueriesContext(connection) as small:
        counts = tiers_evaluate(now=NOW, batch_size=1000)
    assert (counts["upgraded"], counts["grace"], counts["kept"]) == (1, 1, 1)

    cohort(3)  # three times as many new members; the first ones, already evaluated, are read again too
    with CaptureQueriesContext(connection) as large:
        counts = tiers_evaluate(now=NOW, batch_size=1000)
    assert (counts["upgraded"], counts["grace"], counts["kept"]) == (3, 3, 3)

    assert len(large) == len(small)  # set-based: no query per member


def test_T4_a_purchase_between_deciding_and_locking_is_seen_before_writing(store, monkeypatch):
    """The decision is taken again under the lock on fresh rows: a member who moved up meanwhile gets no grace."""
    tiers = ladder(T4_TIERS, grace_days=30)
    member = MemberFactory(joined_at=local(2025, 1, 1))
    buy(member, store, "400.00", at=local(2025, 3, 4, 10, 0))  # 银卡, due on 5 March 2026 with nothing since
    real_states = tiers_module._states
    calls = {"n": 0}

    def purchase_sneaks_in(queryset):
        calls["n"] += 1
        if calls["n"] == 2:  # the re-read under the lock
            buy(member, store, "1200.00", at=NOW - dt.timedelta(minutes=1))
        return real_states(queryset)

    monkeypatch.setattr(tiers_module, "_states", purchase_sneaks_in)
    counts = tiers_evaluate(now=NOW)

    assert calls["n"] == 2 and counts["grace"] == 0
    assert MemberTier.objects.get(member=member).tier == tiers["gold"]
    assert not TierChange.objects.filter(reason=TierChangeReason.GRACE).exists()


def test_tiers_evaluate_task_calls_the_service(store):
    spenders(store, ["1200.00"])
    ladder(T4_TIERS)

    counts = tasks.tiers_evaluate_task.apply().get()

    assert counts["upgraded"] == 1


def test_setup_periodic_tasks_schedules_the_tier_evaluation_nightly():
    call_command("setup_periodic_tasks")

    task = PeriodicTask.objects.get(task="loyalty.tasks.tiers_evaluate_task")
    assert (task.crontab.minute, task.crontab.hour, task.enabled) == ("30", "2", True)


def test_without_tiers_the_evaluation_does_nothing(store):
    spenders(store, ["1200.00"])

    assert tiers_evaluate(now=NOW)["upgraded"] == 0
    assert not MemberTier.objects.exists()
