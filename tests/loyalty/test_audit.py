"""``ledger_audit`` catches each kind of drift made behind the application's back."""

import pytest
from django.core.management import CommandError, call_command

from loyalty.audit import ledger_audit_run
from loyalty.models import Account, AccountKind, Lot, SystemAccount
from tests.loyalty.helpers import buy, points_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def earned(member, store, now):
    buy(member, store, "100.00", at=now)
    assert ledger_audit_run() == []
    return member


def test_clean_ledger_passes(earned, capsys):
    call_command("ledger_audit")
    assert "clean" in capsys.readouterr().out


def test_cached_balance_drift_is_named(earned):
    account = points_account(earned)
    Account.objects.filter(pk=account.pk).update(credits_posted=101)
    problems = ledger_audit_run()
    assert any(p.startswith(f"account {account.pk} ") for p in problems)
    with pytest.raises(CommandError):
        call_command("ledger_audit")


def test_lot_drift_is_named(earned):
    account = points_account(earned)
    Lot.objects.filter(account=account).update(remaining=90)
    assert any(f"account {account.pk} " in p and "open lots" in p for p in ledger_audit_run())


def test_negative_lot_is_refused_by_the_database(earned):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Lot.objects.filter(account=points_account(earned)).update(remaining=-1)


def test_cached_figures_on_a_system_account_are_caught(earned):
    issuance = Account.objects.get(kind=AccountKind.SYSTEM, system_code=SystemAccount.ISSUANCE)
    Account.objects.filter(pk=issuance.pk).update(debits_posted=5)
    assert any(f"account {issuance.pk} " in p for p in ledger_audit_run())
