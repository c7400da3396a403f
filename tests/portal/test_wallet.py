"""Portal wallet: balance in money, history of top-ups, bonuses, spends and refunds, the bonus rules in force,
the note that top-up happens at the counter; only the member's own movements; bounded queries."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from rewards.models import TopUpBonusRule
from rewards.services.wallet import wallet_spend, wallet_topup, wallet_topup_refund
from tests.rewards.factories import spending_set

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]


def topup(member, amount: str, key: str):
    return wallet_topup(member=member, amount=Decimal(amount), now=timezone.now(), idempotency_key=key)


class TestWallet:
    def test_balance_history_and_rules(self, portal_client, portal_member):
        TopUpBonusRule.objects.create(name="Top up 100 get 20", minimum=Decimal("100.00"), bonus=Decimal("20.00"))
        TopUpBonusRule.objects.create(name="Top up 500 get 120", minimum=Decimal("500.00"), bonus=Decimal("120.00"),
                                      valid_until=timezone.now() + dt.timedelta(days=30))
        TopUpBonusRule.objects.create(name="Old", minimum=Decimal("50.00"), bonus=Decimal("5.00"), is_active=False)
        spending_set(wallet_bonus_expiry_days=90)
        first = topup(portal_member, "1200.00", "w1")
        wallet_spend(member=portal_member, amount=Decimal("150.50"), now=timezone.now(), reference="Lunch",
                     idempotency_key="w2")
        wallet_topup_refund(topup=first, amount=Decimal("100.00"), now=timezone.now(), idempotency_key="w3")

        html = portal_client.get(reverse("portal:wallet")).content.decode()

        # 1,200 + 120 bonus − 150.50 (120 from the bonus first, 30.50 paid in) − 100 refunded
        assert "¥1,069.50" in html and "CNY" in html
        assert "Top-up" in html and "+¥1,200.00" in html
        assert "Top-up bonus: Top up 500 get 120" in html and "+¥120.00" in html
        assert "Paid from bonus money" in html and "−¥120.00" in html and "Lunch" in html
        assert "−¥30.50" in html
        assert "Top-up refunded" in html and "−¥100.00" in html
        assert "Top up ¥100.00 or more, get ¥20.00 bonus." in html
        assert "Top up ¥500.00 or more, get ¥120.00 bonus." in html and "Until" in html
        assert "¥50.00" not in html  # the inactive rule
        assert "Bonus money expires 90 days after the top-up." in html
        assert "Top up at the counter" in html and "Online top-up is not available yet." in html

    def test_money_is_formatted_for_the_language(self, portal_client, portal_member):
        topup(portal_member, "12345.50", "z1")

        english = portal_client.get(reverse("portal:wallet"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
        chinese = portal_client.get(reverse("portal:wallet"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()

        assert "¥12,345.50" in english
        assert 'lang="zh-hans"' in chinese and "¥12345.50" in chinese  # Django's zh-hans format: no thousands separator

    def test_an_empty_wallet(self, portal_client):
        html = portal_client.get(reverse("portal:wallet")).content.decode()

        assert "¥0.00" in html and "No stored-value movements yet." in html
        assert "There are no top-up bonuses at the moment." in html

    def test_only_the_members_own_movements(self, portal_client, other_member):
        topup(other_member, "777.00", "o1")

        html = portal_client.get(reverse("portal:wallet")).content.decode()

        assert "777" not in html

    def test_query_count_with_a_long_history(self, portal_client, portal_member, django_assert_num_queries):
        TopUpBonusRule.objects.create(name="Bonus", minimum=Decimal("100.00"), bonus=Decimal("10.00"))
        for i in range(20):
            topup(portal_member, "100.00", f"q{i}")
            wallet_spend(member=portal_member, amount=Decimal("15.00"), now=timezone.now(), idempotency_key=f"s{i}")
        # session, login, page of movements, balance (accounts, overdue bonus, threshold), rules, spending settings,
        # program settings ×2
        with django_assert_num_queries(10):
            response = portal_client.get(reverse("portal:wallet"))
        html = response.content.decode()
        assert html.count('class="num pos"') + html.count('class="num neg"') == 30 and "?page=2" in html
        assert len(response.content) < 100_000

        page2 = portal_client.get(reverse("portal:wallet") + "?page=2").content.decode()
        assert page2.count('class="num pos"') + page2.count('class="num neg"') == 30
        assert portal_client.get(reverse("portal:wallet") + "?page=abc").status_code == 200
