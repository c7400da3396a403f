"""Tier admin: the whole tier set is checked before anything is saved (T5), the policy is one record,
member tiers change only through the service, and the change log is read-only."""

import datetime as dt
import html
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from loyalty.models import MemberTier, Tier, TierChange, TierChangeReason, TierPolicy
from loyalty.services.tiers import tiers_evaluate
from tests.factories import MemberFactory
from tests.loyalty.helpers import buy
from tests.loyalty.test_tiers import T4_TIERS, ladder

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

LOWEST = "The lowest tier must start at 0, so that every member has a tier."


def tier_post(**fields) -> dict:
    data = {"name": "普通", "code": "normal", "rank": "0", "spend_threshold": "0", "points_threshold": "",
            "retain_spend": "", "retain_points": "", "earn_multiplier": "1.000", "discount_percent": "0.00", "perks": ""}
    return {**data, **fields}


def text(response) -> str:
    return html.unescape(response.content.decode())


def tier_values() -> list:
    return list(Tier.objects.order_by("rank").values_list("code", "spend_threshold", "points_threshold"))


class TestT5TierAdmin:
    def test_T5_a_lowest_tier_that_does_not_start_at_0_is_refused_and_nothing_saved(self, admin_client):
        response = admin_client.post(reverse("admin:loyalty_tier_add"), tier_post(spend_threshold="100"))

        assert response.status_code == 200
        assert LOWEST in text(response)
        assert not Tier.objects.exists()

    def test_T5_raising_the_entry_tier_above_0_is_refused(self, admin_client):
        tiers = ladder(T4_TIERS)
        before = tier_values()

        response = admin_client.post(reverse("admin:loyalty_tier_change", args=[tiers["normal"].pk]),
                                     tier_post(spend_threshold="50"))

        assert response.status_code == 200 and LOWEST in text(response)
        assert tier_values() == before

    def test_T5_a_new_tier_below_the_entry_tier_must_start_at_0(self, admin_client):
        ladder(T4_TIERS)
        for code, rank in (("gold", 3), ("silver", 2), ("normal", 1)):
            Tier.objects.filter(code=code).update(rank=rank)

        response = admin_client.post(reverse("admin:loyalty_tier_add"),
                                     tier_post(code="basic", name="基础", rank="0", spend_threshold="10"))

        assert LOWEST in text(response)
        assert Tier.objects.count() == 3

    def test_T5_a_higher_tier_cannot_need_less_than_the_one_below(self, admin_client):
        tiers = ladder(T4_TIERS)

        response = admin_client.post(reverse("admin:loyalty_tier_change", args=[tiers["silver"].pk]),
                                     tier_post(name="银卡", rank="1", spend_threshold="1500"))

        assert "金卡: A higher tier cannot need less than the tier below it." in text(response)
        assert Tier.objects.get(code="silver").spend_threshold == Decimal("300.00")

    def test_T5_a_valid_tier_is_saved(self, admin_client):
        ladder(T4_TIERS)

        response = admin_client.post(reverse("admin:loyalty_tier_add"),
                                     tier_post(code="diamond", name="钻石", rank="3", spend_threshold="5000",
                                               earn_multiplier="1.5"))

        assert response.status_code == 302
        assert Tier.objects.get(code="diamond").earn_multiplier == Decimal("1.500")

    def ladder_post(self, rows: dict[str, str]) -> dict:
        tiers = list(Tier.objects.order_by("rank"))
        data = {"form-TOTAL_FORMS": str(len(tiers)), "form-INITIAL_FORMS": str(len(tiers)), "_save": "Save"}
        for i, tier in enumerate(tiers):
            data |= {f"form-{i}-id": str(tier.pk), f"form-{i}-spend_threshold": rows.get(tier.code, str(tier.spend_threshold)),
                     f"form-{i}-points_threshold": "", f"form-{i}-retain_spend": "", f"form-{i}-retain_points": "",
                     f"form-{i}-earn_multiplier": str(tier.earn_multiplier),
                     f"form-{i}-discount_percent": str(tier.discount_percent)}
        return data

    def test_T5_the_ladder_is_edited_on_the_list_and_checked_as_a_whole(self, admin_client):
        ladder(T4_TIERS)
        url = reverse("admin:loyalty_tier_changelist")

        # Each change alone would be refused (银卡 above 金卡's old ¥1,000); together they are a valid ladder.
        response = admin_client.post(url, self.ladder_post({"silver": "1500.00", "gold": "3000.00"}))

        assert response.status_code == 302
        assert tier_values() == [("normal", Decimal("0.00"), None), ("silver", Decimal("1500.00"), None),
                                 ("gold", Decimal("3000.00"), None)]

    def test_T5_the_ladder_list_refuses_an_entry_tier_above_0(self, admin_client):
        ladder(T4_TIERS)
        before = tier_values()

        response = admin_client.post(reverse("admin:loyalty_tier_changelist"), self.ladder_post({"normal": "100.00"}))

        assert response.status_code == 200 and LOWEST in text(response)
        assert tier_values() == before

    def test_the_entry_tier_cannot_be_deleted_a_top_tier_can(self, admin_client):
        tiers = ladder(T4_TIERS)

        assert admin_client.get(reverse("admin:loyalty_tier_delete", args=[tiers["normal"].pk])).status_code == 403
        response = admin_client.post(reverse("admin:loyalty_tier_delete", args=[tiers["gold"].pk]), {"post": "yes"})
        assert response.status_code == 302
        assert not Tier.objects.filter(code="gold").exists()

    def test_the_tier_code_stays_as_created(self, admin_client):
        tiers = ladder(T4_TIERS)

        admin_client.post(reverse("admin:loyalty_tier_change", args=[tiers["gold"].pk]),
                          tier_post(code="platinum", name="金卡", rank="2", spend_threshold="1000"))

        assert Tier.objects.get(pk=tiers["gold"].pk).code == "gold"


class TestTierPolicyAdmin:
    def test_the_list_opens_the_single_record(self, admin_client):
        response = admin_client.get(reverse("admin:loyalty_tierpolicy_changelist"))

        assert response.status_code == 302
        assert response.url == reverse("admin:loyalty_tierpolicy_change", args=[1])
        assert admin_client.get(response.url).status_code == 200

    def test_edit_but_no_add_or_delete(self, admin_client):
        response = admin_client.post(reverse("admin:loyalty_tierpolicy_change", args=[1]), {
            "window": "CALENDAR_YEAR", "window_months": "12", "grace_days": "10", "downgrade_mode": "TO_SUPPORTED"})

        assert response.status_code == 302
        policy = TierPolicy.objects.get()
        assert (policy.window, policy.grace_days, policy.downgrade_mode, policy.earn_at_new_tier) == (
            "CALENDAR_YEAR", 10, "TO_SUPPORTED", False)
        assert admin_client.get(reverse("admin:loyalty_tierpolicy_add")).status_code == 403
        assert admin_client.get(reverse("admin:loyalty_tierpolicy_delete", args=[1])).status_code == 403


@pytest.fixture
def upgraded(store):
    """Two members at 金卡 and 银卡 after the evaluation, one still at the entry tier without a row."""
    ladder(T4_TIERS)
    now = timezone.now()
    gold = MemberFactory(phone="13800138000", joined_at=now - dt.timedelta(days=90))
    silver = MemberFactory(phone="13900139000", joined_at=now - dt.timedelta(days=90))
    entry = MemberFactory(phone="13700137000", joined_at=now - dt.timedelta(days=90))
    buy(gold, store, "1200.00", at=now - dt.timedelta(days=5))
    buy(silver, store, "400.00", at=now - dt.timedelta(days=5))
    tiers_evaluate(now=now)
    return {"gold": gold, "silver": silver, "entry": entry}


def test_every_tier_page_loads(admin_client, upgraded):
    state = MemberTier.objects.get(member=upgraded["gold"])
    urls = [reverse("admin:loyalty_tier_changelist"), reverse("admin:loyalty_tier_add"),
            reverse("admin:loyalty_tier_change", args=[state.tier_id]),
            reverse("admin:loyalty_membertier_changelist"), reverse("admin:loyalty_membertier_add"),
            reverse("admin:loyalty_membertier_change", args=[state.pk]),
            reverse("admin:loyalty_tierchange_changelist"),
            reverse("admin:loyalty_tierchange_change", args=[TierChange.objects.first().pk])]
    assert [admin_client.get(url).status_code for url in urls] == [200] * len(urls)


class TestMemberTierAdmin:
    def test_search_by_exact_phone_or_member_number(self, admin_client, upgraded):
        url = reverse("admin:loyalty_membertier_changelist")

        by_phone = text(admin_client.get(url, {"q": "138 0013 8000"}))
        by_number = text(admin_client.get(url, {"q": upgraded["silver"].member_number}))

        assert upgraded["gold"].member_number in by_phone and upgraded["silver"].member_number not in by_phone
        assert upgraded["silver"].member_number in by_number and upgraded["gold"].member_number not in by_number
        assert "0 member tiers" in text(admin_client.get(url, {"q": "1380013"}))  # partial: no match

    def test_staff_set_a_tier_with_a_reason_through_the_service(self, admin_client, upgraded, admin_user):
        state = MemberTier.objects.get(member=upgraded["silver"])
        gold = Tier.objects.get(code="gold")

        response = admin_client.post(reverse("admin:loyalty_membertier_change", args=[state.pk]),
                                     {"tier": str(gold.pk), "note": "Complaint resolved"})

        assert response.status_code == 302
        change = TierChange.objects.get(reason=TierChangeReason.MANUAL)
        assert (change.member, change.to_tier, change.details["note"], change.details["staff_user"]) == (
            upgraded["silver"], gold, "Complaint resolved", admin_user.pk)
        assert MemberTier.objects.get(pk=state.pk).tier == gold

    def test_staff_can_place_a_member_without_a_tier_row(self, admin_client, upgraded):
        silver = Tier.objects.get(code="silver")

        response = admin_client.post(reverse("admin:loyalty_membertier_add"), {
            "member": str(upgraded["entry"].pk), "tier": str(silver.pk), "note": "Staff card"})

        assert response.status_code == 302
        assert MemberTier.objects.get(member=upgraded["entry"]).tier == silver

    def test_a_reason_is_required(self, admin_client, upgraded):
        state = MemberTier.objects.get(member=upgraded["silver"])

        response = admin_client.post(reverse("admin:loyalty_membertier_change", args=[state.pk]),
                                     {"tier": str(Tier.objects.get(code="gold").pk), "note": ""})

        assert response.status_code == 200
        assert not TierChange.objects.filter(reason=TierChangeReason.MANUAL).exists()


class TestTierChangeAdmin:
    def test_the_log_filters_by_reason_and_tier_and_is_read_only(self, admin_client, upgraded):
        url = reverse("admin:loyalty_tierchange_changelist")
        change = TierChange.objects.get(member=upgraded["gold"])

        listed = text(admin_client.get(url, {"reason__exact": "UPGRADE", "to_tier__id__exact": change.to_tier_id}))
        detail = admin_client.get(reverse("admin:loyalty_tierchange_change", args=[change.pk]))
        post = admin_client.post(reverse("admin:loyalty_tierchange_change", args=[change.pk]), {"reason": "MANUAL"})

        assert upgraded["gold"].member_number in listed and upgraded["silver"].member_number not in listed
        assert detail.status_code == 200 and "Save" not in text(detail).split("submit-row")[-1][:200]
        assert post.status_code == 403
        assert admin_client.get(reverse("admin:loyalty_tierchange_add")).status_code == 403
        assert TierChange.objects.get(pk=change.pk).reason == TierChangeReason.UPGRADE
