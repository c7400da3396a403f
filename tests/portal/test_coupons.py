"""Portal coupons: grouped usable / used / expired, QR and code text, validity, conditions in words; another
member's coupon is 404; the page's queries do not grow with the number of coupons."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from rewards.models import Coupon, CouponStatus
from rewards.services.coupons import coupon_code_format, coupon_redeem
from tests.factories import StoreFactory
from tests.rewards.factories import CouponTemplateFactory, coupon_make

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]


class TestCoupons:
    def test_groups_usable_used_and_expired_with_qr_and_code(self, portal_client, portal_member):
        now = timezone.now()
        usable = coupon_make(member=portal_member, template=CouponTemplateFactory(name="Ten off"))
        used = coupon_make(member=portal_member, template=CouponTemplateFactory(name="Used one"))
        coupon_redeem(code=used.code, member=portal_member, store=None, order_amount=Decimal("50.00"), now=timezone.now(),
                      idempotency_key="portal-used")
        expired = coupon_make(member=portal_member, template=CouponTemplateFactory(name="Old one", valid_days=1),
                              now=now - dt.timedelta(days=5))

        html = portal_client.get(reverse("portal:coupons")).content.decode()

        ready, rest = html.split("Used</h2>")
        used_part, expired_part = rest.split("Expired or cancelled</h2>")
        assert "Ten off" in ready and coupon_code_format(usable.code) in ready and "<svg" in ready
        assert "Used one" in used_part and "<svg" not in used_part and "used on" in used_part
        assert "Old one" in expired_part and coupon_code_format(expired.code) in expired_part
        assert reverse("portal:coupon", args=[usable.pk]) in ready

    def test_conditions_in_words(self, portal_client, portal_member):
        store = StoreFactory(code="S01", name="Riverside")
        coupon_make(member=portal_member, template=CouponTemplateFactory(
            percent_off=True, stores=["S01"], stacks_with_points=False, minimum_spend=Decimal("30.00")))
        coupon_make(member=portal_member, template=CouponTemplateFactory(spend_save=True, stacks_with_coupons=True))

        html = portal_client.get(reverse("portal:coupons")).content.decode()

        assert "15% off, at most ¥30.00." in html
        assert "The bill must come to at least ¥30.00." in html
        assert f"Only at: {store.name}." in html
        assert "Cannot be combined with paying with points." in html
        assert "Spend ¥100.00, save ¥20.00." in html
        assert "Can be combined with other coupons." in html and "Cannot be combined with other coupons." in html
        assert "Valid " in html

    def test_names_and_conditions_follow_the_language(self, portal_client, portal_member):
        coupon_make(member=portal_member, template=CouponTemplateFactory(spend_save=True))

        html = portal_client.get(reverse("portal:coupons"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()

        assert "满100减20" in html

    def test_the_coupon_page_shows_the_big_qr(self, portal_client, portal_member):
        coupon = coupon_make(member=portal_member, template=CouponTemplateFactory(free_coffee=True))

        html = portal_client.get(reverse("portal:coupon", args=[coupon.pk])).content.decode()

        assert "<svg" in html and coupon_code_format(coupon.code) in html and "Free: Americano." in html

    def test_a_used_coupon_has_no_qr(self, portal_client, portal_member):
        coupon = coupon_make(member=portal_member)
        Coupon.objects.filter(pk=coupon.pk).update(status=CouponStatus.VOID)

        html = portal_client.get(reverse("portal:coupon", args=[coupon.pk])).content.decode()

        assert "<svg" not in html and "Cancelled" in html

    def test_another_members_coupon_is_404(self, portal_client, other_member):
        theirs = coupon_make(member=other_member)

        assert portal_client.get(reverse("portal:coupon", args=[theirs.pk])).status_code == 404
        assert coupon_code_format(theirs.code) not in portal_client.get(reverse("portal:coupons")).content.decode()

    def test_query_count_with_many_coupons(self, portal_client, portal_member, django_assert_num_queries):
        StoreFactory(code="S01")
        templates = [CouponTemplateFactory(stores=["S01"] if i % 2 else []) for i in range(4)]
        for i in range(40):
            coupon_make(member=portal_member, template=templates[i % 4])
        old = timezone.now() - dt.timedelta(days=60)
        for i in range(25):
            coupon_make(member=portal_member, template=templates[i % 4], now=old)
        # session, login, settings, usable, used, expired, store names, settings (currency)
        with django_assert_num_queries(8):
            response = portal_client.get(reverse("portal:coupons"))
        html = response.content.decode()
        assert html.count("<svg") == 30  # the 30 that end soonest, with a note
        assert "end soonest" in html
        assert "Only the latest are shown." in html
        assert len(response.content) < 100_000


def test_the_coupon_page_uses_a_fixed_number_of_queries(portal_client, portal_member, django_assert_num_queries):
    StoreFactory(code="S01")
    coupon = coupon_make(member=portal_member, template=CouponTemplateFactory(stores=["S01"]))
    # session, login, coupon with template, store names, settings ×2
    with django_assert_num_queries(6):
        assert portal_client.get(reverse("portal:coupon", args=[coupon.pk])).status_code == 200
