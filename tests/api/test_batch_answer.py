"""POST /purchases/batch builds its answer directly; the documented serializer gives the same JSON for every kind
of row (created, duplicate, a tier upgrade on the fallback path, refused by the input check, refused by the
service)."""

import difflib
import json
from decimal import Decimal

import pytest

from loyalty.api import purchases_batch as batch_api
from loyalty.api.purchases_batch import PurchaseBatchOutputSerializer
from loyalty.models import Tier, TierPolicy
from tests.api.test_purchases_batch import item
from tests.factories import MemberFactory, StoreFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]


def diff(ours, documented) -> str:
    return "\n".join(difflib.unified_diff(json.dumps(ours, indent=1).splitlines(),
                                           json.dumps(documented, indent=1).splitlines(), lineterm="", n=1))


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_direct_answer_is_what_the_serializer_gives(api, monkeypatch, language):
    StoreFactory(code="SH001")
    MemberFactory(phone="+8613800138000")
    other = MemberFactory(phone="+8613900139000")
    Tier.objects.create(code="BASIC", name="Basic", rank=0, spend_threshold=Decimal("0"))
    Tier.objects.create(code="SILVER", name="银卡", rank=1, spend_threshold=Decimal("250"),
                        earn_multiplier=Decimal("1.5"))
    TierPolicy.objects.update_or_create(pk=1, defaults={})
    single = api.post("/api/v1/purchases", item("A"), format="json", HTTP_IDEMPOTENCY_KEY=f"single-{language}")
    assert single.status_code == 201, single.content

    seen = []

    def capture(answer):
        seen.append(answer)
        return batch_api.batch_answer.__wrapped__(answer)

    capture.__wrapped__ = batch_api.batch_answer
    monkeypatch.setattr(batch_api, "batch_answer", capture)
    response = api.post("/api/v1/purchases/batch", {"purchases": [
        item("A"),  # recorded before: duplicate
        item("B"), item("C", total="120.00", lines=None),  # the buyer crosses 250: fallback with a tier change
        item("D", member={"phone": "13900139000"}, promo_codes=["X"], channel="APP"),
        item("E", total=12.5),  # refused by the input check, with field details
        item("F", member={"id": 10**9}),  # refused by the service
        item("D"),  # the same order twice
        "not an object",
    ]}, format="json", HTTP_IDEMPOTENCY_KEY=f"batch-{language}", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200, response.content

    answer, = seen
    statuses = [row["status"] for row in answer["results"]]
    assert statuses == ["duplicate", "created", "created", "created", "error", "error", "error", "error"]
    assert any(row["purchase"] and row["purchase"]["tier_change"] for row in answer["results"])
    assert answer["results"][4]["error"]["details"]
    documented = PurchaseBatchOutputSerializer(answer).data
    assert json.dumps(batch_api.batch_answer(answer)) == json.dumps(documented), diff(batch_api.batch_answer(answer), documented)
    assert response.json() == json.loads(json.dumps(documented))
    assert other.pk in {row["purchase"]["member"] for row in response.json()["results"] if row["purchase"]}
