"""Portal profile: details, channels, consent, birthday rule, language, password change, closing the account."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from loyalty.exceptions import MemberClosed
from loyalty.models import Event, Transfer, TransferCode
from loyalty.selectors import member_points_summary, transfer_describe
from loyalty.services import points_adjust
from loyalty.services.member_profile import AccountAlreadyClosed, member_close
from members.models import Member, MemberLogin, MemberStatus, OneTimeCode, OneTimeCodePurpose
from notifications.models import ChannelPreference
from tests.loyalty.helpers import buy, program_set
from tests.portal.conftest import PORTAL_PASSWORD, client_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_clean")]

NEW_PASSWORD = "Quiet-Harbour-77"


def form(member, **changes):
    data = {"name": member.name, "email": member.email, "language": member.language, "sms": "on", "inbox": "on"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def text(response) -> str:
    return response.content.decode()


def fresh(member) -> Member:
    return Member.objects.get(pk=member.pk)


def snapshot(member) -> tuple:
    m = fresh(member)
    return (m.name, m.email, m.language, m.birthday, m.marketing_consent, m.consent_updated_at, m.status,
            ChannelPreference.objects.filter(member=m).exists(),
            MemberLogin.objects.filter(pk=m.pk).values_list("birthday_edits", "password", "session_epoch").first())


def give_points(member, staff, points, key="give"):
    points_adjust(member=member, points=points, reason="welcome gift", staff_user=staff, idempotency_key=key,
                  now=timezone.now())


class TestProfilePage:
    def test_shows_the_member_with_default_channels(self, portal_client, portal_member):
        page = text(portal_client.get("/portal/me/"))
        assert portal_member.member_number in page
        assert "+86 139****0001" in page and "+8613900000001" not in page
        assert re.search(r'<input[^>]*name="sms"[^>]*checked', page)  # no saved row: the defaults
        assert re.search(r'<input[^>]*name="inbox"[^>]*checked', page)
        assert not re.search(r'<input[^>]*name="email_channel"[^>]*checked', page)
        assert "1 more time" in page  # the program's default birthday rule

    def test_query_count(self, portal_member, staff, django_assert_max_num_queries):
        for n in range(30):
            give_points(portal_member, staff, 10, key=f"g{n}")
        client = client_for(portal_member)
        with django_assert_max_num_queries(5):
            assert client.get("/portal/me/").status_code == 200

    def test_anonymous_goes_to_sign_in(self, client, db):
        assert client.get("/portal/me/")["Location"] == "/portal/sign-in/?next=%2Fportal%2Fme%2F"


class TestProfileEdit:
    def test_saves_details_channels_and_consent(self, portal_client, portal_member, settings):
        response = portal_client.post("/portal/me/", form(
            portal_member, name="Lin Meimei", email="mei@example.com", language="zh-hans", sms=None,
            email_channel="on", marketing_consent="on"))
        assert response.status_code == 302 and response["Location"] == "/portal/me/"
        member = fresh(portal_member)
        assert (member.name, member.email, member.language, member.marketing_consent) == (
            "Lin Meimei", "mei@example.com", "zh-hans", True)
        assert member.consent_updated_at is not None
        channels = ChannelPreference.objects.get(member=member)
        assert (channels.sms, channels.email, channels.inbox) == (False, True, True)
        assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"

    def test_consent_time_only_moves_when_consent_changes(self, portal_client, portal_member):
        portal_client.post("/portal/me/", form(portal_member, marketing_consent="on"))
        first = fresh(portal_member).consent_updated_at
        portal_client.post("/portal/me/", form(portal_member, name="Lin M", marketing_consent="on"))
        assert fresh(portal_member).consent_updated_at == first
        portal_client.post("/portal/me/", form(portal_member))
        member = fresh(portal_member)
        assert member.marketing_consent is False and member.consent_updated_at > first

    @pytest.mark.parametrize("changes,message", [
        ({"email": "not-an-email"}, "Enter a valid email address."),
        ({"name": "   "}, "This field is required."),
        ({"language": "fr"}, "Select a valid choice."),
        ({"birthday": "2999-01-01"}, "The birthday is in the future."),
        ({"birthday": "31/31/1990"}, "Enter a valid date."),
        ({"name": "x" * 101}, "Ensure this value has at most 100 characters"),
    ])
    def test_bad_input_changes_nothing(self, portal_client, portal_member, changes, message):
        before = snapshot(portal_member)
        response = portal_client.post("/portal/me/", form(portal_member, marketing_consent="on", **changes))
        assert response.status_code == 200 and message in text(response)
        assert snapshot(portal_member) == before

    def test_birthday_can_be_set_once_then_is_explained(self, portal_client, portal_member):
        portal_client.post("/portal/me/", form(portal_member, birthday="1990-05-17"))
        assert fresh(portal_member).birthday == dt.date(1990, 5, 17)
        assert MemberLogin.objects.get(pk=portal_member.pk).birthday_edits == 1
        page = text(portal_client.get("/portal/me/"))
        assert 'name="birthday"' not in page and "can no longer be changed here" in page
        portal_client.post("/portal/me/", form(portal_member, birthday="1991-01-01"))  # a tampered form
        assert fresh(portal_member).birthday == dt.date(1990, 5, 17)

    def test_saving_the_same_birthday_uses_no_change(self, portal_client, portal_member):
        program_set(birthday_member_edits=2)
        portal_client.post("/portal/me/", form(portal_member, birthday="1990-05-17"))
        portal_client.post("/portal/me/", form(portal_member, birthday="1990-05-17", name="Lin M"))
        assert MemberLogin.objects.get(pk=portal_member.pk).birthday_edits == 1
        assert "1 more time" in text(portal_client.get("/portal/me/"))

    def test_staff_only_birthday_rule(self, portal_client, portal_member):
        program_set(birthday_member_edits=0)
        page = text(portal_client.get("/portal/me/"))
        assert 'name="birthday"' not in page and "can no longer be changed here" in page

    def test_program_default_language_forgets_the_cookie(self, portal_client, portal_member, settings):
        portal_client.post("/portal/me/", form(portal_member, language="zh-hans"))
        response = portal_client.post("/portal/me/", form(portal_member, language=""))
        assert fresh(portal_member).language == ""
        assert response.cookies[settings.LANGUAGE_COOKIE_NAME]["max-age"] == 0


class TestPasswordChange:
    def post(self, client, current=PORTAL_PASSWORD, new=NEW_PASSWORD, again=None):
        return client.post("/portal/me/password/", {"current_password": current, "new_password": new,
                                                    "new_password_again": again or new})

    @pytest.mark.parametrize("current,new,again,message", [
        ("wrong", NEW_PASSWORD, None, "The password is not right."),
        (PORTAL_PASSWORD, "short", None, "This password is too short"),
        (PORTAL_PASSWORD, NEW_PASSWORD, "other-Pass-99", "The two passwords do not match"),
        (PORTAL_PASSWORD, PORTAL_PASSWORD, None, "the same as the current one"),
    ])
    def test_refusals_change_nothing(self, portal_client, portal_member, current, new, again, message):
        before = snapshot(portal_member)
        response = self.post(portal_client, current, new, again)
        assert message in text(response)
        assert snapshot(portal_member) == before

    def test_change_keeps_this_session_and_ends_the_others(self, portal_client, portal_member):
        other = client_for(portal_member)
        assert self.post(portal_client)["Location"] == "/portal/me/"
        assert portal_client.get("/portal/me/").status_code == 200
        assert other.get("/portal/me/").status_code == 302
        assert Client().post("/portal/sign-in/", {"phone": portal_member.phone, "password": NEW_PASSWORD}).status_code == 302


class TestClose:
    def post(self, client, password=PORTAL_PASSWORD, confirm="on"):
        return client.post("/portal/me/close/", {"password": password, **({"confirm": confirm} if confirm else {})})

    def test_page_states_the_consequences_and_the_balance(self, portal_client, portal_member, staff):
        give_points(portal_member, staff, 345)
        page = text(portal_client.get("/portal/me/close/"))
        assert "345" in page and "forfeited" in page and "merchant" in page

    @pytest.mark.parametrize("password,confirm,message", [
        ("wrong", "on", "The password is not right."),
        (PORTAL_PASSWORD, None, "This field is required."),
    ])
    def test_refusals_change_nothing(self, portal_client, portal_member, staff, password, confirm, message):
        give_points(portal_member, staff, 100)
        before, transfers = snapshot(portal_member), Transfer.objects.count()
        response = self.post(portal_client, password, confirm)
        assert message in text(response)
        assert snapshot(portal_member) == before and Transfer.objects.count() == transfers
        assert portal_client.get("/portal/me/").status_code == 200

    def test_closing_anonymises_forfeits_and_signs_out(self, portal_client, portal_member, other_member, staff):
        give_points(portal_member, staff, 250)
        portal_member.birthday, portal_member.email, portal_member.marketing_consent = dt.date(1990, 1, 2), "a@b.cn", True
        portal_member.save()
        OneTimeCode.objects.create(member=portal_member, purpose=OneTimeCodePurpose.RESET, code_hash="x",
                                   expires_at=timezone.now() + dt.timedelta(minutes=5))
        second_device = client_for(portal_member)
        response = self.post(portal_client)
        assert response["Location"] == "/portal/sign-in/"
        member = fresh(portal_member)
        assert member.status == MemberStatus.CLOSED and member.closed_at is not None
        assert (member.name, member.phone, member.birthday, member.email, member.marketing_consent) == (
            "Closed member", f"closed-{member.pk}", None, "", False)
        assert not MemberLogin.objects.filter(pk=member.pk).exists()
        assert not OneTimeCode.objects.filter(member=member).exists()
        forfeit = Transfer.objects.get(member=member, code=TransferCode.ADJUST, amount=250, staff_user=None)
        assert "forfeited" in forfeit.reason and forfeit.source == "MEMBER"
        assert transfer_describe(transfer=forfeit) == forfeit.reason  # the member's own action, not "by system"
        closed = Event.objects.get(member=member, type="member.closed")
        assert closed.payload == {"member_number": member.member_number, "points_forfeited": 250}
        assert member_points_summary(member=member, now=timezone.now()).available == 0
        assert portal_client.get("/portal/me/").status_code == 302
        assert second_device.get("/portal/me/").status_code == 302
        assert other_member.login.password  # nobody else touched
        refused = Client().post("/portal/sign-in/", {"phone": "+8613900000001", "password": PORTAL_PASSWORD})
        assert "not right" in text(refused)

    def test_closing_twice_is_refused(self, portal_member):
        member_close(member=portal_member, now=timezone.now())
        with pytest.raises(AccountAlreadyClosed):
            member_close(member=portal_member, now=timezone.now())
        with pytest.raises(MemberClosed):  # and the ledger refuses the closed member
            points_adjust(member=portal_member, points=5, reason="x", staff_user=None, source="API",
                          idempotency_key="late", now=timezone.now())

    def test_stored_value_must_be_spent_first(self, portal_client, portal_member):
        from rewards.services.wallet import wallet_topup

        wallet_topup(member=portal_member, amount=Decimal("50.00"), now=timezone.now(), idempotency_key="top")
        before, transfers = snapshot(portal_member), Transfer.objects.count()
        response = self.post(portal_client)
        assert "Spend it or ask for a refund at the counter" in text(response) and "50.00" in text(response)
        assert snapshot(portal_member) == before and Transfer.objects.count() == transfers

    def test_pending_points_must_be_released_first(self, portal_client, portal_member, store):
        program_set(pending_days=7)
        buy(portal_member, store, "200.00", at=timezone.now() - dt.timedelta(hours=1))
        before, transfers = snapshot(portal_member), Transfer.objects.count()
        response = self.post(portal_client)
        assert "still pending" in text(response)
        assert snapshot(portal_member) == before and Transfer.objects.count() == transfers

    def test_debt_is_kept_on_the_books(self, portal_member, staff, store):
        purchase = buy(portal_member, store, "100.00", at=timezone.now() - dt.timedelta(hours=2))
        earned = member_points_summary(member=portal_member, now=timezone.now()).available
        assert earned > 0
        points_adjust(member=portal_member, points=-earned, reason="spent", staff_user=staff, idempotency_key="sp",
                      now=timezone.now())
        from loyalty.services import refund_record

        refund_record(purchase=purchase, occurred_at=timezone.now(), now=timezone.now(), idempotency_key="rf",
                      amount=Decimal("100.00"), staff_user=staff)
        debt = member_points_summary(member=portal_member, now=timezone.now()).debt
        assert debt > 0
        member_close(member=portal_member, now=timezone.now())
        assert member_points_summary(member=portal_member, now=timezone.now()).debt == debt


@pytest.mark.parametrize("url", ["/portal/me/", "/portal/me/password/", "/portal/me/close/"])
def test_pages_are_small_and_labelled(portal_client, url):
    response = portal_client.get(url)
    html = text(response)
    assert response.status_code == 200 and len(response.content) < 100_000
    assert '<html lang="en">' in html and html.count("<h1>") == 1
    inputs = re.findall(r'<input[^>]*type="(?:text|email|password|date|checkbox)"[^>]*id="([^"]+)"', html)
    assert inputs and all(f'for="{i}"' in html for i in inputs)  # every input has its label


@pytest.mark.parametrize("url", ["/portal/sign-in/", "/portal/activate/", "/portal/reset/"])
def test_public_pages_are_small_and_labelled(client, db, url):
    response = client.get(url)
    html = text(response)
    assert response.status_code == 200 and len(response.content) < 100_000
    inputs = re.findall(r'<input[^>]*type="(?:text|password|checkbox)"[^>]*id="([^"]+)"', html)
    assert inputs and all(f'for="{i}"' in html for i in inputs)


class TestCloseRewards:
    def test_unused_coupons_are_voided(self, portal_client, portal_member):
        from rewards.models import Coupon, CouponStatus
        from tests.rewards.factories import coupon_make

        coupon = coupon_make(member=portal_member)
        assert TestClose().post(portal_client)["Location"] == "/portal/sign-in/"
        coupon.refresh_from_db()
        assert coupon.status == CouponStatus.VOID
        assert not Coupon.objects.filter(member=portal_member, status=CouponStatus.ISSUED).exists()

    def test_rewards_waiting_for_pickup_must_be_collected_first(self, portal_client, portal_member, staff):
        from rewards.models import Reward
        from rewards.services.catalogue import redemption_create

        give_points(portal_member, staff, 500)
        reward = Reward.objects.create(name="Mug", points_cost=200)
        redemption_create(member=portal_member, reward_id=reward.pk, now=timezone.now(), idempotency_key="r1")
        before, transfers = snapshot(portal_member), Transfer.objects.count()
        response = TestClose().post(portal_client)
        assert "waiting for pickup" in text(response)
        assert snapshot(portal_member) == before and Transfer.objects.count() == transfers
