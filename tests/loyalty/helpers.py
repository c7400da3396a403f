"""Test helpers: set up program settings and lots through the real services."""

import datetime as dt
from decimal import Decimal

from loyalty.models import Account, AccountKind, Lot, Transfer
from loyalty.selectors import member_points_summary
from loyalty.services import program_settings_get, purchase_record

_counter = iter(range(1, 10**9))


def program_set(**fields):
    program = program_settings_get()
    for name, value in fields.items():
        setattr(program, name, value)
    program.full_clean()
    program.save()
    return program


def rules_publish(*, name="Rules", effective_from=None, modifiers=(), **fields):
    """Publish a rule set (and its modifiers, as dicts of field values) through the model layer."""
    from loyalty.models import Modifier, RuleSet, RuleSetStatus

    effective_from = effective_from or dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    rule_set = RuleSet.objects.create(name=name, status=RuleSetStatus.PUBLISHED, effective_from=effective_from, **fields)
    for i, m in enumerate(modifiers):
        Modifier.objects.create(rule_set=rule_set, **{"name": f"modifier {i}", **m})
    return rule_set


def buy(member, store, total, *, at, lines=None, points_to_pay=0, key=None, external_id=None, **extra):
    external_id = external_id or f"T{next(_counter)}"
    return purchase_record(
        member=member, store=store, external_id=external_id, occurred_at=at, total=Decimal(str(total)), lines=lines,
        points_to_pay=points_to_pay, idempotency_key=key, now=at, **extra,
    )


def balance(member, at=None) -> int:
    return member_points_summary(member=member, now=at or dt.datetime.now(dt.UTC)).balance


def summary(member, at=None):
    return member_points_summary(member=member, now=at or dt.datetime.now(dt.UTC))


def points_account(member) -> Account:
    return Account.objects.get(member=member, kind=AccountKind.MEMBER_POINTS)


def open_lots(member):
    return list(Lot.objects.filter(account__member=member).order_by("id"))


def row_counts() -> tuple[int, ...]:
    from loyalty.models import Purchase, Refund

    return (Transfer.objects.count(), Lot.objects.count(), Purchase.objects.count(), Refund.objects.count(),
            tuple(Account.objects.order_by("pk").values_list("credits_posted", "debits_posted")))
