"""API: GET /program."""

from decimal import Decimal

import pytest

from loyalty.models import Tier
from tests.api.conftest import api_for
from tests.api.test_foundation import assert_error
from tests.loyalty.helpers import rules_publish

pytestmark = pytest.mark.django_db


def test_program_with_tiers_and_rules_in_words(api):
    Tier.objects.create(code="silver", name="银卡", rank=0, spend_threshold=Decimal(0))
    Tier.objects.create(code="gold", name="金卡", rank=1, spend_threshold=Decimal(1000), perks="Free coffee")
    rules_publish(name="Spring")
    body = api.get("/api/v1/program").json()
    assert set(body) == {"points_name", "currency", "time_zone", "points_value", "expiry_policy", "pending_days",
                         "tiers", "rules"}
    assert body["points_value"] == {"points": 100, "amount": "1.00"} and body["currency"] == "CNY"
    assert [t["code"] for t in body["tiers"]] == ["silver", "gold"] and body["tiers"][1]["spend_threshold"] == "1000.00"
    assert body["rules"]["name"] == "Spring" and body["rules"]["text"]


def test_rules_follow_the_request_language(api):
    en = api.get("/api/v1/program", HTTP_ACCEPT_LANGUAGE="en").json()["rules"]["text"]
    zh = api.get("/api/v1/program", HTTP_ACCEPT_LANGUAGE="zh-hans").json()["rules"]["text"]
    assert en and zh and en != zh


def test_program_needs_program_read(db):
    assert_error(api_for(scopes=["members:read"]).get("/api/v1/program"), 403, "insufficient_scope")
