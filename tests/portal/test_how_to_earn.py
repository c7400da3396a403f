"""How to earn: generated from the live configuration (rule set in force, tiers, expiry, pending days, the value
of points), so changing the configuration changes the page."""

import datetime as dt
import re
from decimal import Decimal
from html import unescape

import pytest
from django.utils import timezone

from loyalty.models import Tier, TierPolicy, TierWindow
from tests.loyalty.helpers import program_set, rules_publish

pytestmark = pytest.mark.django_db


def page(client) -> str:
    response = client.get("/portal/how-to-earn/")
    assert response.status_code == 200
    assert len(response.content) < 100_000
    return unescape(re.sub(r"\s+", " ", response.content.decode()))


def section(body: str, element_id: str) -> str:
    start = body.index(f'id="{element_id}"')
    return body[start:body.index("</section>", start)]


def test_default_program(portal_client):
    body = page(portal_client)
    assert "<h1>How to earn</h1>" in body
    assert "Earn 1 point for every ¥1.00 spent" in section(body, "rules")
    assert "Points expire 12 months after the day they are earned, at the end of that day." in body
    assert "Points from a purchase can be used straight away." in body
    assert "When you pay with points, 100 points are worth ¥1.00." in body
    assert 'id="tiers"' not in body  # no tiers configured


def test_publishing_a_rule_set_changes_the_page(portal_client):
    before = page(portal_client)
    assert "Weekend double" not in before
    rules_publish(name="Spring 2026", effective_from=timezone.now() - dt.timedelta(minutes=1), earn_points=2,
                  earn_spend=Decimal("5.00"), cap_day=500,
                  modifiers=[{"name": "Weekend double", "value": Decimal(2), "weekdays": [6, 7]}])
    rules_publish(name="Not yet", effective_from=timezone.now() + dt.timedelta(days=3), earn_points=9)

    rules = section(page(portal_client), "rules")

    assert "Earn 2 points for every ¥5.00 spent" in rules
    assert "At most 500 points per day" in rules
    assert re.search(r"Weekend double: ×2 on Saturday, Sunday", rules)
    assert "Earn 9 points" not in rules  # scheduled, not in force
    assert "Rules “Spring 2026”, in force since" in rules


@pytest.mark.parametrize("fields,text", [
    ({"expiry_policy": "NEVER"}, "Points never expire."),
    ({"expiry_policy": "YEARLY", "clearance_month": 12, "clearance_day": 31},
     "Points earned in one year expire at the end of December 31 the following year."),
    ({"expiry_policy": "MONTHS", "expiry_months": 24, "expiry_to_month_end": True},
     "Points expire at the end of the month, 24 months after the month they are earned in."),
    ({"expiry_policy": "MONTHS", "expiry_months": 1},
     "Points expire 1 month after the day they are earned, at the end of that day."),
    ({"pending_days": 7}, "Points from a purchase are pending for 7 days (the return window), then you can use them."),
    ({"points_value_points": 50, "points_value_amount": Decimal("2.00")},
     "When you pay with points, 50 points are worth ¥2.00."),
])
def test_changing_the_program_changes_the_page(portal_client, fields, text):
    assert text not in page(portal_client)
    program_set(**fields)
    assert text in page(portal_client)


def test_tiers_with_thresholds_and_benefits(portal_client):
    Tier.objects.create(code="standard", name="Standard", rank=0, spend_threshold=Decimal(0))
    Tier.objects.create(code="gold", name="Gold", rank=1, spend_threshold=Decimal("2000.00"), points_threshold=3000,
                        earn_multiplier=Decimal("1.25"), discount_percent=Decimal("5.00"), perks="Birthday coffee")
    tiers = section(page(portal_client), "tiers-h")
    assert "Your tier follows what you spend or earn over the last 12 months." in tiers
    assert re.search(r"<strong>Standard</strong><span class=\"muted\">Every member starts here</span>", tiers)
    assert "Spend ¥2,000.00 or earn 3,000 points" in tiers
    assert "Earn ×1.25 points on purchases" in tiers
    assert "5% member discount" in tiers and "Birthday coffee" in tiers

    TierPolicy.objects.update_or_create(pk=1, defaults={"window": TierWindow.CONSECUTIVE_MONTHS, "window_months": 3})
    tiers = section(page(portal_client), "tiers-h")
    assert "Reach a tier's monthly figure 3 months in a row to move up." in tiers
    assert "Spend ¥2,000.00 or earn 3,000 points a month" in tiers


def test_modifier_for_a_tier_uses_the_tier_name(portal_client):
    Tier.objects.create(code="standard", name="Standard", rank=0, spend_threshold=Decimal(0))
    Tier.objects.create(code="gold", name="Gold", rank=1, spend_threshold=Decimal("2000.00"))
    rules_publish(modifiers=[{"name": "Gold bonus", "value": Decimal("1.5"), "tiers": ["gold"]}])
    assert re.search(r"Gold bonus: ×1.5 for Gold", section(page(portal_client), "rules"))


def test_queries_are_few(portal_client, django_assert_max_num_queries):
    rules_publish(modifiers=[{"name": f"Rule {i}", "value": Decimal(2)} for i in range(5)])
    portal_client.get("/portal/how-to-earn/")
    # session, login, program settings ×2, rule set in force, its modifiers, tiers, tier policy ×2
    with django_assert_max_num_queries(9):
        page(portal_client)
