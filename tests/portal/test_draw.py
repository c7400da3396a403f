"""Portal lucky draw: honest odds from the weights in play, draws left, one draw per token (a double tap draws
once), the result shown honestly (HTMX partial with aria-live), frozen members and other refusals change nothing."""

import pytest
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from members.models import MemberStatus
from rewards.forms import TOKEN_SALT
from rewards.models import Coupon, Draw, DrawCampaign, Prize, PrizeKind
from rewards.services import draws as draw_service
from tests.portal.test_rewards import give, rows, token_from
from tests.rewards.factories import CouponTemplateFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]


@pytest.fixture
def campaign(db):
    campaign = DrawCampaign.objects.create(name="Spring draw", name_zh_hans="春季抽奖", cost_points=10, daily_limit=3,
                                           campaign_limit=5)
    Prize.objects.create(campaign=campaign, name="Nothing", kind=PrizeKind.NOTHING, weight=70)
    Prize.objects.create(campaign=campaign, name="50 points", kind=PrizeKind.POINTS, points=50, weight=20)
    Prize.objects.create(campaign=campaign, name="Coffee coupon", kind=PrizeKind.COUPON, weight=10,
                         coupon_template=CouponTemplateFactory(name="Coffee"))
    Prize.objects.create(campaign=campaign, name="Bike", kind=PrizeKind.GOODS, weight=5, stock=0)
    return campaign


def force(monkeypatch, kind: str) -> None:
    """Make the next draws pick the prize of ``kind`` (the service's own pick function, steered)."""
    real = draw_service.prize_pick

    def pick(weights, *, rng=None):
        for key, _weight in weights:
            if key.kind == kind:
                return key, 0
        return real(weights, rng=rng)

    monkeypatch.setattr(draw_service, "prize_pick", pick)


def url(campaign) -> str:
    return reverse("portal:draw", args=[campaign.pk])


class TestDrawPage:
    def test_shows_cost_draws_left_and_honest_odds(self, portal_client, portal_member, campaign):
        give(portal_member, 100)

        html = portal_client.get(url(campaign)).content.decode()

        assert "Spring draw" in html and "Cost per draw" in html
        assert "No prize" in html and "70%" in html and "20%" in html and "10%" in html  # 70+20+10 in play
        assert "all gone" in html  # the bike: no stock, no chance
        assert "Draws left today" in html and "Draws left in this lucky draw" in html
        assert 'aria-live="polite"' in html and 'hx-post="' in html

    def test_a_list_when_more_than_one_draw_is_open(self, portal_client, campaign):
        other = DrawCampaign.objects.create(name="Summer draw", cost_points=5)

        html = portal_client.get(reverse("portal:draws")).content.decode()
        rewards = portal_client.get(reverse("portal:rewards")).content.decode()

        assert url(campaign) in html and url(other) in html
        assert reverse("portal:draws") in rewards

    def test_an_inactive_or_unknown_draw_is_404(self, portal_client, campaign):
        DrawCampaign.objects.filter(pk=campaign.pk).update(is_active=False)
        assert portal_client.get(url(campaign)).status_code == 404
        assert portal_client.get(reverse("portal:draw", args=[999999])).status_code == 404

    def test_not_enough_points_says_so_and_offers_no_button(self, portal_client, portal_member, campaign):
        give(portal_member, 4)

        html = portal_client.get(url(campaign)).content.decode()

        assert "You need 6 more points to draw." in html and 'name="token"' not in html

    def test_a_frozen_member_reads_the_page_without_a_draw_button(self, portal_client, portal_member, campaign):
        give(portal_member, 100)
        type(portal_member).objects.filter(pk=portal_member.pk).update(status=MemberStatus.FROZEN)

        html = portal_client.get(url(campaign)).content.decode()

        assert "70%" in html and "This member account is frozen." in html and 'name="token"' not in html

    def test_query_count_with_many_draws(self, portal_client, portal_member, campaign, monkeypatch,
                                         django_assert_num_queries):
        give(portal_member, 1000)
        DrawCampaign.objects.filter(pk=campaign.pk).update(daily_limit=None, campaign_limit=None)
        force(monkeypatch, PrizeKind.NOTHING)
        for i in range(30):
            draw_service.draw_perform(member=portal_member, campaign=campaign, now=timezone.now(),
                                      idempotency_key=f"many-{i}")
        # session, login, campaign, prizes, settings (day), counts, points, settings (money)
        with django_assert_num_queries(8):
            response = portal_client.get(url(campaign))
        assert response.status_code == 200 and len(response.content) < 100_000


class TestDrawing:
    def test_no_prize_is_said_honestly(self, portal_client, portal_member, campaign, monkeypatch):
        give(portal_member, 100)
        force(monkeypatch, PrizeKind.NOTHING)
        token = token_from(portal_client.get(url(campaign)).content.decode())

        response = portal_client.post(url(campaign), {"token": token}, HTTP_HX_REQUEST="true")

        html = response.content.decode()
        assert response.status_code == 200
        assert "<html" not in html and 'id="draw-panel"' in html and 'aria-live="polite"' in html
        assert "No prize this time." in html
        assert Draw.objects.filter(member=portal_member).count() == 1

    def test_a_coupon_prize_links_to_the_coupon(self, portal_client, portal_member, campaign, monkeypatch):
        give(portal_member, 100)
        force(monkeypatch, PrizeKind.COUPON)
        token = token_from(portal_client.get(url(campaign)).content.decode())

        html = portal_client.post(url(campaign), {"token": token}).content.decode()

        coupon = Coupon.objects.get(member=portal_member)
        assert "You won: Coffee coupon!" in html and reverse("portal:coupon", args=[coupon.pk]) in html

    def test_a_points_prize_links_to_the_history(self, portal_client, portal_member, campaign, monkeypatch):
        give(portal_member, 100)
        force(monkeypatch, PrizeKind.POINTS)
        token = token_from(portal_client.get(url(campaign)).content.decode())

        html = portal_client.post(url(campaign), {"token": token}).content.decode()

        assert "50 points were added to your account." in html and reverse("portal:history") in html
        assert "140" in html  # 100 − 10 + 50, the panel is recomputed after the draw

    def test_a_double_tap_draws_once_and_shows_the_same_result(self, portal_client, portal_member, campaign):
        give(portal_member, 100)
        token = token_from(portal_client.get(url(campaign)).content.decode())

        first = portal_client.post(url(campaign), {"token": token}, HTTP_HX_REQUEST="true").content.decode()
        second = portal_client.post(url(campaign), {"token": token}, HTTP_HX_REQUEST="true").content.decode()

        draw = Draw.objects.get(member=portal_member)
        result = first[first.index('id="draw-result"'):first.index("</div>", first.index('id="draw-result"'))]
        assert result in second
        assert draw.prize.name in result or "No prize this time." in result

    @pytest.mark.parametrize("case", ["missing", "tampered", "other_member", "other_campaign"])
    def test_a_bad_token_is_refused_and_changes_nothing(self, case, portal_client, portal_member, other_member,
                                                        campaign):
        give(portal_member, 100)
        token = token_from(portal_client.get(url(campaign)).content.decode())
        forged = {
            "missing": "",
            "tampered": token[:-2] + ("xx" if not token.endswith("xx") else "yy"),
            "other_member": signing.dumps({"k": "x", "m": other_member.pk, "p": "draw", "t": campaign.pk},
                                          salt=TOKEN_SALT),
            "other_campaign": signing.dumps({"k": "x", "m": portal_member.pk, "p": "draw", "t": campaign.pk + 1},
                                            salt=TOKEN_SALT),
        }[case]
        before = rows()

        response = portal_client.post(url(campaign), {"token": forged})

        assert response.status_code == 422 and "confirm again" in response.content.decode()
        assert rows() == before

    def test_the_daily_limit_is_shown_and_enforced(self, portal_client, portal_member, campaign):
        give(portal_member, 100)
        DrawCampaign.objects.filter(pk=campaign.pk).update(daily_limit=1)
        token = token_from(portal_client.get(url(campaign)).content.decode())
        portal_client.post(url(campaign), {"token": token})
        html = portal_client.get(url(campaign)).content.decode()
        assert "You have used all your draws for today." in html and 'name="token"' not in html
        before = rows()

        token2 = signing.dumps({"k": "again", "m": portal_member.pk, "p": "draw", "t": campaign.pk}, salt=TOKEN_SALT)
        response = portal_client.post(url(campaign), {"token": token2})

        assert response.status_code == 422 and "You have used all your draws for today." in response.content.decode()
        assert rows() == before

    def test_a_frozen_member_can_read_but_not_draw(self, portal_client, portal_member, campaign):
        give(portal_member, 100)
        token = token_from(portal_client.get(url(campaign)).content.decode())
        type(portal_member).objects.filter(pk=portal_member.pk).update(status=MemberStatus.FROZEN)
        before = rows()

        response = portal_client.post(url(campaign), {"token": token})

        assert response.status_code == 422
        assert "This member account is frozen." in response.content.decode()
        assert rows() == before

    def test_the_result_is_translated(self, portal_client, portal_member, campaign, monkeypatch):
        give(portal_member, 100)
        force(monkeypatch, PrizeKind.NOTHING)
        token = token_from(portal_client.get(url(campaign)).content.decode())

        html = portal_client.post(url(campaign), {"token": token}, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()

        assert 'lang="zh-hans"' in html and "春季抽奖" in html
