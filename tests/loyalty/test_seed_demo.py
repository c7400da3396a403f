"""``manage.py seed_demo``: demo data made through the real services, idempotent and reproducible."""

import datetime as dt
import hashlib
import io
import json
from decimal import Decimal

import phonenumbers
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import transaction

from loyalty.audit import ledger_audit_run
from loyalty.demo import DEMO_STAFF_USERNAME, demo_summary
from loyalty.models import Lot, Purchase, Refund, Transfer, TransferCode, TransferSource
from members.models import Member, MemberStatus, Store
from tests.conftest import SHANGHAI
from tests.loyalty.helpers import program_set, row_counts

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 4, 21, 30, tzinfo=SHANGHAI)


def seed_demo(**options) -> str:
    options = {"members": 15, "days": 60, "seed": 7, "now": NOW.isoformat(), **options}
    out = io.StringIO()
    call_command("seed_demo", stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def in_opening_hours(at: dt.datetime) -> bool:
    local = at.astimezone(SHANGHAI).time()
    return dt.time(7, 30) <= local <= dt.time(22, 5)


def dataset_digest() -> str:
    """Everything a reader of the demo would see, without primary keys, referral codes or audit stamps."""
    queries = {
        "members": Member.objects.values_list("phone", "name", "member_number", "birthday", "joined_at", "status",
                                              "home_store__code"),
        "purchases": Purchase.objects.values_list(
            "store__code", "external_id", "member__phone", "channel", "occurred_at", "total", "lines", "points_paid",
            "points_earned", "refunded_amount", "points_reversed", "points_returned", "idempotency_key"),
        "refunds": Refund.objects.values_list("purchase__external_id", "occurred_at", "amount", "lines",
                                              "points_reversed", "points_returned", "debt_created", "idempotency_key"),
        "transfers": Transfer.objects.values_list("code", "member__phone", "occurred_at", "amount", "reason", "source",
                                                  "debit_account__kind", "credit_account__kind", "purchase__external_id"),
        "lots": Lot.objects.values_list("account__member__phone", "amount", "remaining", "earned_at", "expires_at",
                                        "pending"),
    }
    data = {name: sorted(json.dumps(row, default=str) for row in qs) for name, qs in queries.items()}
    data["summary"] = demo_summary()
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def digest_of_run(**options) -> str:
    """Seed inside a savepoint, digest, roll back: the next run starts from the same empty database."""
    with transaction.atomic():
        seed_demo(**options)
        digest = dataset_digest()
        transaction.set_rollback(True)
    return digest


class TestSeedDemo:
    def test_small_run_records_every_kind_of_activity_through_the_services(self):
        output = seed_demo()

        assert "ledger audit clean" in output
        assert ledger_audit_run() == []
        assert Store.objects.filter(code="SH001", name="静安店").exists()
        assert Store.objects.count() == 6
        members = list(Member.objects.all())
        assert len(members) == 15
        assert all(phonenumbers.is_valid_number(phonenumbers.parse(m.phone)) for m in members)
        assert all(m.phone.startswith("+861") and m.accounts.count() == 2 for m in members)
        assert any(m.birthday for m in members) and any(m.home_store_id for m in members)
        assert Member.objects.filter(status=MemberStatus.FROZEN).exists()
        assert all(in_opening_hours(m.joined_at) and m.joined_at <= NOW for m in members)

        purchases = list(Purchase.objects.all())
        assert len(purchases) > 30
        for purchase in purchases:
            assert 1 <= len(purchase.lines) <= 4
            assert sum(Decimal(line["amount"]) for line in purchase.lines) == purchase.total
            assert {line["category"] for line in purchase.lines} <= {"咖啡", "茶饮", "烘焙", "周边"}
            assert in_opening_hours(purchase.occurred_at) and purchase.occurred_at <= NOW
        assert any(p.points_paid for p in purchases)
        assert any(len(p.lines) > 1 for p in purchases)

        refunds = list(Refund.objects.select_related("purchase"))
        assert any(r.lines for r in refunds), "a refund by line"
        assert any(not r.lines and r.amount < r.purchase.total for r in refunds), "a partial refund by amount"
        assert any(r.purchase.refunded_amount == r.purchase.total for r in refunds), "a purchase refunded in full"
        assert all(in_opening_hours(r.occurred_at) and r.purchase.occurred_at <= r.occurred_at <= NOW for r in refunds)

        codes = set(Transfer.objects.values_list("code", flat=True))
        assert {TransferCode.EARN, TransferCode.PAYMENT, TransferCode.REDEEM, TransferCode.ADJUST,
                TransferCode.REVERSAL, TransferCode.RETURN} <= codes
        redeem = Transfer.objects.filter(code=TransferCode.REDEEM).first()
        assert redeem.reason.startswith("兑换: ")
        staff = get_user_model().objects.get(username=DEMO_STAFF_USERNAME)
        adjustments = Transfer.objects.filter(code=TransferCode.ADJUST)
        assert all(a.staff_user_id == staff.pk and a.source == TransferSource.STAFF for a in adjustments)
        assert not staff.has_usable_password()
        assert all(k.startswith("demo:7:") for k in Purchase.objects.values_list("idempotency_key", flat=True))

        summary = demo_summary()
        assert f"members: {summary['members']}" in output
        assert f"points outstanding: {summary['points_outstanding']}" in output

    def test_schedules_release_pending_points_and_expire_lots_as_the_clock_advances(self):
        program_set(pending_days=7, expiry_months=1)

        seed_demo()

        assert ledger_audit_run() == []
        released = Transfer.objects.filter(code=TransferCode.RELEASE)
        expired = Transfer.objects.filter(code=TransferCode.EXPIRE)
        assert released.exists() and expired.exists()
        assert all(t.occurred_at <= NOW for t in [*released, *expired])
        assert not Lot.objects.filter(pending=True, available_at__lte=NOW).exists()
        assert not Lot.objects.filter(pending=False, remaining__gt=0, expires_at__lte=NOW).exists()
        assert Lot.objects.filter(pending=True).exists(), "the last week's points are still pending"

    def test_second_run_writes_nothing(self):
        seed_demo(members=8, days=30)
        before = (row_counts(), Member.objects.count(), Store.objects.count(), get_user_model().objects.count())

        output = seed_demo(seed=8)

        assert output.strip() == "Demo data already present; nothing to do."
        assert (row_counts(), Member.objects.count(), Store.objects.count(),
                get_user_model().objects.count()) == before

    def test_same_seed_gives_the_same_data_and_another_seed_other_data(self):
        first = digest_of_run(members=8, days=30)
        again = digest_of_run(members=8, days=30)
        other = digest_of_run(members=8, days=30, seed=8)

        assert first == again
        assert other != first

    def test_fails_loudly_when_the_ledger_audit_is_not_clean(self, monkeypatch):
        monkeypatch.setattr("loyalty.management.commands.seed_demo.ledger_audit_run", lambda: ["account 1: drift"])

        with pytest.raises(CommandError, match="ledger audit failed"):
            seed_demo(members=3, days=3)

    @pytest.mark.parametrize("option", ["members", "days", "stores"])
    def test_refuses_sizes_below_one(self, option):
        with pytest.raises(CommandError, match="at least 1"):
            seed_demo(**{option: 0})

        assert not Store.objects.exists()
