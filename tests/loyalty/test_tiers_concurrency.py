"""T4 under load: two evaluations and purchases at once, real transactions, PostgreSQL row locks."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from loyalty.audit import ledger_audit_run
from loyalty.models import MemberTier, Purchase, SystemAccount, TierChange, TierChangeReason, Unit
from loyalty.services import purchase_record
from loyalty.services.ledger import system_account
from loyalty.services.tiers import tiers_evaluate
from tests.conftest import requires_postgres
from tests.factories import MemberFactory, StoreFactory
from tests.loyalty.test_concurrency import run_concurrently
from tests.loyalty.test_tiers import T4_TIERS, ladder

pytestmark = [pytest.mark.django_db(transaction=True), requires_postgres]


def system_accounts_as_deployed():
    """What migration loyalty 0014 puts in every database; a transactional test starts from an emptied one."""
    for code in ("ISSUANCE", "REDEMPTION", "BREAKAGE", "ADJUSTMENT"):
        system_account(SystemAccount(code))
    for code in ("WALLET_FUNDING", "WALLET_BONUS", "WALLET_SPEND", "WALLET_REFUND", "WALLET_BONUS_EXPIRY"):
        system_account(SystemAccount(code), Unit.MONEY)


def test_T4_evaluations_and_purchases_at_once_neither_deadlock_nor_double_record():
    now = timezone.now()
    system_accounts_as_deployed()
    tiers = ladder(T4_TIERS, grace_days=30)
    store = StoreFactory()
    members = [MemberFactory(joined_at=now - dt.timedelta(days=500)) for _ in range(20)]
    MemberTier.objects.bulk_create([  # 银卡 due for review, nothing bought in the window: grace at review
        MemberTier(member=m, tier=tiers["silver"], since=now - dt.timedelta(days=400), review_at=now - dt.timedelta(hours=1))
        for m in members])

    def work(i):
        if i < 2:
            return tiers_evaluate(now=now, batch_size=3)
        member = members[i - 2]
        return purchase_record(member=member, store=store, external_id=f"P{i}", occurred_at=now, total=Decimal("1200.00"),
                               now=now)

    results = run_concurrently(2 + len(members), work)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert Purchase.objects.count() == len(members)
    assert set(MemberTier.objects.values_list("tier__code", flat=True)) == {"gold"}  # every purchase reached 金卡
    assert not MemberTier.objects.exclude(grace_until=None).exists()  # the upgrade ends any grace
    grace = list(TierChange.objects.filter(reason=TierChangeReason.GRACE).values_list("member_id", flat=True))
    assert len(grace) == len(set(grace))  # at most one grace record per member, whoever came first
    assert TierChange.objects.filter(reason=TierChangeReason.UPGRADE).count() == len(members)
    assert ledger_audit_run() == []
