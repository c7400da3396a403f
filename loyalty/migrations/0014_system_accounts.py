"""The system accounts exist from the start.

Created on first use before, inside the transaction that first needed one: a second transaction needing it
at the same moment waited for the first while holding its own member lock, which could close a deadlock
(tests/loyalty/test_tiers_concurrency.py met it on a fresh database). ``system_account()`` still creates a
missing one (a database emptied by hand, tests that flush), but a deployed database never needs that.
"""

from django.db import migrations

POINTS = ("ISSUANCE", "REDEMPTION", "BREAKAGE", "ADJUSTMENT")
MONEY = ("WALLET_FUNDING", "WALLET_BONUS", "WALLET_SPEND", "WALLET_REFUND", "WALLET_BONUS_EXPIRY")


def create(apps, schema_editor):
    Account = apps.get_model("loyalty", "Account")
    for unit, codes in (("POINTS", POINTS), ("MONEY", MONEY)):
        for code in codes:
            Account.objects.get_or_create(kind="SYSTEM", system_code=code, unit=unit)


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0013_leaner_write_indexes")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
