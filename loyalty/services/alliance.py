"""Alliance partners (异业联盟): each partner client has its own system account in the ledger.

Points a partner's customers earn there are debited from the partner's account (the partner issued them);
points they spend there are credited to it (the partner accepted them). Settlement is then a report over
those transfers, not a spreadsheet: net = issued − accepted points, which the partner owes the program (or,
when negative, the program owes the partner), valued at the program's points value.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum

from loyalty.models import Account, AccountKind, ApiClient, SystemAccount, Transfer, Unit
from loyalty.services.program import program_settings_get


@transaction.atomic
def alliance_partner_enable(*, client: ApiClient) -> ApiClient:
    """Give the client its partner account (once; safe to repeat)."""
    client = ApiClient.objects.select_for_update().get(pk=client.pk)
    if client.partner_account_id is None:
        client.partner_account = Account.objects.create(
            kind=AccountKind.SYSTEM, unit=Unit.POINTS, system_code=f"{SystemAccount.PARTNER}:{client.pk}")
        client.save(update_fields=["partner_account", "updated_at"])
    return client


@dataclass(frozen=True)
class SettlementRow:
    partner: str
    client_id: int
    issued: int  # points the partner's customers earned there
    accepted: int  # points its customers spent there
    net: int  # issued − accepted: > 0 the partner owes the program
    value: Decimal  # net at the program's points value


def alliance_settlement(*, start: dt.datetime, end: dt.datetime) -> list[SettlementRow]:
    """Per partner, the points issued and accepted in [start, end) by business time. Two grouped queries."""
    partners = list(ApiClient.objects.filter(partner_account__isnull=False).order_by("name", "pk"))
    accounts = [p.partner_account_id for p in partners]
    in_period = Transfer.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
    issued = dict(in_period.filter(debit_account_id__in=accounts).values_list("debit_account_id")
                  .annotate(s=Sum("amount")).values_list("debit_account_id", "s"))
    accepted = dict(in_period.filter(credit_account_id__in=accounts).values_list("credit_account_id")
                    .annotate(s=Sum("amount")).values_list("credit_account_id", "s"))
    program = program_settings_get()
    rows = []
    for p in partners:
        i, a = issued.get(p.partner_account_id, 0), accepted.get(p.partner_account_id, 0)
        rows.append(SettlementRow(partner=p.name, client_id=p.pk, issued=i, accepted=a, net=i - a,
                                  value=program.points_to_money(i - a)))
    return rows
