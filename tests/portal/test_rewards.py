"""Portal rewards: the catalogue with reasons, the confirmation step, redeeming exactly once, redemptions and
cancelling; other members' ids are 404; bad input changes nothing."""

import datetime as dt
import re
import threading
from decimal import Decimal

import pytest
from django.core import signing
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from loyalty.models import Account, Lot, Tier, Transfer
from loyalty.services import points_adjust
from members.models import MemberStatus
from rewards.forms import TOKEN_SALT
from rewards.models import Coupon, LimitPeriod, Redemption, RedemptionStatus, Reward, RewardKind
from rewards.services.catalogue import redemption_create
from tests.conftest import requires_postgres
from tests.portal.conftest import client_for
from tests.rewards.factories import CouponTemplateFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

_seed = iter(range(1, 10**9))


# ---- helpers (also used by the other portal spending tests) ----


def give(member, points: int) -> Transfer:
    """Credit points through the real service (a staff adjustment)."""
    from django.contrib.auth import get_user_model

    staff, _ = get_user_model().objects.get_or_create(username="portal-seeder", defaults={"is_staff": True})
    return points_adjust(member=member, points=points, reason="seed", staff_user=staff,
                         idempotency_key=f"portal-seed-{next(_seed)}", now=timezone.now())


def reward_make(**fields) -> Reward:
    defaults = {"name": "Glass water", "name_zh_hans": "玻璃水", "points_cost": 50, "kind": RewardKind.GOODS}
    return Reward.objects.create(**{**defaults, **fields})


def token_from(html: str) -> str:
    match = re.search(r'name="token" value="([^"]+)"', html)
    assert match, "the page has no confirmation token"
    return match.group(1)


def rows() -> tuple:
    """Everything a redemption, a cancellation or a draw can write."""
    from rewards.models import Draw

    return (
        Redemption.objects.count(), Transfer.objects.count(), Lot.objects.count(), Coupon.objects.count(),
        Draw.objects.count(),
        tuple(Account.objects.order_by("pk").values_list("credits_posted", "debits_posted")),
        tuple(Reward.objects.order_by("pk").values_list("stock", flat=True)),
        tuple(Redemption.objects.order_by("pk").values_list("status", flat=True)),
    )


def freeze(member) -> None:
    type(member).objects.filter(pk=member.pk).update(status=MemberStatus.FROZEN)


# ---- the catalogue ----


class TestCatalogue:
    def test_shows_what_the_member_can_redeem_and_why_not_for_the_rest(self, portal_client, portal_member):
        give(portal_member, 120)
        Tier.objects.create(code="basic", name="Basic", rank=0, spend_threshold=Decimal(0))
        gold = Tier.objects.create(code="gold", name="Gold", rank=2, spend_threshold=Decimal(2000))
        ok = reward_make(name="Car wash", points_cost=100)
        reward_make(name="Sofa", points_cost=5000)
        tier_only = reward_make(name="Lounge pass", points_cost=10)
        tier_only.tiers.add(gold)
        reward_make(name="Umbrella", points_cost=10, stock=0)
        limited = reward_make(name="Coffee", points_cost=10, limit_per_member=1, limit_period=LimitPeriod.DAY)
        redemption_create(member=portal_member, reward_id=limited.pk, now=timezone.now(), idempotency_key="seed-limit")
        reward_make(name="Lantern", points_cost=10, available_from=timezone.now() + dt.timedelta(days=3))

        response = portal_client.get(reverse("portal:rewards"))

        html = response.content.decode()
        assert response.status_code == 200
        assert "Car wash" in html and "You can redeem this." in html
        assert "You need 4,890 more points." in html
        assert "it is only for Gold members" in html
        assert "Sorry, this is out of stock." in html
        assert "You can redeem it again from" in html
        assert "Coming soon" in html and "it can be redeemed from" in html
        assert reverse("portal:reward", args=[ok.pk]) in html

    def test_the_i_can_afford_filter_shows_only_what_can_be_redeemed_now(self, portal_client, portal_member):
        give(portal_member, 100)
        reward_make(name="Car wash", points_cost=100)
        reward_make(name="Sofa", points_cost=5000)

        html = portal_client.get(reverse("portal:rewards") + "?show=affordable").content.decode()

        assert "Car wash" in html and "Sofa" not in html

    def test_names_follow_the_language(self, portal_client, portal_member):
        reward_make(name="Glass water", name_zh_hans="玻璃水")

        html = portal_client.get(reverse("portal:rewards"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()

        assert "玻璃水" in html and 'lang="zh-hans"' in html

    def test_a_frozen_member_sees_the_catalogue_but_cannot_redeem(self, portal_client, portal_member):
        give(portal_member, 100)
        reward = reward_make(points_cost=10)
        freeze(portal_member)

        html = portal_client.get(reverse("portal:reward", args=[reward.pk])).content.decode()

        assert "This member account is frozen." in html and 'name="token"' not in html

    def test_links_the_lucky_draw(self, portal_client):
        from rewards.models import DrawCampaign

        campaign = DrawCampaign.objects.create(name="Spring draw", cost_points=10)

        html = portal_client.get(reverse("portal:rewards")).content.decode()

        assert reverse("portal:draw", args=[campaign.pk]) in html

    def test_query_count_does_not_grow_with_the_catalogue(self, portal_client, portal_member,
                                                         django_assert_num_queries):
        give(portal_member, 1000)
        gold = Tier.objects.create(code="gold", name="Gold", rank=2, spend_threshold=Decimal(2000))
        for i in range(60):
            reward = reward_make(name=f"Reward {i}", points_cost=10 + i, limit_per_member=2 if i % 2 else None,
                                 limit_period=LimitPeriod.MONTH)
            if i % 5 == 0:
                reward.tiers.add(gold)
        # session, login, settings ×3, rewards, their tiers, member tier ×2, points ×2, limit counts, upcoming,
        # open draws: the same with 60 rewards as with 1
        with django_assert_num_queries(14):
            response = portal_client.get(reverse("portal:rewards"))
        assert response.status_code == 200
        assert len(response.content) < 100_000


# ---- confirm and redeem ----


class TestRedeem:
    def test_the_confirmation_shows_cost_and_balance_after(self, portal_client, portal_member):
        give(portal_member, 300)
        reward = reward_make(points_cost=120, cash_price=Decimal("0.00"))

        html = portal_client.get(reverse("portal:reward", args=[reward.pk])).content.decode()

        assert "Your points now" in html and ">300<" in html
        assert "Your points after" in html and ">180<" in html
        assert 'name="token"' in html

    def test_redeeming_shows_the_pickup_code_and_qr(self, portal_client, portal_member):
        give(portal_member, 300)
        reward = reward_make(points_cost=120)
        page = portal_client.get(reverse("portal:reward", args=[reward.pk])).content.decode()

        response = portal_client.post(reverse("portal:reward", args=[reward.pk]), {"token": token_from(page)})

        redemption = Redemption.objects.get()
        assert response.status_code == 302 and response["Location"] == reverse("portal:redemption", args=[redemption.pk])
        html = portal_client.get(response["Location"]).content.decode()
        assert redemption.status == RedemptionStatus.PENDING
        assert redemption.pickup_code in html and "<svg" in html and "Waiting for pickup" in html

    def test_a_double_tap_redeems_once_and_shows_the_same_result(self, portal_client, portal_member):
        give(portal_member, 300)
        reward = reward_make(points_cost=120, stock=5)
        token = token_from(portal_client.get(reverse("portal:reward", args=[reward.pk])).content.decode())

        first = portal_client.post(reverse("portal:reward", args=[reward.pk]), {"token": token})
        second = portal_client.post(reverse("portal:reward", args=[reward.pk]), {"token": token})

        assert Redemption.objects.count() == 1
        assert first["Location"] == second["Location"]
        assert Reward.objects.get(pk=reward.pk).stock == 4
        assert Account.objects.get(member=portal_member, kind="MEMBER_POINTS").balance == 180

    def test_a_coupon_reward_links_to_the_coupon(self, portal_client, portal_member):
        give(portal_member, 300)
        reward = reward_make(kind=RewardKind.COUPON, coupon_template=CouponTemplateFactory(), points_cost=50)
        token = token_from(portal_client.get(reverse("portal:reward", args=[reward.pk])).content.decode())

        response = portal_client.post(reverse("portal:reward", args=[reward.pk]), {"token": token}, follow=True)

        coupon = Coupon.objects.get(member=portal_member)
        assert reverse("portal:coupon", args=[coupon.pk]) in response.content.decode()

    def test_a_stored_value_reward_is_fulfilled_at_once_and_links_to_the_wallet(self, portal_client, portal_member):
        give(portal_member, 300)
        reward = reward_make(kind=RewardKind.STORED_VALUE, stored_value=Decimal("25.00"), points_cost=100)
        token = token_from(portal_client.get(reverse("portal:reward", args=[reward.pk])).content.decode())

        html = portal_client.post(reverse("portal:reward", args=[reward.pk]), {"token": token}, follow=True
                                  ).content.decode()

        assert "Fulfilled" in html and "¥25.00 was added to your wallet" in html
        assert reverse("portal:wallet") in html and "Pickup code" not in html

    @pytest.mark.parametrize("case", ["missing", "tampered", "other_reward", "other_member", "other_purpose"])
    def test_a_bad_token_is_refused_and_changes_nothing(self, case, portal_client, portal_member, other_member):
        give(portal_member, 300)
        reward = reward_make(points_cost=120)
        second = reward_make(name="Other", points_cost=10)
        token = token_from(portal_client.get(reverse("portal:reward", args=[reward.pk])).content.decode())
        forged = {
            "missing": "",
            "tampered": token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"),
            "other_reward": token_from(portal_client.get(reverse("portal:reward", args=[second.pk])).content.decode()),
            "other_member": signing.dumps({"k": "x", "m": other_member.pk, "p": "redeem", "t": reward.pk},
                                          salt=TOKEN_SALT),
            "other_purpose": signing.dumps({"k": "x", "m": portal_member.pk, "p": "draw", "t": reward.pk},
                                           salt=TOKEN_SALT),
        }[case]
        before = rows()

        response = portal_client.post(reverse("portal:reward", args=[reward.pk]), {"token": forged})

        assert response.status_code == 422
        html = response.content.decode()
        assert "confirm again" in html
        assert 'name="token"' in html  # a fresh confirmation
        assert rows() == before

    def test_a_token_reused_for_another_reward_after_redeeming_is_refused(self, portal_client, portal_member):
        """A key already used for one reward, sent for another (the form's reward id tampered): refused."""
        give(portal_member, 300)
        reward, other = reward_make(points_cost=10), reward_make(name="Other", points_cost=10)
        token = token_from(portal_client.get(reverse("portal:reward", args=[reward.pk])).content.decode())
        portal_client.post(reverse("portal:reward", args=[reward.pk]), {"token": token})
        before = rows()

        response = portal_client.post(reverse("portal:reward", args=[other.pk]), {"token": token})

        assert response.status_code == 422 and rows() == before

    def test_redeeming_beyond_the_balance_shows_the_reason_and_changes_nothing(self, portal_client, portal_member):
        give(portal_member, 100)
        reward = reward_make(points_cost=80)
        token = token_from(portal_client.get(reverse("portal:reward", args=[reward.pk])).content.decode())
        give(portal_member, -50)  # spent meanwhile (in another tab)
        before = rows()

        response = portal_client.post(reverse("portal:reward", args=[reward.pk]), {"token": token})

        assert response.status_code == 422
        assert "Insufficient points: 50 available, 80 requested." in response.content.decode()
        assert rows() == before

    def test_redeeming_beyond_stock_shows_the_reason_and_changes_nothing(self, portal_client, portal_member):
        give(portal_member, 100)
        reward = reward_make(points_cost=10, stock=1)
        token = token_from(portal_client.get(reverse("portal:reward", args=[reward.pk])).content.decode())
        Reward.objects.filter(pk=reward.pk).update(stock=0)  # the last one went meanwhile
        before = rows()

        response = portal_client.post(reverse("portal:reward", args=[reward.pk]), {"token": token})

        assert response.status_code == 422 and "out of stock" in response.content.decode()
        assert rows() == before

    def test_a_frozen_member_cannot_redeem(self, portal_client, portal_member):
        give(portal_member, 100)
        reward = reward_make(points_cost=10)
        token = token_from(portal_client.get(reverse("portal:reward", args=[reward.pk])).content.decode())
        freeze(portal_member)
        before = rows()

        response = portal_client.post(reverse("portal:reward", args=[reward.pk]), {"token": token})

        assert response.status_code == 422 and "This member account is frozen." in response.content.decode()
        assert rows() == before

    def test_an_unknown_reward_is_404(self, portal_client, portal_member):
        assert portal_client.get(reverse("portal:reward", args=[999999])).status_code == 404
        token = signing.dumps({"k": "x", "m": portal_member.pk, "p": "redeem", "t": 999999}, salt=TOKEN_SALT)
        before = rows()
        assert portal_client.post(reverse("portal:reward", args=[999999]), {"token": token}).status_code == 404
        assert rows() == before

    def test_the_error_is_translated(self, portal_client, portal_member):
        give(portal_member, 100)
        reward = reward_make(points_cost=80)
        token = token_from(portal_client.get(reverse("portal:reward", args=[reward.pk])).content.decode())

        response = portal_client.post(reverse("portal:reward", args=[reward.pk]), {"token": "x" + token},
                                      HTTP_ACCEPT_LANGUAGE="zh-hans")

        assert response.status_code == 422 and 'lang="zh-hans"' in response.content.decode()

    def test_signed_out_visitors_go_to_sign_in(self, client):
        response = client.get(reverse("portal:rewards"))
        assert response.status_code == 302 and reverse("portal:sign_in") in response["Location"]


# ---- redemptions ----


def redeem(member, reward, key=None) -> Redemption:
    return redemption_create(member=member, reward_id=reward.pk, now=timezone.now(),
                             idempotency_key=key or f"portal-test-{next(_seed)}")


class TestRedemptions:
    def test_lists_the_members_redemptions_with_status(self, portal_client, portal_member, other_member):
        give(portal_member, 500)
        give(other_member, 500)
        mine = redeem(portal_member, reward_make(name="Car wash", points_cost=10))
        redeem(other_member, reward_make(name="Not mine", points_cost=10))

        html = portal_client.get(reverse("portal:redemptions")).content.decode()

        assert "Car wash" in html and "Not mine" not in html and "Waiting for pickup" in html
        assert reverse("portal:redemption", args=[mine.pk]) in html

    def test_query_count_with_many_redemptions(self, portal_client, portal_member, django_assert_num_queries):
        give(portal_member, 10_000)
        rewards = [reward_make(name=f"R{i}", points_cost=10) for i in range(5)]
        for i in range(45):
            redeem(portal_member, rewards[i % 5])
        # session, login+member, program settings, one page of redemptions with rewards
        with django_assert_num_queries(4):
            response = portal_client.get(reverse("portal:redemptions"))
        html = response.content.decode()
        assert html.count('href="/portal/redemptions/') == 30 and "?page=2" in html
        assert len(response.content) < 100_000

    def test_another_members_redemption_is_404(self, portal_client, other_member):
        give(other_member, 100)
        theirs = redeem(other_member, reward_make(points_cost=10))
        before = rows()

        assert portal_client.get(reverse("portal:redemption", args=[theirs.pk])).status_code == 404
        assert portal_client.get(reverse("portal:redemption_cancel", args=[theirs.pk])).status_code == 404
        token = signing.dumps({"k": "x", "m": other_member.pk, "p": "cancel", "t": theirs.pk}, salt=TOKEN_SALT)
        assert portal_client.post(reverse("portal:redemption_cancel", args=[theirs.pk]),
                                  {"token": token}).status_code == 404
        assert rows() == before

    def test_cancel_a_pending_redemption_after_confirming(self, portal_client, portal_member):
        give(portal_member, 100)
        redemption = redeem(portal_member, reward_make(points_cost=40, stock=3))
        page = portal_client.get(reverse("portal:redemption_cancel", args=[redemption.pk])).content.decode()
        assert "Yes, cancel it" in page
        token = token_from(page)

        response = portal_client.post(reverse("portal:redemption_cancel", args=[redemption.pk]), {"token": token},
                                      follow=True)
        again = portal_client.post(reverse("portal:redemption_cancel", args=[redemption.pk]), {"token": token})

        redemption.refresh_from_db()
        assert redemption.status == RedemptionStatus.CANCELLED
        assert "the points are back" in response.content.decode()
        assert again.status_code == 302  # the same cancellation, replayed
        assert Account.objects.get(member=portal_member, kind="MEMBER_POINTS").balance == 100
        assert Reward.objects.get(pk=redemption.reward_id).stock == 3

    def test_a_fulfilled_redemption_cannot_be_cancelled(self, portal_client, portal_member):
        give(portal_member, 100)
        redemption = redeem(portal_member, reward_make(points_cost=40, needs_fulfilment=False))
        assert redemption.status == RedemptionStatus.FULFILLED
        token = signing.dumps({"k": "x", "m": portal_member.pk, "p": "cancel", "t": redemption.pk}, salt=TOKEN_SALT)
        before = rows()

        response = portal_client.post(reverse("portal:redemption_cancel", args=[redemption.pk]), {"token": token})

        assert response.status_code == 422 and "cannot be changed" in response.content.decode()
        assert rows() == before


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_posts_of_one_token_redeem_once(portal_member):
    """A real double tap: two requests with the same token at the same moment, in two connections."""
    give(portal_member, 300)
    reward = reward_make(points_cost=120, stock=5)
    first, second = client_for(portal_member), client_for(portal_member)
    token = token_from(first.get(reverse("portal:reward", args=[reward.pk])).content.decode())
    barrier = threading.Barrier(2)
    responses = []

    def post(client):
        try:
            barrier.wait(timeout=10)
            responses.append(client.post(reverse("portal:reward", args=[reward.pk]), {"token": token}))
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(c,)) for c in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    redemption = Redemption.objects.get()
    assert [r.status_code for r in responses] == [302, 302]
    assert {r["Location"] for r in responses} == {reverse("portal:redemption", args=[redemption.pk])}
    assert Reward.objects.get(pk=reward.pk).stock == 4
    assert Account.objects.get(member=portal_member, kind="MEMBER_POINTS").balance == 180


def test_detail_pages_use_a_fixed_number_of_queries(portal_client, portal_member, django_assert_num_queries):
    give(portal_member, 1000)
    gold = Tier.objects.create(code="gold", name="Gold", rank=2, spend_threshold=Decimal(2000))
    reward = reward_make(points_cost=10, limit_per_member=50, limit_period=LimitPeriod.MONTH)
    reward.tiers.add(Tier.objects.create(code="basic", name="Basic", rank=0, spend_threshold=Decimal(0)), gold)
    for _ in range(20):
        last = redeem(portal_member, reward)
    # session, login, reward, its tiers, settings, points, limit count, member tier ×2, settings (money)
    with django_assert_num_queries(10):
        assert portal_client.get(reverse("portal:reward", args=[reward.pk])).status_code == 200
    # session, login, redemption with reward and coupon, settings
    with django_assert_num_queries(4):
        assert portal_client.get(reverse("portal:redemption", args=[last.pk])).status_code == 200
