"""Portal home: balance, pending and debt, tier progress with the exact gap, points expiring in 30 days,
stored value, the member code; a fixed number of queries whatever the history."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.utils import timezone
from django.utils.formats import date_format

from loyalty.models import MemberTier, Tier
from members.member_code import member_id_mask
from rewards.services.wallet import wallet_topup
from tests.conftest import SHANGHAI
from tests.loyalty.helpers import buy, program_set
from tests.portal.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiers(db):
    return {
        "silver": Tier.objects.create(code="silver", name="Silver", rank=0, spend_threshold=Decimal(0)),
        "gold": Tier.objects.create(code="gold", name="Gold", rank=1, spend_threshold=Decimal("1000.00"),
                                    earn_multiplier=Decimal("1.2"), discount_percent=Decimal("5"), perks="Free parking"),
    }


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_balance_tier_gap_and_expiring_points(portal_client, portal_member, store, tiers, audit_clean):
    program_set(expiry_months=2)
    now = timezone.now()
    first = buy(portal_member, store, "300.00", at=now - dt.timedelta(days=40))  # expires in about 3 weeks
    buy(portal_member, store, "80.00", at=now - dt.timedelta(days=1))  # in about two months

    body = text(portal_client.get("/portal/"))

    assert re.search(r'id="balance">380<', body)
    assert "Tier: Silver" in body
    assert "¥620.00 more to Gold" in body  # 1000 − 380 qualifying spend
    assert 'aria-valuenow="38"' in body
    expiring = re.search(r'<ul class="plain" id="expiring">(.*?)</ul>', body).group(1)
    expires = first.transfers.get(code="EARN").lots.get().expires_at
    assert expiring.count("<li") == 1
    assert f"End of {date_format(expires.astimezone(SHANGHAI).date(), 'DATE_FORMAT')}" in expiring
    assert ">300<" in expiring
    assert "No points expire" not in body


def test_nothing_expiring_says_so(portal_client, portal_member, store, audit_clean):
    buy(portal_member, store, "50.00", at=timezone.now() - dt.timedelta(hours=1))  # default: 12 months
    body = text(portal_client.get("/portal/"))
    assert "No points expire in the next 30 days." in body
    assert 'id="balance">50<' in body


def test_pending_points_and_gold_benefits(portal_client, portal_member, store, tiers, audit_clean):
    program_set(pending_days=7)
    MemberTier.objects.create(member=portal_member, tier=tiers["gold"], since=timezone.now())
    buy(portal_member, store, "100.00", at=timezone.now() - dt.timedelta(hours=1))

    body = text(portal_client.get("/portal/"))

    assert 'id="balance">0<' in body
    assert "Pending: 120 points" in body  # gold earns ×1.2
    assert "Tier: Gold" in body
    assert "You are at the top tier, Gold." in body
    assert "Earn ×1.2 points on purchases" in body and "5% member discount" in body and "Free parking" in body


def test_debt_shown(portal_client, portal_member, store, audit_clean):
    from loyalty.services import points_redeem, refund_record

    purchase = buy(portal_member, store, "100.00", at=timezone.now() - dt.timedelta(hours=2))
    points_redeem(member=portal_member, points=100, reason="Mug", idempotency_key="mug", now=timezone.now())
    refund_record(purchase=purchase, amount=Decimal("100.00"), occurred_at=timezone.now(), now=timezone.now(),
                  idempotency_key="r1")

    body = text(portal_client.get("/portal/"))

    assert "You owe 100 points from a refund" in body
    assert 'id="balance">0<' in body


def test_stored_value_balance(portal_client, portal_member, audit_clean):
    wallet_topup(member=portal_member, amount="88.50", now=timezone.now(), idempotency_key="top-1")
    body = text(portal_client.get("/portal/"))
    assert re.search(r'id="wallet-total">¥88.50<', body)


def test_member_code_on_home(portal_client, portal_member):
    from members.member_code import member_code_groups, member_code_resolve

    body = text(portal_client.get("/portal/"))
    digits = re.search(r'class="code-digits" aria-live="polite">([0-9 ]+)<', body).group(1)
    assert member_code_resolve(code=digits, now=timezone.now()) == portal_member
    assert digits == member_code_groups(digits.replace(" ", ""))
    assert member_id_mask(int(digits.replace(" ", "")[:12]), inverse=True) == portal_member.pk
    assert re.search(r'<svg viewBox="[0-9 ]+" class="qr"><title>', body)
    assert 'hx-trigger="every 60s"' in body
    assert 'href="/portal/code/"' in body  # the no-JavaScript refresh
    assert 'href="/portal/history/"' in body and 'href="/portal/how-to-earn/"' in body


def test_home_is_small_and_not_cached(portal_client):
    response = portal_client.get("/portal/")
    assert len(response.content) < 100_000
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def _history(member, store, n):
    start = timezone.now() - dt.timedelta(days=n + 1)
    for i in range(n):
        buy(member, store, f"{10 + i}.00", at=start + dt.timedelta(days=i))


@pytest.mark.parametrize("n", [3, 60])
def test_query_count_does_not_grow_with_history(n, portal_member, store, tiers, django_assert_num_queries, audit_clean):
    program_set(expiry_months=1)
    _history(portal_member, store, n)
    client = client_for(portal_member)
    client.get("/portal/")  # warm the session
    # session, login, program settings ×3, wallet figures, overdue bonus, low-balance threshold, points
    # figures, expiring sum, expiring by date, tiers, tier policy, member tier, qualifying figures
    with django_assert_num_queries(HOME_QUERIES):
        assert client.get("/portal/").status_code == 200


HOME_QUERIES = 15
