"""Alliance partners: points earned and spent at a partner move through its own account; settlement."""

import datetime as dt
from decimal import Decimal

import pytest

from loyalty.models import Transfer, TransferCode
from loyalty.services import points_redeem
from loyalty.services.alliance import alliance_partner_enable, alliance_settlement
from loyalty.services.api_clients import api_client_create
from tests.loyalty.helpers import balance, buy

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]


@pytest.fixture
def partner(db):
    client, _key = api_client_create(name="Car wash partner")
    return alliance_partner_enable(client=client)


def test_enabling_twice_keeps_one_account(partner):
    again = alliance_partner_enable(client=partner)
    assert again.partner_account_id == partner.partner_account_id


def test_points_earned_and_spent_at_a_partner_go_through_its_account_and_settle(member, store, now, partner):
    account = partner.partner_account
    buy(member, store, "300.00", at=now, partner_account=account)  # issued by the partner
    points_redeem(member=member, points=120, reason="wash", idempotency_key="r", now=now, partner_account=account)
    buy(member, store, "50.00", at=now, points_to_pay=30, partner_account=account)  # paid 30 there, earned 49

    earn = Transfer.objects.filter(code=TransferCode.EARN, debit_account=account)
    assert sum(earn.values_list("amount", flat=True)) == 300 + 49
    assert balance(member) == 300 - 120 - 30 + 49

    (row,) = alliance_settlement(start=now - dt.timedelta(days=1), end=now + dt.timedelta(days=1))
    assert (row.issued, row.accepted, row.net) == (349, 150, 199)
    assert row.value == Decimal("1.99")  # 100 points = ¥1

    (outside,) = alliance_settlement(start=now + dt.timedelta(days=1), end=now + dt.timedelta(days=2))
    assert (outside.issued, outside.accepted, outside.net) == (0, 0, 0)


def test_settlement_page_and_csv(admin_client, member, store, now, partner):
    buy(member, store, "10.00", at=now, partner_account=partner.partner_account)
    day = now.date().isoformat()
    page = admin_client.get(f"/admin/alliance/settlement/?start={day}&end={day}")
    assert page.status_code == 200 and b"Car wash partner" in page.content
    csv = admin_client.get(f"/admin/alliance/settlement/?start={day}&end={day}&format=csv")
    assert csv["Content-Type"].startswith("text/csv")
    assert csv.content.decode().splitlines()[1].startswith("Car wash partner,")
    bad = admin_client.get(f"/admin/alliance/settlement/?start={day}&end=2000-01-01")
    assert bad.status_code == 200 and b"ends before it starts" in bad.content


def test_a_partner_posting_a_purchase_through_the_api_issues_the_points(member, store, partner):
    from rest_framework.test import APIClient

    from loyalty.services.api_clients import api_client_create

    client, key = api_client_create(name="Partner POS")
    client = alliance_partner_enable(client=client)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api.post("/api/v1/purchases", {
        "member": {"id": member.pk}, "store": store.code, "external_id": "P-1",
        "occurred_at": "2026-03-04T10:00:00+08:00", "total": "80.00"}, format="json", HTTP_IDEMPOTENCY_KEY="p1")
    assert response.status_code == 201, response.content
    assert Transfer.objects.get(code=TransferCode.EARN).debit_account_id == client.partner_account_id


def test_a_partner_committing_a_points_quote_accepts_the_points(member, now, staff):
    from rest_framework.test import APIClient

    from loyalty.services import points_adjust
    from loyalty.services.api_clients import api_client_create

    points_adjust(member=member, points=500, reason="setup", staff_user=staff, idempotency_key="g", now=now)
    client, key = api_client_create(name="Partner till")
    client = alliance_partner_enable(client=client)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    quote = api.post("/api/v1/points-payments/quotes", {"member": member.pk, "order_amount": "10.00", "points": 300},
                     format="json", HTTP_IDEMPOTENCY_KEY="q")
    assert quote.status_code == 201, quote.content
    commit = api.post(f"/api/v1/points-payments/quotes/{quote.json()['id']}/commit", {}, format="json",
                      HTTP_IDEMPOTENCY_KEY="c")
    assert commit.status_code == 200, commit.content
    assert Transfer.objects.get(code=TransferCode.PAYMENT).credit_account_id == client.partner_account_id
    (row,) = alliance_settlement(start=now - dt.timedelta(days=400), end=now + dt.timedelta(days=400))
    assert row.accepted == 300
