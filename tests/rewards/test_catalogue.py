"""The catalogue: what a member sees (reward_list_available), the payment gateway, and the reward admin."""

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from loyalty.services.tiers import tier_set_manual
from members.models import MemberStatus
from rewards import payment_gateway
from rewards.models import LimitPeriod, Redemption, Reward, RewardKind
from rewards.selectors_catalogue import limit_period_bounds, reward_list_available
from rewards.services.catalogue import redemption_cancel, redemption_create
from tests.conftest import SHANGHAI, local
from tests.factories import MemberFactory
from tests.rewards.test_redemptions import give, redeem, reward_make, tiers_make

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]


def offers_by_name(member, now) -> dict:
    return {offer.reward.name: offer for offer in reward_list_available(member=member, now=now)}


# ---- what a member sees ----


class TestRewardListAvailable:
    def test_lists_active_rewards_in_their_window_in_catalogue_order(self, member, now):
        reward_make(name="Second", sort_order=2)
        reward_make(name="First", sort_order=1)
        reward_make(name="Inactive", is_active=False)
        reward_make(name="Not yet", available_from=now + dt.timedelta(minutes=1))
        reward_make(name="Over", available_until=now)
        reward_make(name="Open window", sort_order=3, available_from=now - dt.timedelta(days=1),
                    available_until=now + dt.timedelta(days=1))

        names = [o.reward.name for o in reward_list_available(member=member, now=now)]

        assert names == ["First", "Second", "Open window"]

    def test_each_offer_says_whether_the_member_can_redeem_it_and_why_not(self, member, now):
        tiers = tiers_make()
        give(member, 100, now=now)
        reward_make(name="Can", points_cost=100, stock=3)
        reward_make(name="Too dear", points_cost=101)
        reward_make(name="Sold out", points_cost=10, stock=0)
        gold_only = reward_make(name="Gold only", points_cost=10)
        gold_only.tiers.set([tiers["gold"]])
        limited = reward_make(name="Monthly", points_cost=10, limit_per_member=1, limit_period=LimitPeriod.MONTH)
        redeem(member, limited, now)  # 10 points: 90 left

        offers = offers_by_name(member, now)

        assert offers["Can"].can_redeem is False and offers["Can"].affordable is False  # 90 left now
        assert "90 available, 100 requested" in offers["Can"].reason
        assert (offers["Sold out"].can_redeem, offers["Sold out"].reason) == (False, "Sorry, this is out of stock.")
        assert offers["Gold only"].can_redeem is False and "金卡" in offers["Gold only"].reason
        monthly = offers["Monthly"]
        assert monthly.can_redeem is False and monthly.affordable is True and monthly.limit_used == 1
        assert "April 1, 2026" in monthly.reason and monthly.available_again == local(2026, 4, 1)
        assert offers["Too dear"].affordable is False

    def test_an_offer_the_member_can_take(self, member, now):
        give(member, 50, now=now)
        reward_make(name="glass water", stock=5)

        offer = offers_by_name(member, now)["glass water"]

        assert (offer.can_redeem, offer.affordable, offer.reason, offer.stock) == (True, True, "", 5)
        assert redeem(member, offer.reward, now)

    def test_the_listed_reason_is_the_refusal_the_member_would_get(self, member, now):
        reward = reward_make(points_cost=10, limit_per_member=1, limit_period=LimitPeriod.WEEK)
        give(member, 100, now=now)
        redeem(member, reward, now, key="a")
        reason = offers_by_name(member, now)["Glass water"].reason

        with pytest.raises(Exception) as exc:
            redeem(member, reward, now, key="b")

        assert str(exc.value) == reason

    def test_names_and_descriptions_follow_the_language(self, member, now):
        reward_make(name="Glass water", name_zh_hans="玻璃水", description="A bottle", description_zh_hans="一瓶")
        reward_make(name="Car wash", name_zh_hans="", description="Outside only")

        with translation.override("zh-hans"):
            zh = offers_by_name(member, now)
        with translation.override("en"):
            en = offers_by_name(member, now)

        assert (zh["Glass water"].name, zh["Glass water"].description) == ("玻璃水", "一瓶")
        assert (zh["Car wash"].name, zh["Car wash"].description) == ("Car wash", "Outside only")  # falls back
        assert en["Glass water"].name == "Glass water"

    def test_reasons_are_in_the_active_language(self, member, now):
        reward = reward_make(points_cost=10, limit_per_member=1, limit_period=LimitPeriod.MONTH)
        give(member, 10, now=now)
        redeem(member, reward, now)

        with translation.override("zh-hans"):
            offer = offers_by_name(member, now)["Glass water"]

        assert "2026年4月1日" in offer.reason

    def test_donation_progress_and_tier_upgrade_already_held(self, member, now):
        tiers = tiers_make()
        reward_make(name="Trees", kind=RewardKind.DONATION, points_cost=10, donation_goal=1000, donated_points=250)
        reward_make(name="Silver", kind=RewardKind.TIER_UPGRADE, points_cost=10, upgrade_tier=tiers["silver"])
        tier_set_manual(member=member, tier=tiers["gold"], note="vip", now=now)
        give(member, 100, now=now)

        offers = offers_by_name(member, now)

        assert offers["Trees"].donation_percent == 25 and offers["Trees"].can_redeem
        assert offers["Silver"].can_redeem is False and "银卡" in offers["Silver"].reason

    def test_a_fixed_number_of_queries_whatever_the_catalogue_size(self, member, now):
        tiers = tiers_make()
        give(member, 1000, now=now)

        def add(n):
            for i in range(n):
                reward = reward_make(name=f"R{Reward.objects.count()}-{i}", limit_per_member=2,
                                     limit_period=[LimitPeriod.DAY, LimitPeriod.MONTH, LimitPeriod.EVER][i % 3])
                reward.tiers.set([tiers["basic"], tiers["gold"]])
                redeem(member, reward, now, key=f"{reward.pk}")

        def queries() -> int:
            with CaptureQueriesContext(connection) as captured:
                offers = reward_list_available(member=member, now=now)
                [o.reason for o in offers]
            return len(captured)

        add(2)
        small = queries()
        add(10)
        # program settings, rewards, their tiers, the member's tier (+ the tier list), points, limit counts
        assert queries() == small <= 7

    def test_a_frozen_member_sees_the_catalogue_but_cannot_redeem(self, member, now):
        give(member, 100, now=now)
        reward_make()
        member.status = MemberStatus.FROZEN
        member.save(update_fields=["status", "updated_at"])

        offer = reward_list_available(member=member, now=now)[0]

        assert (offer.can_redeem, offer.affordable, offer.reason) == (False, True, "This member account is frozen.")

    def test_an_empty_catalogue(self, member, now):
        assert reward_list_available(member=member, now=now) == []


def test_limit_periods_use_local_midnights():
    at = local(2026, 3, 4, 0, 30)  # Wednesday, just after local midnight (16:30 UTC the day before)
    assert limit_period_bounds(LimitPeriod.DAY, now=at, tz=SHANGHAI) == (local(2026, 3, 4), local(2026, 3, 5))
    assert limit_period_bounds(LimitPeriod.WEEK, now=at, tz=SHANGHAI) == (local(2026, 3, 2), local(2026, 3, 9))
    assert limit_period_bounds(LimitPeriod.MONTH, now=local(2026, 12, 9), tz=SHANGHAI) == (
        local(2026, 12, 1), local(2027, 1, 1))
    assert limit_period_bounds(LimitPeriod.YEAR, now=at, tz=SHANGHAI) == (local(2026, 1, 1), local(2027, 1, 1))
    assert limit_period_bounds(LimitPeriod.EVER, now=at, tz=SHANGHAI) == (None, None)


# ---- the payment gateway ----


class TestPaymentGateway:
    def test_the_default_records_the_charge_as_paid_at_the_counter_with_a_stable_reference(self, member):
        assert isinstance(payment_gateway.gateway_get(), payment_gateway.CounterGateway)
        first = payment_gateway.cash_charge(amount=Decimal("9.90"), reference="redemption:k1", member=member)
        again = payment_gateway.cash_charge(amount=Decimal("9.90"), reference="redemption:k1", member=member)
        other = payment_gateway.cash_charge(amount=Decimal("9.90"), reference="redemption:k2", member=member)
        assert first == again != other and first.startswith("counter:") and len(first) <= 64

    def test_override_restores_the_previous_backend(self, member):
        before = payment_gateway.gateway_get()
        with payment_gateway.gateway_override(payment_gateway.FailingGateway("no")), \
                pytest.raises(payment_gateway.PaymentDeclined):
            payment_gateway.cash_charge(amount=Decimal("1.00"), reference="r", member=member)
        assert payment_gateway.gateway_get() is before


# ---- the reward admin ----


def png_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def form_data(**overrides) -> dict:
    data = {
        "name": "Glass water", "name_zh_hans": "玻璃水", "description": "A bottle of glass water",
        "description_zh_hans": "一瓶玻璃水", "kind": RewardKind.GOODS, "is_active": "on", "sort_order": "0",
        "points_cost": "50", "cash_price": "0.00", "stock": "10", "stock_seen": "", "limit_per_member": "",
        "limit_period": LimitPeriod.EVER, "available_from_0": "", "available_from_1": "", "available_until_0": "",
        "available_until_1": "", "coupon_template": "", "stored_value": "", "upgrade_tier": "", "donation_goal": "",
        "needs_fulfilment": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


class TestRewardAdmin:
    @pytest.fixture(autouse=True)
    def media(self, settings, tmp_path):
        settings.MEDIA_ROOT = tmp_path

    def test_changelist_shows_stock_redemptions_and_donation_progress(self, admin_client, member, now):
        reward_make(name="Trees", kind=RewardKind.DONATION, points_cost=10, donation_goal=1000, donated_points=500)
        water = reward_make(stock=0)
        give(member, 50, now=now)
        Reward.objects.filter(pk=water.pk).update(stock=1)
        redeem(member, water, now)

        response = admin_client.get(reverse("admin:rewards_reward_changelist"))
        content = response.content.decode()

        assert response.status_code == 200
        rows = {r.name: r for r in response.context["cl"].result_list}
        assert (rows["Glass water"].redeemed_count, rows["Glass water"].pending_count) == (1, 1)
        assert "sold out" in content and '<progress value="50"' in content
        assert "queue=PENDING&amp;reward__id__exact=" in content
        assert admin_client.get(reverse("admin:rewards_reward_changelist"), HTTP_ACCEPT_LANGUAGE="zh-hans").status_code == 200

    def test_add_a_reward_with_an_image_and_both_languages(self, admin_client, settings):
        image = SimpleUploadedFile("water.png", png_bytes(), content_type="image/png")

        response = admin_client.post(reverse("admin:rewards_reward_add"), {**form_data(), "image": image})

        assert response.status_code == 302, response.context["adminform"].form.errors
        reward = Reward.objects.get()
        assert (reward.name_zh_hans, reward.description_zh_hans, reward.stock) == ("玻璃水", "一瓶玻璃水", 10)
        assert reward.image.name.startswith("rewards/water")
        assert (settings.MEDIA_ROOT / reward.image.name).exists()
        page = admin_client.get(reverse("admin:rewards_reward_change", args=[reward.pk])).content.decode()
        assert reward.image.url in page  # the preview

    @pytest.mark.parametrize(("overrides", "field", "text"), [
        ({"kind": RewardKind.COUPON}, "coupon_template", "Choose the coupon"),
        ({"kind": RewardKind.STORED_VALUE}, "stored_value", "stored value a member gets"),
        ({"kind": RewardKind.STORED_VALUE, "stored_value": "0"}, "stored_value", "stored value a member gets"),
        ({"kind": RewardKind.TIER_UPGRADE}, "upgrade_tier", "tier a member is moved to"),
        ({"kind": RewardKind.DONATION}, "donation_goal", "goal in points"),
        ({"donation_goal": "100"}, "donation_goal", "Only a donation"),
        ({"stored_value": "5.00"}, "stored_value", "Only a stored-value reward"),
        ({"available_from_0": "2026-03-05", "available_from_1": "10:00", "available_until_0": "2026-03-04",
          "available_until_1": "10:00"}, "available_until", "after the start"),
        ({"limit_per_member": "0"}, "limit_per_member", "At least 1"),
        ({"limit_period": LimitPeriod.MONTH}, "limit_per_member", "how many times"),
        ({"points_cost": "0"}, "points_cost", ""),
        ({"cash_price": "-1"}, "cash_price", ""),
    ])
    def test_kind_specific_and_other_bad_values_are_field_errors(self, admin_client, overrides, field, text):
        response = admin_client.post(reverse("admin:rewards_reward_add"), form_data(**overrides))

        assert response.status_code == 200
        errors = response.context["adminform"].form.errors
        assert field in errors and text in " ".join(errors[field])
        assert not Reward.objects.exists()

    def test_kind_specific_fields_save(self, admin_client):
        tiers = tiers_make()
        response = admin_client.post(reverse("admin:rewards_reward_add"), form_data(
            name="Gold upgrade", kind=RewardKind.TIER_UPGRADE, upgrade_tier=str(tiers["gold"].pk), stock="",
            tiers=[str(tiers["silver"].pk)]))

        assert response.status_code == 302
        reward = Reward.objects.get()
        assert reward.upgrade_tier == tiers["gold"] and list(reward.tiers.all()) == [tiers["silver"]]
        assert reward.stock is None

    def test_an_untouched_stock_is_not_written_back_over_redemptions(self, admin_client, member, now):
        reward = reward_make(stock=10)
        page = admin_client.get(reverse("admin:rewards_reward_change", args=[reward.pk]))
        assert page.context["adminform"].form["stock_seen"].value() == "10"
        give(member, 50, now=now)
        redeem(member, reward, now)  # stock 9 while the merchant edits

        response = admin_client.post(reverse("admin:rewards_reward_change", args=[reward.pk]),
                                     form_data(name="Glass water 500ml", stock="10", stock_seen="10"))

        assert response.status_code == 302
        reward.refresh_from_db()
        assert (reward.name, reward.stock) == ("Glass water 500ml", 9)

    def test_a_stock_change_on_a_stale_figure_is_refused_with_the_current_one(self, admin_client, member, now):
        reward = reward_make(stock=10)
        give(member, 50, now=now)
        redeem(member, reward, now)

        response = admin_client.post(reverse("admin:rewards_reward_change", args=[reward.pk]),
                                     form_data(stock="20", stock_seen="10"))

        assert response.status_code == 200
        form = response.context["adminform"].form
        assert "changed the stock to 9" in " ".join(form.errors["stock"])
        assert form["stock_seen"].value() == "9"  # saving again now applies the merchant's figure
        assert Reward.objects.get(pk=reward.pk).stock == 9
        again = admin_client.post(reverse("admin:rewards_reward_change", args=[reward.pk]),
                                  form_data(stock="20", stock_seen="9"))
        assert again.status_code == 302 and Reward.objects.get(pk=reward.pk).stock == 20

    def test_kind_cannot_change_and_delete_is_refused_once_redeemed(self, admin_client, member, now):
        reward = reward_make()
        give(member, 50, now=now)
        redemption_cancel(redemption_id=redeem(member, reward, now).pk, now=now, reason="x")

        response = admin_client.post(reverse("admin:rewards_reward_change", args=[reward.pk]),
                                     form_data(kind=RewardKind.DONATION, donation_goal="100", stock_seen="10"))

        assert response.status_code == 200 and "kind" in response.context["adminform"].form.errors
        assert admin_client.get(reverse("admin:rewards_reward_delete", args=[reward.pk])).status_code == 403
        assert Reward.objects.get(pk=reward.pk).kind == RewardKind.GOODS

    def test_an_unredeemed_reward_can_be_deleted(self, admin_client):
        reward = reward_make()
        response = admin_client.post(reverse("admin:rewards_reward_delete", args=[reward.pk]), {"post": "yes"})
        assert response.status_code == 302 and not Reward.objects.exists()


def test_a_member_can_redeem_from_what_the_list_offers_end_to_end(now):
    member = MemberFactory()
    give(member, 60, now=now)
    reward_make(stock=1)
    offer = reward_list_available(member=member, now=now)[0]

    redemption = redemption_create(member=member, reward_id=offer.reward.pk, now=now, idempotency_key="portal-1")

    assert Redemption.objects.get() == redemption
    assert reward_list_available(member=member, now=now)[0].reason == "Sorry, this is out of stock."
